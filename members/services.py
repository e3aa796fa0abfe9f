"""Writes of members: sign-in, phone binding, the home store, purchases, the member card, points."""

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from inventory.models import Product
from members import card
from members.models import (
    CategoryPointsRate,
    FollowUp,
    LoyaltySettings,
    Member,
    PointsEntry,
    Purchase,
    PurchaseLine,
    ReferralChange,
    ReferralVisit,
    Tier,
    TierChange,
)
from members.selectors import loyalty_settings
from o2o.errors import ApplicationError, Conflict, NotFound
from o2o.events import publish
from o2o.phone import mask_phone, normalize_cn_mobile
from stores.models import Staff, Store


@dataclass(frozen=True)
class Referral:
    """How a shopper arrived before registering: a promoter's share link and/or a guide's QR code,
    and the hashed device they came from."""

    referrer_id: int | None = None
    guide_id: int | None = None
    device: str = ""


def _register(*, referral: Referral | None, **fields) -> Member:
    """Create a member and make the bindings of registration, once: the referrer whose link brought
    them, the guide whose QR code did (whose store becomes their home store). Never changed later
    except by HQ with a reason (`rebind_referral`). Tells the apps to the right."""
    member = Member.objects.create(**fields)
    referral = referral or Referral()
    referrer = (
        Member.objects.filter(pk=referral.referrer_id, is_active=True, closed_at__isnull=True).first()
        if referral.referrer_id
        else None
    )
    guide = (
        Staff.objects.select_related("store")
        .filter(pk=referral.guide_id, is_active=True, store__is_active=True)
        .first()
        if referral.guide_id
        else None
    )
    changed = []
    if referrer is not None or guide is not None:
        member.referrer, member.guide, member.bound_at = referrer, guide, timezone.now()
        changed += ["referrer", "guide", "bound_at"]
    if referral.device:
        member.signup_device = referral.device[:32]
        changed.append("signup_device")
    if changed:
        member.save(update_fields=changed)
    if guide is not None:
        set_home_store_once(member=member, store=guide.store, source=Member.HomeStoreSource.GUIDE_QR)
    publish(
        "member.registered",
        member_id=member.pk,
        referrer_id=member.referrer_id,
        guide_id=member.guide_id,
    )
    return member


def sign_in_with_wechat(
    *, openid: str, unionid: str = "", nickname: str = "", avatar_url: str = "", referral: Referral | None = None
) -> Member:
    """Find the member by unionid, else openid, or register one; refresh the profile WeChat gave.

    Safe against two first sign-ins at once: the unique openid decides, the loser reads the winner.
    A referral binds only a member registered here and now.
    """
    for _attempt in range(2):
        try:
            with transaction.atomic():
                member = None
                if unionid:
                    member = Member.objects.select_for_update().filter(unionid=unionid).first()
                if member is None:
                    member = Member.objects.select_for_update().filter(openid=openid).first()
                if member is None:
                    return _register(
                        referral=referral,
                        openid=openid,
                        unionid=unionid or None,
                        nickname=nickname[:64],
                        avatar_url=avatar_url[:500],
                    )
                changed = []
                for field, value in (
                    ("openid", openid),
                    ("unionid", unionid),
                    ("nickname", nickname[:64]),
                    ("avatar_url", avatar_url[:500]),
                ):
                    if value and getattr(member, field) != value:
                        setattr(member, field, value)
                        changed.append(field)
                if changed:
                    member.save(update_fields=changed)
                return member
        except IntegrityError:
            continue  # another request created the same member first: read it on the next pass
    raise Conflict(_("Sign-in conflicted with another request; try again."), code="sign_in_conflict")


def sign_in_for_development(*, phone: str, referral: Referral | None = None) -> Member:
    """The demo stand-in for WeChat: a member found or created by phone (views allow it only in DEBUG)."""
    phone = normalize_cn_mobile(phone)
    member = Member.objects.filter(phone=phone).first()
    if member is not None:
        return member
    try:
        with transaction.atomic():
            return _register(referral=referral, phone=phone, openid=f"dev-{phone[3:]}", nickname=mask_phone(phone))
    except IntegrityError:
        return Member.objects.get(phone=phone)


