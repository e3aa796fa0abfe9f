"""The catalog and stock API: products with the store's prices, stock scoped to the caller."""

import pytest

from inventory.services import StockLine, receive_stock, reserve_stock, set_store_price
from tests.factories import (
    CategoryFactory,
    ProductFactory,
    SkuFactory,
    StoreFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/v1/products/"
STOCK = "/api/v1/stock/"


@pytest.fixture
def catalog():
    """Formula (two stages) under 奶粉, which sits under 喂养; diapers under 纸尿裤."""
    feeding = CategoryFactory(code="feeding", name="喂养")
    formula_cat = CategoryFactory(code="formula", name="奶粉", parent=feeding)
    diapers_cat = CategoryFactory(code="diapers", name="纸尿裤")
    formula = ProductFactory(code="FH3", name="飞鹤星飞帆 3段", brand="飞鹤", category=formula_cat)
    diapers = ProductFactory(code="HW-M", name="花王纸尿裤", brand="花王", category=diapers_cat)
    return {
        "formula": formula,
        "formula_800g": SkuFactory(
            product=formula, code="FH3-800", barcode="6900000000011", spec="800g", price_fen=25800
        ),
        "formula_400g": SkuFactory(
            product=formula, code="FH3-400", barcode="6900000000012", spec="400g", price_fen=13800
        ),
        "diapers": diapers,
        "diapers_m": SkuFactory(
            product=diapers, code="HW-M64", barcode="4901301000001", spec="M 64片", price_fen=15900
        ),
    }


def product_codes(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [item["code"] for item in response.json()["results"]]


# --- products -----------------------------------------------------------------------------------


def test_the_product_list_shows_active_products_with_their_category_and_skus(api_client, catalog):
    ProductFactory(code="OLD", is_active=False)
    ProductFactory(code="HIDDEN", category=CategoryFactory(is_active=False))
    SkuFactory(product=catalog["diapers"], code="HW-M-OLD", is_active=False)

    response = api_client.get(PRODUCTS)

    assert product_codes(response) == ["FH3", "HW-M"]
    assert response.json()["count"] == 2
    formula, diapers = response.json()["results"]
    assert formula["category"] == {"code": "formula", "name": "奶粉", "parent": "feeding"}
    assert {(s["code"], s["price_fen"]) for s in formula["skus"]} == {("FH3-800", 25800), ("FH3-400", 13800)}
    assert [s["code"] for s in diapers["skus"]] == ["HW-M64"]  # the inactive SKU is not offered


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("飞鹤", ["FH3"]),  # name or brand
        ("纸尿裤", ["HW-M"]),
        ("fh3-800", ["FH3"]),  # SKU code, any case
        ("4901301000001", ["HW-M"]),  # barcode
        ("64片", ["HW-M"]),  # spec
        ("no such thing", []),
    ],
)
def test_products_are_searched_by_name_brand_code_barcode_or_spec(api_client, catalog, q, expected):
    assert product_codes(api_client.get(PRODUCTS, {"q": q})) == expected


@pytest.mark.parametrize(("category", "expected"), [("formula", ["FH3"]), ("feeding", ["FH3"]), ("diapers", ["HW-M"])])
def test_products_are_filtered_by_category_including_its_subcategories(api_client, catalog, category, expected):
    assert product_codes(api_client.get(PRODUCTS, {"category": category})) == expected


def test_a_stores_own_price_replaces_hqs_price_only_when_that_store_is_asked(api_client, catalog):
    # Given the Wensan Road store sells the 800 g formula for 199.00 yuan
    own, other = StoreFactory(), StoreFactory()
    set_store_price(store=own, sku=catalog["formula_800g"], price_fen=19900)

    def prices(**params):
        response = api_client.get(PRODUCTS, {"q": "FH3-800", **params})
        return {s["code"]: s["price_fen"] for s in response.json()["results"][0]["skus"]}

    # Then its list shows its price, the other SKUs keep HQ's, and other stores and HQ see HQ's
    assert prices(store=own.pk) == {"FH3-800": 19900, "FH3-400": 13800}
    assert prices(store=other.pk) == {"FH3-800": 25800, "FH3-400": 13800}
    assert prices() == {"FH3-800": 25800, "FH3-400": 13800}
    detail = api_client.get(f"{PRODUCTS}{catalog['formula'].pk}/", {"store": own.pk}).json()
    assert {s["code"]: s["price_fen"] for s in detail["skus"]} == {"FH3-800": 19900, "FH3-400": 13800}

    # and removing the store's price brings HQ's back
    set_store_price(store=own, sku=catalog["formula_800g"], price_fen=None)
    assert prices(store=own.pk) == {"FH3-800": 25800, "FH3-400": 13800}


