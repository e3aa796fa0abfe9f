"""Reads of members: where a member buys."""

from members.models import Member, Purchase
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
