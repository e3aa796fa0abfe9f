"""The clerk console's API, mounted at /api/v1/console/: offers, the store's orders, scanning, actions.

For a native or mini-program console. Signed in with the clerk's Django session (CSRF-checked
on writes); every query is scoped to the clerk's own store, so another store's order is 404.
Each action calls one service of orders.dispatch or orders.fulfilment.
"""

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from o2o.errors import Conflict, NotFound
from o2o.phone import mask_phone
from orders import dispatch, fulfilment, selectors
from orders.api.serializers import ErrorSerializer
from orders.models import Order
from stores.models import Staff
from stores.selectors import staff_for_user

TAGS = ["console"]
_ERRORS = {403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


class IsStoreStaff(permissions.BasePermission):
    message = _("Only a store's clerks may use the console.")

    def has_permission(self, request, view) -> bool:
        staff = staff_for_user(request.user)
        request.staff = staff
        return staff is not None


class ConsoleApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStoreStaff]

    def staff(self, request: Request) -> Staff:
        return request.staff

    def order(self, request: Request, number: str) -> Order:
        order = selectors.store_order(self.staff(request), number)
        if order is None:
            raise NotFound(_("No such order."), code="order_not_found")
        return order


class LineSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    product_name = serializers.CharField()
    spec = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price_fen = serializers.IntegerField()
    line_total_fen = serializers.IntegerField()


class ConsoleOrderSerializer(serializers.Serializer):
    number = serializers.CharField()
    fulfilment = serializers.CharField()
    status = serializers.CharField()
    status_label = serializers.CharField(source="get_status_display")
    total_fen = serializers.IntegerField()
    recipient_name = serializers.CharField()
    delivery_address = serializers.CharField()
    phone = serializers.SerializerMethodField(help_text="Full only once the store has accepted, until handed over.")
    offer_deadline = serializers.SerializerMethodField()
    lines = LineSerializer(many=True)

    def get_phone(self, order: Order) -> str:
        phone = order.recipient_phone or (order.member.phone or "")
        store = self.context["staff"].store
        return phone if selectors.shows_full_phone(order, store) else mask_phone(phone)

    def get_offer_deadline(self, order: Order) -> str | None:
        if "offer_deadlines" in self.context:  # a list reads them in one query, not one per order
            deadline = self.context["offer_deadlines"].get(order.pk)
        else:
            offer = selectors.open_offer(order, self.context["staff"].store)
            deadline = offer.deadline if offer else None
        return deadline.isoformat() if deadline else None


def _orders(request: Request, orders) -> list[dict]:
    orders = list(orders)
    context = {"staff": request.staff, "offer_deadlines": selectors.offer_deadlines(orders, request.staff.store)}
    return ConsoleOrderSerializer(orders, many=True, context=context).data


