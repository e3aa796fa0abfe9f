"""Fulfilment by the store that accepted an order: delivery, pickup handover, returns at the store.

Every function takes the acting clerk (`staff`) and refuses, as "no such order" (404), an
order their store does not fulfil: a clerk sees and acts on their own store's orders only.
The steps of delivery and pickup may instead be taken by the store's own system (an ERP that
ships, `actor=StoreActor.system(...)`): the same rules, stock, points and messages, with the
event recorded as the system's.
Stock reserved for the order is handed over (consumed) when the goods leave the store: at
"out for delivery", or at the pickup counter.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.selectors import reserved_under
from inventory.services import StockLine, consume_reserved_stock, return_stock
from members.models import Purchase
from members.services import (
    earn_points,
    open_follow_ups,
    record_purchase,
    return_redeemed_points,
    reverse_points,
)
from o2o.errors import ApplicationError, Conflict, NotFound
from o2o.events import publish
from orders.models import Order, OrderEvent, Refund, Return, ReturnLine
from orders.pickup import read_pickup_token
from orders.selectors import mall_settings, transfers_pending_for
from orders.services import cancel_and_refund, note_on_order, request_refund, transition_order
from stores.models import Staff, Store


@dataclass(frozen=True)
class StoreActor:
    """Who takes a fulfilment step at the order's store: one of its clerks, or its own system."""

    store_id: int
    actor_type: str  # OrderEvent.Actor
    label: str
    user: AbstractBaseUser | None = None  # signs the stock moves
    staff: Staff | None = None  # the courier, when a clerk takes the goods out
    system_store: Store | None = None

    @classmethod
    def clerk(cls, staff: Staff) -> "StoreActor":
        return cls(
            store_id=staff.store_id, actor_type=OrderEvent.Actor.STAFF, label=str(staff), user=staff.user, staff=staff
        )

    @classmethod
    def system(cls, *, store: Store, name: str) -> "StoreActor":
        """The store's ERP reporting a step it took (it ships where the chain lets it)."""
        return cls(store_id=store.pk, actor_type=OrderEvent.Actor.ERP, label=name, system_store=store)

    @property
    def store(self) -> Store:
        return self.staff.store if self.staff is not None else self.system_store


def _actor(staff: Staff | None, actor: StoreActor | None) -> StoreActor:
    if actor is not None:
        return actor
    if staff is None:
        raise TypeError("a fulfilment step needs the clerk (staff) or another actor")
    return StoreActor.clerk(staff)


def _locked_own_order(staff: Staff | StoreActor, order: Order | str) -> Order:
    """Lock an order the clerk's (or actor's) store fulfils; any other order is "not found"."""
    number = order if isinstance(order, str) else order.number
    store_id = staff.store_id
    locked = (
        Order.objects.select_for_update(of=("self",))
        .filter(number=number, fulfilling_store_id=store_id)
        .select_related("member", "fulfilling_store")
        .first()
    )
    if locked is None:
        raise NotFound(_("No such order."), code="order_not_found")
    return locked


def _require(order: Order, *statuses: str, message: str, code: str = "wrong_status") -> None:
    if order.status not in statuses:
        raise Conflict(message, code=code, details={"status": [order.status]})


def _hand_over_stock(order: Order, actor: StoreActor) -> None:
    held = reserved_under(store=actor.store, reference=order.reference)
    wanted: dict[int, int] = {}
    lines = list(order.lines.select_related("sku"))
    for line in lines:
        wanted[line.sku_id] = wanted.get(line.sku_id, 0) + line.quantity
    if any(held.get(sku_id, 0) < units for sku_id, units in wanted.items()):
        raise Conflict(
            _("Not all goods of this order are in the store yet (waiting for a transfer)."),
            code="waiting_for_transfer",
        )
    skus = {line.sku_id: line.sku for line in lines}
    consume_reserved_stock(
        store=actor.store,
        lines=[StockLine(sku=skus[sku_id], quantity=units) for sku_id, units in wanted.items()],
        reference=order.reference,
        actor=actor.user,
        reason=_("handed over"),
    )


