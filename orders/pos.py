"""Sales and returns at the stores' tills (POS), as the till reports them through the ERP API.

A POS sale to a member counts exactly as a completed online order does (`orders.fulfilment`):
the member's purchase is recorded at the store (their affinity store for dispatch), points are
earned on what was paid in money, and the follow-up windows open. The goods leave the store's
stock (`inventory.services.sell_at_pos`). A receipt is recorded once per store, by a unique
constraint: a report sent again, under any Idempotency-Key, finds the first and changes nothing.
A return reverses, in proportion to the money given back, what its sale earned.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.models import SKU
from inventory.services import StockLine, return_stock, sell_at_pos
from members.models import Member, Purchase
from members.services import earn_points, member_by_card_code, open_follow_ups, record_purchase, reverse_points
from o2o.errors import ApplicationError, Conflict, NotFound
from o2o.phone import normalize_cn_mobile
from orders.models import PosReturn, PosReturnLine, PosSale, PosSaleLine
from stores.models import Staff, Store

MAX_LINES = 500
MAX_QUANTITY = 100_000
# A till's clock may run a little ahead of ours; beyond this a time "in the future" is a mistake.
CLOCK_SKEW = timedelta(minutes=5)
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,31}")
REFERENCE_LENGTH = 64  # of Purchase, PointsEntry and StockMove references


class PosRefused(ApplicationError):
    """The report is well formed but cannot be recorded as it is; nothing was changed."""

    status = 422


@dataclass(frozen=True)
class SaleLine:
    sku_code: str
    quantity: int
    unit_price_fen: int
    amount_fen: int


@dataclass(frozen=True)
class ReturnedLine:
    sku_code: str
    quantity: int
    amount_fen: int


@dataclass(frozen=True)
class MemberRef:
    """How the till names the member: the card's code, a mobile number, or the id a lookup gave."""

    card_code: str = ""
    phone: str = ""
    member_id: int | None = None


@dataclass(frozen=True)
class Recorded:
    """A sale or return, and whether it had been recorded before (a repeated report)."""

    record: PosSale | PosReturn
    duplicate: bool


def pos_reference(store: Store, receipt_id: str) -> str:
    """The sale's name in the stock moves, the points ledger and the purchase record."""
    return f"POS:{store.code}:{receipt_id}"


def _digest(content: dict) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


# --- checks that need no database ------------------------------------------------------------------


def _check_id(value: str, *, field: str) -> None:
    if not ID_PATTERN.fullmatch(value or ""):
        raise PosRefused(
            _("An id is 1 to 32 letters, digits, and . _ / - (starting with a letter or digit)."),
            code=f"invalid_{field}",
            details={field: [value[:40] if isinstance(value, str) else ""]},
        )


def _check_count(lines: list) -> None:
    if not lines:
        raise PosRefused(_("At least one line is needed."), code="no_lines", details={"lines": [_("Empty.")]})
    if len(lines) > MAX_LINES:
        raise PosRefused(
            _("At most {limit} lines in one report.").format(limit=MAX_LINES),
            code="too_many_lines",
            details={"lines": [_("At most {limit}.").format(limit=MAX_LINES)]},
        )


def _check_time(at: datetime, *, now: datetime, field: str) -> None:
    if at > now + CLOCK_SKEW:
        raise PosRefused(
            _("{field} is in the future; check the till's clock.").format(field=field),
            code=f"{field}_in_future",
            details={field: [_utc(at)]},
        )


def _check_quantities(lines: list) -> None:
    wrong = {
        f"lines[{index}].quantity": [_("A whole number from 1 to {limit}.").format(limit=MAX_QUANTITY)]
        for index, line in enumerate(lines)
        if not 1 <= line.quantity <= MAX_QUANTITY
    }
    if wrong:
        raise PosRefused(_("Quantities are whole numbers above zero."), code="invalid_quantity", details=wrong)


def _skus(codes: list[str]) -> dict[str, SKU]:
    """The SKUs of these codes (with their product), inactive ones included: the shelf may still hold them."""
    return {sku.code: sku for sku in SKU.objects.select_related("product").filter(code__in=set(codes))}


# --- the member and the guide ----------------------------------------------------------------------


def _open_members():
    return Member.objects.filter(is_active=True, closed_at__isnull=True)


