"""Reads of commissions: HQ's rules, a beneficiary's balances and ledger, a promoter's team, a
guide's customers; HQ's results per promoter and per guide, the commission payable and the anomaly
list."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, F, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Substr
from django.utils import timezone

from commissions.models import (
    OPEN_PAYOUT_STATES,
    REFUNDED_AFTER_SETTLEMENT,
    CategoryCommissionRate,
    CommissionEntry,
    CommissionSettings,
    Payout,
)
from commissions.rules import MAX_DEPTH
from members.models import Member, ReferralVisit
from o2o.phone import mask_phone
from o2o.single_row import forget_settings, read_settings
from orders.models import Order, Return
from stores.models import Staff, Store


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
    requested_fen: int  # in open payouts: requested, approved (on its way) or failed (awaiting HQ)
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
        Payout.objects.filter(who, status__in=OPEN_PAYOUT_STATES).aggregate(total=Sum("amount_fen"))["total"] or 0
    )
    return Balances(
        pending_fen=sums["pending"] or 0,
        settled_fen=sums["settled"] or 0,
        requested_fen=requested,
        paid_fen=-(sums["paid"] or 0),
    )


def ledger_sum(*, member: Member | None = None, staff: Staff | None = None) -> int:
    return CommissionEntry.objects.filter(_beneficiary(member, staff)).aggregate(t=Sum("amount_fen"))["t"] or 0


def payouts_of(*, member: Member | None = None, staff: Staff | None = None) -> QuerySet[Payout]:
    """A beneficiary's payouts, newest first."""
    return Payout.objects.filter(_beneficiary(member, staff))


# --- The promoter center: a member's own team and results -------------------------------------------

# The referrer chain above a member, by how many steps below the promoter they are.
_UPLINE = {1: "referrer", 2: "referrer__referrer", 3: "referrer__referrer__referrer"}
_BROUGHT_STATUSES_EXCLUDED = (Order.Status.CANCELLED, Order.Status.RETURNED, Order.Status.EXPIRED)


def team_depth() -> int:
    """How many levels of a promoter's team they see: HQ's depth of member commission, at most 3."""
    return max(0, min(commission_settings().depth, MAX_DEPTH))


def _brought_orders() -> QuerySet[Order]:
    """Orders that count as brought: paid, and neither cancelled nor wholly returned."""
    return Order.objects.filter(paid_at__isnull=False).exclude(status__in=_BROUGHT_STATUSES_EXCLUDED)


def _items_paid() -> Sum:
    return Sum(F("items_fen") - F("points_discount_fen"))


def _under(member: Member, level: int, prefix: str = "") -> Q:
    """Members (or, with a prefix, rows of members) exactly `level` steps below `member`."""
    if level not in _UPLINE:
        raise ValueError(f"team level 1 to {MAX_DEPTH}, not {level}")
    return Q(**{f"{prefix}{_UPLINE[level]}": member}) & ~Q(**{f"{prefix}pk": member.pk})


def team_of(member: Member, *, level: int) -> QuerySet[Member]:
    """The members `level` steps below `member` in the referral tree (1: those they referred, 2:
    those referred by them, …), newest first, each with `orders_brought` (paid orders, neither
    cancelled nor wholly returned) and `amount_brought_fen` (what those orders paid for their
    items, less partial returns) computed in SQL. Only ever the given member's descendants."""
    if not 1 <= level <= MAX_DEPTH:
        return Member.objects.none()
    brought = _brought_orders().filter(member=OuterRef("pk"))
    orders = brought.order_by().values("member").annotate(n=Count("pk")).values("n")
    paid = brought.order_by().values("member").annotate(fen=_items_paid()).values("fen")
    returned = (
        Return.objects.filter(order__member=OuterRef("pk"), order__paid_at__isnull=False)
        .exclude(order__status__in=_BROUGHT_STATUSES_EXCLUDED)
        .order_by()
        .values("order__member")
        .annotate(fen=Sum("amount_fen"))
        .values("fen")
    )
    return (
        Member.objects.filter(_under(member, level))
        .only("pk", "nickname", "phone", "joined_at", "closed_at", "is_active")
        .annotate(
            orders_brought=Coalesce(Subquery(orders, output_field=IntegerField()), 0),
            amount_brought_fen=Coalesce(Subquery(paid, output_field=IntegerField()), 0)
            - Coalesce(Subquery(returned, output_field=IntegerField()), 0),
        )
        .order_by("-joined_at", "-pk")
    )


