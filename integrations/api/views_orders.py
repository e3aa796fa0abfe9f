"""The ERP API's orders: the feed of online orders and their changes, and the fulfilment steps an ERP reports.

See docs/erp-api.md ("Orders"). The feed's position and why it never skips a change:
integrations.order_feed; the steps: integrations.fulfilment.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from integrations.api.fields import StrictCharField
from integrations.api.idempotency import ErpWriteApi, erp_write_schema
from integrations.api.pagination import positive_int
from integrations.api.views import ErpApi, erp_schema
from integrations.fulfilment import Step, report_fulfilment_step
from integrations.models import Scope
from integrations.order_feed import (
    FEED_DEFAULT_LIMIT,
    FEED_MAX_LIMIT,
    decode_cursor,
    encode_cursor,
    order_changes,
)
from o2o.phone import mask_phone
from orders.api.serializers import ErrorSerializer
from orders.models import Order, OrderEvent
from orders.selectors import IN_PROGRESS

# Named for the schema's enums (settings.SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]): two choice sets
# answer to a field named `status`.
ORDER_STATUS_CHOICES = Order.Status.choices
FULFILMENT_STEP_CHOICES = Step.choices

# --- what an order looks like in the feed ----------------------------------------------------------


class FeedLineSerializer(serializers.Serializer):
    sku_code = serializers.CharField(source="sku.code")
    product_name = serializers.CharField()
    spec = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price_fen = serializers.IntegerField()
    line_total_fen = serializers.IntegerField()

    class Meta:
        ref_name = "ErpOrderLine"


class FeedEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField(source="created_at")
    from_status = serializers.CharField(help_text="Empty for the order's first event.")
    to_status = serializers.CharField(help_text="Equal to from_status for a note (offered to a store, part returned).")
    actor_type = serializers.ChoiceField(choices=OrderEvent.Actor.choices)
    actor = serializers.SerializerMethodField(help_text="The clerk, HQ user or system; never the shopper's name.")
    reason = serializers.CharField()

    class Meta:
        ref_name = "ErpOrderEvent"

    def get_actor(self, event: OrderEvent) -> str:
        return "" if event.actor_type == OrderEvent.Actor.MEMBER else event.actor_label


class FeedMemberSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    card_number = serializers.CharField(allow_null=True, help_text="Null until the member first shows the card.")
    phone_masked = serializers.SerializerMethodField(help_text="138****8000; the full number is not given.")

    class Meta:
        ref_name = "ErpOrderMember"

    def get_phone_masked(self, member) -> str | None:
        return mask_phone(member.phone) if member.phone else None


class FeedAmountsSerializer(serializers.Serializer):
    items_fen = serializers.IntegerField()
    delivery_fee_fen = serializers.IntegerField()
    points_used = serializers.IntegerField()
    points_discount_fen = serializers.IntegerField()
    total_fen = serializers.IntegerField(help_text="Paid in money: items + delivery fee − points discount.")
    refunded_fen = serializers.IntegerField(help_text="Refunds made or under way (failed ones not counted).")

    class Meta:
        ref_name = "ErpOrderAmounts"


class FeedDeliverySerializer(serializers.Serializer):
    recipient_name = serializers.CharField()
    recipient_phone = serializers.CharField(help_text="In full, +86…: the store delivers.")
    address = serializers.CharField(source="delivery_address")

    class Meta:
        ref_name = "ErpOrderDelivery"


class FeedTimesSerializer(serializers.Serializer):
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    accepted_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ErpOrderTimes"


class FeedOrderSerializer(serializers.Serializer):
    number = serializers.CharField()
    status = serializers.ChoiceField(choices=Order.Status.choices)
    fulfilment = serializers.ChoiceField(choices=Order.Fulfilment.choices)
    store_code = serializers.CharField(
        allow_null=True, help_text="The store that accepted the order, or the pickup store; null before either."
    )
    credited_store_code = serializers.SerializerMethodField(help_text="The branch the sale counts for.")
    member = FeedMemberSerializer()
    lines = FeedLineSerializer(many=True)
    amounts = serializers.SerializerMethodField()
    delivery = serializers.SerializerMethodField(
        help_text="Recipient and address of a delivery order while its store has it in hand "
        "(accepted until delivered); null otherwise."
    )
    times = serializers.SerializerMethodField()
    events = FeedEventSerializer(many=True, source="page_events", help_text="This order's changes on this page.")

    class Meta:
        ref_name = "ErpFeedOrder"

    def get_credited_store_code(self, order: Order) -> str | None:
        return order.credited_store.code if order.credited_store_id else None

    @extend_schema_field(FeedAmountsSerializer)
    def get_amounts(self, order: Order) -> dict:
        return FeedAmountsSerializer(order).data

    @extend_schema_field(FeedDeliverySerializer(allow_null=True))
    def get_delivery(self, order: Order) -> dict | None:
        # As a clerk sees it: the full contact only while the fulfilling store has the order in hand.
        if order.fulfilment != Order.Fulfilment.DELIVERY or not order.fulfilling_store_id:
            return None
        if order.status not in IN_PROGRESS:
            return None
        return FeedDeliverySerializer(order).data

    @extend_schema_field(FeedTimesSerializer)
    def get_times(self, order: Order) -> dict:
        return FeedTimesSerializer(order).data


ORDER_EXAMPLE = {
    "number": "2506021504050001",
    "status": "preparing",
    "fulfilment": "delivery",
    "store_code": "WS",
    "credited_store_code": "WS",
    "member": {"id": 1024, "card_number": "812345678901", "phone_masked": "138****8000"},
    "lines": [
        {
            "sku_code": "FH-XFF-3-800",
            "product_name": "飞鹤星飞帆",
            "spec": "800g 3段",
            "quantity": 2,
            "unit_price_fen": 25800,
            "line_total_fen": 51600,
        }
    ],
    "amounts": {
        "items_fen": 51600,
        "delivery_fee_fen": 0,
        "points_used": 100,
        "points_discount_fen": 100,
        "total_fen": 51500,
        "refunded_fen": 0,
    },
    "delivery": {"recipient_name": "王芳", "recipient_phone": "+8613800138000", "address": "杭州市西湖区文三路 90 号"},
    "times": {
        "created_at": "2025-06-02T15:04:05+08:00",
        "paid_at": "2025-06-02T15:04:40+08:00",
        "accepted_at": "2025-06-02T15:10:12+08:00",
        "delivered_at": None,
        "completed_at": None,
    },
    "events": [
        {
            "id": 9120,
            "at": "2025-06-02T15:10:12+08:00",
            "from_status": "assigned",
            "to_status": "accepted",
            "actor_type": "staff",
            "actor": "王小明",
            "reason": "",
        },
        {
            "id": 9133,
            "at": "2025-06-02T15:21:40+08:00",
            "from_status": "accepted",
            "to_status": "preparing",
            "actor_type": "erp",
            "actor": "总部 ERP",
            "reason": "",
        },
    ],
}


# --- the feed ------------------------------------------------------------------------------------


class OrderChangesApi(ErpApi):
    """Paid online orders that changed since the cursor, each once per page, as they are now."""

    required_scope = Scope.ORDERS_READ
    query_parameters = frozenset({"cursor", "limit"})

    class FilterSerializer(serializers.Serializer):
        cursor = serializers.CharField(required=False, allow_blank=True, max_length=200)
        limit = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=20)

    class OutputSerializer(serializers.Serializer):
        cursor = serializers.CharField(help_text="Send it back as `cursor` for the changes after this page.")
        has_more = serializers.BooleanField(help_text="More changes are ready now: call again at once.")
        results = FeedOrderSerializer(many=True)

        class Meta:
            ref_name = "ErpOrderChanges"

    @erp_schema(
        scope=Scope.ORDERS_READ,
        operation_id="erp_order_changes",
        summary="Online orders and their changes since a cursor (for invoicing and shipping)",
        description=(
            "Walks every change of every paid order once, in a fixed order, from the start (no `cursor`) or from "
            "the `cursor` of the previous answer. Each order appears once per page, as it is now, with the changes "
            "(`events`) this page covers. Keep the returned `cursor` and send it next time; when `has_more` is true "
            "call again at once. A change is handed out only once the transaction that made it has ended, so a "
            "cursor never passes a change that was still being written. Unpaid orders are not in the feed. A client "
            "restricted to stores sees the orders its stores accepted or where the shopper picks up. "
            f"`limit` counts changes: {FEED_DEFAULT_LIMIT} by default, at most {FEED_MAX_LIMIT} "
            "(beyond: 422 `page_size_too_large`). A cursor this feed did not issue: 400 `invalid_cursor`; "
            "an unknown parameter (a misspelt `cursor` would restart the feed): 400 `invalid`."
        ),
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque; from the previous answer."),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": FEED_MAX_LIMIT},
                description=f"Changes per page, 1–{FEED_MAX_LIMIT} ({FEED_DEFAULT_LIMIT}); more is 422.",
            ),
        ],
        responses={200: OutputSerializer, 400: ErrorSerializer, 422: ErrorSerializer},
        examples=[
            OpenApiExample(
                "An order accepted by the store, then prepared by its ERP",
                response_only=True,
                status_codes=["200"],
                value={"cursor": "MTo4ODEyMzQ6OTEzMw", "has_more": False, "results": [ORDER_EXAMPLE]},
            ),
            OpenApiExample(
                "Nothing new: the same cursor (or one further on) comes back",
                response_only=True,
                status_codes=["200"],
                value={"cursor": "MTo4ODEyNDA6MA", "has_more": False, "results": []},
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        params = self.FilterSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        after = decode_cursor(params.validated_data.get("cursor"))
        limit = _limit(params.validated_data.get("limit"))
        page = order_changes(client=self.api_client, after=after, limit=limit)
        body = {"cursor": encode_cursor(page.cursor), "has_more": page.has_more, "results": page.orders}
        return Response(self.OutputSerializer(body).data)


def _limit(raw: str | None) -> int:
    if raw is None:  # left out; `?limit=` with nothing after it is a mistake, refused
        return FEED_DEFAULT_LIMIT
    return positive_int(raw, name="limit", cap=FEED_MAX_LIMIT)


# --- fulfilment steps ------------------------------------------------------------------------------


class OrderStatusApi(ErpWriteApi):
    """The store's ERP reports a fulfilment step it took for one of its orders."""

    required_scope = Scope.ORDERS_WRITE

    class InputSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Step.choices)
        note = StrictCharField(required=False, allow_blank=True, max_length=200)

        class Meta:
            ref_name = "ErpOrderStatusInput"

    class OutputSerializer(serializers.Serializer):
        number = serializers.CharField()
        status = serializers.ChoiceField(choices=Order.Status.choices)
        changed = serializers.BooleanField(help_text="False: the order already had this status; nothing was written.")

        class Meta:
            ref_name = "ErpOrderStatus"

    @erp_write_schema(
        scope=Scope.ORDERS_WRITE,
        operation_id="erp_order_status",
        summary="Report a fulfilment step of an order (where the chain lets the ERP ship)",
        description=(
            "For a client HQ lets ship (`may report order fulfilment`; otherwise 403 `fulfilment_not_allowed`). "
            "Delivery: `preparing` → `out_for_delivery` (the reserved stock leaves the store now) → `delivered`; "
            "pickup: `ready` → `completed` (handed over at the counter: the stock leaves, the order completes and "
            "earns the member's points). The same rules, stock, points and messages as a clerk's tap, recorded as "
            "this client. A move the order's state does not allow (completing a delivery, which the shopper or the "
            "timer does; an order not yet accepted by a store): 409 `illegal_transition`; a transfer still on its "
            "way: 409 `waiting_for_transfer`. An order this client's stores do not have: 404 `order_not_found`. "
            "Reporting the status the order already has answers 200 with `changed: false`."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        examples=[
            OpenApiExample(
                "Sent out", request_only=True, value={"status": "out_for_delivery", "note": "courier 张师傅"}
            ),
            OpenApiExample(
                "Moved",
                response_only=True,
                status_codes=["200"],
                value={"number": "2506021504050001", "status": "out_for_delivery", "changed": True},
            ),
            OpenApiExample(
                "Completing a delivery",
                response_only=True,
                status_codes=["409"],
                value={
                    "code": "illegal_transition",
                    "message": "An order in status “delivered” cannot be reported “completed”.",
                    "details": {"status": ["delivered"], "requested": ["completed"]},
                },
            ),
        ],
    )
    def post(self, request: Request, number: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = report_fulfilment_step(
            client=self.api_client,
            number=number,
            status=data.validated_data["status"],
            note=data.validated_data.get("note", ""),
        )
        body = {"number": result.order.number, "status": result.order.status, "changed": result.changed}
        return Response(self.OutputSerializer(body).data)
