"""Checkout, payment and expiry of online orders.

Every status change goes through `transition_order`, which locks the row, checks
Order.MACHINE and writes an OrderEvent. Money is integer fen; prices and totals
are computed here, never taken from the client.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.db.models.functions import Round
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.vendors import wechat_pay
from inventory.models import SKU, StockMove
from inventory.selectors import prices_at, stores_holding
from inventory.services import StockLine, release_stock, reserve_stock, stop_holding_transfer
from members.models import Member
from members.selectors import loyalty_settings
from members.services import (
    erase_member,
    member_data,
    redeem_points,
    redeemable_points,
    return_redeemed_points,
    set_home_store_once,
)
from o2o.errors import ApplicationError, Conflict
from o2o.events import publish
from o2o.geo import parse_point
from o2o.phone import normalize_cn_mobile
from orders.models import Assignment, CartLine, Order, OrderEvent, OrderLine, Payment, PosSale, Refund
from orders.selectors import cart_lines, mall_settings
from stores.models import Store
from stores.selectors import nearest_stores

MAX_LINE_QUANTITY = 99


# --- the cart ---------------------------------------------------------------------------------


def set_cart_quantity(*, member: Member, sku: SKU, quantity: int) -> CartLine | None:
    """Set how many of a SKU are in the cart; 0 removes the line."""
    if not isinstance(quantity, int) or not 0 <= quantity <= MAX_LINE_QUANTITY:
        raise ApplicationError(
            _("Quantity must be between 0 and %(max)d.") % {"max": MAX_LINE_QUANTITY},
            code="invalid_quantity",
            details={"quantity": [str(quantity)]},
        )
    if quantity == 0:
        CartLine.objects.filter(member=member, sku=sku).delete()
        return None
    if not sku.is_active or not sku.product.is_active:
        raise ApplicationError(
            _("This product is no longer sold."), code="sku_unavailable", details={"sku": [sku.code]}
        )
    line, _created = CartLine.objects.update_or_create(member=member, sku=sku, defaults={"quantity": quantity})
    return line


def add_to_cart(*, member: Member, sku: SKU, quantity: int = 1) -> CartLine:
    """Add units of a SKU to the cart; a line holds at most 99."""
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_LINE_QUANTITY:
        raise ApplicationError(
            _("Quantity must be between 1 and %(max)d.") % {"max": MAX_LINE_QUANTITY},
            code="invalid_quantity",
            details={"quantity": [str(quantity)]},
        )
    current = CartLine.objects.filter(member=member, sku=sku).values_list("quantity", flat=True).first() or 0
    line = set_cart_quantity(member=member, sku=sku, quantity=min(current + quantity, MAX_LINE_QUANTITY))
    assert line is not None
    return line


# --- checkout ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryAddress:
    recipient_name: str
    recipient_phone: str
    address: str
    latitude: float  # GCJ-02
    longitude: float


@dataclass(frozen=True)
class Quote:
    lines: list[tuple[SKU, int, int]]  # (sku, quantity, unit price in fen)
    items_fen: int
    delivery_fee_fen: int

    @property
    def total_fen(self) -> int:
        return self.items_fen + self.delivery_fee_fen


def quote(*, member: Member, fulfilment: str, pickup_store: Store | None = None) -> Quote:
    """The cart priced on the server: a pickup store's own prices, else HQ's; the delivery fee rule."""
    lines = list(cart_lines(member))
    if not lines:
        raise ApplicationError(_("Your cart is empty."), code="empty_cart")
    prices = prices_at(pickup_store if fulfilment == Order.Fulfilment.PICKUP else None, [line.sku for line in lines])
    priced = [(line.sku, line.quantity, prices[line.sku.pk]) for line in lines]
    items = sum(quantity * price for _sku, quantity, price in priced)
    fee = 0
    if fulfilment == Order.Fulfilment.DELIVERY:
        rules = mall_settings()
        fee = 0 if items >= rules.free_delivery_from_fen else rules.delivery_fee_fen
    return Quote(lines=priced, items_fen=items, delivery_fee_fen=fee)


def delivering_stores(*, member: Member, latitude: float, longitude: float) -> list[Store]:
    """Stores, nearest first, whose delivery radius covers the point and that hold every cart item."""
    holding = stores_holding((line.sku, line.quantity) for line in cart_lines(member))
    return [found.store for found in nearest_stores(latitude, longitude, delivers_here=True, queryset=holding)]


def _new_order_number(now: datetime) -> str:
    return f"{timezone.localtime(now):%y%m%d}{secrets.randbelow(10**8):08d}"


def _new_pickup_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


@transaction.atomic
def place_order(
    *,
    member: Member,
    fulfilment: str,
    pickup_store: Store | None = None,
    delivery: DeliveryAddress | None = None,
    points: int = 0,
    now: datetime | None = None,
) -> Order:
    """Turn the member's cart into an order awaiting payment, in one transaction.

    Pickup: the store must offer pickup, and its stock is reserved now (all lines
    or nothing). Delivery: some store must deliver to the point and hold every
    item; dispatch picks the store once the order is paid. The credited store is
    the member's home store; a first order without one makes its store the home.
    """
    now = now or timezone.now()
    if fulfilment == Order.Fulfilment.PICKUP:
        if pickup_store is None or not pickup_store.is_active or not pickup_store.offers_pickup:
            raise ApplicationError(
                _("Choose a store that offers pickup."), code="invalid_pickup_store", details={"pickup_store": []}
            )
        home_candidate = pickup_store
    elif fulfilment == Order.Fulfilment.DELIVERY:
        if delivery is None:
            raise ApplicationError(_("A delivery address is needed."), code="address_required")
        point = parse_point(delivery.latitude, delivery.longitude, field="address")
        phone = normalize_cn_mobile(delivery.recipient_phone, field="recipient_phone")
        if not delivery.recipient_name.strip() or not delivery.address.strip():
            raise ApplicationError(
                _("Recipient and address are needed."), code="address_required", details={"address": []}
            )
        candidates = delivering_stores(member=member, latitude=point.lat, longitude=point.lng)
        if not candidates:
            raise Conflict(
                _("No store can deliver all these items to this address. Try store pickup."),
                code="no_store_delivers_here",
            )
        home_candidate = candidates[0]
    else:
        raise ApplicationError(_("Choose pickup or delivery."), code="invalid_fulfilment")

    priced = quote(member=member, fulfilment=fulfilment, pickup_store=pickup_store)
    discount = _points_discount(member=member, points=points, priced=priced)
    rules = mall_settings()
    if member.home_store_id is None:
        set_home_store_once(member=member, store=home_candidate, source=Member.HomeStoreSource.FIRST_ORDER)
    fields = {
        "member": member,
        "fulfilment": fulfilment,
        "credited_store_id": member.home_store_id,
        "items_fen": priced.items_fen,
        "delivery_fee_fen": priced.delivery_fee_fen,
        "points_used": points if discount else 0,
        "points_discount_fen": discount,
        "total_fen": priced.total_fen - discount,
        "expires_at": now + timedelta(minutes=rules.unpaid_order_minutes),
    }
    if fulfilment == Order.Fulfilment.PICKUP:
        fields.update(pickup_store=pickup_store, pickup_code=_new_pickup_code())
    else:
        fields.update(
            recipient_name=delivery.recipient_name.strip()[:50],
            recipient_phone=phone,
            delivery_address=delivery.address.strip()[:255],
            delivery_latitude=round(point.lat, 6),
            delivery_longitude=round(point.lng, 6),
        )
    order = _create_with_unique_number(fields, now)
    OrderLine.objects.bulk_create(
        [
            OrderLine(
                order=order,
                sku=sku,
                product_name=sku.product.name,
                spec=sku.spec,
                unit_price_fen=price,
                quantity=quantity,
                line_total_fen=price * quantity,
            )
            for sku, quantity, price in priced.lines
        ]
    )
    if fulfilment == Order.Fulfilment.PICKUP:
        reserve_stock(
            store=pickup_store,
            lines=[StockLine(sku=sku, quantity=quantity) for sku, quantity, _price in priced.lines],
            reference=f"order:{order.number}",
            reason="online order",
            savepoint=False,  # a shortage fails the whole checkout anyway
        )
    if discount:
        redeem_points(member=member, points=points, order_fen=priced.items_fen, reference=order.number, at=now)
    OrderEvent.objects.create(
        order=order, from_status="", to_status=order.status, actor_type=OrderEvent.Actor.MEMBER, actor_label=str(member)
    )
    CartLine.objects.filter(member=member).delete()
    return order


def most_points_for(*, member: Member, priced: Quote) -> int:
    """The most points the member may use on this quote: HQ's share of the items, the balance, and at
    least one fen left to pay (WeChat Pay takes no zero payments)."""
    value = loyalty_settings().point_value_fen
    return max(min(redeemable_points(member=member, order_fen=priced.items_fen), (priced.total_fen - 1) // value), 0)


def _points_discount(*, member: Member, points: object, priced: Quote) -> int:
    if points in (None, 0):
        return 0
    if not isinstance(points, int) or isinstance(points, bool) or points < 0:
        raise ApplicationError(
            _("Points are a whole number above zero."), code="invalid_points", details={"points": [str(points)]}
        )
    allowed = most_points_for(member=member, priced=priced)
    if points > allowed:
        raise Conflict(
            _("At most %(allowed)d points can be used on this order.") % {"allowed": allowed},
            code="points_limit",
            details={"points": [_("At most %(allowed)d.") % {"allowed": allowed}], "allowed": [allowed]},
        )
    return points * loyalty_settings().point_value_fen


def _create_with_unique_number(fields: dict, now: datetime) -> Order:
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return Order.objects.create(number=_new_order_number(now), **fields)
        except IntegrityError:
            continue
    raise Conflict(_("Could not number the order; try again."), code="order_number_conflict")


# --- status changes ---------------------------------------------------------------------------


def transition_order(
    *,
    order: Order,
    to: str,
    actor_type: str,
    actor_label: str = "",
    reason: str = "",
    now: datetime | None = None,
    fields: dict | None = None,
) -> Order:
    """The only writer of Order.status: lock, check the table, save, record the event.

    `fields` are other columns set with the move (the fulfilling store, the courier).
    An order that is cancelled or expires gives back whatever is still reserved for it,
    at every store, and its offered assignment is withdrawn.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        source = locked.status
        Order.MACHINE.check(source, to)
        locked.status = to
        update = ["status"]
        stamps = {
            Order.Status.PAID: "paid_at",
            Order.Status.AWAITING_DISPATCH: "paid_at",
            Order.Status.ACCEPTED: "accepted_at",
            Order.Status.DELIVERED: "delivered_at",
            Order.Status.COMPLETED: "completed_at",
        }
        # Paid once: going back to dispatch, or from HQ's queue back to paid, keeps the time of payment.
        if to in stamps and not (to in (Order.Status.PAID, Order.Status.AWAITING_DISPATCH) and locked.paid_at):
            setattr(locked, stamps[to], now)
            update.append(stamps[to])
        for name, value in (fields or {}).items():
            setattr(locked, name, value)
            update.append(name)
        locked.save(update_fields=update)
        OrderEvent.objects.create(
            order=locked,
            from_status=source,
            to_status=to,
            actor_type=actor_type,
            actor_label=actor_label[:64],
            reason=reason[:255],
        )
        if to in (Order.Status.CANCELLED, Order.Status.EXPIRED):
            Assignment.objects.filter(order=locked, status=Assignment.Status.OFFERED).update(
                status=Assignment.Status.WITHDRAWN, decided_at=now, reason=reason[:255]
            )
            release_everything_held(locked, reason=to)
            if locked.points_used:
                return_redeemed_points(member=locked.member, reference=locked.number, total=locked.points_used)
        return locked