def mask_nickname(nickname: str) -> str:
    """ "王小芳" → "王***": a team member is recognisable to the promoter who invited them, no more."""
    nickname = (nickname or "").strip()
    return f"{nickname[0]}***" if nickname else "***"


@dataclass(frozen=True)
class TeamMember:
    """A member of a promoter's team as the promoter may see them: masked, with what they bought."""

    name: str
    phone: str
    joined_at: datetime
    orders: int
    amount_fen: int
    closed: bool

    @property
    def has_bought(self) -> bool:
        return self.orders > 0


def team_member_row(member: Member) -> TeamMember:
    """One row of `team_of` for the page: nickname and mobile masked, nothing else of the person."""
    closed = member.closed_at is not None
    return TeamMember(
        name="" if closed else mask_nickname(member.nickname),
        phone="" if closed or not member.phone else mask_phone(member.phone),
        joined_at=member.joined_at,
        orders=member.orders_brought,
        amount_fen=member.amount_brought_fen,
        closed=closed,
    )


# --- The guide's console page: their own customers and what those customers bought -----------------

# An order counts as a purchase once paid, unless it was cancelled or wholly returned.
_BOUGHT = Q(orders__paid_at__isnull=False) & ~Q(orders__status__in=[Order.Status.CANCELLED, Order.Status.RETURNED])


# What an order paid for its items (after points, without the delivery fee), as commission counts it.
_ITEMS_PAID = F("orders__items_fen") - F("orders__points_discount_fen")


def guide_customers(staff: Staff) -> QuerySet[Member]:
    """The members bound to this guide (their QR code brought them in), each with their purchases
    summed in the same query: `orders_bought`, `orders_completed`, `bought_fen`, `last_bought_at`,
    and `earned_fen`, what this guide's ledger holds for them. Latest buyers first."""
    earned = (
        CommissionEntry.objects.filter(staff=staff, customer=OuterRef("pk"))
        .order_by()
        .values("customer")
        .annotate(total=Sum("amount_fen"))
        .values("total")
    )
    return (
        Member.objects.filter(guide=staff)
        .annotate(
            orders_bought=Count("orders", filter=_BOUGHT),
            orders_completed=Count("orders", filter=Q(orders__status=Order.Status.COMPLETED)),
            bought_fen=Coalesce(Sum(_ITEMS_PAID, filter=_BOUGHT), 0),
            last_bought_at=Max("orders__paid_at", filter=_BOUGHT),
            earned_fen=Coalesce(Subquery(earned), 0),
        )
        .order_by(F("last_bought_at").desc(nulls_last=True), "-joined_at", "-pk")
    )


@dataclass(frozen=True)
class TeamLevel:
    level: int
    members: int
    buyers: int  # members of the level with at least one order brought
    orders: int
    amount_fen: int  # what their orders paid for the items, less partial returns


@dataclass(frozen=True)
class PromoterSummary:
    visits: int  # openings of the promoter's share link
    signups: int  # members registered through it (level 1, whatever HQ's depth)
    levels: list[TeamLevel]  # 1 … team_depth()
    balances: Balances

    @property
    def team_members(self) -> int:
        return sum(level.members for level in self.levels)

    @property
    def orders(self) -> int:
        return sum(level.orders for level in self.levels)

    @property
    def amount_fen(self) -> int:
        return sum(level.amount_fen for level in self.levels)


def team_level(member: Member, level: int) -> TeamLevel:
    """One level's head count and what it bought, each an aggregate in SQL (three queries)."""
    members = Member.objects.filter(_under(member, level)).count()
    orders = _brought_orders().filter(_under(member, level, prefix="member__"))
    sums = orders.aggregate(n=Count("pk"), buyers=Count("member", distinct=True), fen=_items_paid())
    returned = (
        Return.objects.filter(order__in=orders.values("pk")).aggregate(fen=Sum("amount_fen"))["fen"] or 0
        if sums["n"]
        else 0
    )
    return TeamLevel(
        level=level,
        members=members,
        buyers=sums["buyers"],
        orders=sums["n"],
        amount_fen=(sums["fen"] or 0) - returned,
    )


