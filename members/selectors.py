"""Reads of members: where a member buys, HQ's points and campaign rules, the points ledger, calls,
and campaigns as a store may see them."""

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import (
    Campaign,
    CampaignSettings,
    FollowUp,
    LoyaltySettings,
    Member,
    PointsEntry,
    Purchase,
    Segment,
    Tier,
    TierChange,
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


# --- HQ reports -----------------------------------------------------------------------------------

_COMPLETION_GROUPS = {
    "store": ["store_id", "store__code", "store__name"],
    "guide": ["store_id", "store__code", "store__name", "guide_id", "guide__display_name", "guide__staff_code"],
}


def follow_up_completion(*, since: date, until: date, by: str = "store") -> list[dict]:
    """How the calls due between two days went, per store or per guide (calls without a guide
    under their store): made, missed, still owed (overdue), their outcomes, and the completion rate,
    made / (made + missed + overdue). Cancelled calls (moved by a new purchase, or the member asked
    not to be called) are not counted. One grouped query."""
    today = timezone.localdate()
    done, status = FollowUp.Status.DONE, FollowUp.Status
    rows = (
        FollowUp.objects.filter(due_on__gte=since, due_on__lte=until)
        .exclude(status=status.CANCELLED)
        .values(*_COMPLETION_GROUPS[by])
        .annotate(
            due=Count("pk"),
            made=Count("pk", filter=Q(status=done)),
            missed=Count("pk", filter=Q(status=status.MISSED)),
            overdue=Count("pk", filter=Q(status=status.OPEN, due_on__lt=today)),
            upcoming=Count("pk", filter=Q(status=status.OPEN, due_on__gte=today)),
            reached=Count("pk", filter=Q(status=done, outcome__in=["reached", "ordered", "not_interested"])),
            ordered=Count("pk", filter=Q(status=done, outcome="ordered")),
            no_answer=Count("pk", filter=Q(status=done, outcome="no_answer")),
            do_not_call=Count("pk", filter=Q(status=done, outcome="do_not_call")),
        )
        .order_by(*_COMPLETION_GROUPS[by][1:2], *(["guide__staff_code"] if by == "guide" else []))
    )
    report = []
    for row in rows:
        settled = row["made"] + row["missed"] + row["overdue"]
        row["rate"] = round(100 * row["made"] / settled, 1) if settled else None
        report.append(row)
    return report


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    text: str


def member_timeline(member: Member, *, limit: int = 200) -> list[TimelineEntry]:
    """Everything that happened to a member, newest first: joining, purchases online and at the
    till, points, tier changes, calls, marketing choices, closing. A bounded read per source."""
    entries = [TimelineEntry(member.joined_at, "joined", _("Joined"))]
    if member.marketing_consent_at:
        text = _("Agreed to marketing messages") if member.marketing_consent else _("Declined marketing messages")
        entries.append(TimelineEntry(member.marketing_consent_at, "consent", text))
    if member.closed_at:
        entries.append(TimelineEntry(member.closed_at, "closed", _("Closed the account")))
    for purchase in Purchase.objects.filter(member=member).select_related("store")[:limit]:
        entries.append(
            TimelineEntry(
                purchase.purchased_at,
                "purchase",
                f"{purchase.get_channel_display()} {purchase.reference} · {purchase.store.code} · "
                f"¥{purchase.amount_fen / 100:.2f}",
            )
        )
    for entry in PointsEntry.objects.filter(member=member)[:limit]:
        entries.append(
            TimelineEntry(
                entry.created_at,
                "points",
                f"{entry.get_kind_display()} {entry.points:+d} → {entry.balance_after} {entry.reference}".strip(),
            )
        )
    for change in TierChange.objects.filter(member=member)[:limit]:
        entries.append(
            TimelineEntry(
                change.changed_at,
                "tier",
                f"{Tier(change.from_tier).label} → {Tier(change.to_tier).label} {change.reason}".strip(),
            )
        )
    for call in FollowUp.objects.filter(member=member).select_related("product", "store").order_by("-pk")[:limit]:
        entries.append(
            TimelineEntry(
                call.created_at,
                "call",
                f"{call.get_kind_display()} · {call.product.name} · {call.store.code} · {call.due_on:%Y-%m-%d}",
            )
        )
        if call.done_at:
            entries.append(
                TimelineEntry(
                    call.done_at, "call", f"{call.get_outcome_display()} · {call.product.name} {call.note}".strip()
                )
            )
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


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
