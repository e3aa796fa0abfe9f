"""Writes of commissions: entries when an order is paid, reversals on refunds, guides' sign-up
rewards, settlement after the return window, and payouts. The arithmetic is in `commissions.rules`.

Commission is earned only on real, paid sales: nobody earns for recruiting (a guide's sign-up
reward is a staff bonus from the employer), and nobody pays to join.
"""

import logging
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from commissions import rules
from commissions.models import (
    OPEN_PAYOUT_STATES,
    PAYOUT_STATES,
    REFUNDED_AFTER_SETTLEMENT,
    SIGNUP_TAKEN_BACK,
    CommissionEntry,
    CommissionSettings,
    Payout,
    PayoutEvent,
)
from commissions.selectors import balances, category_rates, commission_settings
from integrations.vendors.wechat_pay import (
    PaymentGatewayError,
    PaymentNotConfigured,
    TransferResult,
    payment_gateway,
)
from members.models import Member
from o2o.errors import ApplicationError, NotFound
from o2o.money import format_yuan
from orders.models import Order
from orders.selectors import goods_refunded_fen
from stores.models import Staff

logger = logging.getLogger(__name__)

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
                note=REFUNDED_AFTER_SETTLEMENT if settled else "",
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


def on_member_claimed(*, retired_id: int, bindings_carried: bool, at: datetime | None = None) -> None:
    """A WeChat sign-up (`retired_id`) took over a membership opened in a store (members.verification).

    A sign-up that earned or was paid commission has a ledger of its own, which is not moved: the
    claim is refused. If its guide binding was dropped (the membership already had one), the guide's
    sign-up reward for it is taken back: the guide did not bring in a new customer.
    """
    from members.verification import has_history

    if (
        CommissionEntry.objects.filter(member_id=retired_id).exists()
        or Payout.objects.filter(member_id=retired_id).exists()
    ):
        raise has_history()
    if not bindings_carried:
        take_back_claimed_signup(customer_id=retired_id, at=at)