@transaction.atomic
def bind_phone(*, member: Member, phone: str) -> Member:
    """Bind a mobile number; one number belongs to one member."""
    phone = normalize_cn_mobile(phone)
    if Member.objects.filter(phone=phone).exclude(pk=member.pk).exists():
        raise Conflict(
            _("This mobile number belongs to another member."),
            code="phone_taken",
            details={"phone": [_("Already bound.")]},
        )
    member.phone = phone
    try:
        with transaction.atomic():
            member.save(update_fields=["phone"])
    except IntegrityError:
        raise Conflict(_("This mobile number belongs to another member."), code="phone_taken") from None
    return member


def set_home_store_once(*, member: Member, store: Store, source: str) -> bool:
    """Give the member a home store unless they have one: the first store that brought them in wins.

    One conditional UPDATE, so two entries at once cannot both set it. Returns whether it was set.
    """
    now = timezone.now()
    updated = Member.objects.filter(pk=member.pk, home_store__isnull=True).update(
        home_store=store, home_store_source=source, home_store_set_at=now
    )
    if updated:
        member.home_store, member.home_store_source, member.home_store_set_at = store, source, now
    return bool(updated)


@transaction.atomic
def record_purchase(
    *,
    member: Member,
    store: Store,
    channel: str,
    reference: str,
    amount_fen: int,
    purchased_at: datetime,
    lines: Iterable[tuple[int, int, int]] = (),
) -> Purchase:
    """Record that the member bought at a store (an online order completed, a POS sale), with its
    lines as (product id, quantity, amount paid in fen) when the caller knows them.

    The same (channel, store, reference) is recorded once, however often it is reported; its lines
    are written with it, the first time only.
    """
    purchase, created = Purchase.objects.get_or_create(
        channel=channel,
        store=store,
        reference=reference[:64],
        defaults={"member": member, "amount_fen": amount_fen, "purchased_at": purchased_at},
    )
    if created:
        PurchaseLine.objects.bulk_create(
            [
                PurchaseLine(purchase=purchase, product_id=product_id, quantity=quantity, amount_fen=max(amount, 0))
                for product_id, quantity, amount in lines
                if quantity > 0
            ]
        )
        recompute_tier(member=member, reason="purchase " + purchase.reference)
        if member.referrer_id:
            # A referral who buys counts towards their referrer's advocacy.
            recompute_tier(member=Member(pk=member.referrer_id), reason="referral purchase " + purchase.reference)
    return purchase


# --- referrals ------------------------------------------------------------------------------------

REFERRAL_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read aloud or typed from a poster


def ensure_referral_code(*, member: Member) -> str:
    """The member's referral code for share links, made once: eight characters, unique."""
    if member.referral_code:
        return member.referral_code
    for _attempt in range(5):
        code = "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(8))
        try:
            with transaction.atomic():
                if Member.objects.filter(pk=member.pk, referral_code__isnull=True).update(referral_code=code):
                    member.referral_code = code
                    return code
        except IntegrityError:
            continue  # the code is taken: draw another
        member.refresh_from_db(fields=["referral_code"])
        return member.referral_code
    raise Conflict(_("Could not make a referral code; try again."), code="referral_code_conflict")


def record_referral_visit(
    *, sharer: Member | None = None, guide: Staff | None = None, visitor: Member | None = None, device: str = ""
) -> None:
    """Count an opening of a share link or a guide's QR code."""
    ReferralVisit.objects.create(sharer=sharer, guide=guide, visitor=visitor, device=device[:32])


@transaction.atomic
def rebind_referral(
    *, member: Member, referrer: Member | None, guide: Staff | None, reason: str, user
) -> ReferralChange:
    """HQ moves a member to another referrer and/or guide, with a reason on record. A member is never
    their own referrer, nor referred by anyone they brought in, directly or further down; nor moved
    to a referrer whose account is closed or to a guide who left (they could earn nothing)."""
    if not reason.strip():
        raise ApplicationError(
            _("Say why the member is moved."), code="reason_required", details={"reason": [_("Say why.")]}
        )
    locked = Member.objects.select_for_update().get(pk=member.pk)
    if referrer is not None and referrer.pk != locked.referrer_id and (not referrer.is_active or referrer.closed_at):
        raise ApplicationError(
            _("This member's account is closed: they cannot be a referrer."),
            code="referrer_inactive",
            details={"referrer": [_("This account is closed.")]},
        )
    if guide is not None and guide.pk != locked.guide_id and not guide.is_active:
        raise ApplicationError(
            _("This staff member no longer works for the chain."),
            code="guide_inactive",
            details={"guide": [_("No longer works for the chain.")]},
        )
    if referrer is not None:
        ancestor, seen = referrer, 0
        while ancestor is not None:
            if ancestor.pk == locked.pk:
                raise ApplicationError(
                    _("A member cannot be referred by themselves or by someone they brought in."),
                    code="referral_cycle",
                    details={"referrer": [_("This would make a cycle.")]},
                )
            seen += 1
            if seen > 10_000:  # a cycle above, which the binding rules never make: refuse rather than loop
                raise ApplicationError(_("The referrer's chain is broken."), code="referral_cycle")
            ancestor = Member.objects.filter(pk=ancestor.referrer_id).only("pk", "referrer_id").first()
    change = ReferralChange.objects.create(
        member=locked,
        from_referrer_id=locked.referrer_id,
        to_referrer=referrer,
        from_guide_id=locked.guide_id,
        to_guide=guide,
        reason=reason.strip()[:255],
        changed_by=user,
    )
    Member.objects.filter(pk=locked.pk).update(referrer=referrer, guide=guide, bound_at=timezone.now())
    member.referrer, member.guide = referrer, guide
    return change


