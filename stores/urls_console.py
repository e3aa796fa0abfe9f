from django.urls import path

from stores import views

app_name = "console"

urlpatterns = [
    path("", views.console_home, name="home"),
    path("login/", views.ConsoleLoginView.as_view(), name="login"),
    path("logout/", views.ConsoleLogoutView.as_view(), name="logout"),
]
