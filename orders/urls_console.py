from django.urls import path

from orders import views_console as views

app_name = "console-orders"

urlpatterns = [
    path("", views.order_list, name="list"),
    path("scan/", views.scan, name="scan"),
    path("<str:number>/", views.order_detail, name="detail"),
    path("<str:number>/accept/", views.accept, name="accept"),
    path("<str:number>/decline/", views.decline, name="decline"),
    path("<str:number>/prepare/", views.prepare, name="prepare"),
    path("<str:number>/send-out/", views.send_out, name="send-out"),
    path("<str:number>/delivered/", views.delivered, name="delivered"),
    path("<str:number>/ready/", views.ready, name="ready"),
    path("<str:number>/hand-over/", views.hand_over, name="hand-over"),
    path("<str:number>/cancel/", views.cancel, name="cancel"),
    path("<str:number>/return/", views.return_goods, name="return"),
]