# --- the member card ------------------------------------------------------------------------------


@transaction.atomic
def ensure_card(*, member: Member) -> Member:
    """Give the member a card number and secret the first time the card is needed."""
    if member.card_number and member.card_secret:
        return member
    locked = Member.objects.select_for_update().get(pk=member.pk)
    if not (locked.card_number and locked.card_secret):
        for _attempt in range(5):
            number = card.new_card_number()
            if not Member.objects.filter(card_number=number).exists():
                break
        locked.card_number, locked.card_secret = number, card.new_card_secret()
        locked.save(update_fields=["card_number", "card_secret"])
    member.card_number, member.card_secret = locked.card_number, locked.card_secret
    return member


def card_code(*, member: Member, at: datetime | None = None) -> card.CardCode:
    """What the member's card shows this minute."""
    member = ensure_card(member=member)
    return card.CardCode(card_number=member.card_number, code=card.code_at(member.card_secret, at or timezone.now()))


def member_by_card_code(*, text: str, at: datetime | None = None) -> Member:
    """The member whose card shows `text` now (this minute or the last); a stale or unknown code is refused."""
    parsed = card.parse_card_code(text)
    if parsed is None:
        raise ApplicationError(_("This is not a member card code."), code="bad_card_code")
    member = Member.objects.filter(card_number=parsed.card_number, is_active=True).first()
    if member is None or not card.is_current(member.card_secret, parsed.code, at or timezone.now()):
        # One answer for both: a guessed number learns nothing about which cards exist.
        raise NotFound(
            _("This card code is unknown or has expired; ask the member to refresh it."), code="stale_card_code"
        )
    return member


# --- points ---------------------------------------------------------------------------------------


def _post_points(
    member: Member, *, kind: str, points: int, reference: str = "", note: str = "", expires_at=None, at=None
) -> PointsEntry:
    """Append one entry and move the balance with it, under the member's row lock."""
    locked = Member.objects.select_for_update().only("pk", "points_balance").get(pk=member.pk)
    balance = locked.points_balance + points
    Member.objects.filter(pk=member.pk).update(points_balance=balance)
    member.points_balance = balance
    return PointsEntry.objects.create(
        member_id=member.pk,
        kind=kind,
        points=points,
        balance_after=balance,
        reference=reference[:64],
        note=note[:255],
        expires_at=expires_at,
        created_at=at or timezone.now(),
    )


def points_for(lines: Iterable[tuple[int | None, int]]) -> int:
    """Points a purchase earns: each (category id, amount paid in fen) at its category's rate, else HQ's.

    Per line, rounded down to a whole point (1 point per yuan: ¥12.99 earns 12).
    """
    rules = loyalty_settings()
    lines = list(lines)
    rates = dict(
        CategoryPointsRate.objects.filter(category_id__in={c for c, _f in lines if c}).values_list(
            "category_id", "points_per_yuan"
        )
    )
    return sum(amount * rates.get(category, rules.points_per_yuan) // 100 for category, amount in lines if amount > 0)


@transaction.atomic
def earn_points(
    *, member: Member, reference: str, lines: Iterable[tuple[int | None, int]], at: datetime | None = None
) -> PointsEntry | None:
    """Credit the points a purchase earns (an online order completed, a POS sale); once per reference."""
    at = at or timezone.now()
    earned = points_for(lines)
    if (
        earned <= 0
        or PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.EARN, reference=reference).exists()
    ):
        return None
    months = loyalty_settings().points_valid_months
    expires_at = at + timedelta(days=30 * months) if months else None
    return _post_points(
        member, kind=PointsEntry.Kind.EARN, points=earned, reference=reference, expires_at=expires_at, at=at
    )


