from django.urls import path

from stores import views

app_name = "mall"

urlpatterns = [
    path("", views.mall_home, name="home"),
    path("stores/nearby/", views.nearby_stores, name="nearby-stores"),
    path("stores/choose/", views.choose_store, name="choose-store"),
]
