from rest_framework import serializers

from o2o.geo import amap_marker_url
from stores.models import OpeningHours, Store


class OpeningHoursSerializer(serializers.ModelSerializer):
    class Meta:
        model = OpeningHours
        fields = ["weekday", "opens_at", "closes_at"]


class StoreSerializer(serializers.ModelSerializer):
    opening_hours = OpeningHoursSerializer(many=True, read_only=True)
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
            "store": StoreSerializer(nearby.store, context=self.context).data,
            "distance_m": None if nearby.distance_m is None else round(nearby.distance_m),
            "is_open": nearby.is_open,
        }
