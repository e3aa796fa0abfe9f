from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from o2o.geo import amap_marker_url
from stores.models import OpeningHours, Store


class OpeningHoursSerializer(serializers.ModelSerializer):
    class Meta:
        model = OpeningHours
        fields = ["weekday", "opens_at", "closes_at"]


class StoreSerializer(serializers.ModelSerializer):
    """A store; its weekly hours come from `context["opening_hours"]` when the caller has them."""

    opening_hours = serializers.SerializerMethodField()
    map_url = serializers.SerializerMethodField()

    class Meta:
        model = Store
        fields = [
            "id",
            "code",
            "name",
            "kind",
            "operation",
            "address",
            "city",
            "district",
            "phone",
            "latitude",
            "longitude",
            "delivery_radius_km",
            "offers_pickup",
            "delivers",
            "opening_hours",
            "map_url",
        ]

    @extend_schema_field(OpeningHoursSerializer(many=True))
    def get_opening_hours(self, store: Store) -> list[dict]:
        intervals = self.context.get("opening_hours", {}).get(store.pk)
        if intervals is None:
            intervals = [(h.weekday, h.opens_at, h.closes_at) for h in store.opening_hours.all()]
        return [
            {"weekday": day, "opens_at": opens.isoformat(), "closes_at": closes.isoformat()}
            for day, opens, closes in intervals
        ]

    def get_map_url(self, store: Store) -> str:
        return amap_marker_url(store.point, store.name)


class NearbyStoreSerializer(serializers.Serializer):
    store = StoreSerializer()
    distance_m = serializers.IntegerField(
        allow_null=True, help_text="Geodesic distance from the given point in metres; null without `near`."
    )
    is_open = serializers.BooleanField(help_text="Open now by the store's weekly hours (Asia/Shanghai).")

    def to_representation(self, nearby):
        return {
            "store": StoreSerializer(
                nearby.store, context={**self.context, "opening_hours": {nearby.store.pk: nearby.opening_hours}}
            ).data,
            "distance_m": None if nearby.distance_m is None else round(nearby.distance_m),
            "is_open": nearby.is_open,
        }
