from django.urls import path

from inventory import views

app_name = "console-stock"

urlpatterns = [
    path("", views.console_stock, name="list"),
]
