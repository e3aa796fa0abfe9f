"""The ERP's stock: snapshots that never go back in time nor touch reserved stock, deltas applied once, and reads.

Every endpoint's scope and store restriction is also checked by test_erp_access.py, which walks the
ERP URLconf; here, the stock rules and what a store-restricted client reads.
"""

import threading
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import time_machine
from django.db import connections, transaction
from django.urls import reverse
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.api.stock import DELTA_ROWS_CAP, SNAPSHOT_ROWS_CAP
from integrations.models import Scope
from inventory.models import Stock, StockMove
from inventory.selectors import move_totals
from inventory.services import StockLine, consume_reserved_stock, receive_stock, reserve_stock
from inventory.sync import SnapshotRow, apply_stock_snapshot
from tests.concurrency import run_at_once
from tests.factories import SkuFactory, StoreFactory

pytestmark = pytest.mark.django_db

BASE = datetime(2025, 6, 2, 0, 0, tzinfo=UTC)  # 08:00 in Beijing


def _at(minutes: float) -> datetime:
    return BASE + timedelta(minutes=minutes)


@pytest.fixture
def post(api_client):
    def send(url, body, key):
        return api_client.post(
            url, body, format="json", HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY=str(uuid4())
        )

    return send


@pytest.fixture
def get(api_client):
    def send(url, key, **params):
        return api_client.get(url, params, HTTP_AUTHORIZATION=f"Bearer {key}")

    return send


@pytest.fixture
def store(db):
    return StoreFactory(code="WS")


@pytest.fixture
def sku(db):
    return SkuFactory(code="F-700")


@pytest.fixture
def writer(erp_client):
    return erp_client(Scope.STOCK_WRITE)[1]


def _snapshot_url(store) -> str:
    return reverse("erp:store-stock-snapshot", kwargs={"store_code": store.code})


def _moves_url(store) -> str:
    return reverse("erp:store-stock-moves", kwargs={"store_code": store.code})


def _row(store, sku) -> Stock:
    return Stock.objects.get(store=store, sku=sku)


def _ledger_explains(store, sku) -> None:
    row = _row(store, sku)
    assert move_totals(store=store, sku=sku) == (row.on_hand, row.reserved)


def _hold(store, sku, *, received: int, reserved: int, at: datetime) -> None:
    """Goods received and some reserved for an online order, recorded at `at`."""
    with time_machine.travel(at, tick=False):
        receive_stock(store=store, sku=sku, quantity=received)
        if reserved:
            reserve_stock(store=store, lines=[StockLine(sku=sku, quantity=reserved)], reference="M0001")


# --- snapshots -----------------------------------------------------------------------------------


def test_a_snapshot_sets_on_hand_and_writes_a_move_the_ledger_balances_with(post, writer, store, sku):
    _hold(store, sku, received=10, reserved=0, at=_at(0))
    body = {"taken_at": _at(60).isoformat(), "rows": [{"sku_code": "F-700", "on_hand": 14}]}

    with time_machine.travel(_at(90), tick=False):
        response = post(_snapshot_url(store), body, writer)

    assert response.status_code == 200, response.content
    result = response.json()["results"][0]
    assert (result["result"], result["on_hand"], result["delta"], result["available"]) == ("applied", 14, 4, 14)
    row = _row(store, sku)
    assert (row.on_hand, row.synced_at) == (14, _at(60))
    move = StockMove.objects.get(kind=StockMove.Kind.ERP_SNAPSHOT)
    assert (move.on_hand_delta, move.on_hand_after, move.occurred_at) == (4, 14, _at(60))
    _ledger_explains(store, sku)


def test_a_snapshot_for_a_sku_the_store_never_held_creates_its_row(post, writer, store, sku):
    with time_machine.travel(_at(90), tick=False):
        body = {"taken_at": _at(60).isoformat(), "rows": [{"sku_code": "F-700", "on_hand": 3}]}
        assert post(_snapshot_url(store), body, writer).json()["results"][0]["result"] == "applied"

    assert _row(store, sku).on_hand == 3
    _ledger_explains(store, sku)


