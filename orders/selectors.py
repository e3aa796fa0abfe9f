"""Reads of carts and orders."""

from django.db.models import QuerySet

from members.models import Member
from orders.models import CartLine, MallSettings, Order


def mall_settings() -> MallSettings:
    """HQ's checkout rules (the defaults until HQ saves its own)."""
    settings, _created = MallSettings.objects.get_or_create(pk=1)
    return settings


def cart_lines(member: Member) -> QuerySet[CartLine]:
    return CartLine.objects.filter(member=member, sku__is_active=True).select_related("sku__product")


def orders_of(member: Member) -> QuerySet[Order]:
    """A member's own orders: every page and API view reads orders through this, so nobody sees another's."""
    return Order.objects.filter(member=member).select_related("pickup_store", "credited_store")


def order_of(member: Member, number: str) -> Order | None:
    return orders_of(member).prefetch_related("lines", "events").filter(number=number).first()
