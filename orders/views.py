"""The mall's cart, checkout and order pages. Thin: every rule is in orders.services."""

import logging

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations.vendors.wechat_pay import (
    InvalidNotification,
    PaymentNotConfigured,
    notification_ack,
    notification_nack,
    payment_gateway,
)
from inventory.models import SKU
from members.models import Member
from members.selectors import loyalty_settings
from members.session import current_member, member_required, sign_out
from o2o.errors import ApplicationError
from o2o.geo import Point, amap_marker_url, format_distance, wgs84_to_gcj02
from o2o.money import format_yuan
from o2o.qr import qr_svg
from orders import fulfilment, services
from orders.forms import CheckoutForm
from orders.models import Order
from orders.pickup import pickup_token
from orders.selectors import cart_lines, order_of, orders_of, pickup_options, priced_cart
from stores.models import Store
from stores.session import chosen_store

logger = logging.getLogger(__name__)

# The pickup QR shows from payment until the goods are collected.
_PICKUP_QR_STATES = (Order.Status.PAID, Order.Status.ACCEPTED, Order.Status.READY, Order.Status.EXCEPTION)
_status_labels = dict(Order.Status.choices)


def _own_order(request: HttpRequest, number: str) -> tuple[Member, Order]:
    """The signed-in member and their order; another member's order looks exactly like none (404)."""
    member = current_member(request)
    order = order_of(member, number)
    if order is None:
        raise Http404
    return member, order


def _development_payments() -> bool:
    """Whether the demo's payment stand-in is on (WeChat Pay not configured, development payments allowed)."""
    try:
        return payment_gateway().is_development
    except PaymentNotConfigured:
        return False