def test_an_older_or_equal_snapshot_is_stale_and_changes_nothing(post, writer, store, sku):
    with time_machine.travel(_at(90), tick=False):
        post(
            _snapshot_url(store),
            {"taken_at": _at(60).isoformat(), "rows": [{"sku_code": "F-700", "on_hand": 9}]},
            writer,
        )
        older = post(
            _snapshot_url(store),
            {"taken_at": _at(30).isoformat(), "rows": [{"sku_code": "F-700", "on_hand": 50}]},
            writer,
        )
        same = post(
            _snapshot_url(store),
            {"taken_at": _at(60).isoformat(), "rows": [{"sku_code": "F-700", "on_hand": 50}]},
            writer,
        )

    for response in (older, same):
        result = response.json()["results"][0]
        assert (result["result"], result["on_hand"], result["reason"]["code"]) == ("stale", 9, "stale")
    row = _row(store, sku)
    assert (row.on_hand, row.synced_at) == (9, _at(60))
    assert StockMove.objects.filter(kind=StockMove.Kind.ERP_SNAPSHOT).count() == 1


def test_goods_handed_over_online_after_the_count_are_not_counted_back(store, sku):
    # Given 10 on hand, 3 reserved for an online order, the ERP counts 10 at 09:00 and the
    # order is handed over at 09:10, before the snapshot arrives
    _hold(store, sku, received=10, reserved=3, at=_at(0))
    with time_machine.travel(_at(70), tick=False):
        consume_reserved_stock(store=store, lines=[StockLine(sku=sku, quantity=3)], reference="M0001")

    with time_machine.travel(_at(80), tick=False):
        [result] = apply_stock_snapshot(store=store, taken_at=_at(60), rows=[SnapshotRow(0, "F-700", 10)])

    # The 3 handed over after the count are gone: deducted once, not restored
    assert (result.result, result.on_hand, result.reserved) == ("unchanged", 7, 0)
    _ledger_explains(store, sku)


def test_goods_sold_online_before_the_count_are_in_it(store, sku):
    _hold(store, sku, received=10, reserved=3, at=_at(0))
    with time_machine.travel(_at(50), tick=False):
        consume_reserved_stock(store=store, lines=[StockLine(sku=sku, quantity=3)], reference="M0001")

    with time_machine.travel(_at(80), tick=False):
        [result] = apply_stock_snapshot(store=store, taken_at=_at(60), rows=[SnapshotRow(0, "F-700", 6)])

    assert (result.result, result.on_hand, result.delta) == ("applied", 6, -1)  # one went missing
    _ledger_explains(store, sku)


def test_a_snapshot_never_touches_reserved_stock_and_stops_at_it(post, writer, store, sku):
    # Given 10 on hand of which 6 are reserved for online orders, the ERP counts 4
    _hold(store, sku, received=10, reserved=6, at=_at(0))
    body = {"taken_at": _at(60).isoformat(), "rows": [{"sku_code": "F-700", "on_hand": 4}]}

    with time_machine.travel(_at(90), tick=False):
        result = post(_snapshot_url(store), body, writer).json()["results"][0]

    assert result["result"] == "conflict_reserved"
    assert (result["on_hand"], result["reserved"], result["available"], result["shortfall"]) == (6, 6, 0, 2)
    assert result["reason"]["code"] == "conflict_reserved"
    row = _row(store, sku)
    assert (row.on_hand, row.reserved) == (6, 6)
    _ledger_explains(store, sku)


def test_compare_and_set_refuses_a_row_whose_on_hand_moved(post, writer, store, sku):
    other = SkuFactory(code="G-1")
    _hold(store, sku, received=10, reserved=0, at=_at(0))
    _hold(store, other, received=5, reserved=0, at=_at(0))
    body = {
        "taken_at": _at(60).isoformat(),
        "rows": [
            {"sku_code": "F-700", "on_hand": 12, "expected_on_hand": 9},
            {"sku_code": "G-1", "on_hand": 4, "expected_on_hand": 5},
        ],
    }

    with time_machine.travel(_at(90), tick=False):
        refused, applied = post(_snapshot_url(store), body, writer).json()["results"]

    assert (refused["result"], refused["on_hand"], refused["reason"]["code"]) == (
        "stale_expected",
        10,
        "stale_expected",
    )
    assert "10" in refused["reason"]["message"]
    assert (applied["result"], applied["on_hand"]) == ("applied", 4)
    assert _row(store, sku).on_hand == 10
    assert _row(store, sku).synced_at is None  # a refused row changes nothing, not even its time


