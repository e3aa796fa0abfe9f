"""The clerk console's order pages: new offers with their countdown, orders in progress, scanning, done.

Every page finds the clerk's store from their account and reads orders through the store-scoped
selectors, so another store's order is a 404. Actions are POSTs that call one service each.
"""

import secrets
from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from o2o.errors import ApplicationError
from o2o.geo import Point, amap_marker_url
from o2o.money import format_yuan
from o2o.phone import mask_phone
from orders import dispatch, fulfilment, selectors
from orders.models import Order
from stores.models import Staff
from stores.selectors import staff_for_user

TABS = ("new", "progress", "scan", "done")
_STATUS_LABELS = dict(Order.Status.choices)


def store_staff_required(view: Callable) -> Callable:
    """Signed in, and an active clerk of an active store; passes `staff` to the view."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        staff = staff_for_user(request.user)
        if staff is None:
            return render(request, "console/not_store_staff.html", status=403)
        return view(request, staff, *args, **kwargs)

    return wrapper


def _offer_rows(staff: Staff) -> list[dict]:
    offers = list(selectors.offers_to(staff.store))
    waiting = selectors.waiting_for_transfer_ids([offer.order for offer in offers])
    return [
        {
            "offer": offer,
            "order": offer.order,
            "total": format_yuan(offer.order.total_fen),
            "waiting_for_transfer": offer.order.pk in waiting,
        }
        for offer in offers
    ]


def _order_rows(orders: list[Order]) -> list[dict]:
    waiting = selectors.waiting_for_transfer_ids(orders)
    return [
        {"order": order, "total": format_yuan(order.total_fen), "waiting_for_transfer": order.pk in waiting}
        for order in orders
    ]


@store_staff_required
@require_GET
def order_list(request: HttpRequest, staff: Staff) -> HttpResponse:
    """The console's order tabs; the "new" list refreshes itself every few seconds (htmx)."""
    tab = request.GET.get("tab", "new")
    if tab not in TABS or tab == "scan":
        tab = "new"
    offers = _offer_rows(staff)
    context = {"staff": staff, "tab": tab, "section": "orders", "new_count": len(offers)}
    if tab == "new":
        context["offers"] = offers
    elif tab == "progress":
        context["rows"] = _order_rows(list(selectors.orders_in_progress(staff.store)))
    else:
        context["rows"] = _order_rows(list(selectors.orders_done(staff.store)))
    template = "console/_orders.html" if request.htmx else "console/orders.html"
    return render(request, template, context)


def _detail_context(staff: Staff, order: Order) -> dict:
    offer = selectors.open_offer(order, staff.store)
    mine = order.fulfilling_store_id == staff.store_id
    phone = order.recipient_phone or (order.member.phone or "")
    point = (
        Point(float(order.delivery_latitude), float(order.delivery_longitude))
        if order.fulfilment == Order.Fulfilment.DELIVERY
        else None
    )
    status = order.status
    return {
        "staff": staff,
        "section": "orders",
        "order": order,
        "offer": offer,
        "lines": [(line, format_yuan(line.line_total_fen)) for line in order.lines.all()],
        "total": format_yuan(order.total_fen),
        "phone": phone if selectors.shows_full_phone(order, staff.store) else mask_phone(phone),
        "phone_visible": selectors.shows_full_phone(order, staff.store),
        "map_url": amap_marker_url(point, order.delivery_address or order.recipient_name) if point else "",
        "transfers": selectors.transfers_pending_for(order),
        "events": [
            (event, event.reason or _STATUS_LABELS.get(event.to_status, event.to_status))
            for event in order.events.all()
        ],
        "new_count": selectors.offers_to(staff.store).count(),
        "can_prepare": mine and status == Order.Status.ACCEPTED and order.fulfilment == Order.Fulfilment.DELIVERY,
        "can_send_out": mine and status == Order.Status.PREPARING,
        "can_confirm_delivery": mine and status == Order.Status.OUT_FOR_DELIVERY,
        "can_mark_ready": mine and status == Order.Status.ACCEPTED and order.fulfilment == Order.Fulfilment.PICKUP,
        "can_hand_over": mine
        and status in (Order.Status.ACCEPTED, Order.Status.READY)
        and order.fulfilment == Order.Fulfilment.PICKUP,
        "can_cancel": mine and status in Order.STORE_CANCELLABLE,
        "can_return": mine and status in (Order.Status.DELIVERED, Order.Status.COMPLETED),
        "status_label": order.get_status_display(),
    }


def _store_order_or_404(staff: Staff, number: str) -> Order:
    order = selectors.store_order(staff, number)
    if order is None:
        raise Http404
    return order


@store_staff_required
@require_GET
def order_detail(request: HttpRequest, staff: Staff, number: str) -> HttpResponse:
    order = _store_order_or_404(staff, number)
    return render(request, "console/order.html", _detail_context(staff, order))


def _act(request: HttpRequest, staff: Staff, number: str, action: Callable[[Order], object], done: str) -> HttpResponse:
    order = _store_order_or_404(staff, number)
    try:
        action(order)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    return redirect("console-orders:detail", number=order.number)


