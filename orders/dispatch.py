"""Dispatch: which store gets a paid order, its hour to accept, and HQ's exception queue.

The rule (docs/dispatch.md): among the active stores that deliver to the address and hold
every item, the member's affinity store (where they last bought, online or at the POS) wins,
else the nearest; stores that declined the order or let its deadline pass are left out. The
chosen store's stock is reserved for the order and the store has `acceptance_minutes` to accept.

Locking: every writer takes the order's row lock first (accept, decline, cancel, HQ), and
the deadline sweeper takes the assignment and its order together with SKIP LOCKED, so an
accept racing the sweeper, or two sweepers, end with exactly one outcome.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from inventory.models import SKU, Stock
from inventory.selectors import stores_holding
from inventory.services import InsufficientStock, StockLine, request_transfer, reserve_stock
from members.selectors import affinity_store
from o2o.db import atomic_with_deadlock_retry
from o2o.errors import ApplicationError, Conflict, NotFound
from o2o.events import publish
from o2o.geo import Point, distance_m
from orders.models import Assignment, Order, OrderEvent, ShortagePolicy
from orders.selectors import mall_settings
from orders.services import note_on_order, release_everything_held, transition_order
from stores.models import Staff, Store
from stores.selectors import nearest_stores

# How many ranked candidates dispatch tries when a concurrent sale takes the stock it chose.
CANDIDATES_TRIED = 5
# How far a shortage looks for a fulfilling store and for stores to transfer from.
TRANSFER_STORES_CONSIDERED = 20


@dataclass(frozen=True)
class Choice:
    store: Store
    basis: str
    distance_m: float | None


# --- ranking --------------------------------------------------------------------------------------


def excluded_stores(order: Order) -> set[int]:
    """Stores that declined this order or let its deadline pass (or were withdrawn from it)."""
    return set(
        order.assignments.filter(
            status__in=[Assignment.Status.DECLINED, Assignment.Status.EXPIRED, Assignment.Status.WITHDRAWN]
        ).values_list("store_id", flat=True)
    )


def _order_lines(order: Order) -> list[StockLine]:
    return [StockLine(sku=line.sku, quantity=line.quantity) for line in order.lines.select_related("sku")]


def _covers(store: Store, point: Point) -> tuple[bool, float]:
    distance = distance_m(point, store.point)
    return (store.is_active and store.delivers and distance <= store.delivery_radius_m), distance


def rank_candidates(
    *, point: Point, lines: Sequence[StockLine], affinity: Store | None, excluded: Iterable[int], limit: int
) -> list[Choice]:
    """The stores that may fulfil a delivery, best first: the affinity store if it qualifies, then by distance.

    A candidate is active, delivers, covers the point with its own radius, holds every
    line, and is not excluded.
    """
    excluded = set(excluded)
    holding = stores_holding((line.sku, line.quantity) for line in lines).exclude(pk__in=excluded)
    ranked: list[Choice] = []
    if affinity is not None and affinity.pk not in excluded:
        covers, distance = _covers(affinity, point)
        if covers and holding.filter(pk=affinity.pk).exists():
            ranked.append(Choice(affinity, Assignment.Basis.AFFINITY, distance))
    for found in nearest_stores(point.lat, point.lng, delivers_here=True, limit=limit, queryset=holding):
        if not ranked or found.store.pk != ranked[0].store.pk:
            ranked.append(Choice(found.store, Assignment.Basis.NEAREST, found.distance_m))
    return ranked[:limit]


# --- dispatch -------------------------------------------------------------------------------------


def dispatch_order(*, order_id: int, now: datetime | None = None) -> Assignment | None:
    """Offer a paid order to a store; safe to run twice (an order already offered is left alone).

    The timeline's words are written in the chain's language, whoever triggered the dispatch.
    """
    with translation.override(settings.LANGUAGE_CODE), transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).select_related("member", "pickup_store").get(pk=order_id)
        return _dispatch_locked(order, now or timezone.now())


def _dispatch_locked(order: Order, now: datetime) -> Assignment | None:
    if order.assignments.filter(status__in=Assignment.OPEN).exists():
        return None
    if order.fulfilment == Order.Fulfilment.PICKUP:
        if order.status != Order.Status.PAID:
            return None
        # The shopper chose the store, and its stock was reserved at checkout.
        return _offer(order, Choice(order.pickup_store, Assignment.Basis.PICKUP, None), now, move_order=False)
    if order.status != Order.Status.AWAITING_DISPATCH:
        return None

    point = Point(float(order.delivery_latitude), float(order.delivery_longitude))
    lines = _order_lines(order)
    excluded = excluded_stores(order)
    affinity = affinity_store(order.member)
    for choice in rank_candidates(
        point=point, lines=lines, affinity=affinity, excluded=excluded, limit=CANDIDATES_TRIED
    ):
        try:
            reserve_stock(
                store=choice.store, lines=lines, reference=order.reference, reason=_("online order"), savepoint=True
            )
        except InsufficientStock:
            continue  # a sale elsewhere took it since the ranking: try the next store
        return _offer(order, choice, now)
    return _dispatch_short(order, point=point, lines=lines, affinity=affinity, excluded=excluded, now=now)


def _dispatch_short(
    order: Order,
    *,
    point: Point,
    lines: list[StockLine],
    affinity: Store | None,
    excluded: set[int],
    now: datetime,
) -> Assignment | None:
    """No single store holds everything: HQ's shortage policy decides."""
    covering = [
        found.store
        for found in nearest_stores(
            point.lat,
            point.lng,
            delivers_here=True,
            limit=TRANSFER_STORES_CONSIDERED,
            queryset=Store.objects.exclude(pk__in=excluded),
        )
    ]
    if not covering:
        reason = (
            _("Every store that delivers here has declined or missed this order.")
            if excluded
            else _("No store delivers to this address.")
        )
        _to_exception(order, reason)
        return None
    if mall_settings().shortage_policy != ShortagePolicy.TRANSFER:
        _to_exception(order, _("No single store holds every item."))
        return None
    best = _best_store_for_transfer(covering, lines, affinity=affinity, point=point)
    try:
        with transaction.atomic():
            _reserve_with_transfers(order, best, lines)
    except _NotAnywhere as missing:
        _to_exception(order, _("Not enough stock in the chain for: %(skus)s.") % {"skus": ", ".join(missing.skus)})
        return None
    return _offer(order, Choice(best, Assignment.Basis.TRANSFER, distance_m(point, best.point)), now)


