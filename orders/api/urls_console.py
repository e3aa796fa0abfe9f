"""The clerk console's API, mounted at /api/v1/console/ (o2o.urls)."""

from django.urls import path

from orders.api import console as views

app_name = "console_api"

urlpatterns = [
    path("offers/", views.OffersApi.as_view(), name="offers"),
    path("orders/", views.StoreOrdersApi.as_view(), name="orders"),
    path("scan/", views.ScanApi.as_view(), name="scan"),
    path("orders/<str:number>/", views.StoreOrderApi.as_view(), name="order"),
    path("orders/<str:number>/returns/", views.OrderReturnApi.as_view(), name="order-returns"),
    path("orders/<str:number>/<str:action>/", views.OrderActionApi.as_view(), name="order-action"),
]
