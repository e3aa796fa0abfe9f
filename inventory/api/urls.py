from django.urls import path

from inventory.api import views

urlpatterns = [
    path("products/", views.ProductListApi.as_view(), name="product-list"),
    path("products/<int:product_id>/", views.ProductDetailApi.as_view(), name="product-detail"),
    path("stock/", views.StockListApi.as_view(), name="stock-list"),
]
