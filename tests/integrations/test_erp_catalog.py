"""The ERP pushes the catalog and prices: item by item, all or nothing on demand, capped, seen by the mall at once.

Every endpoint's scope and store restriction is also checked by test_erp_access.py, which walks the
ERP URLconf; here, what a store-restricted client may do item by item.
"""

from uuid import uuid4

import pytest
from django.urls import reverse

from integrations.api.catalog import CATALOG_BATCH_CAP, PRICE_BATCH_CAP
from integrations.models import Scope
from inventory.models import SKU, Product, StorePrice
from inventory.services import set_store_price
from tests.factories import CategoryFactory, SkuFactory, StoreFactory

pytestmark = pytest.mark.django_db

PRODUCTS = reverse("erp:catalog-products")
PRICES = reverse("erp:prices")


@pytest.fixture
def post(api_client):
    def send(url, body, key, **params):
        if params:
            url = f"{url}?{'&'.join(f'{k}={v}' for k, v in params.items())}"
        return api_client.post(
            url, body, format="json", HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY=str(uuid4())
        )

    return send


@pytest.fixture
def catalog_key(erp_client):
    return erp_client(Scope.CATALOG_WRITE)[1]


@pytest.fixture
def formula(db):
    return CategoryFactory(code="formula", name="奶粉")


def _product(code="FH-XFF-3", **changes):
    item = {
        "code": code,
        "name": "飞鹤星飞帆 3段",
        "category_code": "formula",
        "skus": [
            {"code": f"{code}-700", "spec": "700g", "barcode": f"69{abs(hash(code)) % 10**11:011d}", "price_fen": 25800}
        ],
    }
    item.update(changes)
    return item


# --- products --------------------------------------------------------------------------------------


def test_products_are_created_then_updated_then_unchanged_item_by_item(post, catalog_key, formula):
    first = post(PRODUCTS, {"items": [_product("A1"), _product("B1")]}, catalog_key)

    assert first.status_code == 200, first.content
    assert [(r["index"], r["code"], r["result"]) for r in first.json()["results"]] == [
        (0, "A1", "created"),
        (1, "B1", "created"),
    ]
    sku = SKU.objects.get(code="A1-700")
    assert (sku.product.code, sku.spec, sku.price_fen, sku.is_active) == ("A1", "700g", 25800, True)

    renamed = _product("A1", name="飞鹤星飞帆 3段 新包装")
    again = post(PRODUCTS, {"items": [renamed, _product("B1")]}, catalog_key).json()

    assert [r["result"] for r in again["results"]] == ["updated", "unchanged"]
    assert again["summary"] == {"created": 0, "updated": 1, "unchanged": 1, "removed": 0, "rejected": 0}
    assert Product.objects.get(code="A1").name == "飞鹤星飞帆 3段 新包装"


def test_fields_left_out_are_kept_and_a_new_sku_or_a_retired_one_updates_the_product(post, catalog_key, formula):
    post(PRODUCTS, {"items": [_product("A1", brand="飞鹤", description="婴儿配方奶粉")]}, catalog_key)
    item = {
        "code": "A1",
        "name": "飞鹤星飞帆 3段",
        "category_code": "formula",
        "skus": [{"code": "A1-700", "price_fen": 25800, "active": False}, {"code": "A1-900", "price_fen": 31800}],
    }

    answer = post(PRODUCTS, {"items": [item]}, catalog_key).json()

    assert answer["results"][0]["result"] == "updated"
    product = Product.objects.get(code="A1")
    assert (product.brand, product.description) == ("飞鹤", "婴儿配方奶粉")  # left out: kept
    retired = SKU.objects.get(code="A1-700")
    assert (retired.is_active, retired.spec, retired.barcode is not None) == (False, "700g", True)
    assert SKU.objects.get(code="A1-900").product == product


