"""Read-only store API: the list (optionally nearest-first from a point) and one store."""

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from o2o.geo import parse_point_pair, wgs84_to_gcj02
from stores.api.serializers import NearbyStoreSerializer, StoreSerializer
from stores.models import Store
from stores.selectors import active_stores, nearest_stores


class StoreListApi(APIView):
    """Active stores. With `near=lat,lng`, the nearest first with their distance and open state."""

    permission_classes = [AllowAny]

    class FilterSerializer(serializers.Serializer):
        near = serializers.CharField(required=False, help_text=_("lat,lng of the shopper"))
        coord = serializers.ChoiceField(choices=["gcj02", "wgs84"], default="gcj02")
        within_m = serializers.IntegerField(required=False, min_value=1, max_value=20_000_000)
        open_now = serializers.BooleanField(default=False)
        offers_pickup = serializers.BooleanField(default=False)
        delivers_here = serializers.BooleanField(default=False)
        city = serializers.CharField(required=False)
        limit = serializers.IntegerField(default=10, min_value=1, max_value=100)

        def validate(self, attrs):
            near_only = ("within_m", "open_now", "delivers_here")
            if "near" not in attrs and any(attrs.get(name) for name in near_only):
                raise serializers.ValidationError({"near": [_("Required with within_m, open_now or delivers_here.")]})
            return attrs

    @extend_schema(
        operation_id="stores_list",
        parameters=[
            OpenApiParameter(
                "near",
                OpenApiTypes.STR,
                description="latitude,longitude",
                examples=[OpenApiExample("West Lake, Hangzhou", value="30.2590,120.1490")],
            ),
            OpenApiParameter("coord", OpenApiTypes.STR, enum=["gcj02", "wgs84"], description="datum of `near`"),
            OpenApiParameter("within_m", OpenApiTypes.INT),
            OpenApiParameter("open_now", OpenApiTypes.BOOL),
            OpenApiParameter("offers_pickup", OpenApiTypes.BOOL),
            OpenApiParameter(
                "delivers_here", OpenApiTypes.BOOL, description="`near` is inside the store's delivery radius"
            ),
            OpenApiParameter("city", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT),
        ],
        responses={200: NearbyStoreSerializer(many=True)},
        description=(
            "Without `near`: active stores by code (each item is `{store, distance_m: null, is_open}`). "
            "With `near`: nearest first. Coordinates out of range give 400 `invalid_coordinates`."
        ),
    )
    def get(self, request):
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        stores = Store.objects.all()
        if data.get("city"):
            stores = stores.filter(city=data["city"])
        if "near" in data:
            point = parse_point_pair(data["near"])
            if data["coord"] == "wgs84":
                point = wgs84_to_gcj02(point)
            found = nearest_stores(
                point.lat,
                point.lng,
                limit=data["limit"],
                within_m=data.get("within_m"),
                open_now=data["open_now"],
                offers_pickup=data["offers_pickup"],
                delivers_here=data["delivers_here"],
                queryset=stores,
            )
            return Response(NearbyStoreSerializer(found, many=True).data)
        found = active_stores(queryset=stores, offers_pickup=data["offers_pickup"], limit=data["limit"])
        return Response(NearbyStoreSerializer(found, many=True).data)


class StoreDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="stores_retrieve", responses={200: StoreSerializer})
    def get(self, request, store_id: int):
        store = get_object_or_404(Store.objects.prefetch_related("opening_hours"), pk=store_id, is_active=True)
        return Response(StoreSerializer(store).data)
