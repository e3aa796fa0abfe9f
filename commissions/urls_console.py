from django.urls import path

from commissions import views_console as views

app_name = "console-promotion"

urlpatterns = [
    path("", views.promotion, name="page"),
    path("withdraw/", views.withdraw, name="withdraw"),
]
