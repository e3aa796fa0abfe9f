"""Which members a segment holds: its filters as one query, evaluated when used.

The purchase filters read members' own records (`Purchase` and its `PurchaseLine`s), never
orders. Days count back from `at` (now): "bought within 30 days" means a purchase at or after
`at` − 30 days; "not bought for 60 days" means a purchase before `at` − 60 days and none since.
"""

from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.models import Category
from members.models import Campaign, Member, Purchase, PurchaseLine, Segment, Tier


def category_family(category_id: int) -> set[int]:
    """The category and every category below it, however deep (categories nest by `parent`)."""
    children: dict[int | None, list[int]] = {}
    for pk, parent_id in Category.objects.values_list("pk", "parent_id"):
        children.setdefault(parent_id, []).append(pk)
    family, frontier = {category_id}, [category_id]
    while frontier:
        below = [child for parent in frontier for child in children.get(parent, ()) if child not in family]
        family.update(below)
        frontier = below
    return family


def segment_members(segment: Segment, *, at: datetime | None = None) -> QuerySet[Member]:
    """The members a segment holds now: every filter it sets, closed accounts never.

    A store's segment holds only members whose home store is that store, whatever else it says.
    """
    at = at or timezone.now()
    members = Member.objects.filter(closed_at__isnull=True, is_active=True)
    if segment.store_id is not None:
        members = members.filter(home_store_id=segment.store_id)
    elif segment.home_store_id is not None:
        members = members.filter(home_store_id=segment.home_store_id)
    if segment.tiers:
        members = members.filter(tier__in=list(segment.tiers))
    if segment.min_points is not None:
        members = members.filter(points_balance__gte=segment.min_points)
    if segment.max_points is not None:
        members = members.filter(points_balance__lte=segment.max_points)
    purchases = Purchase.objects.filter(member_id=OuterRef("pk"))
    if segment.bought_within_days is not None:
        members = members.filter(
            Exists(purchases.filter(purchased_at__gte=at - timedelta(days=segment.bought_within_days)))
        )
    if segment.not_bought_for_days is not None:
        since = at - timedelta(days=segment.not_bought_for_days)
        members = members.filter(Exists(purchases.filter(purchased_at__lt=since))).exclude(
            Exists(purchases.filter(purchased_at__gte=since))
        )
    lines = PurchaseLine.objects.filter(purchase__member_id=OuterRef("pk"))
    if segment.product_id is not None:
        members = members.filter(Exists(lines.filter(product_id=segment.product_id)))
    if segment.category_id is not None:
        members = members.filter(Exists(lines.filter(product__category_id__in=category_family(segment.category_id))))
    return members


def segment_count(segment: Segment, *, at: datetime | None = None) -> int:
    """How many members the segment holds now."""
    return segment_members(segment, at=at).count()


def segment_reach(segment: Segment, *, channel: str = "", at: datetime | None = None) -> dict[str, int]:
    """What a campaign to the segment could reach now, in one query: `members` in it, `consenting`
    (agreed to marketing messages) and `reachable` (consenting, with a number for SMS or a WeChat
    openid for WeChat; without a channel, either)."""
    consent = Q(marketing_consent=True)
    if channel == Campaign.Channel.SMS:
        address = Q(phone__isnull=False)
    elif channel == Campaign.Channel.WECHAT:
        address = Q(openid__isnull=False)
    else:
        address = Q(phone__isnull=False) | Q(openid__isnull=False)
    return segment_members(segment, at=at).aggregate(
        members=Count("pk"),
        consenting=Count("pk", filter=consent),
        reachable=Count("pk", filter=consent & address),
    )


def describe_segment(segment: Segment) -> list[str]:
    """The segment's filters in words, for the admin and the console."""
    labels = dict(Tier.choices)
    words = []
    if segment.store_id is not None:
        words.append(_("Members of %(store)s") % {"store": segment.store.name})
    elif segment.home_store_id is not None:
        words.append(_("Home store: %(store)s") % {"store": segment.home_store.name})
    else:
        words.append(_("Members of every store"))
    if segment.tiers:
        words.append(_("Tier: %(tiers)s") % {"tiers": ", ".join(str(labels.get(t, t)) for t in segment.tiers)})
    if segment.bought_within_days is not None:
        words.append(_("Bought within the last %(days)d days") % {"days": segment.bought_within_days})
    if segment.not_bought_for_days is not None:
        words.append(_("Has not bought for %(days)d days") % {"days": segment.not_bought_for_days})
    if segment.product_id is not None:
        words.append(_("Bought %(product)s") % {"product": segment.product.name})
    if segment.category_id is not None:
        words.append(_("Bought in %(category)s") % {"category": segment.category.name})
    if segment.min_points is not None:
        words.append(_("At least %(points)d points") % {"points": segment.min_points})
    if segment.max_points is not None:
        words.append(_("At most %(points)d points") % {"points": segment.max_points})
    return words
