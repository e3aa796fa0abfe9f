from django.urls import path

from commissions import views

app_name = "commissions"

urlpatterns = [
    path("me/promotion/", views.promotion, name="promotion"),
    path("me/promotion/team/", views.team, name="team"),
    path("me/promotion/share/", views.share_product, name="share-product"),
    path("me/promotion/poster.png", views.poster, name="poster"),
    path("me/promotion/withdraw/", views.withdraw, name="withdraw"),
]
