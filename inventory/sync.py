"""What the ERP pushes into the catalog and the stock: bulk products, prices, stock snapshots and deltas.

Each function takes a whole batch, answers item by item, and reads what it needs in a fixed
number of queries (one per kind of row, never one per item), then writes with bulk
statements. A rejected item changes nothing; with `all_or_nothing` one rejected item means
nothing at all is written. Stock rows are locked in (store, SKU) order, as everywhere in
inventory.services, and every change of on-hand writes its StockMove.

The stock rules (why a snapshot adds back what was sold online after it was counted, why an
older snapshot is ignored) are in docs/inventory.md, "ERP snapshots".
"""

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from inventory.changes import stamp_sql
from inventory.models import SKU, Category, Product, Stock, StockMove, StorePrice
from o2o.errors import ApplicationError, Conflict
from o2o.events import publish
from stores.models import Store

# Clocks differ: a time up to this far ahead of ours is taken as "now", not refused.
CLOCK_SKEW = timedelta(minutes=5)
# The advisory lock that makes catalog batches run one at a time on PostgreSQL (see upsert_products).
_CATALOG_LOCK = 7_302_114_001


class Result:
    """What happened to one item of a batch."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REMOVED = "removed"
    REJECTED = "rejected"
    # stock
    APPLIED = "applied"
    STALE = "stale"
    STALE_EXPECTED = "stale_expected"
    CONFLICT_RESERVED = "conflict_reserved"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


@dataclass
class ItemResult:
    """The answer for one item of a catalog or price batch."""

    index: int
    code: str
    result: str
    reason: Reason | None = None


@dataclass(frozen=True)
class Rejected:
    """An item the caller could not even read (a missing field, a wrong type): answered, never written."""

    index: int
    code: str
    reason: Reason


@dataclass
class BatchOutcome:
    results: list[ItemResult]
    written: bool

    @property
    def rejected(self) -> int:
        return sum(1 for r in self.results if r.result == Result.REJECTED)


def _reject(index: int, code: str, reason_code: str, message: str) -> ItemResult:
    return ItemResult(index=index, code=code, result=Result.REJECTED, reason=Reason(reason_code, message))


def _counts_of(values) -> Counter:
    return Counter(v for v in values if v is not None)


# --- catalog -------------------------------------------------------------------------------------


class _Unset:
    """A field the ERP left out: kept as it is on an update, the default on a create."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class SkuInput:
    code: str
    price_fen: int
    spec: str = UNSET
    barcode: str | None = UNSET  # None clears it
    is_active: bool = UNSET


@dataclass(frozen=True)
class ProductInput:
    index: int
    code: str
    name: str
    category_code: str
    brand: str = UNSET
    description: str = UNSET
    is_active: bool = UNSET
    skus: tuple[SkuInput, ...] = ()


@dataclass
class _Plan:
    new_products: list[Product] = field(default_factory=list)
    changed_products: list[Product] = field(default_factory=list)
    # SKUs of new products wait for their product's id: (product, sku) pairs
    new_skus: list[tuple[Product, SKU]] = field(default_factory=list)
    changed_skus: list[SKU] = field(default_factory=list)


