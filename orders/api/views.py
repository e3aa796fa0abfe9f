"""The shopper's API (cart, checkout, orders, payment) for the WeChat mini program.

The same rules as the mall's pages (orders.views): every write is one orders.services
call, whose ApplicationError becomes the JSON error (o2o.api.errors); orders are read
through orders.selectors, so a member only ever sees their own. The member comes from
the session (members.api.authentication), CSRF-checked on writes.
"""

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory.models import SKU
from members.api.authentication import IsMember, MemberSessionAuthentication, request_member
from members.models import Member
from o2o.errors import NotFound
from o2o.geo import Point, wgs84_to_gcj02
from orders import services
from orders.api.serializers import (
    CartSerializer,
    ErrorSerializer,
    OrderDetailSerializer,
    OrderSummarySerializer,
    PaymentSerializer,
    QuoteSerializer,
)
from orders.models import Order
from orders.selectors import (
    PickupOption,
    PricedCart,
    PricedLine,
    order_of,
    orders_of,
    pickup_options,
    priced_cart,
)
from stores.models import Store
from stores.session import chosen_store

TAGS = ["mall"]
PICKUP_OPTIONS_LIMIT = 10

_NOT_SIGNED_IN = {403: ErrorSerializer}  # not_authenticated (no member), permission_denied (CSRF)


class MemberApi(APIView):
    """A signed-in member's operation: the session's member, CSRF-checked on writes."""

    authentication_classes = [MemberSessionAuthentication]
    permission_classes = [IsMember]


def _priced_cart(request: Request, member: Member) -> PricedCart:
    return priced_cart(member, chosen_store(request._request))


def _pickup_options(request: Request, member: Member) -> list[PickupOption]:
    return pickup_options(member, chosen_store(request._request))


def _sku(sku_id: int) -> SKU:
    sku = SKU.objects.select_related("product").filter(pk=sku_id).first()
    if sku is None:
        raise NotFound(_("No such product."), code="sku_not_found", details={"sku_id": [str(sku_id)]})
    return sku


def _own_order(member: Member, number: str) -> Order:
    """The member's order; another member's looks exactly like none (404 not_found)."""
    order = orders_of(member).filter(number=number).first()
    if order is None:
        raise NotFound(_("No such order."))
    return order


def _order_detail(member: Member, number: str) -> dict:
    order = order_of(member, number)
    if order is None:
        raise NotFound(_("No such order."))
    return OrderDetailSerializer(order).data


# -- the cart ----------------------------------------------------------------------------------


class CartApi(MemberApi):
    @extend_schema(
        operation_id="mall_cart_retrieve",
        tags=TAGS,
        responses={200: CartSerializer, **_NOT_SIGNED_IN},
        description="The member's cart, priced at the store they chose in the mall (HQ's list prices without one).",
    )
    def get(self, request: Request) -> Response:
        return Response(CartSerializer(_priced_cart(request, request_member(request))).data)


