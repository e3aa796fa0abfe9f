"""Reads of the catalog and stock."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Sum

from inventory import changes
from inventory.changes import ChangeCursor
from inventory.models import SKU, Product, Stock, StockMove, StockTransfer, StorePrice
from stores.models import Store


def active_products() -> QuerySet[Product]:
    return (
        Product.objects.filter(is_active=True, category__is_active=True)
        .select_related("category")
        .prefetch_related("images", "skus")
    )


def search_products(*, text: str = "", category_code: str = "") -> QuerySet[Product]:
    products = active_products()
    if text:
        sku_match = SKU.objects.filter(product=OuterRef("pk")).filter(
            Q(code__iexact=text) | Q(barcode=text) | Q(spec__icontains=text)
        )
        products = products.filter(
            Q(name__icontains=text) | Q(brand__icontains=text) | Q(code__iexact=text) | Exists(sku_match)
        )
    if category_code:
        products = products.filter(Q(category__code=category_code) | Q(category__parent__code=category_code))
    return products


def prices_at(store: Store | None, skus: Iterable[SKU]) -> dict[int, int]:
    """The price in fen of each SKU at a store: the store's own price, else HQ's."""
    skus = list(skus)
    prices = {sku.pk: sku.price_fen for sku in skus}
    if store is not None and skus:
        overrides = StorePrice.objects.filter(store=store, sku__in=[s.pk for s in skus]).values_list(
            "sku_id", "price_fen"
        )
        prices.update(dict(overrides))
    return prices


def stock_of_store(*, store: Store, text: str = "", low_only: bool = False) -> QuerySet[Stock]:
    """A store's stock rows with SKU and product, for the console and the API."""
    rows = Stock.objects.filter(store=store).select_related("sku__product__category", "store")
    if text:
        rows = rows.filter(
            Q(sku__code__icontains=text)
            | Q(sku__barcode=text)
            | Q(sku__product__name__icontains=text)
            | Q(sku__spec__icontains=text)
        )
    if low_only:
        rows = rows.filter(on_hand__lte=F("reserved") + F("low_stock_threshold"))
    return rows.order_by("sku__product__category__sort_order", "sku__code")


def stock_rows(
    *, stores: QuerySet[Store], store_code: str | None = None, sku_code: str | None = None, low_only: bool = False
) -> QuerySet[Stock]:
    """Stock rows of the given stores (already scoped to the caller), optionally narrowed."""
    rows = Stock.objects.filter(store__in=stores).select_related("store", "sku__product")
    if store_code:
        rows = rows.filter(store__code=store_code)
    if sku_code:
        rows = rows.filter(sku__code=sku_code)
    if low_only:
        rows = rows.filter(on_hand__lte=F("reserved") + F("low_stock_threshold"))
    return rows.order_by("store__code", "sku__code")


def stock_of_sku(*, sku: SKU) -> list[Stock]:
    """A SKU's stock in every active store, with a zero row for stores that never held it."""
    held = {row.store_id: row for row in Stock.objects.filter(sku=sku).select_related("store")}
    rows = []
    for store in Store.objects.filter(is_active=True).order_by("code"):
        rows.append(held.get(store.pk) or Stock(store=store, sku=sku, on_hand=0, reserved=0))
    return rows


def move_totals(*, store: Store, sku: SKU) -> tuple[int, int]:
    """The sums of a stock row's moves: (on hand, reserved). They always equal the row."""
    totals = StockMove.objects.filter(store=store, sku=sku).aggregate(
        on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta")
    )
    return totals["on_hand"] or 0, totals["reserved"] or 0


def reserved_under(*, store: Store, reference: str) -> dict[int, int]:
    """What is reserved at a store under a reference (an order's), by SKU id, from the ledger."""
    rows = (
        StockMove.objects.filter(store=store, reference=reference)
        .values("sku_id")
        .annotate(held=Sum("reserved_delta"))
        .order_by()
    )
    return {row["sku_id"]: row["held"] for row in rows if row["held"]}


