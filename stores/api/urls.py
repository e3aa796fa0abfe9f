from django.urls import path

from stores.api import views

urlpatterns = [
    path("stores/", views.StoreListApi.as_view(), name="store-list"),
    path("stores/<int:store_id>/", views.StoreDetailApi.as_view(), name="store-detail"),
]
