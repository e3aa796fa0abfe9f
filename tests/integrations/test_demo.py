"""The demo chain: safe to load twice, stock that matches its ledger, stores in Hangzhou, logins that work."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from integrations.demo import DEMO_LOGINS, DEMO_PASSWORD, HQ_USERNAME, PRODUCTS, STORES, ean13
from inventory.models import SKU, Stock, StockMove
from inventory.selectors import move_totals, stock_of_store
from o2o.geo import Point, distance_m
from stores.models import OpeningHours, Staff, Store

pytestmark = pytest.mark.django_db

HANGZHOU_CENTRE = Point(30.274, 120.155)


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The command run once for the whole module (a full load takes seconds), rolled back at the end.

    Each test still runs in its own savepoint inside this transaction, so what one
    test writes is gone before the next. Yields what the command printed.
    """
    with django_db_blocker.unblock(), transaction.atomic():
        out = StringIO()
        call_command("load_demo", stdout=out)
        yield out.getvalue()
        transaction.set_rollback(True)


def _snapshot() -> dict[str, object]:
    return {
        "stores": Store.objects.count(),
        "staff": Staff.objects.count(),
        "users": get_user_model().objects.count(),
        "skus": SKU.objects.count(),
        "stock rows": Stock.objects.count(),
        "stock moves": StockMove.objects.count(),
        # Replacing a store's hours would keep the count but change the rows.
        "opening hours": sorted(OpeningHours.objects.values_list("pk", flat=True)),
        "stock": sorted(Stock.objects.values_list("store_id", "sku_id", "on_hand", "reserved")),
    }


def test_loading_the_demo_a_second_time_changes_nothing(demo):
    # Given the demo loaded once
    once = _snapshot()

    # When it is loaded again
    out = StringIO()
    call_command("load_demo", stdout=out)

    # Then nothing was created, replaced or received, and the summary says so
    assert _snapshot() == once
    assert "nothing new" in out.getvalue()
    counts = out.getvalue().splitlines()[1:]
    assert counts and all(line.endswith("(+0)") for line in counts)


def test_the_command_prints_the_counts_it_created(demo):
    assert re.search(rf"stores\s+{len(STORES)}\s+\(\+{len(STORES)}\)", demo)
    assert re.search(rf"stock moves\s+{StockMove.objects.count()}\s+\(\+{StockMove.objects.count()}\)", demo)


def test_the_command_prints_nothing_when_quiet(demo):
    out = StringIO()

    call_command("load_demo", quiet=True, stdout=out)

    assert out.getvalue() == ""


def test_every_stock_row_equals_the_sum_of_its_moves(demo):
    rows = list(Stock.objects.select_related("store", "sku"))

    assert rows
    for row in rows:
        assert move_totals(store=row.store, sku=row.sku) == (row.on_hand, row.reserved), row


def test_opening_stock_is_received_as_opening_stock_by_hq(demo):
    receipts = StockMove.objects.filter(kind=StockMove.Kind.RECEIVE)

    assert receipts.count() == Stock.objects.count()
    assert set(receipts.values_list("reason", "reference", "actor__username").distinct()) == {
        ("期初库存", "demo", HQ_USERNAME)
    }


def test_every_store_has_low_stock_and_the_chain_has_sold_out_and_uncarried_skus(demo):
    for store in Store.objects.all():
        assert stock_of_store(store=store, low_only=True).exists(), store
    assert Stock.objects.filter(on_hand=0).exists()
    assert Stock.objects.count() < Store.objects.count() * SKU.objects.count()


def test_every_store_is_within_40_km_of_hangzhou_and_opens_every_day(demo):
    stores = list(Store.objects.prefetch_related("opening_hours"))

    assert len(stores) == len(STORES) == 17
    for store in stores:
        assert distance_m(store.point, HANGZHOU_CENTRE) < 40_000, store
        assert store.city == "杭州"
        assert {hours.weekday for hours in store.opening_hours.all()} == set(range(7)), store


def test_the_chain_has_exactly_one_hq_store_and_some_franchises(demo):
    assert Store.objects.filter(kind=Store.Kind.HQ).count() == 1
    assert Store.objects.filter(operation=Store.Operation.FRANCHISE).exists()
    assert Store.objects.filter(delivers=False, offers_pickup=True).exists()


def test_staff_codes_are_unique_and_every_store_has_a_manager_and_two_clerks(demo):
    codes = list(Staff.objects.values_list("staff_code", flat=True))
    assert len(codes) == len(set(codes))

    for store in Store.objects.all():
        roles = list(store.staff.values_list("role", flat=True))
        assert roles.count(Staff.Role.MANAGER) == 1, store
        assert roles.count(Staff.Role.CLERK) == 2, store


def test_the_hq_user_logs_in_as_a_superuser_without_a_staff_record(demo, client):
    assert client.login(username=HQ_USERNAME, password=DEMO_PASSWORD)

    hq = get_user_model().objects.get(username=HQ_USERNAME)
    assert hq.is_staff and hq.is_superuser
    assert not Staff.objects.filter(user=hq).exists()


def test_every_printed_demo_login_works(demo, client):
    for login in DEMO_LOGINS:
        assert client.login(username=login.username, password=login.password), login
        client.logout()


def test_skus_have_valid_ean13_barcodes_from_china(demo):
    barcodes = list(SKU.objects.values_list("barcode", flat=True))

    assert len(barcodes) == sum(len(product.skus) for product in PRODUCTS)
    for barcode in barcodes:
        assert len(barcode) == 13 and barcode.startswith("69"), barcode
        assert ean13(barcode[:12]) == barcode


def test_ean13_appends_the_standard_check_digit():
    assert ean13("400638133393") == "4006381333931"
    assert ean13("690123456789") == "6901234567892"