def test_one_product_is_shown_with_its_skus(api_client, catalog):
    response = api_client.get(f"{PRODUCTS}{catalog['diapers'].pk}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["code"], body["name"], body["brand"]) == ("HW-M", "花王纸尿裤", "花王")
    assert body["skus"] == [
        {
            "id": catalog["diapers_m"].pk,
            "code": "HW-M64",
            "barcode": "4901301000001",
            "spec": "M 64片",
            "price_fen": 15900,
            "is_active": True,
        }
    ]


@pytest.mark.parametrize("kind", ["unknown", "inactive"])
def test_an_unknown_or_inactive_product_is_a_404_json_not_found(api_client, kind):
    product_id = ProductFactory(is_active=False).pk if kind == "inactive" else 999_999

    response = api_client.get(f"{PRODUCTS}{product_id}/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert response.json()["message"]


@pytest.mark.parametrize("url", [PRODUCTS, "detail"])
def test_prices_of_an_unknown_store_are_a_404_store_not_found(api_client, catalog, url):
    url = f"{PRODUCTS}{catalog['formula'].pk}/" if url == "detail" else url

    response = api_client.get(url, {"store": 999_999})

    assert response.status_code == 404
    assert response.json()["code"] == "store_not_found"


def test_the_product_list_reads_a_fixed_number_of_queries_however_many_products_and_skus(
    api_client, django_assert_max_num_queries
):
    # Given 10 products of 3 SKUs each, and a store with its own price for every SKU
    store = StoreFactory()
    for _ in range(10):
        for sku in SkuFactory.create_batch(3, product=ProductFactory()):
            set_store_price(store=store, sku=sku, price_fen=sku.price_fen - 100)

    # When the list is read with the store's prices
    with django_assert_max_num_queries(6):
        response = api_client.get(PRODUCTS, {"store": store.pk})

    # Then every product and SKU came in a fixed handful of queries
    results = response.json()["results"]
    assert len(results) == 10
    assert all(len(p["skus"]) == 3 and all(s["price_fen"] == 25700 for s in p["skus"]) for p in results)


# --- stock --------------------------------------------------------------------------------------


@pytest.fixture
def two_stores_stock(clerk, catalog):
    """The clerk's store holds formula; another store holds diapers."""
    other = StoreFactory(code="BJ", name="滨江店")
    receive_stock(store=clerk.store, sku=catalog["formula_800g"], quantity=12)
    receive_stock(store=clerk.store, sku=catalog["formula_400g"], quantity=3)
    reserve_stock(store=clerk.store, lines=[StockLine(catalog["formula_800g"], 2)], reference="order:1")
    receive_stock(store=other, sku=catalog["diapers_m"], quantity=30)
    return clerk.store, other


def rows(response) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.json()
    return [(row["store"], row["sku"]) for row in response.json()["results"]]


def test_stock_is_not_shown_to_anonymous_callers(api_client, two_stores_stock):
    response = api_client.get(STOCK)

    assert response.status_code in (401, 403)
    assert response.json()["code"] == "not_authenticated"
    assert response.json()["message"]


def test_a_clerk_sees_only_their_own_stores_stock(api_client, clerk, two_stores_stock):
    api_client.force_login(clerk.user)

    response = api_client.get(STOCK)

    assert rows(response) == [("WS", "FH3-400"), ("WS", "FH3-800")]
    formula = response.json()["results"][1]
    assert (formula["on_hand"], formula["reserved"], formula["available"]) == (12, 2, 10)
    assert formula["product"] == "飞鹤星飞帆 3段"


def test_a_clerk_asking_for_another_stores_stock_gets_404_store_not_found(api_client, clerk, two_stores_stock):
    api_client.force_login(clerk.user)

    response = api_client.get(STOCK, {"store": "BJ"})

    assert response.status_code == 404
    assert response.json()["code"] == "store_not_found"


def test_stock_can_be_narrowed_by_store_sku_and_low_level(api_client, clerk, two_stores_stock):
    api_client.force_login(clerk.user)

    assert rows(api_client.get(STOCK, {"store": "WS"})) == [("WS", "FH3-400"), ("WS", "FH3-800")]
    assert rows(api_client.get(STOCK, {"sku": "FH3-800"})) == [("WS", "FH3-800")]
    assert rows(api_client.get(STOCK, {"low": "true"})) == [("WS", "FH3-400")]  # 3 available, threshold 5


def test_hq_staff_see_every_stores_stock(api_client, hq_user, two_stores_stock):
    api_client.force_login(hq_user)

    assert rows(api_client.get(STOCK)) == [("BJ", "HW-M64"), ("WS", "FH3-400"), ("WS", "FH3-800")]
    assert rows(api_client.get(STOCK, {"store": "BJ"})) == [("BJ", "HW-M64")]


def test_a_signed_in_user_who_is_neither_hq_nor_store_staff_sees_no_stock(api_client, two_stores_stock):
    api_client.force_login(UserFactory(username="shopper"))

    assert rows(api_client.get(STOCK)) == []


def test_a_former_clerk_sees_no_stock(api_client, clerk, two_stores_stock):
    clerk.is_active = False
    clerk.save(update_fields=["is_active"])
    api_client.force_login(clerk.user)

    assert rows(api_client.get(STOCK)) == []


def test_the_stock_list_reads_a_fixed_number_of_queries_however_many_rows(
    api_client, hq_user, django_assert_max_num_queries
):
    # Given 3 stores holding 10 SKUs each
    for store in StoreFactory.create_batch(3):
        for sku in SkuFactory.create_batch(10):
            receive_stock(store=store, sku=sku, quantity=5)
    api_client.force_login(hq_user)

    # When HQ reads the 30 rows (the session and user lookups included)
    with django_assert_max_num_queries(5):
        response = api_client.get(STOCK)

    assert response.json()["count"] == 30
    assert len(response.json()["results"]) == 30


def test_a_clerks_stock_list_also_reads_a_fixed_number_of_queries(api_client, clerk, django_assert_max_num_queries):
    for sku in SkuFactory.create_batch(20):
        receive_stock(store=clerk.store, sku=sku, quantity=5)
    api_client.force_login(clerk.user)

    with django_assert_max_num_queries(6):
        response = api_client.get(STOCK, {"store": "WS"})

    assert response.json()["count"] == 20