def _complete(order: Order, *, actor_type: str, actor_label: str, reason: str, now: datetime) -> Order:
    completed = transition_order(
        order=order, to=Order.Status.COMPLETED, actor_type=actor_type, actor_label=actor_label, reason=reason, now=now
    )
    lines = list(completed.lines.select_related("sku__product"))
    # What was paid in money for each line: its share of the items' price after points.
    paid = [line.line_total_fen * completed.items_paid_fen // completed.items_fen for line in lines]
    record_purchase(
        member=completed.member,
        store=completed.fulfilling_store,
        channel=Purchase.Channel.ONLINE,
        reference=completed.number,
        amount_fen=completed.total_fen,
        purchased_at=now,
        lines=[(line.sku.product_id, line.quantity, amount) for line, amount in zip(lines, paid, strict=True)],
    )
    earn_points(
        member=completed.member,
        reference=completed.number,
        # Points are earned on what was paid in money.
        lines=[(line.sku.product.category_id, amount) for line, amount in zip(lines, paid, strict=True)],
        at=now,
    )
    open_follow_ups(
        member=completed.member,
        store=completed.fulfilling_store,
        reference=completed.number,
        lines=[(line.sku.product_id, line.quantity) for line in lines],
        at=now,
    )
    publish("order.completed", order_id=completed.pk)
    return completed


# --- delivery -------------------------------------------------------------------------------------


@transaction.atomic
def start_preparing(*, staff: Staff | None = None, order: Order | str, actor: StoreActor | None = None) -> Order:
    """Accepted → preparing; refused while a transfer for the order is still on its way."""
    actor = _actor(staff, actor)
    locked = _locked_own_order(actor, order)
    _require(locked, Order.Status.ACCEPTED, message=_("Only an accepted delivery order can be prepared."))
    if locked.fulfilment != Order.Fulfilment.DELIVERY:
        raise Conflict(_("Pickup orders are marked ready instead."), code="wrong_fulfilment")
    if transfers_pending_for(locked):
        raise Conflict(_("Waiting for a stock transfer to arrive."), code="waiting_for_transfer")
    return transition_order(
        order=locked, to=Order.Status.PREPARING, actor_type=actor.actor_type, actor_label=actor.label
    )


@transaction.atomic
def send_out_for_delivery(*, staff: Staff | None = None, order: Order | str, actor: StoreActor | None = None) -> Order:
    """Preparing → out for delivery with this clerk (none: the store's system sent it); the goods
    leave the store's stock now."""
    actor = _actor(staff, actor)
    locked = _locked_own_order(actor, order)
    _require(locked, Order.Status.PREPARING, message=_("Prepare the order before sending it out."))
    _hand_over_stock(locked, actor)
    sent = transition_order(
        order=locked,
        to=Order.Status.OUT_FOR_DELIVERY,
        actor_type=actor.actor_type,
        actor_label=actor.label,
        fields={"courier": actor.staff},
    )
    _tell_shopper(sent)
    return sent


@transaction.atomic
def confirm_delivery(
    *, staff: Staff | None = None, order: Order | str, scanned: bool = False, actor: StoreActor | None = None
) -> Order:
    """Out for delivery → delivered, confirmed by the clerk (or by scanning the shopper's QR at the door)."""
    actor = _actor(staff, actor)
    locked = _locked_own_order(actor, order)
    if locked.status == Order.Status.DELIVERED or locked.status == Order.Status.COMPLETED:
        raise Conflict(_("This order was already delivered."), code="already_delivered")
    _require(locked, Order.Status.OUT_FOR_DELIVERY, message=_("This order is not out for delivery."))
    return transition_order(
        order=locked,
        to=Order.Status.DELIVERED,
        actor_type=actor.actor_type,
        actor_label=actor.label,
        reason=_("order QR scanned at the door") if scanned else "",
    )


@transaction.atomic
def confirm_receipt(*, member_id: int, order: Order) -> Order:
    """The shopper says the delivery arrived: delivered → completed."""
    locked = Order.objects.select_for_update().filter(pk=order.pk, member_id=member_id).first()
    if locked is None:
        raise NotFound(_("No such order."), code="order_not_found")
    _require(locked, Order.Status.DELIVERED, message=_("Only a delivered order can be confirmed."))
    return _complete(
        locked, actor_type=OrderEvent.Actor.MEMBER, actor_label=str(locked.member), reason="", now=timezone.now()
    )


def complete_delivered_orders(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Complete delivered orders the shopper did not confirm within HQ's `auto_complete_hours`."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=mall_settings().auto_complete_hours)
    with transaction.atomic():
        due = list(
            Order.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("member", "fulfilling_store")
            .filter(status=Order.Status.DELIVERED, delivered_at__lte=cutoff)
            .order_by("delivered_at", "pk")[:batch_size]
        )
        for order in due:
            _complete(
                order, actor_type=OrderEvent.Actor.SYSTEM, actor_label="", reason="completed automatically", now=now
            )
    return len(due)


# --- pickup ---------------------------------------------------------------------------------------


@transaction.atomic
def mark_ready(*, staff: Staff | None = None, order: Order | str, actor: StoreActor | None = None) -> Order:
    """Accepted → ready for pickup; the shopper is told."""
    actor = _actor(staff, actor)
    locked = _locked_own_order(actor, order)
    if locked.fulfilment != Order.Fulfilment.PICKUP:
        raise Conflict(_("Delivery orders are prepared and sent out instead."), code="wrong_fulfilment")
    _require(locked, Order.Status.ACCEPTED, message=_("Only an accepted pickup order can be made ready."))
    ready = transition_order(order=locked, to=Order.Status.READY, actor_type=actor.actor_type, actor_label=actor.label)
    _tell_shopper(ready)
    return ready


@dataclass(frozen=True)
class Scan:
    """What a scanned (or typed) order code means to this store."""

    order: Order
    action: str  # "hand_over", "confirm_delivery", "view"


def read_order_code(*, staff: Staff, code: str) -> Scan:
    """Find the order behind a scanned QR token, a typed pickup code or an order number.

    Refuses, with a message a clerk can act on: a code we did not issue; an order of
    another store (404, naming that store); an order already collected or delivered.
    """
    code = (code or "").strip()
    if not code:
        raise ApplicationError(_("Scan the order QR code or type its pickup code."), code="code_required")
    number = read_pickup_token(code) if len(code) > 20 else None
    if number is None and code.isdigit() and len(code) == 6:
        order = _order_by_pickup_code(staff, code)
    else:
        number = number or (code if code.isdigit() and len(code) >= 10 else None)
        if number is None:
            raise ApplicationError(_("This is not an order code of ours."), code="bad_code")
        order = Order.objects.select_related("fulfilling_store", "pickup_store").filter(number=number).first()
    if order is None:
        raise NotFound(_("No order has this code."), code="order_not_found")
    owner = order.fulfilling_store or order.pickup_store
    if owner is None or owner.pk != staff.store_id:
        raise NotFound(
            _("This order belongs to %(store)s.") % {"store": owner.name if owner else _("no store yet")},
            code="order_of_another_store",
            details={"store": [owner.code] if owner else []},
        )
    if order.status in (Order.Status.COMPLETED, Order.Status.RETURNED):
        raise Conflict(
            _("Already collected on %(when)s.")
            % {"when": f"{timezone.localtime(order.completed_at or order.created_at):%Y-%m-%d %H:%M}"},
            code="already_collected",
        )
    if order.status == Order.Status.DELIVERED:
        raise Conflict(_("This order was already delivered."), code="already_delivered")
    if order.status in (Order.Status.CANCELLED, Order.Status.EXPIRED):
        raise Conflict(_("This order was cancelled."), code="order_cancelled")
    if order.fulfilment == Order.Fulfilment.PICKUP and order.status in (Order.Status.ACCEPTED, Order.Status.READY):
        return Scan(order=order, action="hand_over")
    if order.fulfilment == Order.Fulfilment.DELIVERY and order.status == Order.Status.OUT_FOR_DELIVERY:
        return Scan(order=order, action="confirm_delivery")
    return Scan(order=order, action="view")


def _order_by_pickup_code(staff: Staff, code: str) -> Order | None:
    """Pickup codes are six digits, unique enough among one store's open orders; the newest wins."""
    return (
        Order.objects.select_related("fulfilling_store", "pickup_store")
        .filter(pickup_code=code, pickup_store_id=staff.store_id, fulfilment=Order.Fulfilment.PICKUP)
        .exclude(status__in=[Order.Status.PENDING_PAYMENT, Order.Status.EXPIRED])
        .order_by("-created_at")
        .first()
    ) or (
        Order.objects.select_related("fulfilling_store", "pickup_store")
        .filter(pickup_code=code, fulfilment=Order.Fulfilment.PICKUP)
        .exclude(status__in=[Order.Status.PENDING_PAYMENT, Order.Status.EXPIRED])
        .order_by("-created_at")
        .first()
    )


@transaction.atomic
def hand_over(*, staff: Staff | None = None, order: Order | str, actor: StoreActor | None = None) -> Order:
    """The shopper collects: the reserved goods leave the store and the order completes."""
    actor = _actor(staff, actor)
    number = order if isinstance(order, str) else order.number
    locked = _locked_own_order(actor, number)
    if locked.status in (Order.Status.COMPLETED, Order.Status.RETURNED):
        raise Conflict(_("Already collected."), code="already_collected")
    if locked.fulfilment != Order.Fulfilment.PICKUP:
        raise Conflict(_("This is a delivery order."), code="wrong_fulfilment")
    _require(locked, Order.Status.ACCEPTED, Order.Status.READY, message=_("This order is not ready for pickup."))
    now = timezone.now()
    if locked.status == Order.Status.ACCEPTED:  # the shopper came before the clerk marked it ready
        locked = transition_order(
            order=locked, to=Order.Status.READY, actor_type=actor.actor_type, actor_label=actor.label, now=now
        )
    _hand_over_stock(locked, actor)
    return _complete(
        locked,
        actor_type=actor.actor_type,
        actor_label=actor.label,
        reason=_("handed over at the counter"),
        now=now,
    )


# --- cancellation by the store or HQ --------------------------------------------------------------


@transaction.atomic
def cancel_by_store(*, staff: Staff, order: Order | str, reason: str) -> Order:
    """The fulfilling store cannot complete an accepted order (before the goods leave): cancel and refund."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(_("Say why the order is cancelled."), code="reason_required", details={"reason": []})
    locked = _locked_own_order(staff, order)
    _require(locked, *Order.STORE_CANCELLABLE, message=_("This order can no longer be cancelled."))
    return cancel_and_refund(
        order=locked,
        actor_type=OrderEvent.Actor.STAFF,
        actor_label=str(staff),
        reason=reason,
        refund_reason=_("Cancelled by the store"),
    )


@transaction.atomic
def cancel_by_hq(*, order: Order, user: AbstractBaseUser, reason: str) -> Order:
    """HQ cancels an order (from the exception queue, or any order whose goods have not left) and refunds it."""
    locked = Order.objects.select_for_update().get(pk=order.pk)
    if locked.status not in Order.SHOPPER_CANCELLABLE | Order.STORE_CANCELLABLE:
        raise Conflict(_("This order can no longer be cancelled."), code="not_cancellable")
    return cancel_and_refund(
        order=locked,
        actor_type=OrderEvent.Actor.HQ,
        actor_label=user.get_username(),
        reason=reason or "cancelled by HQ",
        refund_reason=_("Cancelled by the store"),
    )


# --- returns at the store -------------------------------------------------------------------------


def returnable_quantities(order: Order) -> dict[int, int]:
    """Per order line id, how many units can still be returned."""
    returned = dict(
        ReturnLine.objects.filter(order_line__order=order)
        .values("order_line_id")
        .annotate(units=Sum("quantity"))
        .values_list("order_line_id", "units")
    )
    return {line.pk: line.quantity - returned.get(line.pk, 0) for line in order.lines.all()}


@transaction.atomic
def return_at_store(
    *, staff: Staff, order: Order | str, quantities: dict[int, int], token: str, reason: str = ""
) -> Return:
    """Take goods of a handed-over order back at the fulfilling store: whole or in part.

    The stock comes back at this store, the refund goes through the payment adapter, and
    `order.returned` lets points and commissions reverse. One submitted form (`token`) is
    one return: sent again, it returns the first result and changes nothing.
    """
    locked = _locked_own_order(staff, order)
    token = (token or "").strip()[:32]
    if not token:
        raise ApplicationError(_("The form is missing its token; reload the page."), code="token_required")
    earlier = Return.objects.filter(order=locked, token=token).first()
    if earlier is not None:
        return earlier
    _require(
        locked,
        Order.Status.DELIVERED,
        Order.Status.COMPLETED,
        message=_("Only goods that were handed over can be returned."),
        code="not_returnable",
    )
    remaining = returnable_quantities(locked)
    lines = {line.pk: line for line in locked.lines.select_related("sku")}
    wanted = {}
    for line_id, quantity in quantities.items():
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
            raise ApplicationError(_("Quantities are whole numbers."), code="invalid_quantity")
        if quantity == 0:
            continue
        if line_id not in lines:
            raise ApplicationError(_("That line is not in this order."), code="invalid_line")
        if quantity > remaining[line_id]:
            raise ApplicationError(
                _("At most %(n)d of %(name)s can be returned.") % {"n": remaining[line_id], "name": lines[line_id]},
                code="return_exceeds_sold",
                details={"line": [line_id]},
            )
        wanted[line_id] = quantity
    if not wanted:
        raise ApplicationError(_("Choose what is being returned."), code="nothing_to_return")

    everything = all(wanted.get(line_id, 0) == left for line_id, left in remaining.items())
    # Money and points come back in the share the items were paid with, on running totals, so
    # partial returns add up to what was paid and the last one settles the rest (and the fee).
    value_before = sum(line.unit_price_fen * (line.quantity - remaining[line.pk]) for line in lines.values())
    value_after = value_before + sum(lines[line_id].unit_price_fen * qty for line_id, qty in wanted.items())
    payment = locked.payments.order_by("pk").first()
    paid = payment.amount_fen if payment else 0
    refunded = (
        sum(payment.refunds.exclude(status=Refund.Status.FAILED).values_list("amount_fen", flat=True)) if payment else 0
    )
    returned_before = sum(Return.objects.filter(order=locked).values_list("amount_fen", flat=True))
    if everything:
        amount = paid - refunded
        points_back = locked.points_used
    else:
        amount = locked.items_paid_fen * value_after // locked.items_fen - returned_before
        points_back = locked.points_used * value_after // locked.items_fen
    amount = max(min(amount, paid - refunded), 0)
    try:
        with transaction.atomic():
            record = Return.objects.create(
                order=locked,
                store=staff.store,
                token=token,
                amount_fen=amount,
                reason=reason.strip()[:255],
                received_by=staff.user,
            )
    except IntegrityError:  # the same form, sent twice at once: the other request holds the order lock
        return Return.objects.get(order=locked, token=token)
    ReturnLine.objects.bulk_create(
        [ReturnLine(return_record=record, order_line=lines[line_id], quantity=qty) for line_id, qty in wanted.items()]
    )
    return_stock(
        store=staff.store,
        lines=[StockLine(sku=lines[line_id].sku, quantity=qty) for line_id, qty in wanted.items()],
        reference=locked.reference,
        actor=staff.user,
        reason=reason or _("returned at the store"),
    )
    if amount and payment is not None:
        record.refund = request_refund(payment=payment, amount_fen=amount, reason=_("Returned at the store"))
        record.save(update_fields=["refund"])
    summary = ", ".join(f"{lines[line_id].product_name} × {qty}" for line_id, qty in wanted.items())
    if everything:
        transition_order(
            order=locked,
            to=Order.Status.RETURNED,
            actor_type=OrderEvent.Actor.STAFF,
            actor_label=str(staff),
            reason=_("Returned: %(items)s") % {"items": summary},
        )
    else:
        note_on_order(
            order=locked,
            actor_type=OrderEvent.Actor.STAFF,
            actor_label=str(staff),
            reason=_("Partly returned: %(items)s") % {"items": summary},
        )
    publish(
        "order.returned",
        order_id=locked.pk,
        return_id=record.pk,
        amount_fen=amount,
        lines={str(line_id): qty for line_id, qty in wanted.items()},
    )
    if locked.points_used:
        return_redeemed_points(member=locked.member, reference=locked.number, total=points_back)
    if amount:
        refunded = sum(Return.objects.filter(order=locked).values_list("amount_fen", flat=True))
        # Points were earned on the money paid for the items; returns reverse them against it.
        reverse_points(
            member=locked.member, reference=locked.number, refunded_fen=refunded, paid_fen=locked.items_paid_fen
        )
        publish("order.refunded", order_id=locked.pk, amount_fen=amount, paid_fen=locked.total_fen)
    return record


def _tell_shopper(order: Order) -> None:
    from orders import tasks

    transaction.on_commit(lambda: tasks.notify_shopper.delay(order.pk))
