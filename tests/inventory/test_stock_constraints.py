"""The database itself refuses impossible stock, whatever code writes it."""

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from inventory.models import Stock
from inventory.services import StockLine, receive_stock, reserve_stock
from tests.factories import SkuFactory, StoreFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stock() -> Stock:
    """5 on hand, 2 reserved."""
    store, sku = StoreFactory(), SkuFactory()
    receive_stock(store=store, sku=sku, quantity=5)
    reserve_stock(store=store, lines=[StockLine(sku=sku, quantity=2)], reference="order:1")
    return Stock.objects.get(store=store, sku=sku)


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        ({"on_hand": -1, "reserved": 0}, "stock_on_hand_not_negative"),
        ({"reserved": -1}, "stock_reserved_not_negative"),
        ({"reserved": 6}, "stock_reserved_within_on_hand"),
        ({"on_hand": 1}, "stock_reserved_within_on_hand"),
        ({"on_hand": F("on_hand") - 4}, "stock_reserved_within_on_hand"),
    ],
)
def test_a_direct_update_to_impossible_stock_is_rejected_by_the_database(stock, change, constraint):
    # When code bypasses the services and writes impossible numbers with QuerySet.update()
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Stock.objects.filter(pk=stock.pk).update(**change)

    # Then the row is as it was
    stock.refresh_from_db()
    assert (stock.on_hand, stock.reserved) == (5, 2)


def test_a_new_stock_row_with_negative_on_hand_is_rejected_by_the_database():
    store, sku = StoreFactory(), SkuFactory()

    with pytest.raises(IntegrityError, match="stock_on_hand_not_negative"), transaction.atomic():
        Stock.objects.create(store=store, sku=sku, on_hand=-3)

    assert not Stock.objects.filter(store=store, sku=sku).exists()


def test_the_boundary_reserved_equal_to_on_hand_is_allowed(stock):
    Stock.objects.filter(pk=stock.pk).update(reserved=5)

    stock.refresh_from_db()
    assert stock.available == 0