def _buyer(ref: MemberRef | None) -> Member | None:
    if ref is None:
        return None
    if ref.member_id is not None:
        member = _open_members().filter(pk=ref.member_id).first()
        field = "member.id"
    elif ref.card_code:
        try:
            return member_by_card_code(text=ref.card_code)
        except NotFound as exc:  # the member is named in the body, not the URL: unprocessable, not missing
            raise PosRefused(exc.message, code=exc.code, details={"member.card_code": [exc.message]}) from None
    else:
        member = _open_members().filter(phone=normalize_cn_mobile(ref.phone, field="member.phone")).first()
        field = "member.phone"
    if member is None:
        raise PosRefused(_("No such member."), code="member_not_found", details={field: [_("No such member.")]})
    return member


def _guide(store: Store, staff_code: str) -> Staff | None:
    if not staff_code:
        return None
    guide = Staff.objects.filter(staff_code=staff_code, store=store, is_active=True).first()
    if guide is None:
        raise PosRefused(
            _("No active guide of this store has this staff code."),
            code="unknown_guide",
            details={"guide_staff_code": [staff_code[:32]]},
        )
    return guide


# --- sales -----------------------------------------------------------------------------------------


def _sale_digest(sold_at: datetime, lines: list[SaleLine], total_fen: int, paid_fen: int) -> str:
    """What makes a report the same sale: time, goods and money (the member is named by a card code
    that changes every minute, so it cannot take part)."""
    return _digest(
        {
            "sold_at": _utc(sold_at),
            "lines": [[line.sku_code, line.quantity, line.unit_price_fen, line.amount_fen] for line in lines],
            "total_fen": total_fen,
            "paid_fen": paid_fen,
        }
    )


def _same_sale(sale: PosSale, digest: str) -> Recorded:
    if sale.content_digest != digest:
        raise Conflict(
            _("This receipt was recorded at this store with other lines, time or amounts."),
            code="receipt_exists",
            details={"receipt_id": [sale.receipt_id]},
        )
    return Recorded(record=sale, duplicate=True)


