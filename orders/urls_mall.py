from django.urls import path

from orders import views

app_name = "orders"

urlpatterns = [
    path("cart/", views.cart, name="cart"),
    path("cart/add/", views.add_to_cart, name="cart-add"),
    path("cart/set/", views.set_quantity, name="cart-set"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/", views.my_orders, name="list"),
    path("me/data/", views.download_my_data, name="my-data"),
    path("me/close/", views.close_my_account, name="close-account"),
    path("orders/<str:number>/", views.order_detail, name="detail"),
    path("orders/<str:number>/pay/dev/", views.development_payment, name="dev-pay"),
    path("orders/<str:number>/pay/", views.wechat_pay, name="pay"),
    path("orders/<str:number>/cancel/", views.cancel, name="cancel"),
    path("orders/<str:number>/received/", views.confirm_receipt, name="confirm-receipt"),
]
