"""What the shopper's API sends back: carts, quotes, orders and payments.

Money is integer fen (`*_fen`), with a `*_display` string in yuan for screens.
Input serializers live with their view (orders.api.views).
"""

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from o2o.geo import amap_marker_url
from o2o.money import format_yuan
from orders.models import Order, OrderEvent, OrderLine
from orders.pickup import pickup_token
from orders.selectors import PickupOption
from stores.models import Store

# -- fields ------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "example": "¥258.00"})
class YuanField(serializers.Field):
    """An amount in fen shown in yuan ("¥1,234.50"), for display only; `source` names the *_fen value."""

    def __init__(self, **kwargs):
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, fen: int) -> str:
        return format_yuan(fen)


class ErrorSerializer(serializers.Serializer):
    """Every API error (o2o.api.errors)."""

    code = serializers.CharField(help_text="Stable, machine-readable: branch on this.")
    message = serializers.CharField(help_text="For people, in the request's language.")
    details = serializers.DictField(
        required=False,
        help_text="Per-field messages, for invalid input: field → list of messages (nested for nested input).",
    )


# -- stores ------------------------------------------------------------------------------------


class StoreBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Store
        fields = ["id", "code", "name"]


class StoreAddressSerializer(serializers.ModelSerializer):
    map_url = serializers.SerializerMethodField(help_text="Opens Amap on the store (works inside WeChat).")

    class Meta:
        model = Store
        fields = ["id", "code", "name", "address", "phone", "latitude", "longitude", "map_url"]

    def get_map_url(self, store: Store) -> str:
        return amap_marker_url(store.point, store.name)


class PickupOptionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="store.pk")
    code = serializers.CharField(source="store.code")
    name = serializers.CharField(source="store.name")
    address = serializers.CharField(source="store.address")
    distance_m = serializers.SerializerMethodField(
        help_text="Metres from the shopper's chosen store; null when no store is chosen."
    )

    def get_distance_m(self, option: PickupOption) -> int | None:
        return None if option.distance_m is None else round(option.distance_m)


# -- the cart and quotes -----------------------------------------------------------------------


class PricedLineSerializer(serializers.Serializer):
    sku_id = serializers.IntegerField(source="sku.pk")
    sku_code = serializers.CharField(source="sku.code")
    product_name = serializers.CharField(source="sku.product.name")
    spec = serializers.CharField(source="sku.spec")
    quantity = serializers.IntegerField()
    unit_price_fen = serializers.IntegerField()
    unit_price_display = YuanField(source="unit_price_fen")
    line_total_fen = serializers.IntegerField()
    line_total_display = YuanField(source="line_total_fen")


class CartSerializer(serializers.Serializer):
    store = StoreBriefSerializer(
        allow_null=True, help_text="The chosen store whose prices apply; null: HQ's list prices."
    )
    lines = PricedLineSerializer(many=True)
    quantity = serializers.IntegerField(help_text="Units in the cart.")
    subtotal_fen = serializers.IntegerField()
    subtotal_display = YuanField(source="subtotal_fen")


class QuoteSerializer(serializers.Serializer):
    fulfilment = serializers.ChoiceField(choices=Order.Fulfilment.choices)
    priced_at = StoreBriefSerializer(
        allow_null=True, help_text="The store whose prices apply (pickup); null: HQ's list prices (delivery)."
    )
    lines = PricedLineSerializer(many=True)
    items_fen = serializers.IntegerField()
    items_display = YuanField(source="items_fen")
    delivery_fee_fen = serializers.IntegerField()
    delivery_fee_display = YuanField(source="delivery_fee_fen")
    total_fen = serializers.IntegerField()
    total_display = YuanField(source="total_fen")
    pickup_stores = PickupOptionSerializer(
        many=True,
        allow_null=True,
        help_text="Pickup: stores offering pickup that hold every item, nearest the chosen store first "
        "(at most 10). Delivery: null.",
    )


# -- orders ------------------------------------------------------------------------------------

_STATUS_LABELS = dict(Order.Status.choices)


class OrderLineSerializer(serializers.ModelSerializer):
    unit_price_display = YuanField(source="unit_price_fen")
    line_total_display = YuanField(source="line_total_fen")

    class Meta:
        model = OrderLine
        fields = [
            "sku_id",
            "product_name",
            "spec",
            "quantity",
            "unit_price_fen",
            "unit_price_display",
            "line_total_fen",
            "line_total_display",
        ]


class OrderEventSerializer(serializers.ModelSerializer):
    to_status_display = serializers.SerializerMethodField()
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = OrderEvent
        fields = ["from_status", "to_status", "to_status_display", "actor_type", "reason", "at"]

    def get_to_status_display(self, event: OrderEvent) -> str:
        return str(_STATUS_LABELS.get(event.to_status, event.to_status))