def note_on_order(*, order: Order, actor_type: str, actor_label: str = "", reason: str) -> OrderEvent:
    """A timeline entry without a status change (offered to a store, part of it returned)."""
    return OrderEvent.objects.create(
        order=order,
        from_status=order.status,
        to_status=order.status,
        actor_type=actor_type,
        actor_label=actor_label[:64],
        reason=reason[:255],
    )


def release_everything_held(order: Order, *, reason: str, store: Store | None = None) -> None:
    """Give back every unit still reserved for the order (at one store, or all), and stop its transfers."""
    held = StockMove.objects.filter(reference=order.reference)
    if store is not None:
        held = held.filter(store=store)
    by_store: dict[int, list[tuple[int, int]]] = {}
    for row in held.values("store_id", "sku_id").annotate(units=Sum("reserved_delta")).order_by("store_id", "sku_id"):
        if row["units"] > 0:
            by_store.setdefault(row["store_id"], []).append((row["sku_id"], row["units"]))
    if by_store:
        stores = Store.objects.in_bulk(by_store)
        skus = SKU.objects.in_bulk([sku_id for rows in by_store.values() for sku_id, _units in rows])
        for store_id, rows in by_store.items():
            release_stock(
                store=stores[store_id],
                lines=[StockLine(sku=skus[sku_id], quantity=units) for sku_id, units in rows],
                reference=order.reference,
                reason=reason,
            )
    stop_holding_transfer(hold_reference=order.reference, reason=reason)