class _NotAnywhere(Exception):
    def __init__(self, skus: list[str]) -> None:
        self.skus = skus


def _available(store_ids: Iterable[int], skus: Iterable[SKU]) -> dict[tuple[int, int], int]:
    rows = Stock.objects.filter(store_id__in=list(store_ids), sku__in=[sku.pk for sku in skus])
    return {(row.store_id, row.sku_id): max(row.on_hand - row.reserved, 0) for row in rows}


def _best_store_for_transfer(
    covering: list[Store], lines: list[StockLine], *, affinity: Store | None, point: Point
) -> Store:
    """The affinity store if it covers the address; else the fewest units short, then the nearest."""
    if affinity is not None and any(store.pk == affinity.pk for store in covering):
        return affinity
    stock = _available((store.pk for store in covering), (line.sku for line in lines))

    def units_short(store: Store) -> int:
        return sum(max(line.quantity - stock.get((store.pk, line.sku.pk), 0), 0) for line in lines)

    # `covering` is nearest first, and min() keeps the first of equals.
    return min(covering, key=units_short)


def _reserve_with_transfers(order: Order, store: Store, lines: list[StockLine]) -> None:
    """Reserve what the store has, and request the rest from the nearest stores that hold it."""
    here = _available([store.pk], (line.sku for line in lines))
    own, short = [], []
    for line in lines:
        have = min(here.get((store.pk, line.sku.pk), 0), line.quantity)
        if have:
            own.append(StockLine(sku=line.sku, quantity=have))
        if line.quantity > have:
            short.append(StockLine(sku=line.sku, quantity=line.quantity - have))
    plan: dict[int, list[StockLine]] = {}
    sources: dict[int, Store] = {}
    missing = []
    for line in short:
        # Units free to move (on hand and not reserved), not merely on the shelf: a store whose
        # units are all held for other orders cannot send any.
        holders = Store.objects.filter(
            stock__sku=line.sku, stock__on_hand__gt=F("stock__reserved"), is_active=True
        ).exclude(pk=store.pk)
        nearby = nearest_stores(
            store.point.lat, store.point.lng, limit=TRANSFER_STORES_CONSIDERED, queryset=holders.distinct()
        )
        available = _available((found.store.pk for found in nearby), [line.sku])
        wanted = line.quantity
        for found in nearby:
            take = min(wanted, available.get((found.store.pk, line.sku.pk), 0))
            if take:
                plan.setdefault(found.store.pk, []).append(StockLine(sku=line.sku, quantity=take))
                sources[found.store.pk] = found.store
                wanted -= take
            if not wanted:
                break
        if wanted:
            missing.append(line.sku.code)
    if missing:
        raise _NotAnywhere(missing)
    try:
        if own:
            reserve_stock(store=store, lines=own, reference=order.reference, reason=_("online order"), savepoint=False)
        for source_id in sorted(plan):  # the project's lock order
            request_transfer(
                from_store=sources[source_id],
                to_store=store,
                lines=plan[source_id],
                reference=order.reference,
                hold_reference=order.reference,
                note=_("For order %(number)s") % {"number": order.number},
            )
    except InsufficientStock as error:
        raise _NotAnywhere([str(code) for code in error.details.get("sku", [])]) from None