def _apply_fields(obj, values: dict[str, Any]) -> bool:
    """Set the given (not UNSET) fields; True if any value differs."""
    changed = False
    for name, value in values.items():
        if value is UNSET:
            continue
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def upsert_products(*, items: Sequence[ProductInput | Rejected], all_or_nothing: bool = False) -> BatchOutcome:
    """Create or update products and their SKUs from the ERP, item by item.

    A product is matched by its code, a SKU by its code within that product. Fields left out
    are kept (on a new row: empty, no barcode, active). SKUs the item does not list are left
    alone: a SKU that was sold stays, the ERP retires it with `active: false`. An item is
    rejected when its category is unknown, its code or one of its SKU codes appears twice in
    the batch, a SKU code belongs to another product, or a barcode is another SKU's.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Two batches creating the same new code would collide on the unique index; one at a time.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CATALOG_LOCK])
        valid = [item for item in items if isinstance(item, ProductInput)]
        results: dict[int, ItemResult] = {
            item.index: ItemResult(item.index, item.code, Result.REJECTED, item.reason)
            for item in items
            if isinstance(item, Rejected)
        }

        product_codes = _counts_of(item.code for item in valid)
        sku_codes = _counts_of(sku.code for item in valid for sku in item.skus)
        barcodes = _counts_of(
            sku.barcode for item in valid for sku in item.skus if sku.barcode is not UNSET and sku.barcode
        )
        categories = {c.code: c for c in Category.objects.filter(code__in={item.category_code for item in valid})}
        products = {p.code: p for p in Product.objects.filter(code__in=list(product_codes))}
        skus = {s.code: s for s in SKU.objects.filter(code__in=list(sku_codes))}
        barcode_owner = dict(SKU.objects.filter(barcode__in=list(barcodes)).values_list("barcode", "code"))

        plan = _Plan()
        for item in valid:
            reason = _catalog_refusal(
                item, product_codes, sku_codes, barcodes, barcode_owner, categories, products, skus
            )
            if reason is not None:
                results[item.index] = ItemResult(item.index, item.code, Result.REJECTED, reason)
                continue
            results[item.index] = _plan_product(item, plan, categories[item.category_code], products, skus)

        ordered = [results[index] for index in sorted(results)]
        if all_or_nothing and any(r.result == Result.REJECTED for r in ordered):
            return BatchOutcome(ordered, written=False)
        try:
            _write_catalog(plan)
        except IntegrityError:
            raise Conflict(
                _("The catalog changed while this batch was written; send it again."), code="catalog_conflict"
            ) from None
        return BatchOutcome(ordered, written=True)


def _catalog_refusal(item, product_codes, sku_codes, barcodes, barcode_owner, categories, products, skus):
    if product_codes[item.code] > 1:
        return Reason("duplicate_item", _("This product code appears more than once in the batch."))
    if item.category_code not in categories:
        return Reason("category_not_found", _("No category has the code {code}.").format(code=item.category_code))
    product = products.get(item.code)
    for sku in item.skus:
        if sku_codes[sku.code] > 1:
            return Reason("duplicate_sku", _("SKU {code} appears more than once in the batch.").format(code=sku.code))
        existing = skus.get(sku.code)
        if existing is not None and (product is None or existing.product_id != product.pk):
            return Reason("sku_of_other_product", _("SKU {code} belongs to another product.").format(code=sku.code))
        if sku.barcode is not UNSET and sku.barcode:
            if barcodes[sku.barcode] > 1:
                return Reason(
                    "duplicate_barcode",
                    _("Barcode {barcode} appears more than once in the batch.").format(barcode=sku.barcode),
                )
            owner = barcode_owner.get(sku.barcode)
            if owner is not None and owner != sku.code:
                return Reason(
                    "barcode_taken",
                    _("Barcode {barcode} is SKU {owner}'s.").format(barcode=sku.barcode, owner=owner),
                )
    return None


def _plan_product(item: ProductInput, plan: _Plan, category: Category, products, skus) -> ItemResult:
    now = timezone.now()
    product = products.get(item.code)
    created = product is None
    fields = {
        "name": item.name,
        "category_id": category.pk,
        "brand": item.brand,
        "description": item.description,
        "is_active": item.is_active,
    }
    if created:
        product = Product(code=item.code, category=category, brand="", description="", is_active=True)
        _apply_fields(product, fields)
        plan.new_products.append(product)
        changed = True
    else:
        changed = _apply_fields(product, fields)
        if changed:
            product.updated_at = now
            plan.changed_products.append(product)
    for entry in item.skus:
        values = {
            "spec": entry.spec,
            "barcode": entry.barcode,
            "price_fen": entry.price_fen,
            "is_active": entry.is_active,
        }
        sku = skus.get(entry.code)
        if sku is None:
            sku = SKU(code=entry.code, spec="", barcode=None, is_active=True)
            _apply_fields(sku, values)
            plan.new_skus.append((product, sku))
            changed = True
        elif _apply_fields(sku, values):
            sku.updated_at = now
            plan.changed_skus.append(sku)
            changed = True
    result = Result.CREATED if created else Result.UPDATED if changed else Result.UNCHANGED
    return ItemResult(item.index, item.code, result)


def _write_catalog(plan: _Plan) -> None:
    Product.objects.bulk_create(plan.new_products)
    if plan.changed_products:
        Product.objects.bulk_update(
            plan.changed_products, ["name", "category", "brand", "description", "is_active", "updated_at"]
        )
    if plan.changed_skus:
        SKU.objects.bulk_update(plan.changed_skus, ["spec", "barcode", "price_fen", "is_active", "updated_at"])
    new_skus = []
    for product, sku in plan.new_skus:
        sku.product = product  # now with its id
        new_skus.append(sku)
    SKU.objects.bulk_create(new_skus)


# --- prices --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceInput:
    index: int
    sku_code: str
    store_code: str | None  # None: HQ's price
    price_fen: int | None  # None: remove the store's own price


def set_prices(
    *,
    items: Sequence[PriceInput | Rejected],
    stores: QuerySet[Store],
    may_set_hq_price: bool,
    all_or_nothing: bool = False,
) -> BatchOutcome:
    """Set HQ prices and stores' own prices, item by item; the mall reads them on its next page.

    `stores` are the stores the caller may touch: any other store code is answered
    `store_not_found`, as one that does not exist. HQ's price (no store) needs
    `may_set_hq_price` and cannot be removed. A store price of null removes the store's own
    price, so HQ's applies there again.
    """
    with transaction.atomic():
        valid = [item for item in items if isinstance(item, PriceInput)]
        results: dict[int, ItemResult] = {
            item.index: ItemResult(item.index, item.code, Result.REJECTED, item.reason)
            for item in items
            if isinstance(item, Rejected)
        }
        keys = Counter((item.sku_code, item.store_code) for item in valid)
        skus = {s.code: s for s in SKU.objects.filter(code__in={item.sku_code for item in valid})}
        store_codes = {item.store_code for item in valid if item.store_code is not None}
        visible = {s.code: s for s in stores.filter(code__in=store_codes)} if store_codes else {}
        pairs = [
            (visible[i.store_code].pk, skus[i.sku_code].pk)
            for i in valid
            if i.store_code in visible and i.sku_code in skus
        ]
        current: dict[tuple[int, int], StorePrice] = {}
        if pairs:
            match = Q()
            for store_id, sku_id in pairs:
                match |= Q(store_id=store_id, sku_id=sku_id)
            current = {(p.store_id, p.sku_id): p for p in StorePrice.objects.filter(match)}

        hq_changes: dict[int, SKU] = {}
        upserts: list[StorePrice] = []
        removals: list[int] = []
        now = timezone.now()
        for item in valid:
            reason = _price_refusal(item, keys, skus, visible, may_set_hq_price)
            if reason is not None:
                results[item.index] = ItemResult(item.index, item.sku_code, Result.REJECTED, reason)
                continue
            sku = skus[item.sku_code]
            if item.store_code is None:
                result = Result.UNCHANGED if sku.price_fen == item.price_fen else Result.UPDATED
                if result == Result.UPDATED:
                    sku.price_fen, sku.updated_at = item.price_fen, now
                    hq_changes[sku.pk] = sku
            else:
                store = visible[item.store_code]
                existing = current.get((store.pk, sku.pk))
                if item.price_fen is None:
                    result = Result.UNCHANGED if existing is None else Result.REMOVED
                    if existing is not None:
                        removals.append(existing.pk)
                elif existing is not None and existing.price_fen == item.price_fen:
                    result = Result.UNCHANGED
                else:
                    result = Result.CREATED if existing is None else Result.UPDATED
                    upserts.append(StorePrice(store=store, sku=sku, price_fen=item.price_fen, updated_at=now))
            results[item.index] = ItemResult(item.index, item.sku_code, result)

        ordered = [results[index] for index in sorted(results)]
        if all_or_nothing and any(r.result == Result.REJECTED for r in ordered):
            return BatchOutcome(ordered, written=False)
        if hq_changes:
            SKU.objects.bulk_update(list(hq_changes.values()), ["price_fen", "updated_at"])
        if upserts:
            # One statement; a store price another call created meanwhile is overwritten, not a 500.
            StorePrice.objects.bulk_create(
                upserts,
                update_conflicts=True,
                unique_fields=["store", "sku"],
                update_fields=["price_fen", "updated_at"],
            )
        if removals:
            StorePrice.objects.filter(pk__in=removals).delete()
        return BatchOutcome(ordered, written=True)


def _price_refusal(item: PriceInput, keys, skus, visible, may_set_hq_price) -> Reason | None:
    if keys[(item.sku_code, item.store_code)] > 1:
        return Reason("duplicate_item", _("This SKU and store appear more than once in the batch."))
    if item.store_code is None:
        if not may_set_hq_price:
            return Reason("store_restricted", _("A client restricted to stores may not set HQ's price."))
        if item.price_fen is None:
            return Reason("invalid_price", _("HQ's price cannot be removed; give a price."))
    elif item.store_code not in visible:
        return Reason("store_not_found", _("No such store."))
    if item.sku_code not in skus:
        return Reason("sku_not_found", _("No SKU has the code {code}.").format(code=item.sku_code))
    return None


# --- stock: common -------------------------------------------------------------------------------


@dataclass
class StockRowResult:
    """The answer for one row of a stock snapshot or one delta."""

    index: int
    sku_code: str
    result: str
    on_hand: int | None = None
    reserved: int | None = None
    delta: int = 0
    shortfall: int = 0
    reason: Reason | None = None

    @property
    def available(self) -> int | None:
        return None if self.on_hand is None else self.on_hand - self.reserved


def _check_time(value: datetime, name: str) -> datetime:
    if timezone.is_naive(value):
        raise ApplicationError(_("Give the time with its offset."), code="invalid", details={name: [str(value)]})
    if value > timezone.now() + CLOCK_SKEW:
        raise ApplicationError(
            _("{name} is in the future.").format(name=name), code="time_in_future", details={name: [value.isoformat()]}
        )
    return value


@dataclass
class _LockedRow:
    """A stock row held FOR UPDATE until the transaction ends (plain values: thousands are read at once)."""

    pk: int
    sku_id: int
    on_hand: int
    reserved: int
    synced_at: datetime | None


def _resolve_skus(store: Store, codes) -> tuple[dict[str, int], set[int]]:
    """SKU ids by code, and the ids the store already has a stock row for, in one query."""
    held = Stock.objects.filter(store=store, sku=OuterRef("pk"))
    rows = SKU.objects.filter(code__in=set(codes)).annotate(held=Exists(held)).values_list("code", "pk", "held")
    ids, existing = {}, set()
    for code, pk, has_row in rows:
        ids[code] = pk
        if has_row:
            existing.add(pk)
    return ids, existing


def _locked_rows(store: Store, sku_ids: set[int], existing: set[int]) -> dict[int, _LockedRow]:
    """The store's stock rows of these SKUs, created if missing, locked in SKU order (the project's order).

    Missing rows are inserted in SKU order first, so two calls creating the same rows wait
    for each other at the first one instead of deadlocking.
    """
    if not sku_ids:
        return {}
    missing = sorted(sku_ids - existing)
    if missing:
        Stock.objects.bulk_create([Stock(store=store, sku_id=sku_id) for sku_id in missing], ignore_conflicts=True)
    rows = (
        Stock.objects.select_for_update()
        .filter(store=store, sku_id__in=sku_ids)
        .order_by("sku_id")
        .values_list("pk", "sku_id", "on_hand", "reserved", "synced_at")
    )
    return {row[1]: _LockedRow(*row) for row in rows}


def _update_rows(changes: dict[int, int], *, synced_at: datetime | None = None) -> dict[int, tuple[int, int]]:
    """Add each delta to its (locked) row's on-hand in one statement; the rows' values after, by row id.

    A row whose delta is zero keeps its change stamp (readers of changes are not told of it);
    `synced_at`, when given, is written to every row named.
    """
    if not changes:
        return {}
    table = Stock._meta.db_table
    values = ", ".join(["(%s, %s)"] * len(changes))
    params: list[Any] = [value for pair in changes.items() for value in pair]
    synced = ", synced_at = %s" if synced_at is not None else ""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    head = [now]
    if synced_at is not None:
        head.append(connection.ops.adapt_datetimefield_value(synced_at))
    # Portable between PostgreSQL and SQLite: VALUES columns are column1, column2 in both.
    sql = (
        f"UPDATE {table} SET on_hand = {table}.on_hand + v.column2, updated_at = %s{synced}, "  # noqa: S608
        f"change_txid = CASE WHEN v.column2 <> 0 THEN {stamp_sql()} ELSE {table}.change_txid END "
        f"FROM (VALUES {values}) AS v WHERE {table}.id = v.column1 "
        f"RETURNING {table}.id, {table}.on_hand, {table}.reserved"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, head + params)
        return {row_id: (on_hand, reserved) for row_id, on_hand, reserved in cursor.fetchall()}


@dataclass(frozen=True)
class _NewMove:
    """A ledger row to write; reserved is never changed by the ERP, so its delta is 0."""

    sku_id: int
    kind: str
    on_hand_delta: int
    on_hand_after: int
    reserved_after: int
    reason: str
    reference: str
    occurred_at: datetime | None


_MOVE_COLUMNS = (
    "store_id, sku_id, kind, on_hand_delta, reserved_delta, on_hand_after, reserved_after, reason, reference, "
    "actor_id, created_at, occurred_at"
)


def _insert_moves(store: Store, moves: list[_NewMove], *, actor: AbstractBaseUser | None) -> None:
    """Write the moves in one INSERT per thousand: thousands of model instances would cost more than the database.

    Append-only like every StockMove: rows are only ever inserted.
    """
    if not moves:
        return
    adapt = connection.ops.adapt_datetimefield_value
    now = adapt(timezone.now())
    actor_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    table = StockMove._meta.db_table
    with connection.cursor() as cursor:
        for first in range(0, len(moves), 1000):
            chunk = moves[first : first + 1000]
            values = ", ".join(["(%s, %s, %s, %s, 0, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            params: list[Any] = []
            for move in chunk:
                params += [
                    store.pk,
                    move.sku_id,
                    move.kind,
                    move.on_hand_delta,
                    move.on_hand_after,
                    move.reserved_after,
                    move.reason[:255],
                    move.reference[:64],
                    actor_id,
                    now,
                    adapt(move.occurred_at) if move.occurred_at is not None else None,
                ]
            cursor.execute(f"INSERT INTO {table} ({_MOVE_COLUMNS}) VALUES {values}", params)  # noqa: S608
    # As every stock change does: the webhook outbox turns this into one stock.changed per store.
    publish("stock.moved", store_id=store.pk, sku_ids=sorted({move.sku_id for move in moves}))


# --- stock snapshots -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotRow:
    index: int
    sku_code: str
    on_hand: int
    expected_on_hand: int | None = None


def unseen_moves(*, store: Store, sku_ids: set[int], since: datetime) -> dict[int, int]:
    """On-hand changes at a store after `since` that an ERP count taken then cannot include, by SKU.

    Every move but the snapshots themselves: online handovers, transfers, returns, receipts
    and counts made here, and the ERP's own deltas that happened (by their `occurred_at`)
    after the count. A move is recorded after it happens, so `created_at > since` narrows
    the scan without losing any.
    """
    rows = (
        StockMove.objects.filter(store=store, created_at__gt=since)
        .exclude(kind=StockMove.Kind.ERP_SNAPSHOT)
        .annotate(at=Coalesce("occurred_at", "created_at"))
        .filter(at__gt=since)
        .values("sku_id")
        .annotate(total=Sum("on_hand_delta"))
        .order_by()
    )
    return {row["sku_id"]: row["total"] for row in rows if row["sku_id"] in sku_ids and row["total"]}


def apply_stock_snapshot(
    *,
    store: Store,
    taken_at: datetime,
    rows: Sequence[SnapshotRow],
    actor: AbstractBaseUser | None = None,
) -> list[StockRowResult]:
    """Set a store's on-hand counts to what the ERP counted at `taken_at`, row by row.

    A row is `stale` (nothing changes) when the SKU already has a snapshot taken at or after
    `taken_at`. Otherwise on-hand becomes the ERP's count plus the on-hand changes recorded
    here after `taken_at` (`unseen_moves`: goods handed over online since are gone, goods
    received since are there). Reserved stock is never touched: if the result would fall
    below it, on-hand stops at reserved and the row says `conflict_reserved` with the
    shortfall. With `expected_on_hand`, a row whose on-hand is not that any more is refused
    (`stale_expected`). Each change writes an `erp_snapshot` move with its delta.
    """
    _check_time(taken_at, "taken_at")
    results: dict[int, StockRowResult] = {}
    # Messages translated once, not once per row: a snapshot has thousands.
    stale_text = _("A snapshot taken at {at} is already applied.")
    expected_text = _("On hand is {current}, not {expected}.")
    reserved_text = _("{shortfall} fewer than reserved for orders: on hand stops at reserved.")
    with transaction.atomic():
        ids, existing = _resolve_skus(store, (row.sku_code for row in rows))
        counts = Counter(row.sku_code for row in rows)
        accepted: list[SnapshotRow] = []
        for row in rows:
            if counts[row.sku_code] > 1:
                results[row.index] = _stock_reject(row, "duplicate_sku", _("This SKU appears more than once."))
            elif row.sku_code not in ids:
                results[row.index] = _stock_reject(row, "sku_not_found", _("No SKU has this code."))
            else:
                accepted.append(row)
        locked = _locked_rows(store, {ids[row.sku_code] for row in accepted}, existing)
        unseen = unseen_moves(store=store, sku_ids=set(locked), since=taken_at) if locked else {}

        deltas: dict[int, int] = {}
        planned: list[tuple[SnapshotRow, _LockedRow, int]] = []
        for row in accepted:
            stock = locked[ids[row.sku_code]]
            if stock.synced_at is not None and taken_at <= stock.synced_at:
                reason = Reason("stale", stale_text.format(at=stock.synced_at.isoformat()))
                results[row.index] = StockRowResult(
                    row.index, row.sku_code, Result.STALE, stock.on_hand, stock.reserved, reason=reason
                )
                continue
            if row.expected_on_hand is not None and stock.on_hand != row.expected_on_hand:
                message = expected_text.format(current=stock.on_hand, expected=row.expected_on_hand)
                results[row.index] = StockRowResult(
                    row.index,
                    row.sku_code,
                    Result.STALE_EXPECTED,
                    stock.on_hand,
                    stock.reserved,
                    reason=Reason("stale_expected", message),
                )
                continue
            target = row.on_hand + unseen.get(stock.sku_id, 0)
            shortfall = max(stock.reserved - target, 0)
            deltas[stock.pk] = max(target, stock.reserved) - stock.on_hand
            planned.append((row, stock, shortfall))

        after = _update_rows(deltas, synced_at=taken_at)
        moves = []
        reference = f"snapshot:{taken_at.isoformat()}"[:64]
        for row, stock, shortfall in planned:
            on_hand, reserved = after[stock.pk]
            delta = deltas[stock.pk]
            if shortfall:
                result = Result.CONFLICT_RESERVED
                reason = Reason("conflict_reserved", reserved_text.format(shortfall=shortfall))
            else:
                result, reason = (Result.APPLIED if delta else Result.UNCHANGED), None
            results[row.index] = StockRowResult(
                row.index, row.sku_code, result, on_hand, reserved, delta, shortfall, reason
            )
            if delta:
                moves.append(
                    _NewMove(
                        sku_id=stock.sku_id,
                        kind=StockMove.Kind.ERP_SNAPSHOT,
                        on_hand_delta=delta,
                        on_hand_after=on_hand,
                        reserved_after=reserved,
                        reason=f"ERP count {row.on_hand}",
                        reference=reference,
                        occurred_at=taken_at,
                    )
                )
        _insert_moves(store, moves, actor=actor)
    return [results[index] for index in sorted(results)]


def _stock_reject(row, code: str, message: str) -> StockRowResult:
    return StockRowResult(row.index, row.sku_code, Result.REJECTED, reason=Reason(code, message))


# --- stock deltas --------------------------------------------------------------------------------


class DeltaKind:
    RECEIVED = "received"
    SOLD = "sold"
    COUNTED = "counted"

    MOVE_KIND = {
        RECEIVED: StockMove.Kind.ERP_RECEIVE,
        SOLD: StockMove.Kind.ERP_SALE,
        COUNTED: StockMove.Kind.ERP_COUNT,
    }
    # On-hand change per unit of `quantity`: a sale of 2 takes 2 away.
    SIGN = {RECEIVED: 1, SOLD: -1, COUNTED: 1}


@dataclass(frozen=True)
class DeltaRow:
    index: int
    sku_code: str
    kind: str
    quantity: int
    reference: str
    occurred_at: datetime | None = None


def apply_stock_deltas(
    *, store: Store, deltas: Sequence[DeltaRow], actor: AbstractBaseUser | None = None
) -> list[StockRowResult]:
    """Apply what the ERP reports happened at a store: goods received, sold at the POS, or a count's correction.

    `quantity` is signed: received −3 went back to the supplier, sold −1 came back at the till,
    counted −2 were missing. Each delta is applied once per (store, SKU, reference): sent again,
    it is answered `duplicate` and changes nothing. A delta that happened at or before the
    SKU's last snapshot is already in that count (`stale`). A decrease never takes reserved
    units: on-hand stops at reserved (`conflict_reserved`, with the shortfall), and the move is
    recorded with what was applied, so the ERP can see it and is not asked to send it again.
    """
    now = timezone.now()
    results: dict[int, StockRowResult] = {}
    with transaction.atomic():
        ids, existing = _resolve_skus(store, (d.sku_code for d in deltas))
        accepted = []
        for delta in deltas:
            refusal = _delta_refusal(delta, ids, now)
            if refusal is not None:
                results[delta.index] = _stock_reject(delta, *refusal)
            else:
                accepted.append(delta)
        locked = _locked_rows(store, {ids[d.sku_code] for d in accepted}, existing)
        # Read after the rows are locked: a concurrent call with the same reference has committed by now.
        done = set(
            StockMove.objects.filter(
                store=store,
                sku_id__in=list(locked),
                kind__in=StockMove.ERP_DELTA_KINDS,
                reference__in={d.reference for d in accepted},
            ).values_list("sku_id", "reference")
        )
        state = {sku_id: [row.on_hand, row.reserved] for sku_id, row in locked.items()}
        net: dict[int, int] = defaultdict(int)
        moves = []
        for delta in accepted:
            sku_id = ids[delta.sku_code]
            stock = locked[sku_id]
            on_hand, reserved = state[sku_id]
            if (sku_id, delta.reference) in done:
                results[delta.index] = StockRowResult(
                    delta.index,
                    delta.sku_code,
                    Result.DUPLICATE,
                    on_hand,
                    reserved,
                    reason=Reason("duplicate", _("A delta with this reference was already applied.")),
                )
                continue
            occurred_at = delta.occurred_at or now
            if stock.synced_at is not None and occurred_at <= stock.synced_at:
                results[delta.index] = StockRowResult(
                    delta.index,
                    delta.sku_code,
                    Result.STALE,
                    on_hand,
                    reserved,
                    reason=Reason(
                        "stale",
                        _("The snapshot taken at {at} already counts it.").format(at=stock.synced_at.isoformat()),
                    ),
                )
                continue
            wanted = DeltaKind.SIGN[delta.kind] * delta.quantity
            applied = max(wanted, reserved - on_hand)
            shortfall = applied - wanted
            state[sku_id][0] = on_hand + applied
            net[stock.pk] += applied
            done.add((sku_id, delta.reference))
            if shortfall:
                result = Result.CONFLICT_RESERVED
                reason = Reason(
                    "conflict_reserved",
                    _("{shortfall} of these units are reserved for orders: on hand stops at reserved.").format(
                        shortfall=shortfall
                    ),
                )
            else:
                result, reason = Result.APPLIED, None
            results[delta.index] = StockRowResult(
                delta.index, delta.sku_code, result, on_hand + applied, reserved, applied, shortfall, reason
            )
            moves.append(
                _NewMove(
                    sku_id=sku_id,
                    kind=DeltaKind.MOVE_KIND[delta.kind],
                    on_hand_delta=applied,
                    on_hand_after=on_hand + applied,
                    reserved_after=reserved,
                    reason=f"short by {shortfall}" if shortfall else "",
                    reference=delta.reference,
                    occurred_at=delta.occurred_at,
                )
            )
        _update_rows(dict(net))  # the rows are locked: they end where `state` says
        _insert_moves(store, moves, actor=actor)
    return [results[index] for index in sorted(results)]


def _delta_refusal(delta: DeltaRow, ids: dict[str, int], now: datetime) -> tuple[str, str] | None:
    if delta.kind not in DeltaKind.SIGN:
        return "invalid", _("kind is received, sold or counted.")
    if not isinstance(delta.quantity, int) or isinstance(delta.quantity, bool) or delta.quantity == 0:
        return "invalid_quantity", _("quantity is a whole number other than zero.")
    if not delta.reference or len(delta.reference) > 64:
        return "invalid", _("reference is 1 to 64 characters.")
    if delta.occurred_at is not None and (timezone.is_naive(delta.occurred_at) or delta.occurred_at > now + CLOCK_SKEW):
        return "time_in_future", _("occurred_at is in the future (or has no offset).")
    if delta.sku_code not in ids:
        return "sku_not_found", _("No SKU has this code.")
    return None