def test_snapshot_rows_are_answered_one_by_one(post, writer, store, sku):
    body = {
        "taken_at": _at(60).isoformat(),
        "rows": [
            {"sku_code": "F-700", "on_hand": 1},
            {"sku_code": "NOPE", "on_hand": 1},
            {"sku_code": "F-700x", "on_hand": -1},
            {"on_hand": 1},
            "row",
        ],
    }

    with time_machine.travel(_at(90), tick=False):
        answer = post(_snapshot_url(store), body, writer).json()

    assert [r.get("reason", {}).get("code") for r in answer["results"]] == [
        None,
        "sku_not_found",
        "invalid",
        "invalid",
        "invalid",
    ]
    assert answer["summary"]["applied"] == 1 and answer["summary"]["rejected"] == 4


def test_a_sku_twice_in_one_snapshot_is_rejected_both_times(post, writer, store, sku):
    body = {
        "taken_at": _at(60).isoformat(),
        "rows": [{"sku_code": "F-700", "on_hand": 1}, {"sku_code": "F-700", "on_hand": 2}],
    }

    with time_machine.travel(_at(90), tick=False):
        results = post(_snapshot_url(store), body, writer).json()["results"]

    assert [r["reason"]["code"] for r in results] == ["duplicate_sku", "duplicate_sku"]
    assert not Stock.objects.exists()


def test_snapshot_caps_and_bad_times(post, writer, store, sku):
    too_many = {
        "taken_at": _at(60).isoformat(),
        "rows": [{"sku_code": "F-700", "on_hand": 1}] * (SNAPSHOT_ROWS_CAP + 1),
    }
    with time_machine.travel(_at(90), tick=False):
        big = post(_snapshot_url(store), too_many, writer)
        future = post(_snapshot_url(store), {"taken_at": _at(100).isoformat(), "rows": []}, writer)
        missing = post(_snapshot_url(store), {"rows": []}, writer)

    assert (big.status_code, big.json()["code"]) == (413, "batch_too_large")
    assert (future.status_code, future.json()["code"]) == (400, "time_in_future")
    assert (missing.status_code, missing.json()["code"]) == (400, "invalid")
    assert not Stock.objects.exists()


def test_a_snapshot_costs_the_same_queries_for_five_rows_as_for_fifty(post, writer, store):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    skus = [SkuFactory(code=f"Q-{i}") for i in range(50)]
    _hold(store, skus[0], received=3, reserved=1, at=_at(0))

    def queries(count: int, minutes: int) -> int:
        rows = [{"sku_code": sku.code, "on_hand": i + minutes} for i, sku in enumerate(skus[:count])]
        with CaptureQueriesContext(connection) as captured:
            response = post(_snapshot_url(store), {"taken_at": _at(minutes).isoformat(), "rows": rows}, writer)
        assert response.json()["summary"]["applied"] == count
        return len(captured)

    with time_machine.travel(_at(200), tick=False):
        queries(50, 10)  # creates the rows; the key and client are read once
        assert queries(5, 20) == queries(50, 30)


@settings(max_examples=40)
@given(
    data=st.data(),
    snapshots=st.lists(
        st.tuples(st.integers(min_value=1, max_value=600), st.integers(min_value=0, max_value=150)),
        min_size=1,
        max_size=6,
        unique_by=lambda snapshot: snapshot[0],
    ),
    reserved=st.integers(min_value=0, max_value=40),
    consumed_at=st.integers(min_value=1, max_value=600),
)
def test_an_older_snapshot_never_overwrites_a_newer_one_nor_touches_reserved_stock(
    data, snapshots, reserved, consumed_at
):
    # Given 100 on hand at two stores, some reserved for an order of which part is handed over
    # at a random time among the snapshots' times
    consumed = data.draw(st.integers(min_value=0, max_value=reserved), label="consumed")
    sku = SkuFactory()
    every, newest_only = StoreFactory(), StoreFactory()
    for store in (every, newest_only):
        _hold(store, sku, received=100, reserved=reserved, at=BASE)
        if consumed:
            with time_machine.travel(_at(consumed_at + 0.5), tick=False):
                consume_reserved_stock(store=store, lines=[StockLine(sku=sku, quantity=consumed)], reference="M0001")
    arrival = data.draw(st.permutations(snapshots), label="arrival order")
    newest_at, newest_count = max(snapshots)

    # When the snapshots arrive in any order at one store, and only the newest at the other
    with time_machine.travel(_at(24 * 60), tick=False):
        for minutes, count in arrival:
            apply_stock_snapshot(store=every, taken_at=_at(minutes), rows=[SnapshotRow(0, sku.code, count)])
        apply_stock_snapshot(store=newest_only, taken_at=_at(newest_at), rows=[SnapshotRow(0, sku.code, newest_count)])

    # Then both hold the same: the newest count, less what was handed over after it, never below reserved
    gone_after = consumed if consumed_at + 0.5 > newest_at else 0
    expected = (max(newest_count - gone_after, reserved - consumed), reserved - consumed)
    for store in (every, newest_only):
        row = _row(store, sku)
        assert (row.on_hand, row.reserved) == expected
        assert row.synced_at == _at(newest_at)
        _ledger_explains(store, sku)


