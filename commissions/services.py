"""Writes of commissions: entries when an order is paid, reversals on refunds, guides' sign-up
rewards, settlement after the return window. The arithmetic is in `commissions.rules`.

Commission is earned only on real, paid sales: nobody earns for recruiting (a guide's sign-up
reward is a staff bonus from the employer), and nobody pays to join.
"""

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from commissions import rules
from commissions.models import CommissionEntry, CommissionSettings
from commissions.selectors import category_rates, commission_settings
from members.models import Member
from orders.models import Order
from orders.selectors import goods_refunded_fen
from stores.models import Staff

Kind, Status = CommissionEntry.Kind, CommissionEntry.Status


def beneficiaries_of(buyer: Member, *, depth: int) -> list[tuple[int, Member | None, Staff | None]]:
    """Who earns on the buyer's orders, nearest first: their guide (level 0) while the guide works
    for the chain, then their referrer (level 1), the referrer's referrer (level 2), … up to
    `depth` levels and never more than three. A closed or inactive account earns nothing but keeps
    its place, so the levels above it stay what they are."""
    found: list[tuple[int, Member | None, Staff | None]] = []
    guide = buyer.guide
    if guide is not None and guide.is_active:
        found.append((rules.GUIDE_LEVEL, None, guide))
    seen = {buyer.pk}
    referrer_id = buyer.referrer_id
    for level in range(1, min(depth, rules.MAX_DEPTH) + 1):
        if referrer_id is None or referrer_id in seen:
            break
        referrer = Member.objects.filter(pk=referrer_id).only("pk", "referrer_id", "is_active", "closed_at").first()
        if referrer is None:
            break
        seen.add(referrer.pk)
        if referrer.is_active and referrer.closed_at is None:
            found.append((level, referrer, None))
        referrer_id = referrer.referrer_id
    return found


def _rate_for(settings: CommissionSettings, overrides: dict[tuple[int, int], int]):
    defaults = {
        0: settings.guide_rate_bp,
        1: settings.level_1_rate_bp,
        2: settings.level_2_rate_bp,
        3: settings.level_3_rate_bp,
    }

    def rate_bp(level: int, category_id: int | None) -> int:
        return overrides.get((category_id, level), defaults[level])

    return rate_bp


@transaction.atomic
def record_order_commissions(*, order_id: int, at: datetime | None = None) -> list[CommissionEntry]:
    """A paid order earns its guide and referrers their commission, pending until it is safe.
    Once per (order, beneficiary, level): a repeated payment event adds nothing."""
    at = at or timezone.now()
    order = Order.objects.select_related("member", "member__guide").get(pk=order_id)
    if order.paid_at is None or CommissionEntry.objects.filter(order=order, kind=Kind.EARN).exists():
        return []
    settings = commission_settings()
    found = beneficiaries_of(order.member, depth=settings.depth)
    if not found:
        return []
    lines = [
        rules.Line(category_id=category_id, total_fen=total)
        for category_id, total in order.lines.order_by("pk").values_list("sku__product__category_id", "line_total_fen")
    ]
    rate_bp = _rate_for(settings, category_rates())
    shares = rules.order_shares(
        lines=lines,
        items_paid_fen=order.items_paid_fen,
        levels=[level for level, _m, _s in found],
        rate_bp=rate_bp,
        cap_bp=settings.order_cap_bp,
    )
    entries = []
    for (level, member, staff), share in zip(found, shares, strict=True):
        if share.amount_fen <= 0:
            continue
        try:
            with transaction.atomic():
                entries.append(
                    CommissionEntry.objects.create(
                        member=member,
                        staff=staff,
                        kind=Kind.EARN,
                        level=level,
                        order=order,
                        customer=order.member,
                        base_fen=share.base_fen,
                        rate_bp=share.amount_fen * rules.BASIS // share.base_fen if share.base_fen else 0,
                        amount_fen=share.amount_fen,
                        reference=order.number,
                        created_at=at,
                    )
                )
        except IntegrityError:
            continue  # recorded by a concurrent delivery of the same event
    return entries