def take_back_claimed_signup(*, customer_id: int, at: datetime | None = None) -> list[CommissionEntry]:
    """A negative entry against each sign-up reward for `customer_id` (pending with a pending
    reward, and settled with it; settled at once if it already was)."""
    at = at or timezone.now()
    made = []
    for reward in CommissionEntry.objects.select_for_update().filter(customer_id=customer_id, kind=Kind.SIGNUP):
        if CommissionEntry.objects.filter(
            customer_id=customer_id, staff_id=reward.staff_id, kind=Kind.REVERSE, order__isnull=True
        ).exists():
            continue
        settled = reward.status == Status.SETTLED
        made.append(
            CommissionEntry.objects.create(
                staff_id=reward.staff_id,
                kind=Kind.REVERSE,
                status=Status.SETTLED if settled else Status.PENDING,
                settled_at=at if settled else None,
                level=reward.level,
                customer_id=customer_id,
                amount_fen=-reward.amount_fen,
                reference="claim",
                note=SIGNUP_TAKEN_BACK,
                created_at=at,
            )
        )
    return made


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
    signed_up_before = at - window
    due = CommissionEntry.objects.filter(status=Status.PENDING).filter(
        Q(kind__in=on_orders, order__in=safe_orders)
        | Q(kind__in=on_orders, order__in=closed_orders)
        | Q(kind=Kind.SIGNUP, created_at__lte=signed_up_before)
        # A sign-up reward taken back (`take_back_claimed_signup`) settles with the reward itself.
        | Q(
            Exists(
                CommissionEntry.objects.filter(
                    kind=Kind.SIGNUP,
                    customer=OuterRef("customer"),
                    staff=OuterRef("staff"),
                    created_at__lte=signed_up_before,
                )
            ),
            kind=Kind.REVERSE,
            order__isnull=True,
        )
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


# -- payouts -------------------------------------------------------------------------------------

# WeChat Pay wants the payee's real name on transfers from 2,000 yuan; such payouts are paid by hand.
WECHAT_TRANSFER_LIMIT_FEN = 200_000
# An approved WeChat transfer is looked at again by the reconciler after this long.
PAYOUT_RECHECK_AFTER = timedelta(minutes=1)


class PayoutRefused(ApplicationError):
    status = 400


def _who(member: Member | None, staff: Staff | None) -> Q:
    if (member is None) == (staff is None):
        raise ValueError("one beneficiary: a member or a staff member")
    return Q(member=member) if member is not None else Q(staff=staff)


def _lock_beneficiary(*, member_id: int | None, staff_id: int | None) -> None:
    """Serialises everything that spends one beneficiary's balance (requests and approvals)."""
    if member_id is not None:
        Member.objects.select_for_update().filter(pk=member_id).values_list("pk", flat=True).get()
    else:
        Staff.objects.select_for_update().filter(pk=staff_id).values_list("pk", flat=True).get()


def _payout_event(payout: Payout, source: str, *, by=None, label: str = "", note: str = "", at: datetime) -> None:
    PayoutEvent.objects.create(
        payout=payout,
        from_status=source,
        to_status=payout.status,
        actor=by,
        actor_label=(label or (by.get_username() if by is not None else ""))[:64],
        note=note[:255],
        at=at,
    )


def _amount(amount_fen: object) -> int:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen < 1:
        raise PayoutRefused(
            _("Enter an amount above zero."), code="invalid_amount", details={"amount": [_("Above zero.")]}
        )
    return amount_fen


@transaction.atomic
def request_payout(
    *, member: Member | None = None, staff: Staff | None = None, amount_fen: int, at: datetime | None = None
) -> Payout:
    """A promoter (member) or guide (staff) asks to withdraw `amount_fen` of their settled balance.

    Refused when below HQ's minimum, above what is available (settled, less open requests), or
    while another payout of theirs is open. The beneficiary's row is locked, so two requests at
    once cannot both spend one balance (and a unique index allows one open payout each)."""
    at = at or timezone.now()
    who = _who(member, staff)
    amount = _amount(amount_fen)
    _lock_beneficiary(member_id=member.pk if member else None, staff_id=staff.pk if staff else None)
    if Payout.objects.filter(who, status__in=OPEN_PAYOUT_STATES).exists():
        raise PayoutRefused(
            _("A withdrawal of yours is still open; wait until it is paid or decided."), code="payout_already_open"
        )
    minimum = commission_settings().min_payout_fen
    if amount < minimum:
        raise PayoutRefused(
            _("The smallest withdrawal is %(minimum)s.") % {"minimum": format_yuan(minimum)},
            code="payout_below_minimum",
            details={"amount": [_("At least %(minimum)s.") % {"minimum": format_yuan(minimum)}]},
        )
    available = balances(member=member, staff=staff).available_fen
    if amount > available:
        raise PayoutRefused(
            _("You can withdraw at most %(available)s now.") % {"available": format_yuan(available)},
            code="payout_over_available",
            details={"amount": [_("At most %(available)s.") % {"available": format_yuan(available)}]},
        )
    payout = Payout.objects.create(member=member, staff=staff, amount_fen=amount)
    _payout_event(payout, "", label=str(member or staff), at=at)
    return payout


def _locked_payout(payout_id: int) -> Payout:
    payout = Payout.objects.select_for_update().filter(pk=payout_id).first()
    if payout is None:
        raise NotFound(_("No such payout."), code="payout_not_found")
    return payout


def _payee_openid(payout: Payout) -> str:
    if payout.member_id:
        return payout.member.openid or ""
    return payout.staff.wechat_openid or ""


def wechat_transfer_possible(payout: Payout) -> bool:
    """A payout can go out by WeChat Pay when WeChat Pay is configured for transfers, the payee has
    an openid of this app, and the amount needs no real name."""
    try:
        gateway = payment_gateway()
    except PaymentNotConfigured:
        return False
    return (
        getattr(gateway, "can_transfer", False)
        and bool(_payee_openid(payout))
        and payout.amount_fen < WECHAT_TRANSFER_LIMIT_FEN
    )


@transaction.atomic
def approve_payout(
    *, payout_id: int, by: AbstractBaseUser, method: str | None = None, at: datetime | None = None
) -> Payout:
    """HQ approves a requested (or failed) payout. It goes out by WeChat Pay transfer when possible
    (`wechat_transfer_possible`), else, or when HQ chooses `method="manual"`, it waits for HQ to pay
    it by hand and record the reference (`mark_payout_paid`). The balance is checked again: a refund
    after the request may have taken it below the amount."""
    at = at or timezone.now()
    payout = _locked_payout(payout_id)
    source = payout.status
    PAYOUT_STATES.check(source, Payout.Status.APPROVED)
    _lock_beneficiary(member_id=payout.member_id, staff_id=payout.staff_id)
    mine = balances(member=payout.member, staff=payout.staff)
    # The open payouts (this one included) must still be covered by the settled balance.
    if mine.settled_fen < mine.requested_fen:
        raise PayoutRefused(
            _("The settled balance (%(settled)s) no longer covers this payout; reject it.")
            % {"settled": format_yuan(mine.settled_fen)},
            code="payout_over_available",
        )
    wechat = wechat_transfer_possible(payout)
    if method is None:
        method = Payout.Method.WECHAT if wechat else Payout.Method.MANUAL
    if method not in Payout.Method.values:
        raise PayoutRefused(_("Unknown payment method."), code="invalid_method")
    if method == Payout.Method.WECHAT and not wechat:
        raise PayoutRefused(
            _(
                "This payout cannot go by WeChat Pay (not configured for transfers, no WeChat account, or "
                "2,000 yuan or more): pay it by hand."
            ),
            code="wechat_transfer_unavailable",
        )
    payout.status = Payout.Status.APPROVED
    payout.method = method
    payout.reason = ""
    payout.decided_by, payout.decided_at = by, at
    if method == Payout.Method.WECHAT:
        payout.attempts += 1  # a new transfer, with new out numbers
        transaction.on_commit(lambda: _send_payout_later(payout.pk))
    payout.save(update_fields=["status", "method", "reason", "decided_by", "decided_at", "attempts"])
    _payout_event(payout, source, by=by, note=payout.get_method_display(), at=at)
    return payout


@transaction.atomic
def reject_payout(*, payout_id: int, by: AbstractBaseUser, reason: str, at: datetime | None = None) -> Payout:
    """HQ refuses a requested (or failed) payout, saying why; the amount is available again."""
    at = at or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise PayoutRefused(
            _("Say why the payout is rejected."), code="reason_required", details={"reason": [_("Required.")]}
        )
    payout = _locked_payout(payout_id)
    source = payout.status
    PAYOUT_STATES.check(source, Payout.Status.REJECTED)
    payout.status, payout.reason = Payout.Status.REJECTED, reason[:255]
    payout.decided_by, payout.decided_at = by, at
    payout.save(update_fields=["status", "reason", "decided_by", "decided_at"])
    _payout_event(payout, source, by=by, note=reason, at=at)
    return payout


def _record_paid(payout: Payout, *, reference: str, at: datetime, by=None, label: str = "") -> Payout:
    """The payout is paid: its negative ledger entry (settled at once) and its state, together."""
    source = payout.status
    PAYOUT_STATES.check(source, Payout.Status.PAID)
    payout.status, payout.reference, payout.paid_at = Payout.Status.PAID, reference[:64], at
    payout.save(update_fields=["status", "reference", "paid_at"])
    CommissionEntry.objects.create(
        member_id=payout.member_id,
        staff_id=payout.staff_id,
        kind=Kind.PAYOUT,
        status=Status.SETTLED,
        settled_at=at,
        amount_fen=-payout.amount_fen,
        payout=payout,
        reference=reference[:64],
        note=payout.get_method_display(),
        created_at=at,
    )
    _payout_event(payout, source, by=by, label=label, note=reference, at=at)
    return payout


@transaction.atomic
def mark_payout_paid(*, payout_id: int, by: AbstractBaseUser, reference: str, at: datetime | None = None) -> Payout:
    """HQ paid an approved payout by hand (bank transfer, cash): it is recorded with the reference."""
    at = at or timezone.now()
    reference = (reference or "").strip()
    if not reference:
        raise PayoutRefused(
            _("Enter the payment's reference (bank transfer number, receipt)."),
            code="reference_required",
            details={"reference": [_("Required.")]},
        )
    payout = _locked_payout(payout_id)
    if payout.status == Payout.Status.APPROVED and payout.method != Payout.Method.MANUAL:
        raise PayoutRefused(
            _("This payout is on its way by WeChat Pay; it cannot also be paid by hand."), code="transfer_in_flight"
        )
    return _record_paid(payout, reference=reference, at=at, by=by)


def _send_payout_later(payout_id: int) -> None:
    from commissions import tasks

    tasks.send_payout.delay(payout_id)


def send_payout(*, payout_id: int, at: datetime | None = None) -> Payout:
    """Move an approved WeChat payout on: ask WeChat Pay where its transfer is; if WeChat Pay never
    got it, send it; if it is final, record it (paid, or failed with WeChat Pay's reason).

    Called after approval and by the reconciler; safe to repeat, since a transfer is named by the
    payout and its attempt (WeChat Pay refuses a second batch with the same number). No database
    transaction is held across the calls to WeChat Pay."""
    payout = Payout.objects.select_related("member", "staff").get(pk=payout_id)
    if payout.status != Payout.Status.APPROVED or payout.method != Payout.Method.WECHAT:
        return payout
    gateway = payment_gateway()
    out_batch_no, out_detail_no = payout.transfer_numbers
    result = gateway.query_transfer(out_batch_no=out_batch_no, out_detail_no=out_detail_no)
    if result is None:
        gateway.transfer(
            out_batch_no=out_batch_no,
            out_detail_no=out_detail_no,
            amount_fen=payout.amount_fen,
            openid=_payee_openid(payout),
            remark=_("Commission payout"),
        )
        return payout
    return apply_transfer_result(payout_id=payout_id, attempt=payout.attempts, result=result, at=at)


@transaction.atomic
def apply_transfer_result(
    *, payout_id: int, attempt: int, result: TransferResult, at: datetime | None = None
) -> Payout:
    """Record what WeChat Pay said of a payout's transfer, once: SUCCESS pays it, FAIL fails it (HQ
    may approve it again, as a new transfer, or reject it). Results of an older attempt, or for a
    payout no longer waiting, change nothing."""
    at = at or timezone.now()
    payout = _locked_payout(payout_id)
    if payout.status != Payout.Status.APPROVED or payout.attempts != attempt or not result.is_final:
        return payout
    if result.status == "SUCCESS":
        return _record_paid(payout, reference=result.detail_id or result.out_detail_no, at=at, label="WeChat Pay")
    payout.status, payout.reason = Payout.Status.FAILED, (result.fail_reason or result.status)[:255]
    payout.save(update_fields=["status", "reason"])
    _payout_event(payout, Payout.Status.APPROVED, label="WeChat Pay", note=payout.reason, at=at)
    return payout


def reconcile_payouts(*, at: datetime | None = None, limit: int = 200) -> int:
    """The beat job: WeChat payouts approved a while ago are moved on (sent if WeChat Pay never got
    them, recorded if final). Returns how many were looked at; one failing does not stop the rest."""
    at = at or timezone.now()
    ids = list(
        Payout.objects.filter(
            status=Payout.Status.APPROVED, method=Payout.Method.WECHAT, decided_at__lte=at - PAYOUT_RECHECK_AFTER
        )
        .order_by("decided_at")
        .values_list("pk", flat=True)[:limit]
    )
    for payout_id in ids:
        try:
            send_payout(payout_id=payout_id, at=at)
        except (PaymentGatewayError, PaymentNotConfigured) as exc:
            logger.warning("payout %s not moved on: %s", payout_id, exc)
    return len(ids)