@transaction.atomic
def confirm_payment(
    *, out_trade_no: str, transaction_id: str, amount_fen: int, paid_at: datetime, is_development: bool = False
) -> Order:
    """Record WeChat Pay's word that an order is paid; the same transaction has one effect however often it comes.

    An amount that differs from the order's total is refused and changes nothing. A
    payment that arrives after the order expired or was cancelled is recorded and
    refunded in full.
    """
    order = Order.objects.select_for_update().filter(number=out_trade_no).first()
    if order is None:
        raise ApplicationError(_("No such order."), code="order_not_found", status=404)
    if Payment.objects.filter(transaction_id=transaction_id).exists():
        return order
    if amount_fen != order.total_fen:
        raise Conflict(
            _("The amount paid does not match the order."),
            code="amount_mismatch",
            details={"paid": [amount_fen], "total": [order.total_fen]},
        )
    payment = Payment.objects.create(
        order=order,
        transaction_id=transaction_id,
        amount_fen=amount_fen,
        paid_at=paid_at,
        is_development=is_development,
    )
    if order.status == Order.Status.PENDING_PAYMENT:
        target = Order.Status.PAID if order.fulfilment == Order.Fulfilment.PICKUP else Order.Status.AWAITING_DISPATCH
        paid = transition_order(
            order=order, to=target, actor_type=OrderEvent.Actor.PAYMENT, actor_label=transaction_id, now=paid_at
        )
        publish("order.paid", order_id=paid.pk)
        transaction.on_commit(lambda: _dispatch_later(paid.pk))
        return paid
    # Paid too late (expired or cancelled meanwhile), or a second transaction for a paid order.
    request_refund(payment=payment, amount_fen=amount_fen, reason=_("Paid after the order had closed"))
    return order