def _positive_int(value: str, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@member_required
@require_POST
def add_to_cart(request: HttpRequest) -> HttpResponse:
    sku = get_object_or_404(SKU.objects.select_related("product"), pk=_positive_int(request.POST.get("sku"), 0))
    try:
        services.add_to_cart(
            member=current_member(request), sku=sku, quantity=_positive_int(request.POST.get("quantity"), 1)
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Added to your cart."))
    return redirect("orders:cart")


@member_required
@require_POST
def set_quantity(request: HttpRequest) -> HttpResponse:
    sku = get_object_or_404(SKU.objects.select_related("product"), pk=_positive_int(request.POST.get("sku"), 0))
    try:
        services.set_cart_quantity(
            member=current_member(request), sku=sku, quantity=_positive_int(request.POST.get("quantity"), -1)
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("orders:cart")


@member_required
@require_GET
def cart(request: HttpRequest) -> HttpResponse:
    store = chosen_store(request)
    priced = priced_cart(current_member(request), store)
    rows = [
        {"line": line, "unit": format_yuan(line.unit_price_fen), "total": format_yuan(line.line_total_fen)}
        for line in priced.lines
    ]
    subtotal = priced.subtotal_fen
    return render(request, "orders/cart.html", {"rows": rows, "subtotal": format_yuan(subtotal), "store": store})


@member_required
@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    member = current_member(request)
    if request.method == "GET" and not cart_lines(member).exists():
        return redirect("orders:cart")
    form = CheckoutForm(request.POST or None, initial={"fulfilment": Order.Fulfilment.PICKUP})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if data["fulfilment"] == Order.Fulfilment.PICKUP:
                store = Store.objects.filter(pk=data["pickup_store"], is_active=True).first()
                order = services.place_order(
                    member=member, fulfilment="pickup", pickup_store=store, points=data["points"] or 0
                )
            else:
                # The page sends the browser's position (WGS-84); stores are in GCJ-02.
                point = wgs84_to_gcj02(Point(data["latitude"], data["longitude"]))
                address = services.DeliveryAddress(
                    recipient_name=data["recipient_name"],
                    recipient_phone=data["recipient_phone"],
                    address=data["address"],
                    latitude=point.lat,
                    longitude=point.lng,
                )
                order = services.place_order(
                    member=member, fulfilment="delivery", delivery=address, points=data["points"] or 0
                )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            return redirect("orders:detail", number=order.number)
    store = chosen_store(request)
    pickup_quote = services.quote(member=member, fulfilment="pickup", pickup_store=store)
    delivery_quote = services.quote(member=member, fulfilment="delivery")
    context = {
        "form": form,
        "pickup_options": [
            {
                "store": option.store,
                "distance": format_distance(option.distance_m) if option.distance_m is not None else "",
            }
            for option in pickup_options(member, store)
        ],
        "chosen_store": store,
        "pickup_total": format_yuan(pickup_quote.total_fen),
        "delivery_items": format_yuan(delivery_quote.items_fen),
        "delivery_fee": format_yuan(delivery_quote.delivery_fee_fen),
        "delivery_total": format_yuan(delivery_quote.total_fen),
        "lines": pickup_quote.lines,
        "points_balance": member.points_balance,
        "points_max": min(
            services.most_points_for(member=member, priced=pickup_quote),
            services.most_points_for(member=member, priced=delivery_quote),
        ),
        "point_value_fen": loyalty_settings().point_value_fen,
    }
    return render(request, "orders/checkout.html", context, status=400 if form.errors else 200)


@member_required
@require_GET
def order_detail(request: HttpRequest, number: str) -> HttpResponse:
    _member, order = _own_order(request, number)
    context = {
        "order": order,
        "total": format_yuan(order.total_fen),
        "items": format_yuan(order.items_fen),
        "fee": format_yuan(order.delivery_fee_fen),
        "points_discount": format_yuan(order.points_discount_fen),
        "lines": [(line, format_yuan(line.line_total_fen)) for line in order.lines.all()],
        "events": [
            (event, _status_labels.get(event.to_status, event.to_status))
            for event in order.events.all()
            if event.from_status != event.to_status  # notes are for the stores and HQ
        ],
        "can_pay": order.status == Order.Status.PENDING_PAYMENT and order.expires_at > timezone.now(),
        "can_cancel": order.status in Order.SHOPPER_CANCELLABLE,
        "development_payment": _development_payments(),
        "pickup_qr": qr_svg(pickup_token(order.number), box_size=6)
        if order.fulfilment == "pickup" and order.status in _PICKUP_QR_STATES
        else None,
        "delivery_qr": qr_svg(pickup_token(order.number), box_size=6)
        if order.status == Order.Status.OUT_FOR_DELIVERY
        else None,
        "can_confirm_receipt": order.status == Order.Status.DELIVERED,
        "map_url": amap_marker_url(order.pickup_store.point, order.pickup_store.name) if order.pickup_store else "",
    }
    return render(request, "orders/detail.html", context)


@member_required
@require_POST
def development_payment(request: HttpRequest, number: str) -> HttpResponse:
    """The demo's stand-in for WeChat Pay: confirms the order as a payment notice would. Absent otherwise."""
    if not _development_payments():
        raise Http404
    member, order = _own_order(request, number)
    try:
        services.start_payment(member=member, order=order)
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("orders:detail", number=order.number)


@member_required
@require_GET
def my_orders(request: HttpRequest) -> HttpResponse:
    orders = orders_of(current_member(request))[:50]
    return render(request, "orders/list.html", {"orders": [(o, format_yuan(o.total_fen)) for o in orders]})


@member_required
@require_POST
def wechat_pay(request: HttpRequest, number: str) -> JsonResponse:
    """The JSAPI pay parameters for WeixinJSBridge's getBrandWCPayRequest (inside WeChat)."""
    member, order = _own_order(request, number)
    try:
        started = services.start_payment(member=member, order=order)
    except ApplicationError as error:
        return JsonResponse({"code": error.code, "message": error.message}, status=error.status)
    return JsonResponse(started.pay_params or {"development": True})


@member_required
@require_POST
def cancel(request: HttpRequest, number: str) -> HttpResponse:
    member, order = _own_order(request, number)
    try:
        services.cancel_order(member=member, order=order)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("The order is cancelled; anything paid is refunded to your WeChat account."))
    return redirect("orders:detail", number=number)


@csrf_exempt
@require_POST
def wechat_pay_notify(request: HttpRequest) -> JsonResponse:
    """WeChat Pay's payment notice. Verified and decrypted before anything changes; repeated notices are harmless.

    WeChat Pay retries until it gets a success answer, so a notice we refuse answers FAIL;
    a notice about an unpaid state is acknowledged and ignored.
    """
    try:
        gateway = payment_gateway()
    except PaymentNotConfigured:
        raise Http404 from None
    if gateway.is_development:
        raise Http404
    try:
        notice = gateway.parse_notification(headers=request.headers, body=request.body)
    except InvalidNotification as error:
        logger.warning("WeChat Pay notice refused: %s", error)
        body, status = notification_nack(error.code)
        return JsonResponse(body, status=status)
    if not notice.is_paid:
        body, status = notification_ack()
        return JsonResponse(body, status=status)
    try:
        services.confirm_payment(
            out_trade_no=notice.out_trade_no,
            transaction_id=notice.transaction_id,
            amount_fen=notice.amount_fen,
            paid_at=notice.success_time or timezone.now(),
        )
    except ApplicationError as error:
        logger.error("WeChat Pay notice for %s not applied: %s", notice.out_trade_no, error)
        body, status = notification_nack(error.code)
        return JsonResponse(body, status=status)
    body, status = notification_ack()
    return JsonResponse(body, status=status)


@member_required
@require_POST
def confirm_receipt(request: HttpRequest, number: str) -> HttpResponse:
    """The shopper says the delivery arrived."""
    member, order = _own_order(request, number)
    try:
        fulfilment.confirm_receipt(member_id=member.pk, order=order)
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("orders:detail", number=order.number)


@member_required
@require_GET
def download_my_data(request: HttpRequest) -> HttpResponse:
    """The member's own data as a JSON file (PIPL's right to a copy)."""
    member = current_member(request)
    response = JsonResponse(
        services.export_member_data(member=member), json_dumps_params={"ensure_ascii": False, "indent": 2}
    )
    response["Content-Disposition"] = 'attachment; filename="my-data.json"'
    return response


@member_required
@require_POST
def close_my_account(request: HttpRequest) -> HttpResponse:
    """Close the account for good: personal data erased, then signed out."""
    member = current_member(request)
    if request.POST.get("confirm") != "1":
        messages.error(request, _("Tick the box to confirm that the account should be closed."))
        return redirect("members:center")
    try:
        services.close_account(member=member)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("members:center")
    sign_out(request)
    messages.success(request, _("Your account is closed and your personal data erased."))
    return redirect("mall:home")