@store_staff_required
@require_POST
def accept(request: HttpRequest, staff: Staff, number: str) -> HttpResponse:
    def run(order: Order) -> None:
        offer = selectors.open_offer(order, staff.store)
        if offer is None:
            raise ApplicationError(_("This order is no longer offered to your store."), code="assignment_closed")
        dispatch.accept_assignment(assignment_id=offer.pk, staff=staff, user=request.user)

    return _act(request, staff, number, run, _("Accepted. The order is yours."))


@store_staff_required
@require_POST
def decline(request: HttpRequest, staff: Staff, number: str) -> HttpResponse:
    order = _store_order_or_404(staff, number)
    offer = selectors.open_offer(order, staff.store)
    try:
        if offer is None:
            raise ApplicationError(_("This order is no longer offered to your store."), code="assignment_closed")
        dispatch.decline_assignment(
            assignment_id=offer.pk, staff=staff, user=request.user, reason=request.POST.get("reason", "")
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("console-orders:detail", number=order.number)
    messages.success(request, _("Declined. The order goes to another store."))
    return redirect(reverse("console-orders:list") + "?tab=new")


# The fulfilment moves a clerk makes with one tap: (service call, message once done).
MOVES: dict[str, tuple[Callable[[HttpRequest, Staff, Order], object], object]] = {
    "prepare": (
        lambda request, staff, order: fulfilment.start_preparing(staff=staff, order=order),
        gettext_lazy("Preparing."),
    ),
    "send-out": (
        lambda request, staff, order: fulfilment.send_out_for_delivery(staff=staff, order=order),
        gettext_lazy("Out for delivery with you."),
    ),
    "delivered": (
        lambda request, staff, order: fulfilment.confirm_delivery(
            staff=staff, order=order, scanned=request.POST.get("scanned") == "1"
        ),
        gettext_lazy("Delivered."),
    ),
    "ready": (
        lambda request, staff, order: fulfilment.mark_ready(staff=staff, order=order),
        gettext_lazy("Ready for pickup; the shopper is told."),
    ),
    "hand-over": (
        lambda request, staff, order: fulfilment.hand_over(staff=staff, order=order),
        gettext_lazy("Handed over. The order is complete."),
    ),
    "cancel": (
        lambda request, staff, order: fulfilment.cancel_by_store(
            staff=staff, order=order, reason=request.POST.get("reason", "")
        ),
        gettext_lazy("Cancelled; the shopper is refunded."),
    ),
}


@store_staff_required
@require_POST
def move(request: HttpRequest, staff: Staff, number: str, name: str) -> HttpResponse:
    """One tap of the order page: prepare, send out, delivered, ready, hand over, cancel."""
    if name not in MOVES:
        raise Http404
    service, done = MOVES[name]
    return _act(request, staff, number, lambda order: service(request, staff, order), str(done))


@store_staff_required
@require_http_methods(["GET", "POST"])
def return_goods(request: HttpRequest, staff: Staff, number: str) -> HttpResponse:
    """Goods brought back to the counter: choose lines and quantities; the refund follows."""
    order = _store_order_or_404(staff, number)
    if order.fulfilling_store_id != staff.store_id:
        raise Http404
    remaining = fulfilment.returnable_quantities(order)
    error = None
    if request.method == "POST":
        quantities = {}
        for line in order.lines.all():
            raw = request.POST.get(f"line-{line.pk}", "0").strip() or "0"
            if not raw.isdigit():
                error = _("Quantities are whole numbers.")
                break
            quantities[line.pk] = int(raw)
        if error is None:
            try:
                record = fulfilment.return_at_store(
                    staff=staff,
                    order=order,
                    quantities=quantities,
                    token=request.POST.get("token", ""),
                    reason=request.POST.get("reason", ""),
                )
            except ApplicationError as refusal:
                error = refusal.message
            else:
                messages.success(
                    request,
                    _("Return recorded; %(amount)s goes back to the shopper.")
                    % {"amount": format_yuan(record.amount_fen)},
                )
                return redirect("console-orders:detail", number=order.number)
    context = {
        "staff": staff,
        "section": "orders",
        "order": order,
        "rows": [(line, remaining[line.pk]) for line in order.lines.all()],
        "token": secrets.token_hex(16),
        "new_count": selectors.offers_to(staff.store).count(),
        "error": error,
    }
    return render(request, "console/return.html", context, status=400 if error else 200)


@store_staff_required
@require_http_methods(["GET", "POST"])
def scan(request: HttpRequest, staff: Staff) -> HttpResponse:
    """Scan an order's QR with the phone camera (or type its pickup code) and see what to do with it."""
    context = {
        "staff": staff,
        "tab": "scan",
        "section": "orders",
        "new_count": selectors.offers_to(staff.store).count(),
    }
    status = 200
    if request.method == "POST":
        code = request.POST.get("code", "")
        try:
            found = fulfilment.read_order_code(staff=staff, code=code)
        except ApplicationError as error:
            context["error"] = error
            status = error.status
        else:
            context["found"] = found
            context["lines"] = [(line, format_yuan(line.line_total_fen)) for line in found.order.lines.all()]
            context["total"] = format_yuan(found.order.total_fen)
        if request.htmx:
            return render(request, "console/_scan_result.html", context, status=200 if status < 500 else status)
    return render(request, "console/scan.html", context, status=status)
