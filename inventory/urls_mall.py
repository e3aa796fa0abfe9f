from django.urls import path

from inventory import views

app_name = "catalog"

urlpatterns = [
    path("", views.catalog, name="list"),
    path("<int:product_id>/", views.product_page, name="product"),
]