def transfers_held_for(reference: str) -> QuerySet[StockTransfer]:
    """Transfers made for an order, with their stores."""
    return StockTransfer.objects.filter(hold_reference=reference).select_related("from_store", "to_store")


def open_transfers(*, store: Store | None = None) -> QuerySet[StockTransfer]:
    transfers = StockTransfer.objects.filter(
        status__in=[StockTransfer.Status.REQUESTED, StockTransfer.Status.SHIPPED]
    ).select_related("from_store", "to_store")
    if store is not None:
        transfers = transfers.filter(Q(from_store=store) | Q(to_store=store))
    return transfers


@dataclass(frozen=True)
class Availability:
    """What a shopper is told about one SKU at one store."""

    available: int
    state: str  # "in_stock", "low", "out"

    @property
    def in_stock(self) -> bool:
        return self.available > 0


def availability_at(store: Store | None, skus: Iterable[SKU]) -> dict[int, Availability]:
    """Each SKU's availability at a store: in stock, only a few left (at or under the threshold), or out."""
    skus = list(skus)
    rows = {}
    if store is not None and skus:
        rows = {
            row.sku_id: row
            for row in Stock.objects.filter(store=store, sku__in=[sku.pk for sku in skus]).only(
                "sku_id", "on_hand", "reserved", "low_stock_threshold"
            )
        }
    result = {}
    for sku in skus:
        row = rows.get(sku.pk)
        available = row.available if row else 0
        if available <= 0:
            state = "out"
        elif available <= row.low_stock_threshold:
            state = "low"
        else:
            state = "in_stock"
        result[sku.pk] = Availability(available=max(available, 0), state=state)
    return result


def stores_with_stock_query(sku: SKU, *, quantity: int = 1) -> QuerySet[Store]:
    """Active stores that can sell `quantity` of the SKU now (to hand to nearest_stores)."""
    return Store.objects.filter(
        is_active=True,
        stock__sku=sku,
        stock__on_hand__gte=F("stock__reserved") + quantity,
    )


def stores_holding(lines: Iterable[tuple[SKU, int]]) -> QuerySet[Store]:
    """Active stores that can sell every (SKU, quantity) now, for checkout and dispatch."""
    stores = Store.objects.filter(is_active=True)
    for sku, quantity in lines:
        stores = stores.filter(
            Exists(Stock.objects.filter(store=OuterRef("pk"), sku=sku, on_hand__gte=F("reserved") + quantity))
        )
    return stores


@dataclass(frozen=True)
class StockChanges:
    rows: list[Stock]
    next_cursor: ChangeCursor
    has_more: bool


def stock_changes_since(*, stores: QuerySet[Store], cursor: ChangeCursor, limit: int) -> StockChanges:
    """Stock rows of these stores changed after `cursor`, oldest change first, at most `limit`.

    Each row carries its current values; a row changed again later comes again later. Only
    changes whose transaction has ended are handed out (inventory.changes), so following
    `next_cursor` page after page sees every change, none twice.
    """
    horizon = changes.horizon()
    rows = Stock.objects.filter(store__in=stores)
    if horizon is not None:
        rows = rows.filter(change_txid__lt=horizon)
    rows = list(
        rows.filter(Q(change_txid__gt=cursor.txid) | Q(change_txid=cursor.txid, pk__gt=cursor.row_id))
        .select_related("store", "sku")
        .order_by("change_txid", "pk")[: limit + 1]
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    after = ChangeCursor(rows[-1].change_txid, rows[-1].pk) if rows else cursor
    if not has_more and horizon is not None:
        # Everything below the horizon has been read: the next read starts there, not at the
        # last row this client may see (rows of other stores are not scanned again and again).
        after = max(after, ChangeCursor(horizon - 1, 2**62))
    return StockChanges(rows, after, has_more=has_more)