class CartLineAddApi(MemberApi):
    @extend_schema_serializer(component_name="MallCartLineAdd")
    class InputSerializer(serializers.Serializer):
        sku_id = serializers.IntegerField()
        quantity = serializers.IntegerField(
            default=1,
            min_value=1,
            max_value=services.MAX_LINE_QUANTITY,
            help_text="Units to add; the line stops at 99.",
        )

    @extend_schema(
        operation_id="mall_cart_lines_add",
        tags=TAGS,
        request=InputSerializer,
        responses={200: CartSerializer, 400: ErrorSerializer, 404: ErrorSerializer, **_NOT_SIGNED_IN},
        description=(
            "Add units of a SKU to the cart (a line reaches at most 99) and answer with the cart. "
            "404 `sku_not_found`; 400 `sku_unavailable` for a SKU no longer sold, `invalid` for a quantity "
            "outside 1–99."
        ),
    )
    def post(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        member = request_member(request)
        services.add_to_cart(
            member=member, sku=_sku(params.validated_data["sku_id"]), quantity=params.validated_data["quantity"]
        )
        return Response(CartSerializer(_priced_cart(request, member)).data)


class CartLineSetApi(MemberApi):
    @extend_schema_serializer(component_name="MallCartLineSet")
    class InputSerializer(serializers.Serializer):
        quantity = serializers.IntegerField(help_text="0–99; 0 removes the line.")

    @extend_schema(
        operation_id="mall_cart_lines_set",
        tags=TAGS,
        request=InputSerializer,
        responses={200: CartSerializer, 400: ErrorSerializer, 404: ErrorSerializer, **_NOT_SIGNED_IN},
        description=(
            "Set how many units of a SKU are in the cart (0 removes it) and answer with the cart. "
            "400 `invalid_quantity` outside 0–99, `sku_unavailable` for a SKU no longer sold; 404 `sku_not_found`."
        ),
    )
    def put(self, request: Request, sku_id: int) -> Response:
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        member = request_member(request)
        services.set_cart_quantity(member=member, sku=_sku(sku_id), quantity=params.validated_data["quantity"])
        return Response(CartSerializer(_priced_cart(request, member)).data)


# -- checkout ----------------------------------------------------------------------------------


class CheckoutQuoteApi(MemberApi):
    @extend_schema_serializer(component_name="MallCheckoutQuote")
    class InputSerializer(serializers.Serializer):
        fulfilment = serializers.ChoiceField(choices=Order.Fulfilment.choices)
        pickup_store_id = serializers.IntegerField(
            required=False,
            allow_null=True,
            help_text="Pickup: the store whose prices apply; default the shopper's chosen store.",
        )

    @extend_schema(
        operation_id="mall_checkout_quote",
        tags=TAGS,
        request=InputSerializer,
        responses={200: QuoteSerializer, 400: ErrorSerializer, 404: ErrorSerializer, **_NOT_SIGNED_IN},
        description=(
            "Price the cart on the server for pickup (the store's prices, and the stores that hold every item) "
            "or delivery (HQ's prices and the delivery fee rule). Changes nothing. "
            "400 `empty_cart`; 404 `store_not_found` for an unknown pickup store."
        ),
    )
    def post(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        member = request_member(request)
        pickup = data["fulfilment"] == Order.Fulfilment.PICKUP
        store = None
        if pickup:
            store = chosen_store(request._request)
            if data.get("pickup_store_id") is not None:
                store = Store.objects.filter(pk=data["pickup_store_id"], is_active=True).first()
                if store is None:
                    raise NotFound(
                        _("No such store."),
                        code="store_not_found",
                        details={"pickup_store_id": [str(data["pickup_store_id"])]},
                    )
        quote = services.quote(member=member, fulfilment=data["fulfilment"], pickup_store=store)
        answer = {
            "fulfilment": data["fulfilment"],
            "priced_at": store,
            "lines": [
                PricedLine(sku=sku, quantity=quantity, unit_price_fen=price) for sku, quantity, price in quote.lines
            ],
            "items_fen": quote.items_fen,
            "delivery_fee_fen": quote.delivery_fee_fen,
            "total_fen": quote.total_fen,
            "pickup_stores": _pickup_options(request, member) if pickup else None,
        }
        return Response(QuoteSerializer(answer).data)


# -- orders ------------------------------------------------------------------------------------


@extend_schema_serializer(component_name="MallDeliveryAddress")
class DeliveryAddressInputSerializer(serializers.Serializer):
    """Where a delivery order goes (OrderCreateApi's `delivery`); the service checks phone and point."""

    recipient_name = serializers.CharField(max_length=50, allow_blank=True)
    recipient_phone = serializers.CharField(
        max_length=32, allow_blank=True, help_text="A mainland China mobile number."
    )
    address = serializers.CharField(max_length=255, allow_blank=True)
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()
    coord = serializers.ChoiceField(
        choices=["gcj02", "wgs84"],
        default="gcj02",
        help_text="Datum of the point: gcj02 (wx.getLocation type gcj02, Chinese maps) or wgs84 (GPS).",
    )


class OrderCreateApi(MemberApi):
    @extend_schema_serializer(component_name="MallOrderCreate")
    class InputSerializer(serializers.Serializer):
        fulfilment = serializers.ChoiceField(choices=Order.Fulfilment.choices)
        pickup_store_id = serializers.IntegerField(required=False, allow_null=True, help_text="Pickup: the store.")
        delivery = DeliveryAddressInputSerializer(required=False, allow_null=True, help_text="Delivery: where to.")
        points = serializers.IntegerField(
            required=False, default=0, min_value=0, help_text="Points to pay part of the items with (HQ's limits)."
        )

    @extend_schema(
        operation_id="mall_orders_create",
        tags=TAGS,
        request=InputSerializer,
        responses={
            201: OrderDetailSerializer,
            400: ErrorSerializer,
            409: ErrorSerializer,
            **_NOT_SIGNED_IN,
        },
        description=(
            "Turn the cart into an order awaiting payment (prices from the server), and empty the cart. "
            "Pickup reserves the store's stock now. 400: `empty_cart`, `invalid_pickup_store`, "
            "`address_required`, `invalid_phone`, `invalid_coordinates`, `invalid`; 409: "
            "`insufficient_stock` or another stock refusal, `no_store_delivers_here`, `points_limit` (more points "
            "than the balance or HQ's share allows). Nothing is written on error."
        ),
    )
    def post(self, request: Request) -> Response:
        params = OrderCreateApi.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        member = request_member(request)
        if data["fulfilment"] == Order.Fulfilment.PICKUP:
            store = None
            if data.get("pickup_store_id") is not None:
                store = Store.objects.filter(pk=data["pickup_store_id"], is_active=True).first()
            order = services.place_order(
                member=member, fulfilment=data["fulfilment"], pickup_store=store, points=data["points"]
            )
        else:
            delivery = data.get("delivery")
            address = None
            if delivery is not None:
                point = Point(delivery["latitude"], delivery["longitude"])
                if delivery["coord"] == "wgs84":
                    point = wgs84_to_gcj02(point)  # stores are in GCJ-02
                address = services.DeliveryAddress(
                    recipient_name=delivery["recipient_name"],
                    recipient_phone=delivery["recipient_phone"],
                    address=delivery["address"],
                    latitude=point.lat,
                    longitude=point.lng,
                )
            order = services.place_order(
                member=member, fulfilment=data["fulfilment"], delivery=address, points=data["points"]
            )
        return Response(_order_detail(member, order.number), status=status.HTTP_201_CREATED)


class OrderListApi(MemberApi, GenericAPIView):
    queryset = Order.objects.none()  # for the schema; rows come from orders.selectors.orders_of
    serializer_class = OrderSummarySerializer

    @extend_schema(
        operation_id="mall_orders_list",
        tags=TAGS,
        responses={200: OrderSummarySerializer(many=True), **_NOT_SIGNED_IN},
        description="The member's own orders, newest first, with their lines; paginated (`page`, `page_size`).",
    )
    def get(self, request: Request) -> Response:
        orders = orders_of(request_member(request)).prefetch_related("lines")
        page = self.paginate_queryset(orders)
        return self.get_paginated_response(OrderSummarySerializer(page, many=True).data)


class OrderCollectionApi(OrderListApi, OrderCreateApi):
    """/orders/: GET lists (OrderListApi), POST places (OrderCreateApi); one URL, two operations."""


class OrderDetailApi(MemberApi):
    @extend_schema(
        operation_id="mall_orders_retrieve",
        tags=TAGS,
        responses={200: OrderDetailSerializer, 404: ErrorSerializer, **_NOT_SIGNED_IN},
        description=(
            "One of the member's orders with its lines and timeline. Once a pickup order is paid it carries "
            "`pickup_code` and `pickup_qr_token` (show it as a QR code). Another member's order is 404 `not_found`."
        ),
    )
    def get(self, request: Request, number: str) -> Response:
        return Response(_order_detail(request_member(request), number))


class OrderCancelApi(MemberApi):
    @extend_schema_serializer(component_name="MallOrderCancel")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=255, required=False, allow_blank=True)

    @extend_schema(
        operation_id="mall_orders_cancel",
        tags=TAGS,
        request=InputSerializer,
        responses={200: OrderDetailSerializer, 404: ErrorSerializer, 409: ErrorSerializer, **_NOT_SIGNED_IN},
        description=(
            "Cancel the order before a store has accepted it: reserved stock is released and anything paid is "
            "refunded in full to WeChat. 409 `not_cancellable`; 404 `not_found`."
        ),
    )
    def post(self, request: Request, number: str) -> Response:
        params = self.InputSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        member = request_member(request)
        services.cancel_order(
            member=member, order=_own_order(member, number), reason=params.validated_data.get("reason", "")
        )
        return Response(_order_detail(member, number))


class OrderPaymentApi(MemberApi):
    @extend_schema(
        operation_id="mall_orders_payment",
        tags=TAGS,
        request=None,
        responses={
            200: PaymentSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
            502: ErrorSerializer,
            503: ErrorSerializer,
            **_NOT_SIGNED_IN,
        },
        description=(
            "Start paying an order awaiting payment. With WeChat Pay: `pay_params` for wx.requestPayment; the "
            "payment notice, not this answer, marks the order paid. With the development stand-in (no WeChat Pay, "
            "development payments on): the order is confirmed at once, `development: true`. "
            "409 `not_payable` (paid, closed or past its time), `wechat_required` (signed in without WeChat); "
            "502 `payment_gateway_error`; 503 `payment_not_configured`; 404 `not_found`."
        ),
    )
    def post(self, request: Request, number: str) -> Response:
        member = request_member(request)
        started = services.start_payment(member=member, order=_own_order(member, number))
        answer = {"development": started.development, "status": started.order.status, "pay_params": started.pay_params}
        return Response(PaymentSerializer(answer).data)