@transaction.atomic
def reverse_points(
    *, member: Member, reference: str, refunded_fen: int, paid_fen: int, at: datetime | None = None
) -> PointsEntry | None:
    """Take back what a refund un-earns, in proportion: after refunds totalling `refunded_fen` of
    `paid_fen`, exactly floor(earned × refunded ÷ paid) points are reversed, so partial refunds add
    up to the whole earn and never more. The balance may go below zero if the points were spent;
    later earnings make it up."""
    earned = sum(
        PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.EARN, reference=reference).values_list(
            "points", flat=True
        )
    )
    if not earned or paid_fen <= 0:
        return None
    Member.objects.select_for_update().only("pk").get(pk=member.pk)  # reversals of one member one at a time
    reversed_so_far = -sum(
        PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.REVERSE, reference=reference).values_list(
            "points", flat=True
        )
    )
    target = earned * min(max(refunded_fen, 0), paid_fen) // paid_fen
    if target <= reversed_so_far:
        return None
    return _post_points(
        member, kind=PointsEntry.Kind.REVERSE, points=-(target - reversed_so_far), reference=reference, at=at
    )


def redeemable_points(*, member: Member, order_fen: int) -> int:
    """The most points a member may spend on an order of `order_fen`: their balance, within HQ's share."""
    rules = loyalty_settings()
    cap = order_fen * rules.max_redeem_percent // 100 // rules.point_value_fen
    return max(min(member.points_balance, cap), 0)


@transaction.atomic
def redeem_points(*, member: Member, points: int, order_fen: int, reference: str, at=None) -> PointsEntry:
    """Spend points on an order: at most the balance and HQ's share of the order; returns the entry."""
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ApplicationError(_("Points are a whole number above zero."), code="invalid_points")
    locked = Member.objects.select_for_update().get(pk=member.pk)
    allowed = redeemable_points(member=locked, order_fen=order_fen)
    if points > allowed:
        raise Conflict(
            _("At most %(allowed)d points can be used on this order.") % {"allowed": allowed},
            code="points_limit",
            details={"allowed": [allowed]},
        )
    return _post_points(member, kind=PointsEntry.Kind.REDEEM, points=-points, reference=reference, at=at)


@transaction.atomic
def return_redeemed_points(*, member: Member, reference: str, total: int, at=None) -> PointsEntry | None:
    """Give back points spent on an order that was cancelled or returned: `total` is how many of them
    should be back by now in all, so calling it again, or once per partial return, never gives twice."""
    Member.objects.select_for_update().only("pk").get(pk=member.pk)
    entries = PointsEntry.objects.filter(member=member, reference=reference)
    spent = -sum(entries.filter(kind=PointsEntry.Kind.REDEEM).values_list("points", flat=True))
    back = sum(entries.filter(kind=PointsEntry.Kind.REFUND_REDEMPTION).values_list("points", flat=True))
    target = min(max(total, 0), spent)
    if target <= back:
        return None
    return _post_points(
        member, kind=PointsEntry.Kind.REFUND_REDEMPTION, points=target - back, reference=reference, at=at
    )


def expire_points(*, member: Member, at: datetime | None = None) -> PointsEntry | None:
    """Expire earned points past their date that were not spent, oldest first.

    A reversal takes back its own earn; everything else taken from the balance (redeemed,
    expired, adjusted down, less redemptions given back) is counted against the oldest earns
    first. So what is due = (earns past their date − their reversals) − everything else taken
    so far, if positive.
    """
    at = at or timezone.now()
    with transaction.atomic():
        balance = Member.objects.select_for_update().values_list("points_balance", flat=True).get(pk=member.pk)
        entries = PointsEntry.objects.filter(member=member)
        due_earns = entries.filter(kind=PointsEntry.Kind.EARN, expires_at__lte=at)
        due = sum(due_earns.values_list("points", flat=True)) + sum(
            entries.filter(kind=PointsEntry.Kind.REVERSE, reference__in=due_earns.values("reference")).values_list(
                "points", flat=True
            )
        )
        taken = -sum(
            entries.filter(points__lt=0).exclude(kind=PointsEntry.Kind.REVERSE).values_list("points", flat=True)
        )
        given_back = sum(entries.filter(kind=PointsEntry.Kind.REFUND_REDEMPTION).values_list("points", flat=True))
        expiring = min(due - (taken - given_back), balance)
        if expiring <= 0:
            return None
        return _post_points(member, kind=PointsEntry.Kind.EXPIRE, points=-expiring, at=at)