def promoter_summary(member: Member) -> PromoterSummary:
    """What a promoter's share link brought them: visits, sign-ups, each level of their team down
    to HQ's depth with its orders and amounts, and their balances. A fixed number of queries,
    however large the team."""
    depth = team_depth()
    return PromoterSummary(
        visits=ReferralVisit.objects.filter(sharer=member).count(),
        signups=Member.objects.filter(referrer=member).exclude(pk=member.pk).count(),
        levels=[team_level(member, level) for level in range(1, depth + 1)],
        balances=balances(member=member),
    )


@dataclass(frozen=True)
class GuideSummary:
    customers: int  # members bound to the guide
    buyers: int  # of them, those who bought at least once
    orders: int  # their purchases (paid, not cancelled or wholly returned)
    bought_fen: int  # what those purchases paid for their items (after points, without delivery)


def guide_summary(staff: Staff) -> GuideSummary:
    """The counts at the top of the guide's page, in one query."""
    sums = Member.objects.filter(guide=staff).aggregate(
        customer_count=Count("pk", distinct=True),
        buyer_count=Count("pk", distinct=True, filter=_BOUGHT),
        order_count=Count("orders", filter=_BOUGHT),  # named apart from the relation it counts
        bought=Sum(_ITEMS_PAID, filter=_BOUGHT),
    )
    return GuideSummary(
        customers=sums["customer_count"],
        buyers=sums["buyer_count"],
        orders=sums["order_count"],
        bought_fen=sums["bought"] or 0,
    )


# --- HQ's reports: results per promoter and per guide, what the chain owes, anomalies -------------
#
# Each report is a fixed number of grouped queries, whatever the number of rows: the figures are
# summed in the database, and rows are merged and sorted here.

_OWED_KINDS = [CommissionEntry.Kind.EARN, CommissionEntry.Kind.SIGNUP]


def default_period(today: date | None = None) -> tuple[date, date]:
    """This month so far."""
    today = today or timezone.localdate()
    return today.replace(day=1), today


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    """The days since..until (both included, local time) as [start, end) instants."""
    zone = timezone.get_current_timezone()
    start = datetime.combine(since, time.min, tzinfo=zone)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


@dataclass(frozen=True)
class Payable:
    """What the chain owes in commission, now."""

    settled_fen: int  # settled balances in all: settled earnings less what was paid out
    negative_fen: int  # of which, the balances below zero (late refunds), as a negative sum
    negative_count: int  # beneficiaries whose settled balance is below zero
    pending_fen: int  # earned on orders still within their return window
    requested_fen: int  # asked for in payouts not yet paid or rejected
    requested_count: int
    paid_fen: int  # paid out in all

    @property
    def owed_fen(self) -> int:
        """Settled balances above zero: what the beneficiaries may ask for."""
        return self.settled_fen - self.negative_fen


def payable() -> Payable:
    """The chain's commission payable: settled balances (Σ settled − paid out), those below zero,
    pending commission and open payout requests. Three aggregate queries."""
    Status, Kind = CommissionEntry.Status, CommissionEntry.Kind
    sums = CommissionEntry.objects.aggregate(
        settled=Sum("amount_fen", filter=Q(status=Status.SETTLED)),
        pending=Sum("amount_fen", filter=Q(status=Status.PENDING)),
        paid=Sum("amount_fen", filter=Q(kind=Kind.PAYOUT)),
    )
    below_zero = (
        CommissionEntry.objects.filter(status=Status.SETTLED)
        .values("member_id", "staff_id")
        .annotate(balance=Sum("amount_fen"))
        .filter(balance__lt=0)
        .aggregate(total=Sum("balance"), count=Count("*"))
    )
    requested = Payout.objects.filter(status__in=OPEN_PAYOUT_STATES).aggregate(
        total=Sum("amount_fen"), count=Count("pk")
    )
    return Payable(
        settled_fen=sums["settled"] or 0,
        negative_fen=below_zero["total"] or 0,
        negative_count=below_zero["count"] or 0,
        pending_fen=sums["pending"] or 0,
        requested_fen=requested["total"] or 0,
        requested_count=requested["count"] or 0,
        paid_fen=-(sums["paid"] or 0),
    )


