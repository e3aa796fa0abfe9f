"""Reads of members: where a member buys, HQ's points and campaign rules, the points ledger, calls,
and campaigns as a store may see them."""

from django.db.models import QuerySet, Sum

from members.models import (
    Campaign,
    CampaignSettings,
    FollowUp,
    LoyaltySettings,
    Member,
    PointsEntry,
    Purchase,
    Segment,
)
from o2o.single_row import forget_settings, read_settings
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


def loyalty_settings() -> LoyaltySettings:
    """HQ's points, tier and follow-up rules (the defaults until HQ saves its own), cached."""
    return read_settings(LoyaltySettings)


def forget_loyalty_settings() -> None:
    forget_settings(LoyaltySettings)


def campaign_settings() -> CampaignSettings:
    """HQ's frequency cap on marketing messages (the defaults until HQ saves its own), cached."""
    return read_settings(CampaignSettings)


def forget_campaign_settings() -> None:
    forget_settings(CampaignSettings)


def points_history(member: Member) -> QuerySet[PointsEntry]:
    return PointsEntry.objects.filter(member=member).order_by("-created_at", "-pk")


def ledger_sum(member: Member) -> int:
    """The points ledger's sum for a member: the balance must always equal it."""
    return PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"] or 0


def points_liability() -> dict[str, int]:
    """What the chain owes in points: outstanding points and their value in fen."""
    outstanding = Member.objects.filter(points_balance__gt=0).aggregate(total=Sum("points_balance"))["total"] or 0
    return {"points": outstanding, "value_fen": outstanding * loyalty_settings().point_value_fen}


def calls_of_the_day(store: Store, day) -> QuerySet[FollowUp]:
    """A store's open calls due on or before `day` (overdue ones first), with member and product."""
    return (
        FollowUp.objects.filter(store=store, status=FollowUp.Status.OPEN, due_on__lte=day)
        .select_related("member", "product")
        .order_by("due_on", "pk")
    )


def store_follow_up(store: Store, follow_up_id: int) -> FollowUp | None:
    """One call as the store may see it; another store's is None (404)."""
    return FollowUp.objects.select_related("member", "product").filter(pk=follow_up_id, store=store).first()


def member_history(member: Member, *, limit: int = 10) -> dict:
    """What a clerk sees before calling: recent purchases and earlier calls."""
    return {
        "purchases": list(Purchase.objects.filter(member=member).select_related("store")[:limit]),
        "calls": list(
            FollowUp.objects.filter(member=member)
            .exclude(status=FollowUp.Status.OPEN)
            .select_related("product")
            .order_by("-done_at", "-pk")[:limit]
        ),
    }


def store_campaigns(store: Store) -> QuerySet[Campaign]:
    """A store's own campaigns, newest first, with their segments."""
    return Campaign.objects.filter(store=store).select_related("segment").order_by("-created_at", "-pk")


def store_campaign(store: Store, campaign_id: int) -> Campaign | None:
    """One campaign as the store may see it; HQ's and another store's are None (404)."""
    return Campaign.objects.select_related("segment", "store").filter(pk=campaign_id, store=store).first()


def store_segment(store: Store, segment_id: int) -> Segment | None:
    """One segment as the store may see it; HQ's and another store's are None (404)."""
    return (
        Segment.objects.select_related("product", "category", "home_store").filter(pk=segment_id, store=store).first()
    )


def campaign_progress(campaign: Campaign) -> dict:
    """A campaign's progress for a bar: counts and each part's share of the whole (percent)."""
    whole = max(campaign.total, campaign.handled, 1)
    parts = {"sent": campaign.sent, "skipped": campaign.skipped, "failed": campaign.failed}
    return {
        **parts,
        "total": campaign.total,
        "handled": campaign.handled,
        "widths": {name: f"{count * 100 / whole:.1f}" for name, count in parts.items()},
        "percent": min(campaign.handled * 100 // whole, 100),
        "in_progress": campaign.status in (Campaign.Status.QUEUED, Campaign.Status.SENDING),
    }
