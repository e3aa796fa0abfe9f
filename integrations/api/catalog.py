"""The ERP's catalog and prices: products with their SKUs, HQ's and the stores' prices, in batches.

Both answer item by item (inventory.sync) and take `?atomic=true` or `"mode": "all_or_nothing"`
to write nothing unless every item is accepted. See docs/erp-api.md.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from integrations import selectors
from integrations.api.batches import (
    MODE_ALL_OR_NOTHING,
    MODE_EACH,
    BatchOutcomeSerializer,
    BatchRefusalSerializer,
    all_or_nothing,
    batch_items,
    outcome_body,
    read_items,
)
from integrations.api.idempotency import ErpWriteApi, erp_write_schema
from integrations.models import Scope
from inventory.sync import UNSET, PriceInput, ProductInput, SkuInput, set_prices, upsert_products
from orders.api.serializers import ErrorSerializer
from stores.models import code_validator

CATALOG_BATCH_CAP = 1000
PRICE_BATCH_CAP = 1000
SKUS_PER_PRODUCT_CAP = 100
MAX_PRICE_FEN = 100_000_000  # ¥1,000,000: beyond is a typo, not a price

ATOMIC_PARAMETER = OpenApiParameter(
    "atomic",
    OpenApiTypes.BOOL,
    description="true: all or nothing (as `mode: all_or_nothing`): one rejected item and nothing is written, 422.",
)
MODE_FIELD_HELP = "each (default): accepted items are written, rejected ones answered; all_or_nothing: see `atomic`."


class CatalogSkuSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=32, validators=[code_validator])
    spec = serializers.CharField(max_length=80, required=False, allow_blank=True, help_text="Size, colour, stage….")
    barcode = serializers.CharField(
        max_length=32, required=False, allow_null=True, allow_blank=True, help_text="EAN; null or empty clears it."
    )
    price_fen = serializers.IntegerField(min_value=0, max_value=MAX_PRICE_FEN, help_text="HQ's price in fen.")
    active = serializers.BooleanField(required=False)

    class Meta:
        ref_name = "ErpCatalogSku"


class CatalogProductSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=32, validators=[code_validator])
    name = serializers.CharField(max_length=120)
    category_code = serializers.CharField(max_length=32)
    brand = serializers.CharField(max_length=50, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    active = serializers.BooleanField(required=False)
    skus = CatalogSkuSerializer(many=True, required=False, max_length=SKUS_PER_PRODUCT_CAP)

    class Meta:
        ref_name = "ErpCatalogProduct"


def _product_input(index: int, data: dict) -> ProductInput:
    def sku(entry: dict) -> SkuInput:
        barcode = entry.get("barcode", UNSET)
        return SkuInput(
            code=entry["code"],
            price_fen=entry["price_fen"],
            spec=entry.get("spec", UNSET),
            barcode=None if barcode == "" else barcode,
            is_active=entry.get("active", UNSET),
        )

    return ProductInput(
        index=index,
        code=data["code"],
        name=data["name"],
        category_code=data["category_code"],
        brand=data.get("brand", UNSET),
        description=data.get("description", UNSET),
        is_active=data.get("active", UNSET),
        skus=tuple(sku(entry) for entry in data.get("skus", [])),
    )


class CatalogProductsApi(ErpWriteApi):
    """Create or update products and their SKUs, up to 1,000 a request, answered item by item."""

    required_scope = Scope.CATALOG_WRITE
    query_parameters = frozenset({"atomic"})

    class InputSerializer(serializers.Serializer):
        mode = serializers.ChoiceField(
            choices=[MODE_EACH, MODE_ALL_OR_NOTHING], required=False, help_text=MODE_FIELD_HELP
        )
        items = CatalogProductSerializer(many=True, max_length=CATALOG_BATCH_CAP)

        class Meta:
            ref_name = "ErpCatalogBatch"

    @erp_write_schema(
        scope=Scope.CATALOG_WRITE,
        operation_id="erp_catalog_products",
        summary="Create or update products and SKUs in bulk",
        description=(
            f"Up to {CATALOG_BATCH_CAP} products a request (more: 413 `batch_too_large`), each with up to "
            f"{SKUS_PER_PRODUCT_CAP} SKUs. A product is matched by `code`, a SKU by its `code`; fields left out "
            "are kept (new rows: empty, no barcode, active). SKUs an item does not list are left alone (retire "
            "one with `active: false`). Each item is answered `created`, `updated`, `unchanged` or `rejected` "
            "with a reason: `invalid`, `category_not_found`, `duplicate_item`, `duplicate_sku`, "
            "`sku_of_other_product`, `duplicate_barcode`, `barcode_taken`. All or nothing (`?atomic=true` or "
            "`mode`): one rejected item and nothing is written, 422 `batch_rejected` with every item's answer."
        ),
        parameters=[ATOMIC_PARAMETER],
        request=InputSerializer,
        responses={
            200: BatchOutcomeSerializer,
            400: ErrorSerializer,
            413: ErrorSerializer,
            422: BatchRefusalSerializer,
        },
        examples=[
            OpenApiExample(
                "Two products",
                request_only=True,
                value={
                    "items": [
                        {
                            "code": "FH-XFF-3",
                            "name": "飞鹤星飞帆 3段",
                            "category_code": "formula",
                            "brand": "飞鹤",
                            "skus": [
                                {"code": "FH-XFF-3-700", "spec": "700g", "barcode": "6945011234567", "price_fen": 25800}
                            ],
                        },
                        {"code": "HW-M64", "name": "花王纸尿裤 M", "category_code": "nappies", "skus": []},
                    ]
                },
            ),
            OpenApiExample(
                "One created, one rejected",
                response_only=True,
                status_codes=["200"],
                value={
                    "mode": "each",
                    "written": True,
                    "summary": {"created": 1, "updated": 0, "unchanged": 0, "removed": 0, "rejected": 1},
                    "results": [
                        {"index": 0, "code": "FH-XFF-3", "result": "created"},
                        {
                            "index": 1,
                            "code": "HW-M64",
                            "result": "rejected",
                            "reason": {"code": "category_not_found", "message": "No category has the code nappies."},
                        },
                    ],
                },
            ),
            OpenApiExample(
                "All or nothing, refused",
                response_only=True,
                status_codes=["422"],
                value={
                    "code": "batch_rejected",
                    "message": "1 items were rejected, so nothing was written (all or nothing).",
                    "mode": "all_or_nothing",
                    "written": False,
                    "summary": {"created": 1, "updated": 0, "unchanged": 0, "removed": 0, "rejected": 1},
                    "results": [
                        {"index": 0, "code": "FH-XFF-3", "result": "created"},
                        {
                            "index": 1,
                            "code": "HW-M64",
                            "result": "rejected",
                            "reason": {"code": "category_not_found", "message": "No category has the code nappies."},
                        },
                    ],
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        items = batch_items(request.data, "items", CATALOG_BATCH_CAP)
        atomic = all_or_nothing(request)
        read = read_items(items, CatalogProductSerializer, _product_input, "code")
        outcome = upsert_products(items=read, all_or_nothing=atomic)
        body, status = outcome_body(outcome, mode=MODE_ALL_OR_NOTHING if atomic else MODE_EACH)
        return Response(body, status=status)


class PriceItemSerializer(serializers.Serializer):
    sku_code = serializers.CharField(max_length=32)
    store_code = serializers.CharField(
        max_length=32, required=False, allow_null=True, help_text="Left out or null: HQ's price."
    )
    price_fen = serializers.IntegerField(
        min_value=0, max_value=MAX_PRICE_FEN, allow_null=True, help_text="null removes the store's own price."
    )

    class Meta:
        ref_name = "ErpPriceItem"


def _price_input(index: int, data: dict) -> PriceInput:
    return PriceInput(
        index=index, sku_code=data["sku_code"], store_code=data.get("store_code"), price_fen=data["price_fen"]
    )


class PricesApi(ErpWriteApi):
    """Set HQ's prices and the stores' own prices, up to 1,000 a request, answered item by item."""

    required_scope = Scope.PRICES_WRITE
    query_parameters = frozenset({"atomic"})

    class InputSerializer(serializers.Serializer):
        mode = serializers.ChoiceField(
            choices=[MODE_EACH, MODE_ALL_OR_NOTHING], required=False, help_text=MODE_FIELD_HELP
        )
        items = PriceItemSerializer(many=True, max_length=PRICE_BATCH_CAP)

        class Meta:
            ref_name = "ErpPriceBatch"

    @erp_write_schema(
        scope=Scope.PRICES_WRITE,
        operation_id="erp_prices",
        summary="Set HQ and store prices in bulk",
        description=(
            f"Up to {PRICE_BATCH_CAP} items a request (more: 413 `batch_too_large`). Without `store_code` the item "
            "sets HQ's price, which only a client not restricted to stores may do (else `store_restricted`); with "
            "one, that store's own price, and `price_fen: null` removes it so HQ's applies there again. A store the "
            "client may not touch is `store_not_found`, as one that does not exist. Answers `created`, `updated`, "
            "`unchanged`, `removed` or `rejected` (`invalid`, `sku_not_found`, `store_not_found`, "
            "`store_restricted`, `invalid_price`, `duplicate_item`). The mall shows a new price on its next page."
        ),
        parameters=[ATOMIC_PARAMETER],
        request=InputSerializer,
        responses={
            200: BatchOutcomeSerializer,
            400: ErrorSerializer,
            413: ErrorSerializer,
            422: BatchRefusalSerializer,
        },
        examples=[
            OpenApiExample(
                "HQ's price, a store's own, one removed",
                request_only=True,
                value={
                    "items": [
                        {"sku_code": "FH-XFF-3-700", "price_fen": 25800},
                        {"sku_code": "FH-XFF-3-700", "store_code": "WS", "price_fen": 24800},
                        {"sku_code": "HW-M64-1", "store_code": "WS", "price_fen": None},
                    ]
                },
            ),
            OpenApiExample(
                "Answered item by item",
                response_only=True,
                status_codes=["200"],
                value={
                    "mode": "each",
                    "written": True,
                    "summary": {"created": 1, "updated": 1, "unchanged": 0, "removed": 1, "rejected": 0},
                    "results": [
                        {"index": 0, "code": "FH-XFF-3-700", "result": "updated"},
                        {"index": 1, "code": "FH-XFF-3-700", "result": "created"},
                        {"index": 2, "code": "HW-M64-1", "result": "removed"},
                    ],
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        items = batch_items(request.data, "items", PRICE_BATCH_CAP)
        atomic = all_or_nothing(request)
        read = read_items(items, PriceItemSerializer, _price_input, "sku_code")
        client = self.api_client
        outcome = set_prices(
            items=read,
            stores=selectors.stores_visible_to(client),
            may_set_hq_price=not selectors.is_store_restricted(client),
            all_or_nothing=atomic,
        )
        body, status = outcome_body(outcome, mode=MODE_ALL_OR_NOTHING if atomic else MODE_EACH)
        return Response(body, status=status)