class OffersApi(ConsoleApi):
    @extend_schema(
        tags=TAGS,
        summary="Orders offered to my store, most urgent first",
        responses={200: ConsoleOrderSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        return Response(_orders(request, (offer.order for offer in selectors.offers_to(request.staff.store))))


class StoreOrdersApi(ConsoleApi):
    @extend_schema(
        tags=TAGS,
        summary="My store's orders in progress (default) or done (?state=done)",
        responses={200: ConsoleOrderSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        store = request.staff.store
        orders = (
            selectors.orders_done(store)
            if request.query_params.get("state") == "done"
            else selectors.orders_in_progress(store)
        )
        return Response(_orders(request, orders))


class StoreOrderApi(ConsoleApi):
    @extend_schema(tags=TAGS, summary="One of my store's orders", responses={200: ConsoleOrderSerializer, **_ERRORS})
    def get(self, request: Request, number: str) -> Response:
        return Response(ConsoleOrderSerializer(self.order(request, number), context={"staff": request.staff}).data)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")


def _offer_id(order: Order, staff: Staff) -> int:
    offer = selectors.open_offer(order, staff.store)
    if offer is None:
        raise Conflict(_("This order is no longer offered to your store."), code="assignment_closed")
    return offer.pk


ACTIONS = {
    "accept": lambda request, order, reason: dispatch.accept_assignment(
        assignment_id=_offer_id(order, request.staff), staff=request.staff, user=request.user
    ),
    "decline": lambda request, order, reason: dispatch.decline_assignment(
        assignment_id=_offer_id(order, request.staff), staff=request.staff, user=request.user, reason=reason
    ),
    "prepare": lambda request, order, reason: fulfilment.start_preparing(staff=request.staff, order=order),
    "send-out": lambda request, order, reason: fulfilment.send_out_for_delivery(staff=request.staff, order=order),
    "delivered": lambda request, order, reason: fulfilment.confirm_delivery(staff=request.staff, order=order),
    "ready": lambda request, order, reason: fulfilment.mark_ready(staff=request.staff, order=order),
    "hand-over": lambda request, order, reason: fulfilment.hand_over(staff=request.staff, order=order),
    "cancel": lambda request, order, reason: fulfilment.cancel_by_store(
        staff=request.staff, order=order, reason=reason
    ),
}


class OrderActionApi(ConsoleApi):
    @extend_schema(
        tags=TAGS,
        summary="Move an order of my store: accept, decline, prepare, send-out, delivered, ready, hand-over, cancel",
        description="`decline` and `cancel` need a `reason`. Refused moves answer 409 with the reason's code.",
        request=ReasonSerializer,
        responses={200: ConsoleOrderSerializer, 400: ErrorSerializer, **_ERRORS},
    )
    def post(self, request: Request, number: str, action: str) -> Response:
        if action not in ACTIONS:
            raise NotFound(_("No such action."), code="not_found")
        order = self.order(request, number)
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ACTIONS[action](request, order, body.validated_data["reason"])
        return Response(ConsoleOrderSerializer(self.order(request, number), context={"staff": request.staff}).data)


class ReturnSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=32, help_text="One per return: a retry with it changes nothing.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    lines = serializers.DictField(child=serializers.IntegerField(min_value=0), help_text="order line id → quantity")


class ReturnResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount_fen = serializers.IntegerField()
    order_status = serializers.CharField(source="order.status")


class OrderReturnApi(ConsoleApi):
    @extend_schema(
        tags=TAGS,
        summary="Take goods of an order back at my store (whole or partial) and refund them",
        request=ReturnSerializer,
        responses={201: ReturnResultSerializer, 400: ErrorSerializer, **_ERRORS},
    )
    def post(self, request: Request, number: str) -> Response:
        order = self.order(request, number)
        body = ReturnSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            quantities = {int(line_id): qty for line_id, qty in body.validated_data["lines"].items()}
        except ValueError:
            raise serializers.ValidationError({"lines": [_("Keys are order line ids.")]}) from None
        record = fulfilment.return_at_store(
            staff=request.staff,
            order=order,
            quantities=quantities,
            token=body.validated_data["token"],
            reason=body.validated_data["reason"],
        )
        record.order.refresh_from_db()
        return Response(ReturnResultSerializer(record).data, status=201)


class ScanSerializer(serializers.Serializer):
    code = serializers.CharField(
        max_length=500, help_text="The order QR's text, a 6-digit pickup code, or an order number."
    )


class ScanResultSerializer(serializers.Serializer):
    action = serializers.CharField(help_text="hand_over, confirm_delivery or view")
    order = ConsoleOrderSerializer()


class ScanApi(ConsoleApi):
    @extend_schema(
        tags=TAGS,
        summary="What a scanned order code means to my store",
        description="404 `order_of_another_store` names the store the order belongs to; "
        "409 `already_collected` for a second scan.",
        request=ScanSerializer,
        responses={200: ScanResultSerializer, 400: ErrorSerializer, **_ERRORS},
    )
    def post(self, request: Request) -> Response:
        body = ScanSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        found = fulfilment.read_order_code(staff=request.staff, code=body.validated_data["code"])
        return Response(ScanResultSerializer(found, context={"staff": request.staff}).data)
