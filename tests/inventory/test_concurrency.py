"""Real concurrency on PostgreSQL: stock is never sold twice, and multi-line reservations never deadlock."""

import threading
import time
from collections.abc import Callable
from unittest import mock

import pytest
from django.db import connection

from inventory import services
from inventory.models import Stock
from inventory.selectors import move_totals
from inventory.services import InsufficientStock, StockLine, receive_stock, reserve_stock
from tests.factories import SkuFactory, StoreFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_at_once(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls in threads released together; each returns its result or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = calls[i]()
        except BaseException as exc:  # noqa: BLE001 - every outcome is returned and asserted on
            outcomes[i] = exc
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a reservation hung"
    return outcomes


def test_fifty_shoppers_racing_for_the_last_ten_units_get_exactly_ten():
    # Given a store that received 30 units and has 20 reserved already: 10 left to sell
    store, sku = StoreFactory(), SkuFactory()
    receive_stock(store=store, sku=sku, quantity=30)
    reserve_stock(store=store, lines=[StockLine(sku, 20)], reference="order:earlier")

    # When 50 shoppers each reserve one unit at the same moment, each on their own connection
    outcomes = run_at_once(
        [lambda n=n: reserve_stock(store=store, lines=[StockLine(sku, 1)], reference=f"order:{n}") for n in range(50)]
    )

    # Then exactly 10 succeed and the 40 others are told the stock is insufficient; nothing else goes wrong
    succeeded = [o for o in outcomes if isinstance(o, list)]
    refused = [o for o in outcomes if isinstance(o, InsufficientStock)]
    assert len(succeeded) == 10
    assert len(refused) == 40, [o for o in outcomes if not isinstance(o, list | InsufficientStock)]
    row = Stock.objects.get(store=store, sku=sku)
    assert (row.on_hand, row.reserved) == (30, 30)
    assert move_totals(store=store, sku=sku) == (30, 30)


def test_two_multi_line_reservations_taking_the_same_skus_in_opposite_order_never_deadlock():
    # Given two SKUs, and each row change held open a moment so the two reservations overlap
    store, formula, diapers = StoreFactory(), SkuFactory(), SkuFactory()
    receive_stock(store=store, sku=formula, quantity=11)
    receive_stock(store=store, sku=diapers, quantity=11)
    change_row = services._change_row

    def slow_change_row(**kwargs):
        after = change_row(**kwargs)
        time.sleep(0.05)  # the row stays locked by our transaction meanwhile
        return after

    # When, over several rounds, one order takes formula then diapers and the other diapers then formula
    outcomes = []
    with mock.patch.object(services, "_change_row", slow_change_row):
        for round_no in range(6):
            outcomes += run_at_once(
                [
                    lambda r=round_no: reserve_stock(
                        store=store, lines=[StockLine(formula, 1), StockLine(diapers, 1)], reference=f"a:{r}"
                    ),
                    lambda r=round_no: reserve_stock(
                        store=store, lines=[StockLine(diapers, 1), StockLine(formula, 1)], reference=f"b:{r}"
                    ),
                ]
            )

    # Then every reservation completed or was refused for stock (11 units: the 12th pair finds one short),
    # never a deadlock or any other database error
    errors = [o for o in outcomes if not isinstance(o, list | InsufficientStock)]
    assert errors == []
    assert sum(isinstance(o, list) for o in outcomes) == 11
    assert sum(isinstance(o, InsufficientStock) for o in outcomes) == 1
    for sku in (formula, diapers):
        row = Stock.objects.get(store=store, sku=sku)
        assert (row.on_hand, row.reserved) == (11, 11)
        assert move_totals(store=store, sku=sku) == (11, 11)
