"""Reads of carts and orders, shared by the mall's pages and its API, and the clerk console's."""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from inventory.models import SKU, StockTransfer
from inventory.selectors import prices_at, stores_holding, transfers_held_for
from members.models import Member
from o2o.single_row import forget_settings, read_settings
from orders.models import Assignment, CartLine, MallSettings, Order
from stores.models import Staff, Store
from stores.selectors import nearest_stores

PICKUP_OPTIONS_LIMIT = 10


@dataclass(frozen=True)
class PricedLine:
    """A SKU and quantity priced on the server (a cart line, or a line of a quote)."""

    sku: SKU
    quantity: int
    unit_price_fen: int

    @property
    def line_total_fen(self) -> int:
        return self.unit_price_fen * self.quantity


@dataclass(frozen=True)
class PricedCart:
    store: Store | None  # whose prices these are; None: HQ's
    lines: list[PricedLine] = field(default_factory=list)

    @property
    def subtotal_fen(self) -> int:
        return sum(line.line_total_fen for line in self.lines)

    @property
    def quantity(self) -> int:
        return sum(line.quantity for line in self.lines)


@dataclass(frozen=True)
class PickupOption:
    store: Store
    distance_m: float | None  # from the shopper's chosen store; None without one


def mall_settings() -> MallSettings:
    """HQ's checkout and dispatch rules (the defaults until HQ saves its own), cached: every checkout reads them."""
    return read_settings(MallSettings)


def forget_mall_settings() -> None:
    """Drop the cached rules after HQ changes them."""
    forget_settings(MallSettings)


def cart_lines(member: Member) -> QuerySet[CartLine]:
    return CartLine.objects.filter(member=member, sku__is_active=True).select_related("sku__product")


def orders_of(member: Member) -> QuerySet[Order]:
    """A member's own orders: every page and API view reads orders through this, so nobody sees another's."""
    return Order.objects.filter(member=member).select_related("pickup_store", "credited_store")


def order_of(member: Member, number: str) -> Order | None:
    return orders_of(member).prefetch_related("lines", "events").filter(number=number).first()


def priced_cart(member: Member, store: Store | None) -> PricedCart:
    """The cart at a store's prices (HQ's without one), as the cart page and API show it."""
    lines = list(cart_lines(member))
    prices = prices_at(store, [line.sku for line in lines])
    return PricedCart(
        store=store,
        lines=[PricedLine(sku=line.sku, quantity=line.quantity, unit_price_fen=prices[line.sku.pk]) for line in lines],
    )


def pickup_options(member: Member, near: Store | None) -> list[PickupOption]:
    """Stores offering pickup that hold every cart item, nearest the shopper's chosen store first."""
    holding = stores_holding((line.sku, line.quantity) for line in cart_lines(member)).filter(offers_pickup=True)
    if near is None:
        return [PickupOption(store=store, distance_m=None) for store in holding.order_by("code")[:PICKUP_OPTIONS_LIMIT]]
    return [
        PickupOption(store=found.store, distance_m=found.distance_m)
        for found in nearest_stores(near.point.lat, near.point.lng, limit=PICKUP_OPTIONS_LIMIT, queryset=holding)
    ]


# --- the clerk console: a store sees its own orders only ------------------------------------------

IN_PROGRESS = (
    Order.Status.ACCEPTED,
    Order.Status.PREPARING,
    Order.Status.OUT_FOR_DELIVERY,
    Order.Status.READY,
)
DONE = (Order.Status.DELIVERED, Order.Status.COMPLETED, Order.Status.RETURNED, Order.Status.CANCELLED)
DONE_LIST_LIMIT = 50


def offers_to(store: Store) -> QuerySet[Assignment]:
    """Orders offered to a store and waiting for its answer, the most urgent first."""
    return (
        Assignment.objects.filter(store=store, status=Assignment.Status.OFFERED)
        .select_related("order__member")
        .prefetch_related("order__lines")
        .order_by("deadline", "pk")
    )


def orders_in_progress(store: Store) -> QuerySet[Order]:
    return (
        Order.objects.filter(fulfilling_store=store, status__in=IN_PROGRESS)
        .select_related("member", "courier")
        .prefetch_related("lines")
        .order_by("accepted_at", "pk")
    )


def orders_done(store: Store) -> QuerySet[Order]:
    return (
        Order.objects.filter(fulfilling_store=store, status__in=DONE)
        .select_related("member")
        .prefetch_related("lines")
        .order_by("-completed_at", "-accepted_at", "-pk")[:DONE_LIST_LIMIT]
    )


def store_orders(store: Store) -> QuerySet[Order]:
    """Every order a store may see: those it fulfils, and those offered to it now."""
    return Order.objects.filter(
        Q(fulfilling_store=store) | Q(assignments__store=store, assignments__status=Assignment.Status.OFFERED)
    ).distinct()


def store_order(staff: Staff, number: str) -> Order | None:
    """One order as the clerk's store may see it, or None (the console answers 404)."""
    return (
        store_orders(staff.store)
        .select_related("member", "courier", "fulfilling_store", "pickup_store", "credited_store")
        .prefetch_related("lines", "events")
        .filter(number=number)
        .first()
    )


def open_offer(order: Order, store: Store) -> Assignment | None:
    return order.assignments.filter(store=store, status=Assignment.Status.OFFERED).first()


def offer_deadlines(orders: list[Order], store: Store) -> dict[int, datetime]:
    """Of these orders, those offered to the store now, with their deadlines (one query)."""
    return dict(
        Assignment.objects.filter(
            order__in=[order.pk for order in orders], store=store, status=Assignment.Status.OFFERED
        ).values_list("order_id", "deadline")
    )


def transfers_pending_for(order: Order) -> list[StockTransfer]:
    """Transfers an order still waits for (requested or shipped, not yet received)."""
    return list(
        transfers_held_for(order.reference).filter(
            status__in=[StockTransfer.Status.REQUESTED, StockTransfer.Status.SHIPPED]
        )
    )


def waiting_for_transfer_ids(orders: list[Order]) -> set[int]:
    """Of these orders, those still waiting for a transfer (one query)."""
    references = {order.reference: order.pk for order in orders}
    held = StockTransfer.objects.filter(
        hold_reference__in=list(references),
        status__in=[StockTransfer.Status.REQUESTED, StockTransfer.Status.SHIPPED],
    ).values_list("hold_reference", flat=True)
    return {references[reference] for reference in held}


def shows_full_phone(order: Order, store: Store) -> bool:
    """A clerk sees the customer's full number only once their store has accepted, until it is handed over."""
    return order.fulfilling_store_id == store.pk and order.status in IN_PROGRESS


def exception_queue() -> QuerySet[Order]:
    return Order.objects.filter(status=Order.Status.EXCEPTION).order_by("paid_at", "pk")


def deadline_seconds(assignment: Assignment) -> int:
    return max(int((assignment.deadline - timezone.now()).total_seconds()), 0)


def goods_refunded_fen(order: Order) -> int:
    """How much of what was paid for the order's items has been refunded: all of it for a cancelled
    order, else its returns (a last return that also refunds the delivery fee counts only the items)."""
    if order.status == Order.Status.CANCELLED and order.paid_at is not None:
        return order.items_paid_fen
    returned = order.returns.aggregate(total=Sum("amount_fen"))["total"] or 0
    return min(returned, order.items_paid_fen)