def expire_due_points(*, at: datetime | None = None, batch_size: int = 500) -> int:
    """The nightly job: expire due points of every member who has some; returns how many entries."""
    at = at or timezone.now()
    members = (
        Member.objects.filter(
            points_entries__kind=PointsEntry.Kind.EARN, points_entries__expires_at__lte=at, points_balance__gt=0
        )
        .distinct()
        .order_by("pk")
    )
    expired = 0
    for member in members.iterator(chunk_size=batch_size):
        if expire_points(member=member, at=at) is not None:
            expired += 1
    return expired


@transaction.atomic
def adjust_points(*, member: Member, points: int, note: str) -> PointsEntry:
    """HQ corrects a balance, with a reason on the ledger."""
    if not isinstance(points, int) or points == 0:
        raise ApplicationError(_("Adjust by a whole number of points other than zero."), code="invalid_points")
    if not note.strip():
        raise ApplicationError(_("Say why the points are adjusted."), code="reason_required")
    return _post_points(member, kind=PointsEntry.Kind.ADJUST, points=points, note=note.strip())


# --- tiers ----------------------------------------------------------------------------------------


def tier_for(
    *, purchases: int, amount_fen: int, ever_purchased: bool, referred_buyers: int = 0, rules: LoyaltySettings
) -> str:
    """The tier HQ's thresholds give: loyal with enough purchases and spending within the window,
    advocate when a loyal member also brought enough members who bought within it, ordinary once
    the member has bought at all, potential before that.
    """
    if purchases >= rules.loyal_min_purchases and amount_fen >= rules.loyal_min_amount_fen:
        if referred_buyers >= rules.advocate_min_referrals:
            return Tier.ADVOCATE
        return Tier.LOYAL
    if ever_purchased:
        return Tier.ORDINARY
    return Tier.POTENTIAL


@dataclass(frozen=True)
class _Figures:
    purchases: int = 0
    amount_fen: int = 0
    ever_purchased: bool = False
    referred_buyers: int = 0


def _window_figures(first_pk: int, last_pk: int, at: datetime, rules: LoyaltySettings) -> dict[int, _Figures]:
    """Each member's figures in the window, for the members with first_pk <= pk <= last_pk: four
    grouped queries over a primary-key range, whatever the number of members in it."""
    since = at - timedelta(days=rules.tier_window_days)
    in_range = {"member_id__gte": first_pk, "member_id__lte": last_pk}
    window = (
        Purchase.objects.filter(**in_range, purchased_at__gt=since, purchased_at__lte=at)
        .values("member_id")
        .annotate(purchases=Count("pk"), amount=Sum("amount_fen"))
        .order_by()
    )
    figures: dict[int, dict] = {}
    for row in window:
        figures[row["member_id"]] = {"purchases": row["purchases"], "amount_fen": row["amount"] or 0}
    # Bought before the window only: still ordinary, never potential again.
    for member_id in (
        Purchase.objects.filter(**in_range, purchased_at__lte=since)
        .values_list("member_id", flat=True)
        .distinct()
        .order_by()
    ):
        figures.setdefault(member_id, {})
    for figure in figures.values():
        figure["ever_purchased"] = True
    referred = (
        Purchase.objects.filter(
            member__referrer_id__gte=first_pk,
            member__referrer_id__lte=last_pk,
            purchased_at__gt=since,
            purchased_at__lte=at,
        )
        .values("member__referrer_id")
        .annotate(buyers=Count("member_id", distinct=True))
        .order_by()
    )
    for row in referred:
        figures.setdefault(row["member__referrer_id"], {})["referred_buyers"] = row["buyers"]
    return {pk: _Figures(**figure) for pk, figure in figures.items()}


def _tier_from(figures: _Figures, rules: LoyaltySettings) -> str:
    return tier_for(
        purchases=figures.purchases,
        amount_fen=figures.amount_fen,
        ever_purchased=figures.ever_purchased,
        referred_buyers=figures.referred_buyers,
        rules=rules,
    )


