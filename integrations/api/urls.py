"""The ERP/POS open API, mounted at /api/v1/erp/ (o2o.urls). Every view here declares its scope."""

from django.urls import path

from integrations.api import views

app_name = "erp"

urlpatterns = [
    path("members/lookup/", views.MemberLookupApi.as_view(), name="member-lookup"),
    path("members/<int:member_id>/points/", views.MemberPointsApi.as_view(), name="member-points"),
    path("stores/<str:store_code>/follow-ups/", views.StoreFollowUpsApi.as_view(), name="store-follow-ups"),
]
