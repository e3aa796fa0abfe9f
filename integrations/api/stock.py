"""The ERP's stock: per-store snapshots and deltas in, stock rows and a change feed out.

The rules are inventory.sync's (docs/inventory.md, "ERP snapshots"); these views read the
batch, check the store against the client's list, and answer row by row. Stock rows are
read here without a serializer per row: a snapshot has up to 5,000 of them, and DRF's
per-field machinery would cost more than the database work.
"""

from collections import Counter
from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from integrations import selectors
from integrations.api.batches import batch_items
from integrations.api.idempotency import ErpWriteApi, erp_write_schema
from integrations.api.pagination import CappedPagination
from integrations.api.views import PAGE_PARAMETERS, ErpApi, erp_schema
from integrations.models import Scope
from inventory.changes import ChangeCursor
from inventory.selectors import stock_changes_since
from inventory.sync import (
    DeltaKind,
    DeltaRow,
    Reason,
    Result,
    SnapshotRow,
    StockRowResult,
    apply_stock_deltas,
    apply_stock_snapshot,
)
from o2o.errors import ApplicationError
from orders.api.serializers import ErrorSerializer

SNAPSHOT_ROWS_CAP = 5000
DELTA_ROWS_CAP = 1000
MAX_UNITS = 1_000_000_000
SKU_FILTER_CAP = 200


class ChangesPagination(CappedPagination):
    page_size = 200
    max_page_size = 1000


# --- reading rows by hand (see the module's docstring) -------------------------------------------