# --- deltas --------------------------------------------------------------------------------------


def test_deltas_received_sold_and_counted_are_applied_in_order(post, writer, store, sku):
    moves = [
        {"sku_code": "F-700", "kind": "received", "quantity": 24, "reference": "GRN-1"},
        {"sku_code": "F-700", "kind": "sold", "quantity": 2, "reference": "POS-1"},
        {"sku_code": "F-700", "kind": "sold", "quantity": -1, "reference": "POS-2"},
        {"sku_code": "F-700", "kind": "counted", "quantity": -3, "reference": "CNT-1"},
    ]

    answer = post(_moves_url(store), {"moves": moves}, writer).json()

    assert [(r["result"], r["delta"], r["on_hand"]) for r in answer["results"]] == [
        ("applied", 24, 24),
        ("applied", -2, 22),
        ("applied", 1, 23),
        ("applied", -3, 20),
    ]
    assert _row(store, sku).on_hand == 20
    kinds = list(StockMove.objects.order_by("pk").values_list("kind", flat=True))
    assert kinds == ["erp_receive", "erp_sale", "erp_sale", "erp_count"]
    _ledger_explains(store, sku)


def test_a_delta_sent_again_is_not_applied_twice(post, writer, store, sku):
    moves = [
        {"sku_code": "F-700", "kind": "received", "quantity": 24, "reference": "GRN-1"},
        {"sku_code": "F-700", "kind": "received", "quantity": 24, "reference": "GRN-1"},
    ]

    first = post(_moves_url(store), {"moves": moves}, writer).json()
    again = post(_moves_url(store), {"moves": moves[:1]}, writer).json()

    assert [r["result"] for r in first["results"]] == ["applied", "duplicate"]
    assert again["results"][0]["result"] == "duplicate"
    assert _row(store, sku).on_hand == 24
    assert StockMove.objects.count() == 1


def test_a_pos_sale_never_takes_reserved_units(post, writer, store, sku):
    _hold(store, sku, received=5, reserved=4, at=_at(0))

    result = post(
        _moves_url(store),
        {"moves": [{"sku_code": "F-700", "kind": "sold", "quantity": 3, "reference": "POS-9"}]},
        writer,
    ).json()["results"][0]

    assert (result["result"], result["delta"], result["shortfall"], result["on_hand"]) == (
        "conflict_reserved",
        -1,
        2,
        4,
    )
    assert (_row(store, sku).on_hand, _row(store, sku).reserved) == (4, 4)
    _ledger_explains(store, sku)
    # recorded with what was applied, so sending it again changes nothing
    again = post(
        _moves_url(store),
        {"moves": [{"sku_code": "F-700", "kind": "sold", "quantity": 3, "reference": "POS-9"}]},
        writer,
    ).json()["results"][0]
    assert again["result"] == "duplicate"


def test_a_sale_the_snapshot_already_counted_is_not_deducted_twice(post, writer, store, sku):
    # A till sale at 09:00 reported late, after a snapshot taken at 09:02 that already counted it
    _hold(store, sku, received=10, reserved=0, at=_at(0))
    sale = {
        "sku_code": "F-700",
        "kind": "sold",
        "quantity": 2,
        "reference": "POS-7",
        "occurred_at": _at(60).isoformat(),
    }
    with time_machine.travel(_at(70), tick=False):
        post(
            _snapshot_url(store),
            {"taken_at": _at(62).isoformat(), "rows": [{"sku_code": "F-700", "on_hand": 8}]},
            writer,
        )
        late = post(_moves_url(store), {"moves": [sale]}, writer).json()["results"][0]

    assert (late["result"], late["reason"]["code"]) == ("stale", "stale")
    assert _row(store, sku).on_hand == 8