@transaction.atomic
def recompute_tier(*, member: Member, reason: str = "", at: datetime | None = None) -> str:
    """Set the member's tier from their purchases now; a change is recorded with its reason."""
    at = at or timezone.now()
    rules = loyalty_settings()
    locked = Member.objects.select_for_update().only("pk", "tier").get(pk=member.pk)
    figures = _window_figures(member.pk, member.pk, at, rules).get(member.pk, _Figures())
    tier = _tier_from(figures, rules)
    if tier != locked.tier:
        Member.objects.filter(pk=member.pk).update(tier=tier, tier_since=at)
        TierChange.objects.create(
            member_id=member.pk, from_tier=locked.tier, to_tier=tier, reason=reason[:255], changed_at=at
        )
    member.tier = tier
    return tier


def recompute_all_tiers(*, at: datetime | None = None, chunk_size: int = 20000) -> int:
    """The nightly pass over every member (purchases also leave the window with time); returns the changes.

    Members are read in primary-key ranges, with their window figures in four grouped queries per
    range; only the changed ones are written, each range in its own transaction.
    """
    at = at or timezone.now()
    rules = loyalty_settings()
    changed = 0
    last_pk = 0
    while True:
        chunk = list(Member.objects.filter(pk__gt=last_pk).order_by("pk").values_list("pk", "tier")[:chunk_size])
        if not chunk:
            return changed
        first_pk, last_pk = chunk[0][0], chunk[-1][0]
        figures = _window_figures(first_pk, last_pk, at, rules)
        nothing = _Figures()
        moves: dict[tuple[str, str], list[int]] = {}
        for pk, current in chunk:
            tier = _tier_from(figures.get(pk, nothing), rules)
            if tier != current:
                moves.setdefault((current, tier), []).append(pk)
        with transaction.atomic():
            for (source, target), pks in moves.items():
                # Only rows still in the tier we read: a purchase meanwhile recomputed them already.
                still = list(
                    Member.objects.select_for_update().filter(pk__in=pks, tier=source).values_list("pk", flat=True)
                )
                Member.objects.filter(pk__in=still).update(tier=target, tier_since=at)
                TierChange.objects.bulk_create(
                    [
                        TierChange(member_id=pk, from_tier=source, to_tier=target, reason="nightly", changed_at=at)
                        for pk in still
                    ],
                    batch_size=2000,
                )
                changed += len(still)


def next_tier_needs(*, member: Member, at: datetime | None = None) -> dict | None:
    """What the member still needs for the next tier within the window, for the member center."""
    at = at or timezone.now()
    rules = loyalty_settings()
    if member.tier == Tier.ADVOCATE:
        return None
    figures = _window_figures(member.pk, member.pk, at, rules).get(member.pk, _Figures())
    if member.tier == Tier.POTENTIAL:
        return {"tier": Tier.ORDINARY, "purchases": 1, "amount_fen": 0}
    if member.tier == Tier.LOYAL:
        return {
            "tier": Tier.ADVOCATE,
            "referrals": max(rules.advocate_min_referrals - figures.referred_buyers, 0),
            "days": rules.tier_window_days,
        }
    return {
        "tier": Tier.LOYAL,
        "purchases": max(rules.loyal_min_purchases - figures.purchases, 0),
        "amount_fen": max(rules.loyal_min_amount_fen - figures.amount_fen, 0),
        "days": rules.tier_window_days,
    }


# --- opportunity windows --------------------------------------------------------------------------


def _caller(member: Member, store: Store) -> tuple[Store, Staff | None]:
    """Who calls the member: their guide (at the guide's store) while the guide works there, else
    their home store, else the store where they bought."""
    guide = member.guide
    if guide is not None and guide.is_active and guide.store.is_active:
        return guide.store, guide
    if member.home_store_id and member.home_store.is_active:
        return member.home_store, None
    return store, None