def record_pos_sale(
    *,
    store: Store,
    receipt_id: str,
    sold_at: datetime,
    lines: list[SaleLine],
    total_fen: int,
    paid_fen: int | None = None,
    member: MemberRef | None = None,
    guide_staff_code: str = "",
    reported_by: str = "",
    now: datetime | None = None,
) -> Recorded:
    """Record a sale at the store's till, once per (store, receipt): the goods leave the store's
    stock, and a member's purchase, points and follow-up calls follow as for an online order.

    Reported again with the same time, lines and amounts, the first record is answered
    (`duplicate`); with others, 409 `receipt_exists`. Refusals (422) change nothing.
    """
    now = now or timezone.now()
    _check_id(receipt_id, field="receipt_id")
    reference = pos_reference(store, receipt_id)
    if len(reference) > REFERENCE_LENGTH:
        raise PosRefused(
            _("This receipt id is too long for this store's code."),
            code="invalid_receipt_id",
            details={
                "receipt_id": [
                    _("At most {n} characters here.").format(n=REFERENCE_LENGTH - len(reference) + len(receipt_id))
                ]
            },
        )
    _check_count(lines)
    _check_time(sold_at, now=now, field="sold_at")
    _check_quantities(lines)
    over = {
        f"lines[{index}].amount_fen": [_("More than quantity × unit price.")]
        for index, line in enumerate(lines)
        if line.amount_fen > line.quantity * line.unit_price_fen
    }
    if over:
        raise PosRefused(
            _("A line's amount may not exceed its quantity times its unit price."),
            code="line_amount_exceeds_price",
            details=over,
        )
    lines_fen = sum(line.amount_fen for line in lines)
    if total_fen != lines_fen:
        raise PosRefused(
            _("total_fen is {total}, the lines add up to {lines}.").format(total=total_fen, lines=lines_fen),
            code="total_mismatch",
            details={"total_fen": [str(lines_fen)]},
        )
    paid_fen = total_fen if paid_fen is None else paid_fen
    if paid_fen > total_fen:
        raise PosRefused(
            _("paid_fen may not exceed total_fen."), code="paid_exceeds_total", details={"paid_fen": [str(paid_fen)]}
        )
    digest = _sale_digest(sold_at, lines, total_fen, paid_fen)

    with transaction.atomic():
        existing = PosSale.objects.filter(store=store, receipt_id=receipt_id).first()
        if existing is not None:
            return _same_sale(existing, digest)
        skus = _skus([line.sku_code for line in lines])
        unknown = {
            f"lines[{index}].sku_code": [_("No SKU has this code.")]
            for index, line in enumerate(lines)
            if line.sku_code not in skus
        }
        if unknown:
            raise PosRefused(_("Some lines name no known SKU."), code="unknown_sku", details=unknown)
        buyer = _buyer(member)
        guide = _guide(store, guide_staff_code)
        try:
            with transaction.atomic():
                sale = PosSale.objects.create(
                    store=store,
                    receipt_id=receipt_id,
                    reference=reference,
                    sold_at=sold_at,
                    member=buyer,
                    guide=guide,
                    total_fen=total_fen,
                    paid_fen=paid_fen,
                    content_digest=digest,
                    reported_by=reported_by[:100],
                )
        except IntegrityError:
            # Reported twice at once: the other report got there first (its INSERT made this one wait).
            return _same_sale(PosSale.objects.get(store=store, receipt_id=receipt_id), digest)

        shortfall = sell_at_pos(
            store=store,
            lines=[StockLine(sku=skus[line.sku_code], quantity=line.quantity) for line in lines],
            reference=reference,
            reason=_("sold at the till"),
        )
        rows = []
        for line in lines:
            sku = skus[line.sku_code]
            short = min(shortfall.get(sku.pk, 0), line.quantity)  # a SKU on several lines: the first lines first
            shortfall[sku.pk] = shortfall.get(sku.pk, 0) - short
            rows.append(
                PosSaleLine(
                    sale=sale,
                    sku=sku,
                    quantity=line.quantity,
                    unit_price_fen=line.unit_price_fen,
                    amount_fen=line.amount_fen,
                    shortfall=short,
                )
            )
        PosSaleLine.objects.bulk_create(rows)
        if buyer is not None:
            _credit_member(sale, buyer, [(skus[line.sku_code], line) for line in lines], now=now)
    return Recorded(record=sale, duplicate=False)