def _whole(value: Any, *, low: int, high: int = MAX_UNITS) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _code(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 32


def _invalid(index: int, raw: Any, message: str) -> StockRowResult:
    code = raw.get("sku_code") if isinstance(raw, dict) else None
    return StockRowResult(
        index, code if isinstance(code, str) else "", Result.REJECTED, reason=Reason("invalid", message)
    )


def _snapshot_row(index: int, raw: Any) -> SnapshotRow | StockRowResult:
    if not isinstance(raw, dict):
        return _invalid(index, raw, _("A row is an object."))
    expected = raw.get("expected_on_hand")
    if not _code(raw.get("sku_code")):
        return _invalid(index, raw, _("sku_code: 1 to 32 characters."))
    if not _whole(raw.get("on_hand"), low=0):
        return _invalid(index, raw, _("on_hand: a whole number, zero or more."))
    if expected is not None and not _whole(expected, low=0):
        return _invalid(index, raw, _("expected_on_hand: a whole number, zero or more, or null."))
    return SnapshotRow(index=index, sku_code=raw["sku_code"], on_hand=raw["on_hand"], expected_on_hand=expected)


_TIME = serializers.DateTimeField()


def _time(value: Any, name: str):
    if value in (None, ""):
        raise ApplicationError(
            _("The request has invalid fields."), code="invalid", details={name: [_("This field is required.")]}
        )
    try:
        return _TIME.to_internal_value(value)
    except serializers.ValidationError as exc:
        raise ApplicationError(
            _("The request has invalid fields."), code="invalid", details={name: exc.detail}
        ) from None


def _delta_row(index: int, raw: Any) -> DeltaRow | StockRowResult:
    if not isinstance(raw, dict):
        return _invalid(index, raw, _("A row is an object."))
    if not _code(raw.get("sku_code")):
        return _invalid(index, raw, _("sku_code: 1 to 32 characters."))
    if raw.get("kind") not in DeltaKind.SIGN:
        return _invalid(index, raw, _("kind: received, sold or counted."))
    if not _whole(raw.get("quantity"), low=-MAX_UNITS) or raw["quantity"] == 0:
        return _invalid(index, raw, _("quantity: a whole number other than zero."))
    reference = raw.get("reference")
    if not isinstance(reference, str) or not 0 < len(reference.strip()) <= 64:
        return _invalid(index, raw, _("reference: 1 to 64 characters."))
    occurred_at = None
    if raw.get("occurred_at") is not None:
        try:
            occurred_at = _TIME.to_internal_value(raw["occurred_at"])
        except serializers.ValidationError:
            return _invalid(index, raw, _("occurred_at: an ISO 8601 time with its offset."))
    return DeltaRow(
        index=index,
        sku_code=raw["sku_code"],
        kind=raw["kind"],
        quantity=raw["quantity"],
        reference=reference.strip(),
        occurred_at=occurred_at,
    )


def _row_body(row: StockRowResult) -> dict[str, Any]:
    body: dict[str, Any] = {"index": row.index, "sku_code": row.sku_code, "result": row.result}
    if row.on_hand is not None:
        body.update(on_hand=row.on_hand, reserved=row.reserved, available=row.available, delta=row.delta)
    if row.shortfall:
        body["shortfall"] = row.shortfall
    if row.reason is not None:
        body["reason"] = {"code": row.reason.code, "message": row.reason.message}
    return body


def _answer(rows: list[StockRowResult], *, keys: tuple[str, ...], **head: Any) -> dict[str, Any]:
    counts = Counter(row.result for row in rows)
    return {**head, "summary": {key: counts.get(key, 0) for key in keys}, "results": [_row_body(r) for r in rows]}


def _merge(read: list, results: list[StockRowResult]) -> list[StockRowResult]:
    rejected = [row for row in read if isinstance(row, StockRowResult)]
    return sorted([*rejected, *results], key=lambda row: row.index)


# --- schema pieces -------------------------------------------------------------------------------


class _Reason(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()

    class Meta:
        ref_name = "ErpStockReason"


class StockRowResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    sku_code = serializers.CharField()
    result = serializers.ChoiceField(
        choices=[
            Result.APPLIED,
            Result.UNCHANGED,
            Result.STALE,
            Result.STALE_EXPECTED,
            Result.CONFLICT_RESERVED,
            Result.DUPLICATE,
            Result.REJECTED,
        ]
    )
    on_hand = serializers.IntegerField(required=False, help_text="After this row (now, if it changed nothing).")
    reserved = serializers.IntegerField(required=False, help_text="Held for online orders; never changed here.")
    available = serializers.IntegerField(required=False)
    delta = serializers.IntegerField(required=False, help_text="The change of on-hand this row made.")
    shortfall = serializers.IntegerField(required=False, help_text="conflict_reserved: units short of reserved.")
    reason = _Reason(required=False)

    class Meta:
        ref_name = "ErpStockRowResult"


class StockRowSerializer(serializers.Serializer):
    store_code = serializers.CharField(source="store.code")
    sku_code = serializers.CharField(source="sku.code")
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField(help_text="Held for online orders and transfers.")
    available = serializers.IntegerField(help_text="on_hand − reserved: what can still be sold.")
    synced_at = serializers.DateTimeField(allow_null=True, help_text="taken_at of the last snapshot applied.")
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "ErpStockRow"


STOCK_ROW_EXAMPLE = {
    "store_code": "WS",
    "sku_code": "FH-XFF-3-700",
    "on_hand": 12,
    "reserved": 2,
    "available": 10,
    "synced_at": "2025-06-02T08:00:00+08:00",
    "updated_at": "2025-06-02T10:41:07+08:00",
}

# --- snapshots -----------------------------------------------------------------------------------


class StockSnapshotApi(ErpWriteApi):
    """A store's on-hand counts as the ERP took them at one moment; older than what is applied: ignored."""

    required_scope = Scope.STOCK_WRITE
    summary_keys = (
        Result.APPLIED,
        Result.UNCHANGED,
        Result.STALE,
        Result.STALE_EXPECTED,
        Result.CONFLICT_RESERVED,
        Result.REJECTED,
    )

    class InputSerializer(serializers.Serializer):
        class Row(serializers.Serializer):
            sku_code = serializers.CharField(max_length=32)
            on_hand = serializers.IntegerField(min_value=0, help_text="What the ERP counted at taken_at.")
            expected_on_hand = serializers.IntegerField(
                min_value=0,
                required=False,
                allow_null=True,
                help_text="Compare and set: on-hand as the ERP last read it.",
            )

            class Meta:
                ref_name = "ErpSnapshotRow"

        taken_at = serializers.DateTimeField(help_text="When the ERP's counts were true, with its offset.")
        rows = Row(many=True, max_length=SNAPSHOT_ROWS_CAP)

        class Meta:
            ref_name = "ErpSnapshot"

    class OutputSerializer(serializers.Serializer):
        store_code = serializers.CharField()
        taken_at = serializers.DateTimeField()
        summary = serializers.DictField(child=serializers.IntegerField())
        results = StockRowResultSerializer(many=True)

        class Meta:
            ref_name = "ErpSnapshotOutcome"

    @erp_write_schema(
        scope=Scope.STOCK_WRITE,
        operation_id="erp_stock_snapshot",
        summary="Push a store's stock counts as of one moment",
        description=(
            f"Up to {SNAPSHOT_ROWS_CAP} rows (more: 413 `batch_too_large`). Per SKU: a snapshot taken at or before "
            "the last one applied is `stale` and changes nothing. Otherwise on-hand becomes the count plus the "
            "on-hand changes recorded here after `taken_at` (goods handed over online since, received, "
            "transferred), so nothing is deducted twice; reserved stock is never touched: below it, on-hand stops at "
            "reserved and the row is `conflict_reserved` with the shortfall. With `expected_on_hand` the row is "
            "refused (`stale_expected`, with the current value) unless on-hand is that now. Other answers: "
            "`applied`, `unchanged`, `rejected` (`invalid`, `sku_not_found`, `duplicate_sku`). A `taken_at` more "
            "than five minutes ahead is 400 `time_in_future`. See docs/inventory.md, ERP snapshots."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 413: ErrorSerializer},
        examples=[
            OpenApiExample(
                "Counts at 08:00",
                request_only=True,
                value={
                    "taken_at": "2025-06-02T08:00:00+08:00",
                    "rows": [
                        {"sku_code": "FH-XFF-3-700", "on_hand": 14},
                        {"sku_code": "HW-M64-1", "on_hand": 30, "expected_on_hand": 32},
                    ],
                },
            ),
            OpenApiExample(
                "Two sold online since the count; one row compared and refused",
                response_only=True,
                status_codes=["200"],
                value={
                    "store_code": "WS",
                    "taken_at": "2025-06-02T08:00:00+08:00",
                    "summary": {
                        "applied": 1,
                        "unchanged": 0,
                        "stale": 0,
                        "stale_expected": 1,
                        "conflict_reserved": 0,
                        "rejected": 0,
                    },
                    "results": [
                        {
                            "index": 0,
                            "sku_code": "FH-XFF-3-700",
                            "result": "applied",
                            "on_hand": 12,
                            "reserved": 2,
                            "available": 10,
                            "delta": -3,
                        },
                        {
                            "index": 1,
                            "sku_code": "HW-M64-1",
                            "result": "stale_expected",
                            "on_hand": 31,
                            "reserved": 0,
                            "available": 31,
                            "delta": 0,
                            "reason": {"code": "stale_expected", "message": "On hand is 31, not 32."},
                        },
                    ],
                },
            ),
        ],
    )
    def post(self, request: Request, store_code: str) -> Response:
        store = self.store(store_code)
        raw_rows = batch_items(request.data, "rows", SNAPSHOT_ROWS_CAP)
        taken_at = _time(request.data.get("taken_at"), "taken_at")
        read = [_snapshot_row(index, raw) for index, raw in enumerate(raw_rows)]
        results = apply_stock_snapshot(
            store=store, taken_at=taken_at, rows=[row for row in read if isinstance(row, SnapshotRow)]
        )
        body = _answer(_merge(read, results), keys=self.summary_keys, store_code=store.code, taken_at=taken_at)
        return Response(body)


# --- deltas --------------------------------------------------------------------------------------


class StockMovesApi(ErpWriteApi):
    """What happened at a store since: goods received, sold at the POS, a count's correction; each applied once."""

    required_scope = Scope.STOCK_WRITE
    summary_keys = (Result.APPLIED, Result.CONFLICT_RESERVED, Result.DUPLICATE, Result.STALE, Result.REJECTED)

    class InputSerializer(serializers.Serializer):
        class Move(serializers.Serializer):
            sku_code = serializers.CharField(max_length=32)
            kind = serializers.ChoiceField(choices=list(DeltaKind.SIGN))
            quantity = serializers.IntegerField(
                help_text="Signed, not zero: received −3 went back to the supplier, sold −1 came back at the till, "
                "counted −2 were missing."
            )
            reference = serializers.CharField(
                max_length=64, help_text="The ERP's document (receipt, delivery note); once per store and SKU."
            )
            occurred_at = serializers.DateTimeField(required=False, allow_null=True, help_text="Default: now.")

            class Meta:
                ref_name = "ErpStockMove"

        moves = Move(many=True, max_length=DELTA_ROWS_CAP)

        class Meta:
            ref_name = "ErpStockMoves"

    class OutputSerializer(serializers.Serializer):
        store_code = serializers.CharField()
        summary = serializers.DictField(child=serializers.IntegerField())
        results = StockRowResultSerializer(many=True)

        class Meta:
            ref_name = "ErpStockMovesOutcome"

    @erp_write_schema(
        scope=Scope.STOCK_WRITE,
        operation_id="erp_stock_moves",
        summary="Report stock received, sold at the POS or corrected by a count",
        description=(
            f"Up to {DELTA_ROWS_CAP} moves (more: 413 `batch_too_large`), applied in order. Each (SKU, reference) is "
            "applied once at a store: sent again it is `duplicate` and changes nothing. A move that happened at or "
            "before the SKU's last snapshot is already in that count: `stale`. A decrease never takes units "
            "reserved for online orders: on-hand stops at reserved (`conflict_reserved`, with the shortfall). "
            "Others: `applied`, `rejected` (`invalid`, `sku_not_found`, `time_in_future`)."
        ),
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 413: ErrorSerializer},
        examples=[
            OpenApiExample(
                "A delivery and a till receipt",
                request_only=True,
                value={
                    "moves": [
                        {"sku_code": "FH-XFF-3-700", "kind": "received", "quantity": 24, "reference": "GRN-0612"},
                        {
                            "sku_code": "FH-XFF-3-700",
                            "kind": "sold",
                            "quantity": 2,
                            "reference": "POS-WS-000123",
                            "occurred_at": "2025-06-02T10:15:00+08:00",
                        },
                    ]
                },
            ),
            OpenApiExample(
                "Applied",
                response_only=True,
                status_codes=["200"],
                value={
                    "store_code": "WS",
                    "summary": {"applied": 2, "conflict_reserved": 0, "duplicate": 0, "stale": 0, "rejected": 0},
                    "results": [
                        {
                            "index": 0,
                            "sku_code": "FH-XFF-3-700",
                            "result": "applied",
                            "on_hand": 36,
                            "reserved": 2,
                            "available": 34,
                            "delta": 24,
                        },
                        {
                            "index": 1,
                            "sku_code": "FH-XFF-3-700",
                            "result": "applied",
                            "on_hand": 34,
                            "reserved": 2,
                            "available": 32,
                            "delta": -2,
                        },
                    ],
                },
            ),
        ],
    )
    def post(self, request: Request, store_code: str) -> Response:
        store = self.store(store_code)
        raw_rows = batch_items(request.data, "moves", DELTA_ROWS_CAP)
        read = [_delta_row(index, raw) for index, raw in enumerate(raw_rows)]
        results = apply_stock_deltas(store=store, deltas=[row for row in read if isinstance(row, DeltaRow)])
        return Response(_answer(_merge(read, results), keys=self.summary_keys, store_code=store.code))


# --- reads ---------------------------------------------------------------------------------------


class StoreStockApi(ErpApi):
    """A store's stock rows, by SKU code, optionally only some SKUs."""

    required_scope = Scope.STOCK_READ
    query_parameters = frozenset({"sku", "page", "page_size"})

    class OutputSerializer(serializers.Serializer):
        store_code = serializers.CharField()
        count = serializers.IntegerField()
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)
        results = StockRowSerializer(many=True)

        class Meta:
            ref_name = "ErpStoreStock"

    @erp_schema(
        scope=Scope.STOCK_READ,
        operation_id="erp_store_stock",
        summary="A store's stock",
        description=(
            "Rows by SKU code, paged. `sku` narrows to one code or a comma-separated list (at most "
            f"{SKU_FILTER_CAP}). A store this client may not touch is 404 `store_not_found`."
        ),
        parameters=[
            OpenApiParameter(
                "sku",
                OpenApiTypes.STR,
                description="SKU code(s), comma-separated.",
                examples=[OpenApiExample("two SKUs", value="FH-XFF-3-700,HW-M64-1")],
            ),
            *PAGE_PARAMETERS,
        ],
        responses={200: OutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 422: ErrorSerializer},
        examples=[
            OpenApiExample(
                "One row",
                response_only=True,
                status_codes=["200"],
                value={"store_code": "WS", "count": 1, "next": None, "previous": None, "results": [STOCK_ROW_EXAMPLE]},
            )
        ],
    )
    def get(self, request: Request, store_code: str) -> Response:
        store = self.store(store_code)
        codes = [code.strip() for code in request.query_params.get("sku", "").split(",") if code.strip()]
        if len(codes) > SKU_FILTER_CAP:
            raise ApplicationError(
                _("At most {cap} SKU codes.").format(cap=SKU_FILTER_CAP),
                code="too_many_skus",
                status=422,
                details={"sku": [_("At most {cap}.").format(cap=SKU_FILTER_CAP)]},
            )
        paginator = CappedPagination()
        page = paginator.paginate_queryset(selectors.store_stock(store, sku_codes=codes), request, view=self)
        body = {
            "store_code": store.code,
            "count": paginator.page.paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "results": page,
        }
        return Response(self.OutputSerializer(body).data)