def _offer(order: Order, choice: Choice, now: datetime, *, move_order: bool = True) -> Assignment:
    minutes = mall_settings().acceptance_minutes
    assignment = Assignment.objects.create(
        order=order,
        store=choice.store,
        basis=choice.basis,
        distance_m=round(choice.distance_m) if choice.distance_m is not None else None,
        offered_at=now,
        deadline=now + timedelta(minutes=minutes),
    )
    reason = _("Offered to %(store)s (%(basis)s); accept before %(deadline)s") % {
        "store": choice.store.name,
        "basis": assignment.get_basis_display(),
        "deadline": f"{timezone.localtime(assignment.deadline):%H:%M}",
    }
    if move_order:
        transition_order(
            order=order, to=Order.Status.ASSIGNED, actor_type=OrderEvent.Actor.SYSTEM, reason=reason, now=now
        )
    else:
        note_on_order(order=order, actor_type=OrderEvent.Actor.SYSTEM, reason=reason)
    publish("order.assigned", order_id=order.pk, store_id=choice.store.pk, assignment_id=assignment.pk)
    transaction.on_commit(lambda: _notify_store_later(assignment.pk))
    return assignment


def _to_exception(order: Order, reason: str) -> None:
    transition_order(
        order=order,
        to=Order.Status.EXCEPTION,
        actor_type=OrderEvent.Actor.SYSTEM,
        reason=reason,
        fields={"exception_reason": reason[:255]},
    )
    publish("order.exception", order_id=order.pk)
    transaction.on_commit(lambda: _notify_shopper_later(order.pk))


def _notify_store_later(assignment_id: int) -> None:
    from orders import tasks

    tasks.notify_store_of_assignment.delay(assignment_id)


def _notify_shopper_later(order_id: int) -> None:
    from orders import tasks

    tasks.notify_shopper.delay(order_id)


# --- the store's answer ---------------------------------------------------------------------------


def _locked_assignment(assignment_id: int, staff: Staff) -> tuple[Order, Assignment]:
    """The order's lock first (the project's order), then the assignment, which must be this store's."""
    order_id = (
        Assignment.objects.filter(pk=assignment_id, store_id=staff.store_id).values_list("order_id", flat=True).first()
    )
    if order_id is None:
        raise NotFound(_("No such order."), code="order_not_found")
    order = Order.objects.select_for_update().get(pk=order_id)
    return order, Assignment.objects.select_related("store").get(pk=assignment_id)


