"""Every change of stock and of stock transfers.

Stock moves in two stages, as orders need it: `reserve_stock` holds units for an
order or a transfer, then `consume_reserved_stock` hands them over (or
`release_stock` gives them back). Each change is one conditional UPDATE
(`… WHERE on_hand - reserved >= n`), so concurrent buyers, the POS and the ERP can
never drive stock negative or sell a unit twice, plus an append-only StockMove
written in the same transaction. Rows are always touched in (store, SKU) order,
so two multi-line operations never deadlock each other.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.changes import stamp_sql
from inventory.models import SKU, Stock, StockMove, StockTransfer, StockTransferEvent, StockTransferLine, StorePrice
from o2o.errors import ApplicationError, Conflict
from o2o.events import publish
from stores.models import Store


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class InvalidQuantity(ApplicationError):
    code = "invalid_quantity"


@dataclass(frozen=True)
class StockLine:
    sku: SKU
    quantity: int


def _check_quantity(quantity: object, *, allow_zero: bool = False) -> int:
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < (0 if allow_zero else 1):
        raise InvalidQuantity(
            _("Quantity must be a whole number of at least %(min)d.") % {"min": 0 if allow_zero else 1},
            details={"quantity": [str(quantity)]},
        )
    return quantity


def _merged_lines(lines: Iterable[StockLine]) -> list[StockLine]:
    """Lines with one entry per SKU, in SKU order (the project's lock order)."""
    totals: dict[int, StockLine] = {}
    for line in lines:
        qty = _check_quantity(line.quantity)
        if line.sku.pk in totals:
            qty += totals[line.sku.pk].quantity
        totals[line.sku.pk] = StockLine(sku=line.sku, quantity=qty)
    if not totals:
        raise InvalidQuantity(_("At least one line is needed."), details={"lines": [_("Empty.")]})
    return [totals[pk] for pk in sorted(totals)]


class _Guard(Enum):
    """What a conditional stock change requires of the row, written in its WHERE clause."""

    NONE = ""
    AVAILABLE = "AND on_hand - reserved >= %s"  # enough unreserved units to reserve
    RESERVED = "AND reserved >= %s"  # enough reserved units to release or hand over


# The table name comes from the model, the guard from _Guard and the stamp from inventory.changes:
# no user input reaches the text.
_CHANGE_SQL = (
    f"UPDATE {Stock._meta.db_table} "  # noqa: S608
    "SET on_hand = on_hand + %s, reserved = reserved + %s, updated_at = %s, change_txid = {stamp} "
    "WHERE store_id = %s AND sku_id = %s {guard} RETURNING on_hand, reserved, low_stock_threshold"
)


def _change_row(
    *, store: Store, sku: SKU, on_hand_delta: int, reserved_delta: int, guard: _Guard, amount: int = 0
) -> tuple[int, int, int] | None:
    """One conditional UPDATE … RETURNING: the row's on hand, reserved and low-stock threshold after
    the change, or None if the guard failed.

    Django's update() cannot return the new values, and reading them back would cost
    another statement per line; the UPDATE holds the row lock until commit either way.
    """
    params = [
        on_hand_delta,
        reserved_delta,
        connection.ops.adapt_datetimefield_value(timezone.now()),
        store.pk,
        sku.pk,
    ]
    if guard is not _Guard.NONE:
        params.append(amount)
    with connection.cursor() as cursor:
        cursor.execute(_CHANGE_SQL.format(guard=guard.value, stamp=stamp_sql()), params)
        row = cursor.fetchone()
    return (row[0], row[1], row[2]) if row else None


def _move(
    *,
    store: Store,
    sku: SKU,
    kind: str,
    on_hand_delta: int,
    reserved_delta: int,
    after: tuple[int, int, int],
    actor: AbstractBaseUser | None,
    reason: str,
    reference: str,
) -> StockMove:
    """The ledger row of one change (unsaved: callers write a batch at once with `_record_moves`)."""
    move = StockMove(
        store=store,
        sku=sku,
        kind=kind,
        on_hand_delta=on_hand_delta,
        reserved_delta=reserved_delta,
        on_hand_after=after[0],
        reserved_after=after[1],
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        reason=reason[:255],
        reference=reference[:64],
    )
    move.low_stock_threshold = after[2]  # not a field: read by _record_moves to tell when stock falls low
    return move


def _record_moves(moves: list[StockMove]) -> list[StockMove]:
    """Write the ledger rows of one change and announce it in the same transaction.

    `stock.moved` once per store with the SKUs touched (the webhook outbox coalesces these per
    store), and `stock.low` for each row whose available stock fell to or below its threshold
    with this change (not for every change while it stays low).
    """
    saved = StockMove.objects.bulk_create(moves)
    touched: dict[int, set[int]] = {}
    for move in moves:
        touched.setdefault(move.store_id, set()).add(move.sku_id)
    for store_id, sku_ids in touched.items():
        publish("stock.moved", store_id=store_id, sku_ids=sorted(sku_ids))
    for move in moves:
        available = move.on_hand_after - move.reserved_after
        before = available - (move.on_hand_delta - move.reserved_delta)
        threshold = move.low_stock_threshold
        if available <= threshold < before:
            publish("stock.low", store_id=move.store_id, sku_id=move.sku_id, available=available, threshold=threshold)
    return saved


def _shortage(store: Store, line: StockLine) -> InsufficientStock:
    stock = Stock.objects.filter(store=store, sku=line.sku).first()
    available = stock.available if stock else 0
    return InsufficientStock(
        _("%(store)s has %(available)d of %(sku)s available, %(wanted)d wanted.")
        % {"store": store.name, "available": available, "sku": line.sku.code, "wanted": line.quantity},
        details={"sku": [line.sku.code], "available": [available], "wanted": [line.quantity]},
    )


@transaction.atomic
def receive_stock(
    *,
    store: Store,
    sku: SKU,
    quantity: int,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    reference: str = "",
    kind: str = StockMove.Kind.RECEIVE,
) -> StockMove:
    """Add goods that arrived at a store (a delivery from a supplier, a return to shelf)."""
    _check_quantity(quantity)
    Stock.objects.get_or_create(store=store, sku=sku)
    after = _change_row(store=store, sku=sku, on_hand_delta=quantity, reserved_delta=0, guard=_Guard.NONE)
    assert after is not None  # an unconditional change on an existing row always applies
    change = {"on_hand_delta": quantity, "reserved_delta": 0, "after": after}
    return _record_moves(
        [_move(store=store, sku=sku, kind=kind, actor=actor, reason=reason, reference=reference, **change)]
    )[0]


@transaction.atomic
def adjust_stock_count(
    *, store: Store, sku: SKU, counted: int, actor: AbstractBaseUser | None = None, reason: str = ""
) -> StockMove:
    """Set on-hand stock to what a count found; the move records the difference.

    A count below what is reserved for orders is refused: those orders would
    lose goods silently. Release or transfer first.
    """
    _check_quantity(counted, allow_zero=True)
    Stock.objects.get_or_create(store=store, sku=sku)
    stock = Stock.objects.select_for_update().get(store=store, sku=sku)
    if counted < stock.reserved:
        raise Conflict(
            _("%(counted)d counted, but %(reserved)d are reserved for orders or transfers.")
            % {"counted": counted, "reserved": stock.reserved},
            code="count_below_reserved",
            details={"counted": [counted], "reserved": [stock.reserved]},
        )
    delta = counted - stock.on_hand
    after = _change_row(store=store, sku=sku, on_hand_delta=delta, reserved_delta=0, guard=_Guard.NONE)
    assert after is not None
    change = {"on_hand_delta": delta, "reserved_delta": 0, "after": after}
    return _record_moves(
        [_move(store=store, sku=sku, kind=StockMove.Kind.COUNT, actor=actor, reason=reason, reference="", **change)]
    )[0]


def reserve_stock(
    *,
    store: Store,
    lines: Iterable[StockLine],
    reference: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
    savepoint: bool = True,
) -> list[StockMove]:
    """Hold units for an order or a transfer: all lines or none (InsufficientStock).

    `savepoint=False` is for callers whose whole transaction fails with a shortage
    anyway (checkout); a caller that tries another store after a shortage keeps it.
    """
    with transaction.atomic(savepoint=savepoint):
        moves = []
        for line in _merged_lines(lines):
            after = _change_row(
                store=store,
                sku=line.sku,
                on_hand_delta=0,
                reserved_delta=line.quantity,
                guard=_Guard.AVAILABLE,
                amount=line.quantity,
            )
            if after is None:
                raise _shortage(store, line)
            moves.append(
                _move(
                    store=store,
                    sku=line.sku,
                    kind=StockMove.Kind.RESERVE,
                    on_hand_delta=0,
                    reserved_delta=line.quantity,
                    after=after,
                    actor=actor,
                    reason=reason,
                    reference=reference,
                )
            )
        return _record_moves(moves)


def _take_reserved(
    *,
    store: Store,
    lines: Iterable[StockLine],
    reference: str,
    actor: AbstractBaseUser | None,
    reason: str,
    kind: str,
    consume: bool,
) -> list[StockMove]:
    moves = []
    for line in _merged_lines(lines):
        on_hand_delta = -line.quantity if consume else 0
        after = _change_row(
            store=store,
            sku=line.sku,
            on_hand_delta=on_hand_delta,
            reserved_delta=-line.quantity,
            guard=_Guard.RESERVED,
            amount=line.quantity,
        )
        if after is None:
            raise Conflict(
                _("Fewer than %(qty)d of %(sku)s are reserved at %(store)s.")
                % {"qty": line.quantity, "sku": line.sku.code, "store": store.name},
                code="not_reserved",
                details={"sku": [line.sku.code]},
            )
        moves.append(
            _move(
                store=store,
                sku=line.sku,
                kind=kind,
                on_hand_delta=on_hand_delta,
                reserved_delta=-line.quantity,
                after=after,
                actor=actor,
                reason=reason,
                reference=reference,
            )
        )
    return _record_moves(moves)


@transaction.atomic
def release_stock(
    *,
    store: Store,
    lines: Iterable[StockLine],
    reference: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
) -> list[StockMove]:
    """Give reserved units back to sale (an order cancelled or expired, a transfer cancelled)."""
    return _take_reserved(
        store=store,
        lines=lines,
        reference=reference,
        actor=actor,
        reason=reason,
        kind=StockMove.Kind.RELEASE,
        consume=False,
    )


@transaction.atomic
def consume_reserved_stock(
    *,
    store: Store,
    lines: Iterable[StockLine],
    reference: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
) -> list[StockMove]:
    """Hand reserved units over (picked up, delivered): they leave on-hand and reserved together."""
    return _take_reserved(
        store=store,
        lines=lines,
        reference=reference,
        actor=actor,
        reason=reason,
        kind=StockMove.Kind.CONSUME,
        consume=True,
    )


# --- Stock transfers ------------------------------------------------------------------------


def _transfer_lines(transfer: StockTransfer) -> list[StockLine]:
    return [StockLine(sku=line.sku, quantity=line.quantity) for line in transfer.lines.select_related("sku")]


def _record_transfer_event(
    transfer: StockTransfer, *, from_status: str, actor: AbstractBaseUser | None, reason: str
) -> None:
    StockTransferEvent.objects.create(
        transfer=transfer,
        from_status=from_status,
        to_status=transfer.status,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        reason=reason[:255],
    )


@transaction.atomic
def request_transfer(
    *,
    from_store: Store,
    to_store: Store,
    lines: Iterable[StockLine],
    actor: AbstractBaseUser | None = None,
    reference: str = "",
    note: str = "",
    hold_reference: str = "",
) -> StockTransfer:
    """Ask one store to send goods to another; the goods are reserved at the source at once.

    With `hold_reference` (an order's), the goods arrive reserved for it at the destination.
    """
    if from_store.pk == to_store.pk:
        raise ApplicationError(
            _("A transfer needs two different stores."), code="same_store", details={"to_store": [to_store.code]}
        )
    merged = _merged_lines(lines)
    transfer = StockTransfer.objects.create(
        from_store=from_store,
        to_store=to_store,
        reference=reference[:64],
        note=note[:255],
        hold_reference=hold_reference[:64],
        requested_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    StockTransferLine.objects.bulk_create(
        [StockTransferLine(transfer=transfer, sku=line.sku, quantity=line.quantity) for line in merged]
    )
    reserve_stock(store=from_store, lines=merged, reference=f"transfer:{transfer.pk}", actor=actor, reason=note)
    _record_transfer_event(transfer, from_status="", actor=actor, reason=note)
    publish("transfer.requested", transfer_id=transfer.pk)
    return transfer


def _move_transfer(
    transfer: StockTransfer, target: str, *, actor: AbstractBaseUser | None, reason: str
) -> tuple[StockTransfer, str]:
    """Lock the transfer, check the state table, and set the new state with its timestamp."""
    locked = StockTransfer.objects.select_for_update().get(pk=transfer.pk)
    source = locked.status
    StockTransfer.MACHINE.check(source, target)
    locked.status = target
    stamp_field = {
        StockTransfer.Status.SHIPPED: "shipped_at",
        StockTransfer.Status.RECEIVED: "received_at",
        StockTransfer.Status.CANCELLED: "cancelled_at",
    }[target]
    setattr(locked, stamp_field, timezone.now())
    locked.save(update_fields=["status", stamp_field])
    _record_transfer_event(locked, from_status=source, actor=actor, reason=reason)
    return locked, source


@transaction.atomic
def ship_transfer(*, transfer: StockTransfer, actor: AbstractBaseUser | None = None, reason: str = "") -> StockTransfer:
    """The source store sends the goods: they leave its on-hand stock (and its reservation)."""
    locked, _source = _move_transfer(transfer, StockTransfer.Status.SHIPPED, actor=actor, reason=reason)
    _take_reserved(
        store=locked.from_store,
        lines=_transfer_lines(locked),
        reference=f"transfer:{locked.pk}",
        actor=actor,
        reason=reason,
        kind=StockMove.Kind.TRANSFER_OUT,
        consume=True,
    )
    return locked


@transaction.atomic
def receive_transfer(
    *, transfer: StockTransfer, actor: AbstractBaseUser | None = None, reason: str = ""
) -> StockTransfer:
    """The destination store takes the goods in: they join its on-hand stock.

    A transfer held for an order reserves them at once, under the order's reference,
    so nobody else can sell them on the way from the door to the order.
    """
    locked, _source = _move_transfer(transfer, StockTransfer.Status.RECEIVED, actor=actor, reason=reason)
    lines = _transfer_lines(locked)
    for line in lines:
        receive_stock(
            store=locked.to_store,
            sku=line.sku,
            quantity=line.quantity,
            actor=actor,
            reason=reason,
            reference=f"transfer:{locked.pk}",
            kind=StockMove.Kind.TRANSFER_IN,
        )
    if locked.hold_reference:
        reserve_stock(
            store=locked.to_store,
            lines=lines,
            reference=locked.hold_reference,
            actor=actor,
            reason=reason,
            savepoint=False,
        )
    return locked


@transaction.atomic
def stop_holding_transfer(*, hold_reference: str, actor: AbstractBaseUser | None = None, reason: str = "") -> int:
    """The order a transfer was for is gone: cancel its transfers not yet shipped, and let shipped ones
    arrive as ordinary stock. Returns how many transfers were touched."""
    touched = 0
    for transfer in StockTransfer.objects.filter(
        hold_reference=hold_reference, status__in=[StockTransfer.Status.REQUESTED, StockTransfer.Status.SHIPPED]
    ).order_by("pk"):
        if transfer.status == StockTransfer.Status.REQUESTED:
            cancel_transfer(transfer=transfer, actor=actor, reason=reason)
        StockTransfer.objects.filter(pk=transfer.pk).update(hold_reference="")
        touched += 1
    return touched


@transaction.atomic
def return_stock(
    *,
    store: Store,
    lines: Iterable[StockLine],
    reference: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
) -> list[StockMove]:
    """Goods a customer brought back join the store's on-hand stock again."""
    return [
        receive_stock(
            store=store,
            sku=line.sku,
            quantity=line.quantity,
            actor=actor,
            reason=reason,
            reference=reference,
            kind=StockMove.Kind.RETURN,
        )
        for line in _merged_lines(lines)
    ]


@transaction.atomic
def sell_at_pos(
    *,
    store: Store,
    lines: Iterable[StockLine],
    reference: str,
    actor: AbstractBaseUser | None = None,
    reason: str = "",
) -> dict[int, int]:
    """Take goods sold at the store's till out of its on-hand stock; returns, per SKU id, the units
    that could not be taken (the shortfall).

    The sale has happened and is never refused. Only available units are taken (on hand, not
    reserved): what is reserved was promised to orders and transfers, and a till sale must not
    take it from them silently (a count below reserved is refused for the same reason). Units
    beyond what is available are the shortfall: the stock record was behind the shelf, and the
    stock team counts. Rows are locked in SKU order, as every stock change does.
    """
    merged = _merged_lines(lines)
    rows = {
        stock.sku_id: stock
        for stock in Stock.objects.select_for_update()
        .filter(store=store, sku_id__in=[line.sku.pk for line in merged])
        .order_by("sku_id")
    }
    moves, shortfall = [], {}
    for line in merged:
        stock = rows.get(line.sku.pk)
        taken = min(line.quantity, max(stock.on_hand - stock.reserved, 0)) if stock else 0
        shortfall[line.sku.pk] = line.quantity - taken
        if not taken:
            continue
        after = _change_row(
            store=store, sku=line.sku, on_hand_delta=-taken, reserved_delta=0, guard=_Guard.AVAILABLE, amount=taken
        )
        assert after is not None  # the row is locked and had `taken` available
        moves.append(
            _move(
                store=store,
                sku=line.sku,
                kind=StockMove.Kind.POS_SALE,
                on_hand_delta=-taken,
                reserved_delta=0,
                after=after,
                actor=actor,
                reason=reason,
                reference=reference,
            )
        )
    _record_moves(moves)
    return shortfall


@transaction.atomic
def cancel_transfer(
    *, transfer: StockTransfer, actor: AbstractBaseUser | None = None, reason: str = ""
) -> StockTransfer:
    """Call off a transfer that has not shipped; its reserved goods return to sale at the source."""
    locked, _source = _move_transfer(transfer, StockTransfer.Status.CANCELLED, actor=actor, reason=reason)
    release_stock(
        store=locked.from_store,
        lines=_transfer_lines(locked),
        reference=f"transfer:{locked.pk}",
        actor=actor,
        reason=reason,
    )
    return locked


@transaction.atomic
def set_store_price(*, store: Store, sku: SKU, price_fen: int | None) -> None:
    """Set a store's own price for a SKU; None removes it, so HQ's price applies again."""
    if price_fen is None:
        StorePrice.objects.filter(store=store, sku=sku).delete()
        return
    if not isinstance(price_fen, int) or isinstance(price_fen, bool) or price_fen < 0:
        raise ApplicationError(
            _("A price is a whole number of fen, zero or more."),
            code="invalid_price",
            details={"price_fen": [str(price_fen)]},
        )
    StorePrice.objects.update_or_create(store=store, sku=sku, defaults={"price_fen": price_fen})