class OrderSummarySerializer(serializers.ModelSerializer):
    """An order in the member's list (lines included, events not)."""

    status_display = serializers.CharField(source="get_status_display")
    pickup_store = StoreBriefSerializer(allow_null=True)
    lines = OrderLineSerializer(many=True)
    total_display = YuanField(source="total_fen")

    class Meta:
        model = Order
        fields = [
            "number",
            "status",
            "status_display",
            "fulfilment",
            "pickup_store",
            "lines",
            "items_fen",
            "delivery_fee_fen",
            "points_used",
            "points_discount_fen",
            "total_fen",
            "total_display",
            "created_at",
            "expires_at",
            "paid_at",
        ]


class DeliveryAddressSerializer(serializers.ModelSerializer):
    address = serializers.CharField(source="delivery_address")
    latitude = serializers.DecimalField(source="delivery_latitude", max_digits=9, decimal_places=6)
    longitude = serializers.DecimalField(source="delivery_longitude", max_digits=9, decimal_places=6)

    class Meta:
        model = Order
        fields = ["recipient_name", "recipient_phone", "address", "latitude", "longitude"]


class OrderDetailSerializer(OrderSummarySerializer):
    """One order with its timeline; the pickup code and QR token appear once a pickup order is paid."""

    pickup_store = StoreAddressSerializer(allow_null=True)
    delivery = serializers.SerializerMethodField(help_text="Delivery orders: where to (GCJ-02). Pickup: null.")
    events = OrderEventSerializer(many=True)
    items_display = YuanField(source="items_fen")
    delivery_fee_display = YuanField(source="delivery_fee_fen")
    pickup_code = serializers.SerializerMethodField(help_text="Paid pickup orders only: the code to tell the clerk.")
    pickup_qr_token = serializers.SerializerMethodField(
        help_text="Paid pickup orders only: the signed text to show as a QR code for the clerk to scan."
    )
    can_pay = serializers.SerializerMethodField(help_text="Awaiting payment and not yet past `expires_at`.")
    can_cancel = serializers.SerializerMethodField(help_text="The shopper may still cancel (refunded in full).")

    class Meta(OrderSummarySerializer.Meta):
        fields = [
            *OrderSummarySerializer.Meta.fields,
            "delivery",
            "events",
            "items_display",
            "delivery_fee_display",
            "pickup_code",
            "pickup_qr_token",
            "can_pay",
            "can_cancel",
        ]

    @staticmethod
    def _ready_for_pickup(order: Order) -> bool:
        return order.fulfilment == Order.Fulfilment.PICKUP and order.status in (
            Order.Status.PAID,
            Order.Status.EXCEPTION,
            Order.Status.ACCEPTED,
            Order.Status.READY,
        )

    @extend_schema_field(DeliveryAddressSerializer(allow_null=True))
    def get_delivery(self, order: Order) -> dict | None:
        if order.fulfilment != Order.Fulfilment.DELIVERY:
            return None
        return DeliveryAddressSerializer(order).data

    @extend_schema_field({"type": "string", "nullable": True})
    def get_pickup_code(self, order: Order) -> str | None:
        return order.pickup_code if self._ready_for_pickup(order) else None

    @extend_schema_field({"type": "string", "nullable": True})
    def get_pickup_qr_token(self, order: Order) -> str | None:
        return pickup_token(order.number) if self._ready_for_pickup(order) else None

    def get_can_pay(self, order: Order) -> bool:
        return order.status == Order.Status.PENDING_PAYMENT and order.expires_at > timezone.now()

    def get_can_cancel(self, order: Order) -> bool:
        return order.status in Order.SHOPPER_CANCELLABLE


# -- payment -----------------------------------------------------------------------------------


class JsapiPayParamsSerializer(serializers.Serializer):
    """WeChat Pay's JSAPI parameters, as `wx.requestPayment` / getBrandWCPayRequest take them."""

    # camelCase: WeChat's own names, passed through unchanged.
    appId = serializers.CharField()
    timeStamp = serializers.CharField()
    nonceStr = serializers.CharField()
    package = serializers.CharField()
    signType = serializers.CharField()
    paySign = serializers.CharField()


class PaymentSerializer(serializers.Serializer):
    development = serializers.BooleanField(
        help_text="True: the development stand-in confirmed the order at once; no money moved."
    )
    status = serializers.ChoiceField(choices=Order.Status.choices, help_text="The order's status now.")
    pay_params = JsapiPayParamsSerializer(
        allow_null=True, help_text="WeChat Pay: pass these to wx.requestPayment. Development: null."
    )
