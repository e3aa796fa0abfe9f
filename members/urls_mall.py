from django.urls import path

from members import views

app_name = "members"

urlpatterns = [
    path("signin/", views.sign_in_start, name="sign-in"),
    path("signin/wechat/", views.wechat_callback, name="wechat-callback"),
    path("signin/dev/", views.development_sign_in, name="dev-sign-in"),
    path("signout/", views.sign_out_view, name="sign-out"),
    path("me/", views.member_center, name="center"),
    path("me/card/", views.member_card, name="card"),
    path("me/marketing/", views.marketing_consent, name="marketing-consent"),
    path("me/phone/", views.bind_phone, name="bind-phone"),
    path("s/<str:store_code>/", views.store_entry, name="store-entry"),
    path("p/<str:sku_code>/<str:store_code>/", views.product_entry, name="product-entry"),
    path("r/<str:code>/", views.referral_entry, name="referral-entry"),
    path("g/<str:staff_code>/", views.guide_entry, name="guide-entry"),
]