def test_a_sale_reported_before_a_snapshot_taken_ahead_of_it_is_not_deducted_twice(post, writer, store, sku):
    # The sale happened at 09:00 and was reported at 09:05; the ERP's 09:02 count already has it
    _hold(store, sku, received=10, reserved=0, at=_at(0))
    sale = {
        "sku_code": "F-700",
        "kind": "sold",
        "quantity": 2,
        "reference": "POS-7",
        "occurred_at": _at(60).isoformat(),
    }
    with time_machine.travel(_at(65), tick=False):
        post(_moves_url(store), {"moves": [sale]}, writer)
    with time_machine.travel(_at(70), tick=False):
        snapshot = {"taken_at": _at(62).isoformat(), "rows": [{"sku_code": "F-700", "on_hand": 8}]}
        result = post(_snapshot_url(store), snapshot, writer).json()["results"][0]

    assert (result["result"], result["on_hand"]) == ("unchanged", 8)


def test_delta_rows_are_answered_one_by_one_and_capped(post, writer, store, sku):
    moves = [
        {"sku_code": "NOPE", "kind": "received", "quantity": 1, "reference": "A"},
        {"sku_code": "F-700", "kind": "stolen", "quantity": 1, "reference": "B"},
        {"sku_code": "F-700", "kind": "received", "quantity": 0, "reference": "C"},
        {"sku_code": "F-700", "kind": "received", "quantity": 1, "reference": ""},
        {
            "sku_code": "F-700",
            "kind": "received",
            "quantity": 1,
            "reference": "D",
            "occurred_at": "2999-01-01T00:00:00Z",
        },
    ]

    results = post(_moves_url(store), {"moves": moves}, writer).json()["results"]
    big = post(_moves_url(store), {"moves": moves[:1] * (DELTA_ROWS_CAP + 1)}, writer)

    assert [r["reason"]["code"] for r in results] == [
        "sku_not_found",
        "invalid",
        "invalid",
        "invalid",
        "time_in_future",
    ]
    assert (big.status_code, big.json()["code"]) == (413, "batch_too_large")
    assert not StockMove.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_delta_sent_twice_at_once_is_applied_once(erp_client, store, sku):
    from rest_framework.test import APIClient

    _client, key = erp_client(Scope.STOCK_WRITE)
    body = {"moves": [{"sku_code": "F-700", "kind": "received", "quantity": 5, "reference": "GRN-1"}]}

    def send():
        return APIClient().post(
            _moves_url(store),
            body,
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
            HTTP_IDEMPOTENCY_KEY=str(uuid4()),
        )

    responses, raised = run_at_once([send, send, send])

    assert not raised
    assert sorted(r.json()["results"][0]["result"] for r in responses) == ["applied", "duplicate", "duplicate"]
    assert _row(store, sku).on_hand == 5


# --- reads ---------------------------------------------------------------------------------------


def test_a_stores_stock_is_read_by_sku(get, erp_client, store, sku):
    other = SkuFactory(code="G-1")
    _hold(store, sku, received=10, reserved=2, at=_at(0))
    _hold(store, other, received=1, reserved=0, at=_at(0))
    _client, key = erp_client(Scope.STOCK_READ)
    url = reverse("erp:store-stock", kwargs={"store_code": "WS"})

    everything = get(url, key).json()
    one = get(url, key, sku="F-700").json()
    too_many = get(url, key, sku=",".join(f"S{i}" for i in range(201)))

    assert [r["sku_code"] for r in everything["results"]] == ["F-700", "G-1"]
    assert one["results"] == [
        {
            "store_code": "WS",
            "sku_code": "F-700",
            "on_hand": 10,
            "reserved": 2,
            "available": 8,
            "synced_at": None,
            "updated_at": one["results"][0]["updated_at"],
        }
    ]
    assert (too_many.status_code, too_many.json()["code"]) == (422, "too_many_skus")


