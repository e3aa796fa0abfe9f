from django.urls import path

from members import views_console as views

app_name = "console-calls"

urlpatterns = [
    path("", views.calls, name="list"),
    path("<int:follow_up_id>/", views.call, name="call"),
]