def test_rejected_items_say_why_and_the_others_are_written(post, catalog_key, formula):
    other = SkuFactory(code="TAKEN-1", barcode="6900000000001")
    items = [
        _product("OK1"),
        _product("NOCAT", category_code="nope"),
        _product("STEAL", skus=[{"code": "TAKEN-1", "price_fen": 100}]),
        _product("BARCODE", skus=[{"code": "BC-1", "price_fen": 100, "barcode": "6900000000001"}]),
        {"code": "BAD", "name": "", "category_code": "formula"},
        _product("TWICE"),
        _product("TWICE"),
        "not an object",
        _product("NEG", skus=[{"code": "NEG-1", "price_fen": -1}]),
    ]

    response = post(PRODUCTS, {"items": items}, catalog_key)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert results[0]["result"] == "created"
    reasons = [r.get("reason", {}).get("code") for r in results]
    assert reasons == [
        None,
        "category_not_found",
        "sku_of_other_product",
        "barcode_taken",
        "invalid",
        "duplicate_item",
        "duplicate_item",
        "invalid",
        "invalid",
    ]
    assert "name" in results[4]["reason"]["message"]
    assert set(Product.objects.values_list("code", flat=True)) == {"OK1", other.product.code}
    assert SKU.objects.get(code="TAKEN-1").price_fen == other.price_fen


def test_all_or_nothing_writes_nothing_when_one_item_is_rejected(post, catalog_key, formula):
    items = [_product("A1"), _product("NOCAT", category_code="nope")]

    by_query = post(PRODUCTS, {"items": items}, catalog_key, atomic="true")
    by_body = post(PRODUCTS, {"items": items, "mode": "all_or_nothing"}, catalog_key)

    for response in (by_query, by_body):
        assert response.status_code == 422
        body = response.json()
        assert (body["code"], body["written"], body["mode"]) == ("batch_rejected", False, "all_or_nothing")
        assert [r["result"] for r in body["results"]] == ["created", "rejected"]
    assert not Product.objects.exists()

    accepted = post(PRODUCTS, {"items": [_product("A1")]}, catalog_key, atomic="true")
    assert accepted.status_code == 200 and accepted.json()["written"] is True
    assert Product.objects.filter(code="A1").exists()


def test_a_batch_over_the_cap_is_413_and_writes_nothing(post, catalog_key, formula):
    items = [_product(f"P{i}") for i in range(CATALOG_BATCH_CAP + 1)]

    response = post(PRODUCTS, {"items": items}, catalog_key)

    assert response.status_code == 413
    assert response.json()["code"] == "batch_too_large"
    assert not Product.objects.exists()


def test_a_body_that_is_not_a_batch_is_400(post, catalog_key):
    for body in ({}, {"items": "x"}, {"items": [], "mode": "sometimes"}):
        response = post(PRODUCTS, body, catalog_key)
        assert response.status_code == 400, body
        assert response.json()["code"] == "invalid"


def test_a_batch_costs_the_same_queries_for_ten_items_as_for_a_hundred(
    post, catalog_key, formula, django_assert_max_num_queries
):
    post(PRODUCTS, {"items": [_product(f"S{i}") for i in range(5)]}, catalog_key)  # warm: key, client

    def queries(count: int, prefix: str) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        items = [_product(f"{prefix}{i}") for i in range(count)]
        with CaptureQueriesContext(connection) as captured:
            assert post(PRODUCTS, {"items": items}, catalog_key).status_code == 200
        return len(captured)

    assert queries(100, "H") == queries(10, "T")


# --- prices ----------------------------------------------------------------------------------------


@pytest.fixture
def stores(db):
    return StoreFactory(code="WS"), StoreFactory(code="GD")


def test_prices_set_hq_and_store_prices_and_null_removes_a_store_price(post, erp_client, stores):
    ws, gd = stores
    sku = SkuFactory(code="F-700", price_fen=25800)
    set_store_price(store=gd, sku=sku, price_fen=24000)
    _client, key = erp_client(Scope.PRICES_WRITE)
    items = [
        {"sku_code": "F-700", "price_fen": 26800},
        {"sku_code": "F-700", "store_code": "WS", "price_fen": 24800},
        {"sku_code": "F-700", "store_code": "GD", "price_fen": None},
        {"sku_code": "NOPE", "store_code": "WS", "price_fen": 100},
        {"sku_code": "F-700", "store_code": "XX", "price_fen": 100},
    ]

    response = post(PRICES, {"items": items}, key)

    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["result"] for r in results] == ["updated", "created", "removed", "rejected", "rejected"]
    assert [r["reason"]["code"] for r in results[3:]] == ["sku_not_found", "store_not_found"]
    sku.refresh_from_db()
    assert sku.price_fen == 26800
    assert dict(StorePrice.objects.values_list("store__code", "price_fen")) == {"WS": 24800}

    again = post(PRICES, {"items": items[:3]}, key).json()
    assert [r["result"] for r in again["results"]] == ["unchanged", "unchanged", "unchanged"]


