"""Reads of commissions: HQ's rules, a beneficiary's balances and ledger, a promoter's team."""

from dataclasses import dataclass

from django.db.models import Q, QuerySet, Sum

from commissions.models import CategoryCommissionRate, CommissionEntry, CommissionSettings, Payout
from members.models import Member
from o2o.single_row import forget_settings, read_settings
from stores.models import Staff


def commission_settings() -> CommissionSettings:
    return read_settings(CommissionSettings)


def forget_commission_settings() -> None:
    forget_settings(CommissionSettings)


def category_rates() -> dict[tuple[int, int], int]:
    """HQ's per-category overrides: (category id, level) → rate in basis points."""
    return {(r.category_id, r.level): r.rate_bp for r in CategoryCommissionRate.objects.all()}


def _beneficiary(member: Member | None, staff: Staff | None) -> Q:
    if (member is None) == (staff is None):
        raise ValueError("one beneficiary: a member or a staff member")
    return Q(member=member) if member is not None else Q(staff=staff)


def ledger_of(*, member: Member | None = None, staff: Staff | None = None) -> QuerySet[CommissionEntry]:
    return CommissionEntry.objects.filter(_beneficiary(member, staff)).select_related("order", "customer")


@dataclass(frozen=True)
class Balances:
    pending_fen: int  # earned on orders still in their return window (may still be reversed)
    settled_fen: int  # earned, safe, less what was paid out; may be below zero after a late refund
    requested_fen: int  # asked for in payouts not yet paid or rejected
    paid_fen: int  # paid out in all

    @property
    def available_fen(self) -> int:
        """What may be withdrawn now."""
        return max(self.settled_fen - self.requested_fen, 0)


def balances(*, member: Member | None = None, staff: Staff | None = None) -> Balances:
    """A beneficiary's balances, each a sum over the ledger (and the open payout requests)."""
    who = _beneficiary(member, staff)
    sums = CommissionEntry.objects.filter(who).aggregate(
        pending=Sum("amount_fen", filter=Q(status=CommissionEntry.Status.PENDING)),
        settled=Sum("amount_fen", filter=Q(status=CommissionEntry.Status.SETTLED)),
        paid=Sum("amount_fen", filter=Q(kind=CommissionEntry.Kind.PAYOUT)),
    )
    requested = (
        Payout.objects.filter(who, status__in=[Payout.Status.REQUESTED, Payout.Status.APPROVED]).aggregate(
            total=Sum("amount_fen")
        )["total"]
        or 0
    )
    return Balances(
        pending_fen=sums["pending"] or 0,
        settled_fen=sums["settled"] or 0,
        requested_fen=requested,
        paid_fen=-(sums["paid"] or 0),
    )


def ledger_sum(*, member: Member | None = None, staff: Staff | None = None) -> int:
    return CommissionEntry.objects.filter(_beneficiary(member, staff)).aggregate(t=Sum("amount_fen"))["t"] or 0