@transaction.atomic
def open_follow_ups(
    *,
    member: Member,
    store: Store,
    reference: str,
    lines: Iterable[tuple[int, int]],
    at: datetime | None = None,
) -> list[FollowUp]:
    """Open the calls a purchase makes due: for each product with a consumption rate, a first-use
    check a few days after the member's first purchase of it, and a replenishment call some days
    before it should run out. Supply adds up: a new purchase before the old one ran out moves the
    run-out date on, and the open replenishment call moves with it. Once per purchase reference.
    """
    at = at or timezone.now()
    today = timezone.localdate(at)
    rules = loyalty_settings()
    quantities: dict[int, int] = {}
    for product_id, quantity in lines:
        quantities[product_id] = quantities.get(product_id, 0) + quantity
    products = Product.objects.filter(pk__in=quantities, days_per_unit__gt=0)
    caller, guide = _caller(member, store)
    opened: list[FollowUp] = []
    Member.objects.select_for_update().only("pk").get(pk=member.pk)  # one purchase's windows at a time
    for product in products:
        mine = FollowUp.objects.filter(member=member, product=product)
        if mine.filter(source_reference=reference).exists():
            continue  # this purchase was seen already
        if member.do_not_call:
            continue
        if not mine.exists():
            opened.append(
                FollowUp.objects.create(
                    member=member,
                    store=caller,
                    guide=guide,
                    product=product,
                    kind=FollowUp.Kind.FIRST_USE,
                    due_on=today + timedelta(days=rules.first_use_check_after_days),
                    source_reference=reference[:64],
                )
            )
        previous = mine.filter(kind=FollowUp.Kind.REPLENISH).order_by("-runs_out_on", "-pk").first()
        supply_from = max(today, previous.runs_out_on) if previous and previous.runs_out_on else today
        runs_out = supply_from + timedelta(days=product.days_per_unit * quantities[product.pk])
        mine.filter(kind=FollowUp.Kind.REPLENISH, status=FollowUp.Status.OPEN).update(
            status=FollowUp.Status.CANCELLED, note="moved by a new purchase"
        )
        opened.append(
            FollowUp.objects.create(
                member=member,
                store=caller,
                guide=guide,
                product=product,
                kind=FollowUp.Kind.REPLENISH,
                due_on=max(runs_out - timedelta(days=rules.replenish_call_before_days), today + timedelta(days=1)),
                runs_out_on=runs_out,
                source_reference=reference[:64],
            )
        )
    return opened


@transaction.atomic
def record_follow_up_outcome(*, staff, follow_up_id: int, outcome: str, note: str = "") -> FollowUp:
    """A clerk records how a call went. Only the store's own calls; "do not call again" closes
    every open call of the member and opens no new ones."""
    follow_up = FollowUp.objects.select_for_update().filter(pk=follow_up_id, store_id=staff.store_id).first()
    if follow_up is None:
        raise NotFound(_("No such call."), code="follow_up_not_found")
    if outcome not in FollowUp.Outcome.values:
        raise ApplicationError(_("Choose how the call went."), code="invalid_outcome", details={"outcome": [outcome]})
    if follow_up.status != FollowUp.Status.OPEN:
        raise Conflict(_("This call was already recorded."), code="follow_up_closed")
    now = timezone.now()
    FollowUp.objects.filter(pk=follow_up.pk).update(
        status=FollowUp.Status.DONE, outcome=outcome, note=note.strip()[:255], done_by=staff.user, done_at=now
    )
    if outcome == FollowUp.Outcome.DO_NOT_CALL:
        Member.objects.filter(pk=follow_up.member_id).update(do_not_call=True)
        FollowUp.objects.filter(member_id=follow_up.member_id, status=FollowUp.Status.OPEN).update(
            status=FollowUp.Status.CANCELLED, note="the member asked not to be called"
        )
    follow_up.refresh_from_db()
    return follow_up


def refresh_follow_ups(*, at: datetime | None = None) -> dict[str, int]:
    """The nightly pass over open calls: a call left this many days past its date (HQ's
    `follow_up_missed_after_days`) is missed, and every open call goes to the member's caller of
    today (their guide, else their home store), so a guide who left or a new home store moves the
    calls. Set-based: a few UPDATEs, whatever the number of calls. Returns the counts."""
    at = at or timezone.now()
    today = timezone.localdate(at)
    rules = loyalty_settings()
    open_calls = FollowUp.objects.filter(status=FollowUp.Status.OPEN)
    missed = open_calls.filter(due_on__lt=today - timedelta(days=rules.follow_up_missed_after_days)).update(
        status=FollowUp.Status.MISSED
    )
    members = Member.objects.filter(pk=OuterRef("member_id"))
    # To the member's active guide (at the guide's store) where the call is not theirs yet.
    has_guide = Q(member__guide__is_active=True, member__guide__store__is_active=True)
    to_guide = (
        open_calls.filter(has_guide)
        .exclude(guide_id=F("member__guide_id"), store_id=F("member__guide__store_id"))
        .update(
            guide_id=Subquery(members.values("guide_id")[:1]),
            store_id=Subquery(members.values("guide__store_id")[:1]),
        )
    )
    # Without an active guide: to the home store, when it is open for business.
    to_home = (
        open_calls.exclude(has_guide)
        .filter(member__home_store__is_active=True)
        .exclude(Q(guide__isnull=True) & Q(store_id=F("member__home_store_id")))
        .update(guide_id=None, store_id=Subquery(members.values("home_store_id")[:1]))
    )
    # A guide who left, with no home store to fall back on: the store keeps the call.
    unguided = open_calls.filter(guide__isnull=False).exclude(has_guide).update(guide_id=None)
    return {"missed": missed, "moved": to_guide + to_home, "unguided": unguided}