def _refuse_closed(assignment: Assignment, now: datetime) -> None:
    if assignment.status == Assignment.Status.OFFERED and assignment.deadline <= now:
        raise Conflict(_("The hour to accept this order has passed."), code="assignment_expired")
    if assignment.status == Assignment.Status.ACCEPTED:
        raise Conflict(_("This order was already accepted."), code="already_accepted")
    raise Conflict(
        _("This order is no longer offered to your store (%(outcome)s).")
        % {"outcome": assignment.get_status_display()},
        code="assignment_closed",
    )


@transaction.atomic
def accept_assignment(
    *, assignment_id: int, staff: Staff, user: AbstractBaseUser, now: datetime | None = None
) -> Order:
    """The store takes the order: one conditional update that succeeds only while it is offered and on time."""
    now = now or timezone.now()
    order, assignment = _locked_assignment(assignment_id, staff)
    taken = Assignment.objects.filter(pk=assignment.pk, status=Assignment.Status.OFFERED, deadline__gt=now).update(
        status=Assignment.Status.ACCEPTED, decided_at=now, decided_by=user
    )
    if not taken:
        _refuse_closed(assignment, now)
    accepted = transition_order(
        order=order,
        to=Order.Status.ACCEPTED,
        actor_type=OrderEvent.Actor.STAFF,
        actor_label=str(staff),
        reason=_("Accepted by %(store)s") % {"store": assignment.store.name},
        now=now,
        fields={"fulfilling_store": assignment.store},
    )
    publish("order.accepted", order_id=order.pk, store_id=assignment.store_id)
    return accepted