@dataclass
class Results:
    """One beneficiary's results in a period. The commission columns count the ledger entries made
    in the period, by the state they are in now: earned − reversed + adjusted = settled + pending;
    paid out is the payouts of the period."""

    visits: int = 0  # openings of their share link or QR code
    signups: int = 0  # promoters: members who registered with them as referrer; guides: customers bound
    orders: int = 0  # orders paid in the period by their level-1 team (promoter) or customers (guide),
    # neither cancelled nor wholly returned
    sales_fen: int = 0  # what those orders paid for their items, less partial returns
    earned_fen: int = 0
    reversed_fen: int = 0
    adjusted_fen: int = 0
    settled_fen: int = 0
    pending_fen: int = 0
    paid_out_fen: int = 0


@dataclass
class PromoterResults(Results):
    member: Member | None = None


@dataclass
class GuideResults(Results):
    staff: Staff | None = None


RESULT_SORTS = ("earned_fen", "sales_fen", "orders", "signups", "visits", "pending_fen", "settled_fen", "paid_out_fen")


_COMMISSION_FIELDS = ("earned_fen", "reversed_fen", "adjusted_fen", "settled_fen", "pending_fen", "paid_out_fen")


def _commission_sums(entries: QuerySet, by: str) -> list[dict]:
    """Per beneficiary, the period's entries by kind and by the state they are in now."""
    Kind, Status = CommissionEntry.Kind, CommissionEntry.Status
    not_payout = ~Q(kind=Kind.PAYOUT)
    return list(
        entries.values(by).annotate(
            earned_fen=Sum("amount_fen", filter=Q(kind__in=_OWED_KINDS)),
            reversed_fen=-Sum("amount_fen", filter=Q(kind=Kind.REVERSE)),
            adjusted_fen=Sum("amount_fen", filter=Q(kind=Kind.ADJUST)),
            settled_fen=Sum("amount_fen", filter=not_payout & Q(status=Status.SETTLED)),
            pending_fen=Sum("amount_fen", filter=not_payout & Q(status=Status.PENDING)),
            paid_out_fen=-Sum("amount_fen", filter=Q(kind=Kind.PAYOUT)),
        )
    )


_COMMISSION_COLUMNS = {name: name for name in _COMMISSION_FIELDS}


def _merge(rows: dict[int, Results], make, counts, key: str, fields: dict[str, str]) -> None:
    for row in counts:
        result = rows.setdefault(row[key], make())
        for name, column in fields.items():
            setattr(result, name, row[column] or 0)


def _merge_orders_brought(rows: dict[int, Results], make, by: str, start: datetime, end: datetime, **where) -> None:
    """Orders paid in the period that count as brought, as the promoter center counts them (paid,
    neither cancelled nor wholly returned), and what they paid for their items less partial
    returns; grouped by `by` (the buyer's referrer or guide). Two grouped queries."""
    orders = _brought_orders().filter(paid_at__gte=start, paid_at__lt=end, **{f"{by}__isnull": False}, **where)
    _merge(
        rows,
        make,
        orders.values(by).annotate(n=Count("pk"), fen=_items_paid()),
        by,
        {"orders": "n", "sales_fen": "fen"},
    )
    returned = (
        Return.objects.filter(order__in=orders.values("pk")).values(f"order__{by}").annotate(fen=Sum("amount_fen"))
    )
    for row in returned:
        rows[row[f"order__{by}"]].sales_fen -= row["fen"] or 0


def _sorted(rows: dict[int, Results], sort: str) -> list[Results]:
    """By one figure ("-earned_fen": largest first), ties in the order of the ids."""
    figure = sort.removeprefix("-")
    if figure not in RESULT_SORTS:
        raise ValueError(f"cannot sort by {sort}")
    in_id_order = [rows[key] for key in sorted(rows)]
    return sorted(in_id_order, key=lambda row: getattr(row, figure), reverse=sort.startswith("-"))


def promoter_results(since: date, until: date, *, sort: str = "-earned_fen") -> list[PromoterResults]:
    """Every promoter with something in the period: visits through their link, members who
    registered with them as referrer, orders their level-1 team (members they referred, as bound
    now) paid and what those paid for their items, and their commission. Six grouped queries and
    one for the names."""
    start, end = _bounds(since, until)
    rows: dict[int, PromoterResults] = {}
    _merge(
        rows,
        PromoterResults,
        ReferralVisit.objects.filter(sharer__isnull=False, visited_at__gte=start, visited_at__lt=end)
        .values("sharer_id")
        .annotate(n=Count("pk")),
        "sharer_id",
        {"visits": "n"},
    )
    _merge(
        rows,
        PromoterResults,
        Member.objects.filter(referrer__isnull=False, joined_at__gte=start, joined_at__lt=end)
        .values("referrer_id")
        .annotate(n=Count("pk")),
        "referrer_id",
        {"signups": "n"},
    )
    _merge_orders_brought(rows, PromoterResults, "member__referrer_id", start, end)
    entries = CommissionEntry.objects.filter(member__isnull=False, created_at__gte=start, created_at__lt=end)
    _merge(
        rows,
        PromoterResults,
        _commission_sums(entries, "member_id"),
        "member_id",
        _COMMISSION_COLUMNS,
    )
    members = Member.objects.only("pk", "nickname", "phone", "referral_code", "closed_at").in_bulk(list(rows))
    for member_id, result in rows.items():
        result.member = members.get(member_id)
    return _sorted(rows, sort)