@dataclass(frozen=True)
class PaymentStart:
    order: Order
    development: bool  # the demo's stand-in confirmed the order at once
    pay_params: dict | None  # for WeixinJSBridge / wx.requestPayment, with WeChat Pay


def start_payment(*, member: Member, order: Order) -> PaymentStart:
    """Begin paying an order awaiting payment.

    With WeChat Pay: a JSAPI prepay and the signed parameters for the page; the
    payment notice, not this, marks the order paid. With the development stand-in
    (no WeChat Pay, development payments allowed): the order is confirmed at once.
    No transaction is held while WeChat Pay is called.
    """
    if order.member_id != member.pk:
        raise ApplicationError(_("No such order."), code="not_found", status=404)
    if order.status != Order.Status.PENDING_PAYMENT or order.expires_at <= timezone.now():
        raise Conflict(_("This order can no longer be paid."), code="not_payable")
    gateway = wechat_pay.payment_gateway()  # PaymentNotConfigured (503) when there is neither
    if gateway.is_development:
        paid = confirm_payment(
            out_trade_no=order.number,
            transaction_id=f"dev-{order.number}-{secrets.token_hex(4)}",
            amount_fen=order.total_fen,
            paid_at=timezone.now(),
            is_development=True,
        )
        return PaymentStart(order=paid, development=True, pay_params=None)
    if not member.openid or member.openid.startswith("dev-"):
        raise Conflict(_("Open the mall in WeChat to pay."), code="wechat_required")
    prepay_id = gateway.create_jsapi_prepay(
        out_trade_no=order.number,
        description=f"{settings.O2O_CHAIN_NAME} {order.number}"[:127],
        amount_fen=order.total_fen,
        payer_openid=member.openid,
        expires_at=order.expires_at,
    )
    return PaymentStart(order=order, development=False, pay_params=gateway.jsapi_pay_params(prepay_id=prepay_id))


def request_refund(*, payment: Payment, amount_fen: int, reason: str) -> Refund:
    """Record a refund and send it to WeChat Pay after commit (a task, so a slow gateway holds no lock)."""
    from orders import tasks

    refunded = sum(payment.refunds.exclude(status=Refund.Status.FAILED).values_list("amount_fen", flat=True))
    if amount_fen <= 0 or refunded + amount_fen > payment.amount_fen:
        raise Conflict(_("A refund cannot exceed what was paid."), code="refund_exceeds_payment")
    refund = Refund.objects.create(
        payment=payment,
        out_refund_no=f"R{payment.order.number}{payment.refunds.count() + 1:02d}",
        amount_fen=amount_fen,
        reason=reason[:255],
    )
    transaction.on_commit(lambda: tasks.send_refund.delay(refund.pk))
    return refund