def test_a_store_restricted_client_sets_only_its_own_stores_prices(post, erp_client, stores):
    ws, gd = stores
    SkuFactory(code="F-700", price_fen=25800)
    _client, key = erp_client(Scope.PRICES_WRITE, stores=[ws])
    items = [
        {"sku_code": "F-700", "store_code": "WS", "price_fen": 24800},
        {"sku_code": "F-700", "store_code": "GD", "price_fen": 24000},
        {"sku_code": "F-700", "price_fen": 1},
    ]

    results = post(PRICES, {"items": items}, key).json()["results"]

    assert [r["result"] for r in results] == ["created", "rejected", "rejected"]
    # Another store answers exactly as a store that does not exist
    assert results[1]["reason"]["code"] == "store_not_found"
    assert results[2]["reason"]["code"] == "store_restricted"
    assert list(StorePrice.objects.values_list("store__code", flat=True)) == ["WS"]
    assert SKU.objects.get(code="F-700").price_fen == 25800


def test_hqs_price_cannot_be_removed_and_an_item_twice_is_rejected(post, erp_client, stores):
    SkuFactory(code="F-700")
    _client, key = erp_client(Scope.PRICES_WRITE)
    items = [
        {"sku_code": "F-700", "price_fen": None},
        {"sku_code": "F-700", "store_code": "WS", "price_fen": 1},
        {"sku_code": "F-700", "store_code": "WS", "price_fen": 2},
        {"sku_code": "F-700", "store_code": "WS"},
    ]

    results = post(PRICES, {"items": items}, key).json()["results"]

    assert [r["reason"]["code"] for r in results] == ["invalid_price", "duplicate_item", "duplicate_item", "invalid"]
    assert not StorePrice.objects.exists()


def test_prices_all_or_nothing_and_the_cap(post, erp_client, stores):
    sku = SkuFactory(code="F-700", price_fen=25800)
    _client, key = erp_client(Scope.PRICES_WRITE)
    items = [{"sku_code": "F-700", "price_fen": 100}, {"sku_code": "NOPE", "price_fen": 100}]

    refused = post(PRICES, {"items": items, "mode": "all_or_nothing"}, key)
    too_many = post(PRICES, {"items": [items[0]] * (PRICE_BATCH_CAP + 1)}, key)

    assert refused.status_code == 422 and refused.json()["code"] == "batch_rejected"
    assert too_many.status_code == 413 and too_many.json()["code"] == "batch_too_large"
    sku.refresh_from_db()
    assert sku.price_fen == 25800


def test_a_price_set_by_the_erp_shows_in_the_mall_at_once(post, erp_client, client, api_client, stores):
    ws, _gd = stores
    sku = SkuFactory(code="F-700", price_fen=25800, product__name="飞鹤星飞帆")
    client.post(reverse("mall:choose-store"), {"store_id": ws.pk})
    page = reverse("catalog:product", args=[sku.product_id])
    assert "¥258.00" in client.get(page).content.decode()  # read once before the change
    _client, key = erp_client(Scope.PRICES_WRITE)

    post(PRICES, {"items": [{"sku_code": "F-700", "store_code": "WS", "price_fen": 23900}]}, key)
    at_ws = client.get(page).content.decode()
    post(PRICES, {"items": [{"sku_code": "F-700", "price_fen": 26800}]}, key)
    api = api_client.get(reverse("product-detail", args=[sku.product_id])).json()

    assert "¥239.00" in at_ws and "¥258.00" not in at_ws
    assert api["skus"][0]["price_fen"] == 26800  # HQ's price, for a shopper without a store
