"""A sale at the till takes what is available from the store's stock and never touches reservations."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.models import Stock, StockMove
from inventory.selectors import move_totals
from inventory.services import StockLine, receive_stock, reserve_stock, sell_at_pos
from tests.factories import SkuFactory, StoreFactory
from tests.isolation import rolled_back

pytestmark = pytest.mark.django_db


def test_units_beyond_the_available_are_the_shortfall_and_reservations_stay_whole():
    store = StoreFactory()
    plenty, short, absent = SkuFactory(), SkuFactory(), SkuFactory()
    receive_stock(store=store, sku=plenty, quantity=10)
    receive_stock(store=store, sku=short, quantity=4)
    reserve_stock(store=store, lines=[StockLine(sku=short, quantity=3)], reference="order:M1")

    shortfall = sell_at_pos(
        store=store,
        lines=[
            StockLine(sku=plenty, quantity=2),
            StockLine(sku=short, quantity=2),
            StockLine(sku=absent, quantity=1),
            StockLine(sku=plenty, quantity=1),
        ],
        reference="POS:WS:1",
    )

    assert shortfall == {plenty.pk: 0, short.pk: 1, absent.pk: 1}
    assert Stock.objects.get(store=store, sku=plenty).on_hand == 7
    assert (Stock.objects.get(store=store, sku=short).on_hand, Stock.objects.get(store=store, sku=short).reserved) == (
        3,
        3,
    )
    assert not Stock.objects.filter(store=store, sku=absent).exists()
    moves = StockMove.objects.filter(kind=StockMove.Kind.POS_SALE).order_by("sku_id")
    assert [(m.sku_id, m.on_hand_delta, m.reference) for m in moves] == [
        (plenty.pk, -3, "POS:WS:1"),
        (short.pk, -1, "POS:WS:1"),
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    on_hand=st.integers(min_value=0, max_value=20),
    reserved_share=st.integers(min_value=0, max_value=100),
    sold=st.lists(st.integers(min_value=1, max_value=15), min_size=1, max_size=4),
)
def test_the_row_stays_the_sum_of_its_moves_and_within_its_constraints(on_hand, reserved_share, sold):
    with rolled_back():
        store, sku = StoreFactory(), SkuFactory()
        if on_hand:
            receive_stock(store=store, sku=sku, quantity=on_hand)
        reserved = on_hand * reserved_share // 100
        if reserved:
            reserve_stock(store=store, lines=[StockLine(sku=sku, quantity=reserved)], reference="order:M1")
        short_total = 0
        for quantity in sold:
            short_total += sell_at_pos(store=store, lines=[StockLine(sku=sku, quantity=quantity)], reference="POS")[
                sku.pk
            ]
        stock = Stock.objects.filter(store=store, sku=sku).first()
        left = stock.on_hand if stock else 0
        assert left == max(on_hand - sum(sold), reserved)  # what was available went, no more
        assert stock is None or stock.reserved == reserved
        assert short_total == sum(sold) - (on_hand - left)
        if stock is not None:
            assert move_totals(store=store, sku=sku) == (stock.on_hand, stock.reserved)