def send_refund(*, refund_id: int) -> Refund:
    """Ask the payment gateway to pay a recorded refund back; safe to run twice."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().select_related("payment__order").get(pk=refund_id)
        if refund.status != Refund.Status.PROCESSING or refund.refund_id:
            return refund
    result = wechat_pay.payment_gateway().refund(
        out_trade_no=refund.payment.order.number,
        out_refund_no=refund.out_refund_no,
        refund_fen=refund.amount_fen,
        total_fen=refund.payment.amount_fen,
        reason=refund.reason,
    )
    status = {"SUCCESS": Refund.Status.SUCCEEDED, "PROCESSING": Refund.Status.PROCESSING}.get(
        result.status, Refund.Status.FAILED
    )
    Refund.objects.filter(pk=refund.pk).update(status=status, refund_id=result.refund_id)
    refund.refresh_from_db()
    return refund


@transaction.atomic
def cancel_order(*, member: Member, order: Order, reason: str = "") -> Order:
    """The shopper calls off an order before a store has accepted it; what was paid goes back in full."""
    locked = Order.objects.select_for_update().filter(pk=order.pk, member=member).first()
    if locked is None:
        raise ApplicationError(_("No such order."), code="order_not_found", status=404)
    if locked.status not in Order.SHOPPER_CANCELLABLE:
        raise Conflict(_("This order can no longer be cancelled."), code="not_cancellable")
    return cancel_and_refund(
        order=locked,
        actor_type=OrderEvent.Actor.MEMBER,
        actor_label=str(member),
        reason=reason or "cancelled by the shopper",
        refund_reason=_("Cancelled by the shopper"),
    )


def cancel_and_refund(*, order: Order, actor_type: str, actor_label: str, reason: str, refund_reason: str) -> Order:
    """Cancel an order (the caller holds its lock and checked who may) and pay back all that was paid."""
    cancelled = transition_order(
        order=order, to=Order.Status.CANCELLED, actor_type=actor_type, actor_label=actor_label, reason=reason
    )
    refunded = 0
    for payment in cancelled.payments.all():
        already = sum(payment.refunds.exclude(status=Refund.Status.FAILED).values_list("amount_fen", flat=True))
        if payment.amount_fen > already:
            request_refund(payment=payment, amount_fen=payment.amount_fen - already, reason=refund_reason)
            refunded += payment.amount_fen - already
    publish("order.cancelled", order_id=cancelled.pk)
    if refunded:
        publish("order.refunded", order_id=cancelled.pk, amount_fen=refunded, paid_fen=cancelled.total_fen)
    return cancelled


def reconcile_pending_payments(
    *, now: datetime | None = None, older_than_minutes: int = 2, batch_size: int = 100
) -> int:
    """Ask WeChat Pay about unpaid orders whose payment notice may have been lost; confirm those it says are paid.

    Queries run outside any transaction; each confirmation is its own (idempotent) transaction.
    """
    try:
        gateway = wechat_pay.payment_gateway()
    except wechat_pay.PaymentNotConfigured:
        return 0
    if gateway.is_development:
        return 0
    now = now or timezone.now()
    window_start = now - timedelta(hours=24)  # WeChat Pay keeps retrying its own notices for about a day
    pending = Order.objects.filter(
        status__in=[Order.Status.PENDING_PAYMENT, Order.Status.EXPIRED],
        created_at__gte=window_start,
        created_at__lte=now - timedelta(minutes=older_than_minutes),
        payments__isnull=True,
    ).order_by("created_at")[:batch_size]
    confirmed = 0
    for order in pending:
        notice = gateway.query_order(out_trade_no=order.number)
        if notice is not None and notice.is_paid:
            confirm_payment(
                out_trade_no=order.number,
                transaction_id=notice.transaction_id,
                amount_fen=notice.amount_fen,
                paid_at=notice.success_time or now,
            )
            confirmed += 1
    return confirmed


def expire_unpaid_orders(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Expire orders whose time to pay has passed, releasing their stock once.

    Rows are taken with FOR UPDATE SKIP LOCKED, so sweepers running at once split
    the work instead of expiring an order twice; a payment that holds the row
    wins, and the order is no longer pending when the sweeper sees it again.
    """
    now = now or timezone.now()
    expired = 0
    with transaction.atomic():
        due = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(status=Order.Status.PENDING_PAYMENT, expires_at__lte=now)
            .order_by("expires_at", "pk")[:batch_size]
        )
        for order in due:
            transition_order(
                order=order, to=Order.Status.EXPIRED, actor_type=OrderEvent.Actor.SYSTEM, reason="not paid in time"
            )
            expired += 1
            # Close the WeChat Pay order too, so the shopper cannot pay an expired order (a late
            # payment would still be refunded by confirm_payment).
            transaction.on_commit(lambda number=order.number: _close_payment_later(number))
    return expired