class StockChangesApi(ErpApi):
    """Stock rows changed since a cursor, in the stores this client may touch."""

    required_scope = Scope.STOCK_READ
    query_parameters = frozenset({"cursor", "page_size"})

    class OutputSerializer(serializers.Serializer):
        results = StockRowSerializer(many=True)
        next_cursor = serializers.CharField(help_text="Send it back as `cursor` for the changes after these.")
        has_more = serializers.BooleanField(help_text="True: call again at once; false: caught up, poll later.")

        class Meta:
            ref_name = "ErpStockChanges"

    @erp_schema(
        scope=Scope.STOCK_READ,
        operation_id="erp_stock_changes",
        summary="Stock changed since a cursor",
        description=(
            "Each stock row that changed after `cursor` (none: from the beginning), oldest change first, with its "
            "current values; a row that changes again comes again. Following `next_cursor` sees every change and "
            "none twice, across pages and polls: a change shows once its transaction has ended, so one still being "
            "written is not skipped but waits for the next call. The cursor is opaque; a cursor that is not one of "
            "ours is 400 `invalid_cursor`. `page_size`: 200 by default, at most 1000 (beyond: 422)."
        ),
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="next_cursor of the last answer; empty at first."),
            OpenApiParameter(
                "page_size", OpenApiTypes.INT, description="Rows per answer, 200 by default, at most 1000."
            ),
        ],
        responses={200: OutputSerializer, 400: ErrorSerializer, 422: ErrorSerializer},
        examples=[
            OpenApiExample(
                "One change, caught up",
                response_only=True,
                status_codes=["200"],
                value={
                    "results": [STOCK_ROW_EXAMPLE],
                    "next_cursor": "MTo4MjM0OjQ2MTE2ODYwMTg0MjczODc5MDQ",
                    "has_more": False,
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        cursor = ChangeCursor.decode(request.query_params.get("cursor", ""))
        if cursor is None:
            raise ApplicationError(
                _("This cursor is not one this API gave out."), code="invalid_cursor", details={"cursor": ["?"]}
            )
        limit = ChangesPagination().get_page_size(request)
        changes = stock_changes_since(stores=selectors.stores_visible_to(self.api_client), cursor=cursor, limit=limit)
        body = {"results": changes.rows, "next_cursor": changes.next_cursor.encode(), "has_more": changes.has_more}
        return Response(self.OutputSerializer(body).data)
