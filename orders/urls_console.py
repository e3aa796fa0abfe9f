from django.urls import path

from orders import views_console as views

app_name = "console-orders"

urlpatterns = [
    path("", views.order_list, name="list"),
    path("scan/", views.scan, name="scan"),
    path("<str:number>/", views.order_detail, name="detail"),
    path("<str:number>/accept/", views.accept, name="accept"),
    path("<str:number>/decline/", views.decline, name="decline"),
    path("<str:number>/prepare/", views.move, {"name": "prepare"}, name="prepare"),
    path("<str:number>/send-out/", views.move, {"name": "send-out"}, name="send-out"),
    path("<str:number>/delivered/", views.move, {"name": "delivered"}, name="delivered"),
    path("<str:number>/ready/", views.move, {"name": "ready"}, name="ready"),
    path("<str:number>/hand-over/", views.move, {"name": "hand-over"}, name="hand-over"),
    path("<str:number>/cancel/", views.move, {"name": "cancel"}, name="cancel"),
    path("<str:number>/return/", views.return_goods, name="return"),
]