@transaction.atomic
def reverse_order_commissions(*, order_id: int, at: datetime | None = None) -> list[CommissionEntry]:
    """A refund takes back, from every earning of the order, its share of what was refunded:
    after refunds of R out of the P paid for the items, floor(earned × R ÷ P) in all, so partial
    refunds add up to the whole and never more. Before settlement the reversal is pending with its
    earning; after, it is settled at once and the balance may go below zero until later earnings
    make it up."""
    at = at or timezone.now()
    order = Order.objects.select_for_update().get(pk=order_id)
    refunded = goods_refunded_fen(order)
    made = []
    for earn in CommissionEntry.objects.select_for_update().filter(order=order, kind=Kind.EARN).order_by("pk"):
        taken = -(
            CommissionEntry.objects.filter(
                order=order, kind=Kind.REVERSE, member_id=earn.member_id, staff_id=earn.staff_id, level=earn.level
            ).aggregate(total=Sum("amount_fen"))["total"]
            or 0
        )
        target = rules.reversal_target(earned_fen=earn.amount_fen, refunded_fen=refunded, paid_fen=order.items_paid_fen)
        if target <= taken:
            continue
        settled = earn.status == Status.SETTLED
        made.append(
            CommissionEntry.objects.create(
                member_id=earn.member_id,
                staff_id=earn.staff_id,
                kind=Kind.REVERSE,
                status=Status.SETTLED if settled else Status.PENDING,
                settled_at=at if settled else None,
                level=earn.level,
                order=order,
                customer_id=earn.customer_id,
                base_fen=refunded,
                amount_fen=-(target - taken),
                reference=order.number,
                note="refunded after settlement" if settled else "",
                created_at=at,
            )
        )
    return made


def reward_guide_signup(*, member_id: int, at: datetime | None = None) -> CommissionEntry | None:
    """A customer registered through a guide's QR code: the guide earns HQ's sign-up reward, once
    per customer, pending through the return window like any commission."""
    at = at or timezone.now()
    member = Member.objects.select_related("guide").get(pk=member_id)
    reward = commission_settings().guide_signup_reward_fen
    if member.guide is None or not member.guide.is_active or reward <= 0:
        return None
    try:
        with transaction.atomic():
            return CommissionEntry.objects.create(
                staff=member.guide,
                kind=Kind.SIGNUP,
                level=rules.GUIDE_LEVEL,
                customer=member,
                amount_fen=reward,
                created_at=at,
            )
    except IntegrityError:
        return None  # rewarded already


SETTLE_BATCH = 1000


def settle_due_commissions(*, at: datetime | None = None, batch_size: int = SETTLE_BATCH) -> int:
    """The beat job: pending entries become settled once safe — an order's once it completed and
    its return window passed (or it was cancelled or wholly returned, where what was earned has
    been taken back), a sign-up reward once the window passed since the registration. Batches
    taken with SKIP LOCKED, so two runs never settle one entry twice. Returns how many settled."""
    at = at or timezone.now()
    window = timedelta(days=commission_settings().return_window_days)
    safe_orders = Order.objects.filter(
        status__in=[Order.Status.COMPLETED, Order.Status.RETURNED], completed_at__lte=at - window
    ).values("pk")
    closed_orders = Order.objects.filter(status=Order.Status.CANCELLED).values("pk")
    on_orders = [Kind.EARN, Kind.REVERSE]
    due = CommissionEntry.objects.filter(status=Status.PENDING).filter(
        Q(kind__in=on_orders, order__in=safe_orders)
        | Q(kind__in=on_orders, order__in=closed_orders)
        | Q(kind=Kind.SIGNUP, created_at__lte=at - window)
    )
    settled = 0
    while True:
        with transaction.atomic():
            ids = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch_size])
            if not ids:
                return settled
            settled += CommissionEntry.objects.filter(pk__in=ids, status=Status.PENDING).update(
                status=Status.SETTLED, settled_at=at
            )
