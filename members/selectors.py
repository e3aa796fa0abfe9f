"""Reads of members: where a member buys, HQ's points rules, the points ledger."""

from django.core.cache import cache
from django.db.models import QuerySet, Sum

from members.models import LoyaltySettings, Member, PointsEntry, Purchase
from stores.models import Store


def affinity_store(member: Member) -> Store | None:
    """The store of the member's latest purchase, online or at the POS; dispatch prefers it."""
    latest = (
        Purchase.objects.filter(member=member, store__is_active=True)
        .select_related("store")
        .order_by("-purchased_at", "-pk")
        .first()
    )
    return latest.store if latest else None


_LOYALTY_CACHE_KEY = "members:loyalty-settings:" + ",".join(
    field.attname for field in LoyaltySettings._meta.concrete_fields
)


def loyalty_settings() -> LoyaltySettings:
    """HQ's points rules (the defaults until HQ saves its own), cached for a minute."""
    rules = cache.get(_LOYALTY_CACHE_KEY)
    if rules is None:
        rules, _created = LoyaltySettings.objects.get_or_create(pk=1)
        cache.set(_LOYALTY_CACHE_KEY, rules, 60)
    return rules


def forget_loyalty_settings() -> None:
    cache.delete(_LOYALTY_CACHE_KEY)


def points_history(member: Member) -> QuerySet[PointsEntry]:
    return PointsEntry.objects.filter(member=member).order_by("-created_at", "-pk")


def ledger_sum(member: Member) -> int:
    """The points ledger's sum for a member: the balance must always equal it."""
    return PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"] or 0


def points_liability() -> dict[str, int]:
    """What the chain owes in points: outstanding points and their value in fen."""
    outstanding = Member.objects.filter(points_balance__gt=0).aggregate(total=Sum("points_balance"))["total"] or 0
    return {"points": outstanding, "value_fen": outstanding * loyalty_settings().point_value_fen}