def guide_results(
    since: date, until: date, store: Store | None = None, *, sort: str = "-earned_fen"
) -> list[GuideResults]:
    """Every guide with something in the period, of one store or all: visits through their QR code,
    customers bound to them in the period, orders their customers (as bound now) paid and what
    those paid for their items, and their commission, sign-up rewards included. Six grouped
    queries and one for the names and stores."""
    start, end = _bounds(since, until)
    rows: dict[int, GuideResults] = {}
    where = {"guide__store": store} if store is not None else {}
    _merge(
        rows,
        GuideResults,
        ReferralVisit.objects.filter(guide__isnull=False, visited_at__gte=start, visited_at__lt=end, **where)
        .values("guide_id")
        .annotate(n=Count("pk")),
        "guide_id",
        {"visits": "n"},
    )
    _merge(
        rows,
        GuideResults,
        Member.objects.filter(guide__isnull=False, bound_at__gte=start, bound_at__lt=end, **where)
        .values("guide_id")
        .annotate(n=Count("pk")),
        "guide_id",
        {"signups": "n"},
    )
    _merge_orders_brought(
        rows, GuideResults, "member__guide_id", start, end, **({"member__guide__store": store} if store else {})
    )
    entries = CommissionEntry.objects.filter(staff__isnull=False, created_at__gte=start, created_at__lt=end)
    if store is not None:
        entries = entries.filter(staff__store=store)
    _merge(
        rows,
        GuideResults,
        _commission_sums(entries, "staff_id"),
        "staff_id",
        _COMMISSION_COLUMNS,
    )
    staff = Staff.objects.select_related("store").in_bulk(list(rows))
    for staff_id, result in rows.items():
        result.staff = staff.get(staff_id)
    return _sorted(rows, sort)


# --- the anomaly list -----------------------------------------------------------------------------

ANOMALY_MIN_MEMBERS = 3  # sign-ups from one device, or under one beneficiary with one phone prefix
ANOMALY_GROUPS_SHOWN = 200  # groups of each kind, largest first
PHONE_PREFIX_DIGITS = 7  # "139 1234": the operator and the area's number block


@dataclass
class SharedDevice:
    """Members who registered from one device in the period, and who gained them."""

    device: str
    members: list[Member] = field(default_factory=list)
    referrers: list[Member] = field(default_factory=list)
    guides: list[Staff] = field(default_factory=list)


@dataclass
class PhonePrefixCluster:
    """Members who registered in the period under one referrer or one guide with phones that
    begin alike."""

    prefix: str
    referrer: Member | None = None
    guide: Staff | None = None
    members: list[Member] = field(default_factory=list)


@dataclass(frozen=True)
class LateRefund:
    """A reversal of commission that had already settled, and where it left the beneficiary."""

    entry: CommissionEntry
    settled_balance_fen: int  # the beneficiary's settled balance now

    @property
    def balance_below_zero(self) -> bool:
        return self.settled_balance_fen < 0


@dataclass(frozen=True)
class Anomalies:
    shared_devices: list[SharedDevice]
    phone_prefixes: list[PhonePrefixCluster]
    late_refunds: list[LateRefund]


def _phone_prefix():
    # Phones are stored as "+86" and 11 digits (o2o.phone): the prefix starts after the country code.
    return Substr("phone", 4, PHONE_PREFIX_DIGITS)


