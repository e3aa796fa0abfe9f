from django.urls import path

from members import views_campaigns as views

app_name = "console-campaigns"

urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("new/", views.campaign_new, name="new"),
    path("segments/<int:segment_id>/new/", views.campaign_new_for_segment, name="new-for-segment"),
    path("<int:campaign_id>/", views.campaign_detail, name="detail"),
    path("<int:campaign_id>/send/", views.campaign_send, name="send"),
    path("<int:campaign_id>/cancel/", views.campaign_cancel, name="cancel"),
]