def _dispatch_later(order_id: int) -> None:
    from orders import tasks

    tasks.dispatch_order.delay(order_id)


def _close_payment_later(number: str) -> None:
    from orders import tasks

    tasks.close_wechat_pay_order.delay(number)


def close_wechat_pay_order(*, number: str) -> None:
    """Close an expired order at WeChat Pay; nothing to do in the demo or without WeChat Pay."""
    try:
        gateway = wechat_pay.payment_gateway()
    except wechat_pay.PaymentNotConfigured:
        return
    if not gateway.is_development:
        gateway.close_order(out_trade_no=number)


# --- the member's own data (PIPL) -----------------------------------------------------------------

# An account can be closed only when none of its orders is still under way (money or goods moving).
_FINAL = (Order.Status.COMPLETED, Order.Status.RETURNED, Order.Status.CANCELLED, Order.Status.EXPIRED)


def on_member_claimed(*, member_id: int, retired_id: int) -> None:
    """A WeChat sign-up (`retired_id`) took over a membership opened in a store (`member_id`; see
    members.verification). Its cart and its unpaid orders go with the shopper; a paid order or a
    till sale is history of its own, which is not moved between members: the claim is refused."""
    from members.verification import has_history

    if (
        Order.objects.filter(member_id=retired_id, paid_at__isnull=False).exists()
        or PosSale.objects.filter(member_id=retired_id).exists()
    ):
        raise has_history()
    Order.objects.filter(member_id=retired_id).update(member_id=member_id)
    # The cart the shopper filled before proving the number is the one they mean.
    retired_skus = CartLine.objects.filter(member_id=retired_id).values("sku_id")
    CartLine.objects.filter(member_id=member_id, sku_id__in=retired_skus).delete()
    CartLine.objects.filter(member_id=retired_id).update(member_id=member_id)


def export_member_data(*, member: Member) -> dict:
    """Everything the chain keeps about a member, for their own download: membership and orders."""
    data = member_data(member)
    data["orders"] = [
        {
            "number": order.number,
            "created_at": order.created_at.isoformat(),
            "status": order.status,
            "fulfilment": order.fulfilment,
            "total_fen": order.total_fen,
            "recipient_name": order.recipient_name,
            "recipient_phone": order.recipient_phone,
            "delivery_address": order.delivery_address,
            "lines": [
                {"product": line.product_name, "spec": line.spec, "quantity": line.quantity, "fen": line.line_total_fen}
                for line in order.lines.all()
            ],
        }
        for order in Order.objects.filter(member=member).prefetch_related("lines").order_by("created_at", "pk")
    ]
    return data


@transaction.atomic
def close_account(*, member: Member) -> Member:
    """The member closes their account: personal data on their orders and membership is erased;
    the orders, payments and ledgers stay (anonymous) so the books still add up."""
    open_orders = Order.objects.select_for_update().filter(member=member).exclude(status__in=_FINAL)
    if open_orders.exists():
        raise Conflict(
            _("Some of your orders are still under way; close the account once they are finished."),
            code="orders_open",
            details={"orders": list(open_orders.values_list("number", flat=True))},
        )
    # The delivery point is kept only to about a kilometre (two decimals): the order stays a delivery
    # in its district for HQ's figures, but no longer leads to a door.
    Order.objects.filter(member=member).update(
        recipient_name="",
        recipient_phone="",
        delivery_address="",
        delivery_latitude=Round(F("delivery_latitude"), 2),
        delivery_longitude=Round(F("delivery_longitude"), 2),
    )
    CartLine.objects.filter(member=member).delete()
    return erase_member(member=member)
