from django.urls import path

from orders import views

urlpatterns = [path("", views.wechat_pay_notify, name="wechat-pay-notify")]