def decline_assignment(
    *, assignment_id: int, staff: Staff, user: AbstractBaseUser, reason: str, now: datetime | None = None
) -> Order:
    """The store says no, with a reason; the order goes to the next store (or, for pickup, to HQ).

    One transaction, run again if the database breaks a deadlock with another re-dispatch.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(_("Say why the store cannot take it."), code="reason_required", details={"reason": []})
    now = now or timezone.now()

    def decline() -> Order:
        order, assignment = _locked_assignment(assignment_id, staff)
        closed = Assignment.objects.filter(pk=assignment.pk, status=Assignment.Status.OFFERED).update(
            status=Assignment.Status.DECLINED, decided_at=now, decided_by=user, reason=reason[:255]
        )
        if not closed:
            _refuse_closed(assignment, now)
        message = _("%(store)s declined: %(reason)s") % {"store": assignment.store.name, "reason": reason}
        return _after_refusal(order, assignment, message, now, actor_type=OrderEvent.Actor.STAFF, actor=str(staff))

    return atomic_with_deadlock_retry(decline)


def _after_refusal(
    order: Order, assignment: Assignment, message: str, now: datetime, *, actor_type: str, actor: str = ""
) -> Order:
    """A store declined or missed its deadline: give back what it held, then the next store or HQ."""
    if order.fulfilment == Order.Fulfilment.PICKUP:
        # The shopper chose this store; only HQ may change that. The reservation stays.
        transition_order(
            order=order,
            to=Order.Status.EXCEPTION,
            actor_type=actor_type,
            actor_label=actor,
            reason=message,
            fields={"exception_reason": message[:255]},
        )
        publish("order.exception", order_id=order.pk)
        transaction.on_commit(lambda: _notify_shopper_later(order.pk))
        return Order.objects.get(pk=order.pk)
    release_everything_held(order, reason=message)
    again = transition_order(
        order=order, to=Order.Status.AWAITING_DISPATCH, actor_type=actor_type, actor_label=actor, reason=message
    )
    _dispatch_locked(again, now)
    return Order.objects.get(pk=order.pk)


# --- the deadline sweeper -------------------------------------------------------------------------


def expire_overdue_assignments(*, now: datetime | None = None, batch_size: int = 200) -> int:
    """Expire offers past their deadline and dispatch their orders again; returns how many expired.

    Due rows are taken with their orders, FOR UPDATE OF both, SKIP LOCKED: a row an accept
    (or another sweeper) holds is skipped, and is no longer offered when seen again.
    Dispatching again releases stock at one store and reserves it at another, so two batches
    at once can lock stock rows in opposite orders; the database then stops one of them with
    a deadlock, and that batch, rolled back, runs again.
    """
    now = now or timezone.now()

    def sweep() -> int:
        due = list(
            Assignment.objects.select_for_update(skip_locked=True, of=("self", "order"))
            .select_related("order", "store")
            .filter(status=Assignment.Status.OFFERED, deadline__lte=now)
            .order_by("deadline", "pk")[:batch_size]
        )
        for assignment in due:
            Assignment.objects.filter(pk=assignment.pk).update(
                status=Assignment.Status.EXPIRED, decided_at=now, reason="not accepted in time"
            )
            message = _("%(store)s did not accept within the time allowed") % {"store": assignment.store.name}
            _after_refusal(assignment.order, assignment, message, now, actor_type=OrderEvent.Actor.SYSTEM)
        return len(due)

    return atomic_with_deadlock_retry(sweep)


def dispatch_stranded_orders(
    *, now: datetime | None = None, older_than_seconds: int = 60, batch_size: int = 100
) -> int:
    """Dispatch paid orders whose dispatch task never ran (a lost message); returns how many were offered."""
    now = now or timezone.now()
    offered = 0
    with transaction.atomic():
        stranded = list(
            Order.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("member", "pickup_store")
            .filter(
                status__in=[Order.Status.AWAITING_DISPATCH, Order.Status.PAID],
                paid_at__lte=now - timedelta(seconds=older_than_seconds),
            )
            .exclude(Exists(Assignment.objects.filter(order=OuterRef("pk"), status__in=Assignment.OPEN)))
            .order_by("paid_at", "pk")[:batch_size]
        )
        for order in stranded:
            if _dispatch_locked(order, now) is not None:
                offered += 1
    return offered


# --- HQ's exception queue -------------------------------------------------------------------------


@transaction.atomic
def assign_by_hand(*, order: Order, store: Store, user: AbstractBaseUser, reason: str = "") -> Assignment:
    """HQ gives an order in the exception queue to a store of its choice (with transfers if it is short)."""
    locked = Order.objects.select_for_update(of=("self",)).select_related("pickup_store").get(pk=order.pk)
    if locked.status != Order.Status.EXCEPTION:
        raise Conflict(_("Only orders waiting for HQ can be assigned by hand."), code="not_in_exception_queue")
    if not store.is_active:
        raise ApplicationError(_("That store is not active."), code="store_inactive", details={"store": [store.code]})
    now = timezone.now()
    label = getattr(user, "get_username", lambda: "")()
    note = reason or _("Assigned by HQ")
    if locked.fulfilment == Order.Fulfilment.PICKUP:
        if store.pk != locked.pickup_store_id:
            raise ApplicationError(
                _("A pickup order stays with the store the shopper chose; cancel it to change stores."),
                code="pickup_store_fixed",
                details={"store": [store.code]},
            )
        transition_order(
            order=locked, to=Order.Status.PAID, actor_type=OrderEvent.Actor.HQ, actor_label=label, reason=note
        )
        return _offer(locked, Choice(store, Assignment.Basis.HQ, None), now, move_order=False)
    lines = _order_lines(locked)
    try:
        with transaction.atomic():
            _reserve_with_transfers(locked, store, lines)
    except _NotAnywhere as missing:
        raise Conflict(
            _("Not enough stock in the chain for: %(skus)s.") % {"skus": ", ".join(missing.skus)},
            code="insufficient_stock",
            details={"sku": missing.skus},
        ) from None
    point = Point(float(locked.delivery_latitude), float(locked.delivery_longitude))
    note_on_order(order=locked, actor_type=OrderEvent.Actor.HQ, actor_label=label, reason=note)
    return _offer(locked, Choice(store, Assignment.Basis.HQ, distance_m(point, store.point)), now)
