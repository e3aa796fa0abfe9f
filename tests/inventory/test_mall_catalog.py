"""The mall's catalog: prices and availability at the chosen store, and nearby stores that have it."""

from decimal import Decimal

import pytest
from django.urls import reverse

from inventory.services import receive_stock, set_store_price
from tests.factories import CategoryFactory, SkuFactory, StoreFactory

pytestmark = pytest.mark.django_db


def _choose(client, store):
    client.post(reverse("mall:choose-store"), {"store_id": store.pk})


def test_the_catalog_prices_products_for_the_chosen_store_and_marks_what_it_holds(client):
    store = StoreFactory(name="文三路店")
    formula = SkuFactory(product__name="飞鹤星飞帆", price_fen=25800)
    diapers = SkuFactory(product__name="花王纸尿裤", price_fen=13900)
    set_store_price(store=store, sku=formula, price_fen=24900)
    receive_stock(store=store, sku=formula, quantity=20)
    _choose(client, store)

    page = client.get(reverse("catalog:list")).content.decode()

    assert "¥249.00" in page  # the store's own price, not HQ's ¥258.00
    assert "¥258.00" not in page
    assert "¥139.00" in page
    assert diapers.product.name in page


def test_the_catalog_filters_by_category_and_search(client):
    formula = CategoryFactory(code="formula", name="奶粉")
    SkuFactory(product__name="飞鹤星飞帆", product__category=formula)
    SkuFactory(product__name="花王纸尿裤")
    by_category = client.get(reverse("catalog:list"), {"category": "formula"}).content.decode()
    assert "飞鹤星飞帆" in by_category and "花王纸尿裤" not in by_category
    by_text = client.get(reverse("catalog:list"), {"q": "花王"}).content.decode()
    assert "花王纸尿裤" in by_text and "飞鹤星飞帆" not in by_text


def test_the_product_page_says_only_n_left_at_or_under_the_threshold(client):
    store = StoreFactory()
    sku = SkuFactory()
    receive_stock(store=store, sku=sku, quantity=3)  # threshold 5 by default
    _choose(client, store)
    page = client.get(reverse("catalog:product", args=[sku.product_id])).content.decode()
    assert "Only 3 left here" in page


def test_the_product_page_points_to_nearby_stores_when_the_chosen_one_is_out(client):
    here = StoreFactory(name="文三路店", latitude=Decimal("30.280000"), longitude=Decimal("120.150000"))
    near = StoreFactory(name="黄龙店", latitude=Decimal("30.270000"), longitude=Decimal("120.150000"))
    far = StoreFactory(name="萧山店", latitude=Decimal("30.180000"), longitude=Decimal("120.260000"))
    empty = StoreFactory(name="空店", latitude=Decimal("30.281000"), longitude=Decimal("120.150000"))
    sku = SkuFactory()
    receive_stock(store=near, sku=sku, quantity=9)
    receive_stock(store=far, sku=sku, quantity=9)
    _choose(client, here)

    page = client.get(reverse("catalog:product", args=[sku.product_id])).content.decode()

    assert "Out of stock here" in page
    assert "黄龙店" in page and "萧山店" in page
    assert page.index("黄龙店") < page.index("萧山店")
    assert empty.name not in page


def test_an_unknown_or_inactive_product_is_a_404(client):
    sku = SkuFactory(product__is_active=False)
    assert client.get(reverse("catalog:product", args=[sku.product_id])).status_code == 404
    assert client.get(reverse("catalog:product", args=[999999])).status_code == 404