def _shared_devices(joined: Q, min_members: int) -> list[SharedDevice]:
    devices = list(
        Member.objects.filter(joined)
        .exclude(signup_device="")
        .values("signup_device")
        .annotate(n=Count("pk"))
        .filter(n__gte=min_members)
        .order_by("-n", "signup_device")
        .values_list("signup_device", flat=True)[:ANOMALY_GROUPS_SHOWN]
    )
    groups = {device: SharedDevice(device=device) for device in devices}
    for member in (
        Member.objects.filter(joined, signup_device__in=devices)
        .select_related("referrer", "guide__store")
        .order_by("joined_at", "pk")
    ):
        group = groups[member.signup_device]
        group.members.append(member)
        if member.referrer is not None and member.referrer not in group.referrers:
            group.referrers.append(member.referrer)
        if member.guide is not None and member.guide not in group.guides:
            group.guides.append(member.guide)
    return [groups[device] for device in devices]


def _phone_prefixes(joined: Q, min_members: int) -> list[PhonePrefixCluster]:
    base = Member.objects.filter(joined, phone__isnull=False).annotate(prefix=_phone_prefix())
    flagged: list[tuple[str, str, int, int]] = []  # (by, prefix, beneficiary id, count)
    for by in ("referrer_id", "guide_id"):
        flagged += [
            (by, row["prefix"], row[by], row["n"])
            for row in base.filter(**{f"{by}__isnull": False})
            .values(by, "prefix")
            .annotate(n=Count("pk"))
            .filter(n__gte=min_members)
            .order_by("-n", by, "prefix")[:ANOMALY_GROUPS_SHOWN]
        ]
    flagged.sort(key=lambda group: -group[3])
    flagged = flagged[:ANOMALY_GROUPS_SHOWN]
    if not flagged:
        return []
    clusters = {(by, prefix, who): PhonePrefixCluster(prefix=prefix) for by, prefix, who, _n in flagged}
    referrers = {who for by, _p, who, _n in flagged if by == "referrer_id"}
    guides = {who for by, _p, who, _n in flagged if by == "guide_id"}
    for member in (
        base.filter(Q(referrer_id__in=referrers) | Q(guide_id__in=guides), prefix__in={p for _b, p, _w, _n in flagged})
        .select_related("referrer", "guide__store")
        .order_by("joined_at", "pk")
    ):
        for by, beneficiary in (("referrer_id", member.referrer), ("guide_id", member.guide)):
            cluster = clusters.get((by, member.prefix, getattr(member, by)))
            if cluster is None:
                continue
            cluster.members.append(member)
            if by == "referrer_id":
                cluster.referrer = beneficiary
            else:
                cluster.guide = beneficiary
    return [clusters[(by, prefix, who)] for by, prefix, who, _n in flagged]


def _late_refunds(start: datetime, end: datetime) -> list[LateRefund]:
    entries = list(
        CommissionEntry.objects.filter(
            kind=CommissionEntry.Kind.REVERSE, note=REFUNDED_AFTER_SETTLEMENT, created_at__gte=start, created_at__lt=end
        )
        .select_related("member", "staff__store", "order", "customer")
        .order_by("-created_at", "-pk")
    )
    members = {entry.member_id for entry in entries if entry.member_id}
    staff = {entry.staff_id for entry in entries if entry.staff_id}
    balances: dict[tuple[int | None, int | None], int] = defaultdict(int)
    if entries:
        for row in (
            CommissionEntry.objects.filter(status=CommissionEntry.Status.SETTLED)
            .filter(Q(member_id__in=members) | Q(staff_id__in=staff))
            .values("member_id", "staff_id")
            .annotate(balance=Sum("amount_fen"))
        ):
            balances[(row["member_id"], row["staff_id"])] = row["balance"] or 0
    return [
        LateRefund(entry=entry, settled_balance_fen=balances[(entry.member_id, entry.staff_id)]) for entry in entries
    ]


def anomalies(since: date, until: date, *, min_members: int = ANOMALY_MIN_MEMBERS) -> Anomalies:
    """What HQ should look at in the period: (a) `min_members` or more members registered from one
    device; (b) as many registered under one referrer, or one guide, with phones beginning with the
    same seven digits; (c) commission taken back by a refund after it had settled, with the
    beneficiary's settled balance now. A fixed number of queries."""
    start, end = _bounds(since, until)
    joined = Q(joined_at__gte=start, joined_at__lt=end)
    return Anomalies(
        shared_devices=_shared_devices(joined, min_members),
        phone_prefixes=_phone_prefixes(joined, min_members),
        late_refunds=_late_refunds(start, end),
    )