def _read_all_changes(get, key, cursor="", page_size=3):
    seen, pages = [], 0
    while True:
        body = get(reverse("erp:stock-changes"), key, cursor=cursor, page_size=page_size).json()
        seen += [(r["store_code"], r["sku_code"], r["on_hand"]) for r in body["results"]]
        cursor, pages = body["next_cursor"], pages + 1
        if not body["has_more"]:
            return seen, cursor, pages


def test_changes_are_read_across_pages_each_exactly_once(get, erp_client, store):
    other = StoreFactory(code="GD")
    skus = [SkuFactory(code=f"C-{i}") for i in range(5)]
    for i, item in enumerate(skus):
        receive_stock(store=store, sku=item, quantity=i + 1)
        receive_stock(store=other, sku=item, quantity=10 + i)
    _client, key = erp_client(Scope.STOCK_READ)

    seen, cursor, pages = _read_all_changes(get, key)

    assert pages == 4  # 10 rows, 3 a page
    assert sorted(seen) == sorted(
        [("WS", f"C-{i}", i + 1) for i in range(5)] + [("GD", f"C-{i}", 10 + i) for i in range(5)]
    )
    # Caught up: nothing more from the last cursor
    assert get(reverse("erp:stock-changes"), key, cursor=cursor).json()["results"] == []


@pytest.mark.django_db(transaction=True)
def test_a_change_after_catching_up_comes_in_the_next_read_with_its_new_values(get, erp_client):
    store, sku = StoreFactory(code="WS"), SkuFactory(code="F-700")
    receive_stock(store=store, sku=sku, quantity=1)
    _client, key = erp_client(Scope.STOCK_READ)
    first, cursor, _pages = _read_all_changes(get, key)

    receive_stock(store=store, sku=sku, quantity=2)
    second, cursor, _pages = _read_all_changes(get, key, cursor=cursor)

    assert first == [("WS", "F-700", 1)]
    assert second == [("WS", "F-700", 3)]
    assert _read_all_changes(get, key, cursor=cursor)[0] == []


def test_a_store_restricted_client_reads_only_its_stores_changes(get, erp_client, store, sku):
    other = StoreFactory(code="GD")
    receive_stock(store=store, sku=sku, quantity=1)
    receive_stock(store=other, sku=sku, quantity=2)
    _client, key = erp_client(Scope.STOCK_READ, stores=[store])

    seen, _cursor, _pages = _read_all_changes(get, key)

    assert seen == [("WS", "F-700", 1)]


def test_a_cursor_that_is_not_ours_is_400_and_a_page_over_the_cap_is_422(get, erp_client):
    _client, key = erp_client(Scope.STOCK_READ)

    bad = get(reverse("erp:stock-changes"), key, cursor="not-a-cursor")
    big = get(reverse("erp:stock-changes"), key, page_size=1001)

    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cursor")
    assert (big.status_code, big.json()["code"]) == (422, "page_size_too_large")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_that_commits_late_is_not_skipped_by_a_reader(erp_client):
    from rest_framework.test import APIClient

    # Given two SKUs at a store and a reader caught up
    store = StoreFactory(code="WS")
    early, late = SkuFactory(code="EARLY"), SkuFactory(code="LATE")
    _client, key = erp_client(Scope.STOCK_READ)
    reader = APIClient()

    def read(cursor):
        body = reader.get(reverse("erp:stock-changes"), {"cursor": cursor}, HTTP_AUTHORIZATION=f"Bearer {key}").json()
        return [r["sku_code"] for r in body["results"]], body["next_cursor"]

    _seen, cursor = read("")
    written, release = threading.Event(), threading.Event()

    def slow_writer():
        # A transaction that starts writing first and commits last
        try:
            with transaction.atomic():
                receive_stock(store=store, sku=early, quantity=1)
                written.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert written.wait(timeout=30)
    receive_stock(store=store, sku=late, quantity=2)  # starts after, commits first

    # When the reader reads while the first transaction is still open
    while_open, cursor = read(cursor)
    release.set()
    thread.join()
    after, cursor = read(cursor)

    # Then it sees neither until the older transaction ends, and then both, once
    assert while_open == []
    assert sorted(after) == ["EARLY", "LATE"]
    assert read(cursor)[0] == []