def _credit_member(sale: PosSale, member: Member, lines: list[tuple[SKU, SaleLine]], *, now: datetime) -> None:
    """As `orders.fulfilment._complete` does for an online order: purchase, points, follow-up windows."""
    # What was paid in money for each line: its share of the sale after what the till took otherwise.
    paid = [line.amount_fen * sale.paid_fen // sale.total_fen if sale.total_fen else 0 for _sku, line in lines]
    record_purchase(
        member=member,
        store=sale.store,
        channel=Purchase.Channel.POS,
        reference=sale.reference,
        amount_fen=sale.paid_fen,
        purchased_at=sale.sold_at,
        lines=[(sku.product_id, line.quantity, amount) for (sku, line), amount in zip(lines, paid, strict=True)],
    )
    entry = earn_points(
        member=member,
        reference=sale.reference,
        lines=[(sku.product.category_id, amount) for (sku, _line), amount in zip(lines, paid, strict=True)],
        at=now,
    )
    open_follow_ups(
        member=member,
        store=sale.store,
        reference=sale.reference,
        lines=[(sku.product_id, line.quantity) for sku, line in lines],
        at=sale.sold_at,
    )
    if entry is not None:
        sale.points_earned = entry.points
        sale.save(update_fields=["points_earned"])


# --- returns ---------------------------------------------------------------------------------------


def _same_return(record: PosReturn, digest: str) -> Recorded:
    if record.content_digest != digest:
        raise Conflict(
            _("This return was recorded at this store with other lines, time or amounts."),
            code="return_exists",
            details={"return_id": [record.return_id]},
        )
    return Recorded(record=record, duplicate=True)


def record_pos_return(
    *,
    store: Store,
    return_id: str,
    receipt_id: str,
    returned_at: datetime,
    lines: list[ReturnedLine],
    reported_by: str = "",
    now: datetime | None = None,
) -> Recorded:
    """Record goods of a sale brought back to the same store's till, once per (store, return id):
    they rejoin the store's stock, and points of the sale are reversed in proportion to the money
    given back (all of them once everything is returned).

    No more of a SKU than was sold, less what earlier returns took back, in units and in money:
    else 422 `return_exceeds_sale`.
    """
    now = now or timezone.now()
    _check_id(return_id, field="return_id")
    _check_id(receipt_id, field="receipt_id")
    _check_count(lines)
    _check_time(returned_at, now=now, field="returned_at")
    _check_quantities(lines)
    digest = _digest(
        {
            "receipt_id": receipt_id,
            "returned_at": _utc(returned_at),
            "lines": [[line.sku_code, line.quantity, line.amount_fen] for line in lines],
        }
    )

    with transaction.atomic():
        existing = PosReturn.objects.filter(store=store, return_id=return_id).first()
        if existing is not None:
            return _same_return(existing, digest)
        # Returns of one sale one at a time, so two cannot both take back its last unit.
        sale = PosSale.objects.select_for_update().filter(store=store, receipt_id=receipt_id).first()
        if sale is None:
            raise PosRefused(
                _("No sale with this receipt was recorded at this store."),
                code="receipt_not_found",
                details={"receipt_id": [receipt_id]},
            )
        if returned_at < sale.sold_at:
            raise PosRefused(
                _("returned_at is before the sale."),
                code="returned_before_sale",
                details={"returned_at": [_utc(returned_at)]},
            )
        sold: dict[str, list] = {}  # SKU code → [SKU, units left, fen left]
        for line in sale.lines.select_related("sku"):
            entry = sold.setdefault(line.sku.code, [line.sku, 0, 0])
            entry[1] += line.quantity
            entry[2] += line.amount_fen
        for sku_code, units, fen in (
            PosReturnLine.objects.filter(pos_return__sale=sale)
            .values("sku__code")
            .annotate(units=Sum("quantity"), fen=Sum("amount_fen"))
            .values_list("sku__code", "units", "fen")
        ):
            sold[sku_code][1] -= units
            sold[sku_code][2] -= fen
        not_sold = {
            f"lines[{index}].sku_code": [_("Not on this receipt.")]
            for index, line in enumerate(lines)
            if line.sku_code not in sold
        }
        if not_sold:
            raise PosRefused(
                _("Some lines were not sold on this receipt."), code="sku_not_on_receipt", details=not_sold
            )
        exceeding = {}
        for index, line in enumerate(lines):
            left = sold[line.sku_code]
            left[1] -= line.quantity
            left[2] -= line.amount_fen
            if left[1] < 0:
                exceeding[f"lines[{index}].quantity"] = [_("More than is left of the sale.")]
            if left[2] < 0:
                exceeding[f"lines[{index}].amount_fen"] = [_("More money than is left of the sale.")]
        if exceeding:
            raise PosRefused(
                _("More is returned than was sold on this receipt."), code="return_exceeds_sale", details=exceeding
            )
        try:
            with transaction.atomic():
                record = PosReturn.objects.create(
                    sale=sale,
                    store=store,
                    return_id=return_id,
                    returned_at=returned_at,
                    amount_fen=sum(line.amount_fen for line in lines),
                    content_digest=digest,
                    reported_by=reported_by[:100],
                )
        except IntegrityError:
            return _same_return(PosReturn.objects.get(store=store, return_id=return_id), digest)
        PosReturnLine.objects.bulk_create(
            [
                PosReturnLine(
                    pos_return=record, sku=sold[line.sku_code][0], quantity=line.quantity, amount_fen=line.amount_fen
                )
                for line in lines
            ]
        )
        return_stock(
            store=store,
            lines=[StockLine(sku=sold[line.sku_code][0], quantity=line.quantity) for line in lines],
            reference=sale.reference,
            reason=_("returned at the till"),
        )
        if sale.member_id is not None:
            refunded = PosReturn.objects.filter(sale=sale).aggregate(total=Sum("amount_fen"))["total"] or 0
            # Points were earned on the sale's money; returns take them back against its total.
            entry = reverse_points(
                member=sale.member, reference=sale.reference, refunded_fen=refunded, paid_fen=sale.total_fen
            )
            if entry is not None:
                record.points_reversed = -entry.points
                record.save(update_fields=["points_reversed"])
    return Recorded(record=record, duplicate=False)
