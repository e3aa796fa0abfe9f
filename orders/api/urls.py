"""The shopper's API, mounted at /api/v1/mall/ (o2o.urls)."""

from django.urls import path

from orders.api import views

app_name = "mall_api"

urlpatterns = [
    path("cart/", views.CartApi.as_view(), name="cart"),
    path("cart/lines/", views.CartLineAddApi.as_view(), name="cart-lines"),
    path("cart/lines/<int:sku_id>/", views.CartLineSetApi.as_view(), name="cart-line"),
    path("checkout/quote/", views.CheckoutQuoteApi.as_view(), name="checkout-quote"),
    path("orders/", views.OrderCollectionApi.as_view(), name="orders"),
    path("orders/<str:number>/", views.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<str:number>/cancel/", views.OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<str:number>/payment/", views.OrderPaymentApi.as_view(), name="order-payment"),
]