# --- privacy (PIPL) -------------------------------------------------------------------------------


@transaction.atomic
def set_marketing_consent(*, member: Member, consent: bool) -> Member:
    """Record the member's own choice about marketing messages (asked apart from the service)."""
    now = timezone.now()
    Member.objects.filter(pk=member.pk).update(marketing_consent=bool(consent), marketing_consent_at=now)
    member.marketing_consent, member.marketing_consent_at = bool(consent), now
    return member


def member_data(member: Member) -> dict:
    """Everything members keeps about a member, for the member's own download."""
    return {
        "member": {
            "nickname": member.nickname,
            "phone": member.phone,
            "wechat_openid": member.openid,
            "joined_at": member.joined_at.isoformat(),
            "home_store": member.home_store.name if member.home_store_id else None,
            "tier": member.tier,
            "points_balance": member.points_balance,
            "card_number": member.card_number,
            "marketing_consent": member.marketing_consent,
            "do_not_call": member.do_not_call,
        },
        "points": [
            {"at": e.created_at.isoformat(), "kind": e.kind, "points": e.points, "reference": e.reference}
            for e in member.points_entries.order_by("created_at", "pk")
        ],
        "purchases": [
            {"at": p.purchased_at.isoformat(), "store": p.store.name, "channel": p.channel, "amount_fen": p.amount_fen}
            for p in member.purchases.select_related("store").order_by("purchased_at", "pk")
        ],
        "follow_up_calls": [
            {"due_on": f.due_on.isoformat(), "kind": f.kind, "product": f.product.name, "outcome": f.outcome}
            for f in member.follow_ups.select_related("product").order_by("due_on", "pk")
        ],
        "marketing_messages": [
            {"at": m.at.isoformat(), "campaign": m.campaign.name, "channel": m.channel, "result": m.status}
            for m in member.campaign_messages.select_related("campaign").order_by("at", "pk")
        ],
    }


def closed_phone_digest(phone: str) -> str:
    """A keyed digest of a closed account's number (HMAC-SHA256 under the secret key): it matches the
    same number again, and without the key cannot be turned back into it."""
    return salted_hmac("o2o.members.closed-phone", phone, algorithm="sha256").hexdigest()


@transaction.atomic
def erase_member(*, member: Member) -> Member:
    """Close the account: erase the member's personal data and cut the ledgers' link to the person.

    The member row stays, anonymous, so the points ledger, purchases and the apps' records still
    add up; nothing left on it names or reaches the person (no WeChat ids, phone, nickname, card).
    The caller (orders) first refuses while orders are open and erases what orders hold.
    """
    locked = Member.objects.select_for_update().get(pk=member.pk)
    if locked.closed_at is not None:
        return locked
    now = timezone.now()
    FollowUp.objects.filter(member=locked, status=FollowUp.Status.OPEN).update(
        status=FollowUp.Status.CANCELLED, note="account closed"
    )
    FollowUp.objects.filter(member=locked).update(note="")
    fields = {
        # Kept only so that a CRM cannot bring the account back (members.crm); never shown or read back.
        "closed_phone_digest": closed_phone_digest(locked.phone) if locked.phone else "",
        "openid": None,
        "unionid": None,
        "nickname": "",
        "avatar_url": "",
        "phone": None,
        "card_number": None,
        "card_secret": "",
        "marketing_consent": False,
        "marketing_consent_at": now,
        "do_not_call": True,
        "is_active": False,
        "closed_at": now,
    }
    Member.objects.filter(pk=locked.pk).update(**fields)
    for name, value in fields.items():
        setattr(member, name, value)
    return member
