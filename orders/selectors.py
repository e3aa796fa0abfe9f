"""Reads of carts and orders, shared by the mall's pages and its API."""

from dataclasses import dataclass, field

from django.core.cache import cache
from django.db.models import QuerySet

from inventory.models import SKU
from inventory.selectors import prices_at, stores_holding
from members.models import Member
from orders.models import CartLine, MallSettings, Order
from stores.models import Store
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


_MALL_SETTINGS_CACHE_KEY = "orders:mall-settings"
_MALL_SETTINGS_SECONDS = 60  # every process sees HQ's change within a minute


def mall_settings() -> MallSettings:
    """HQ's checkout rules (the defaults until HQ saves its own), cached: every checkout reads them."""
    rules = cache.get(_MALL_SETTINGS_CACHE_KEY)
    if rules is None:
        rules, _created = MallSettings.objects.get_or_create(pk=1)
        cache.set(_MALL_SETTINGS_CACHE_KEY, rules, _MALL_SETTINGS_SECONDS)
    return rules


def forget_mall_settings() -> None:
    """Drop the cached rules after HQ changes them."""
    cache.delete(_MALL_SETTINGS_CACHE_KEY)


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
