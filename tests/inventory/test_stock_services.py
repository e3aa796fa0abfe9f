"""Every stock service writes its ledger entry; stock rows always equal the sum of their moves."""

from collections import Counter

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from inventory.models import Stock, StockMove, StockTransfer
from inventory.selectors import move_totals
from inventory.services import (
    InsufficientStock,
    InvalidQuantity,
    StockLine,
    adjust_stock_count,
    cancel_transfer,
    consume_reserved_stock,
    receive_stock,
    receive_transfer,
    release_stock,
    request_transfer,
    reserve_stock,
    ship_transfer,
)
from o2o.errors import ApplicationError, Conflict
from tests.factories import SkuFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def store():
    return StoreFactory()


@pytest.fixture
def sku():
    return SkuFactory()


@pytest.fixture
def clerk():
    return UserFactory()


def ledger_state():
    """Everything a stock service may write, to prove a refused call wrote nothing."""
    rows = sorted(Stock.objects.values_list("store_id", "sku_id", "on_hand", "reserved"))
    moves = sorted(StockMove.objects.values_list("pk", "on_hand_delta", "reserved_delta"))
    transfers = sorted(StockTransfer.objects.values_list("pk", "status"))
    return rows, moves, transfers


def stock_of(store, sku) -> tuple[int, int]:
    row = Stock.objects.filter(store=store, sku=sku).values_list("on_hand", "reserved").first()
    return row or (0, 0)


def move_fields(move: StockMove) -> dict:
    return {
        "kind": move.kind,
        "store": move.store_id,
        "sku": move.sku_id,
        "on_hand_delta": move.on_hand_delta,
        "reserved_delta": move.reserved_delta,
        "on_hand_after": move.on_hand_after,
        "reserved_after": move.reserved_after,
        "actor": move.actor_id,
        "reference": move.reference,
        "reason": move.reason,
    }


# --- receive and count --------------------------------------------------------------------------


def test_receiving_stock_adds_to_on_hand_and_records_a_receive_move(store, sku, clerk):
    # Given 4 units already received
    receive_stock(store=store, sku=sku, quantity=4)

    # When 6 more arrive
    move = receive_stock(store=store, sku=sku, quantity=6, actor=clerk, reason="供应商送货", reference="po:881")

    # Then on hand is 10 and the move says so, with who and why
    assert stock_of(store, sku) == (10, 0)
    assert move_fields(StockMove.objects.get(pk=move.pk)) == {
        "kind": StockMove.Kind.RECEIVE,
        "store": store.pk,
        "sku": sku.pk,
        "on_hand_delta": 6,
        "reserved_delta": 0,
        "on_hand_after": 10,
        "reserved_after": 0,
        "actor": clerk.pk,
        "reference": "po:881",
        "reason": "供应商送货",
    }


def test_a_count_sets_on_hand_to_what_was_counted_and_records_the_difference(store, sku, clerk):
    receive_stock(store=store, sku=sku, quantity=10)
    reserve_stock(store=store, lines=[StockLine(sku, 3)], reference="order:1")

    move = adjust_stock_count(store=store, sku=sku, counted=7, actor=clerk, reason="月度盘点")

    assert stock_of(store, sku) == (7, 3)
    assert move_fields(move) == {
        "kind": StockMove.Kind.COUNT,
        "store": store.pk,
        "sku": sku.pk,
        "on_hand_delta": -3,
        "reserved_delta": 0,
        "on_hand_after": 7,
        "reserved_after": 3,
        "actor": clerk.pk,
        "reference": "",
        "reason": "月度盘点",
    }


def test_a_count_of_a_sku_the_store_never_held_creates_its_stock_row(store, sku):
    move = adjust_stock_count(store=store, sku=sku, counted=4)

    assert stock_of(store, sku) == (4, 0)
    assert (move.on_hand_delta, move.on_hand_after) == (4, 4)


def test_a_count_below_what_is_reserved_is_refused_and_changes_nothing(store, sku, clerk):
    # Given 10 on hand, 6 of them reserved for orders
    receive_stock(store=store, sku=sku, quantity=10)
    reserve_stock(store=store, lines=[StockLine(sku, 6)], reference="order:1")
    before = ledger_state()

    # When a count finds only 5
    with pytest.raises(Conflict) as refused:
        adjust_stock_count(store=store, sku=sku, counted=5, actor=clerk)

    # Then it is refused with its code, and nothing was written
    assert refused.value.code == "count_below_reserved"
    assert refused.value.details == {"counted": [5], "reserved": [6]}
    assert ledger_state() == before


def test_a_count_equal_to_what_is_reserved_is_accepted(store, sku):
    receive_stock(store=store, sku=sku, quantity=10)
    reserve_stock(store=store, lines=[StockLine(sku, 6)], reference="order:1")

    adjust_stock_count(store=store, sku=sku, counted=6)

    assert stock_of(store, sku) == (6, 6)


# --- reserve, release, consume ------------------------------------------------------------------


def test_reserving_holds_units_line_by_line_in_sku_order_with_one_move_each(store, clerk):
    # Given two SKUs in stock
    formula, diapers = SkuFactory(), SkuFactory()
    receive_stock(store=store, sku=formula, quantity=5)
    receive_stock(store=store, sku=diapers, quantity=8)

    # When an order reserves them, listing the later SKU first and one SKU twice
    moves = reserve_stock(
        store=store,
        lines=[StockLine(diapers, 2), StockLine(formula, 1), StockLine(diapers, 3)],
        reference="order:42",
        actor=clerk,
        reason="线上订单",
    )

    # Then there is one reserve move per SKU, in SKU order, with the merged quantity
    assert [move_fields(m) for m in moves] == [
        {
            "kind": StockMove.Kind.RESERVE,
            "store": store.pk,
            "sku": formula.pk,
            "on_hand_delta": 0,
            "reserved_delta": 1,
            "on_hand_after": 5,
            "reserved_after": 1,
            "actor": clerk.pk,
            "reference": "order:42",
            "reason": "线上订单",
        },
        {
            "kind": StockMove.Kind.RESERVE,
            "store": store.pk,
            "sku": diapers.pk,
            "on_hand_delta": 0,
            "reserved_delta": 5,
            "on_hand_after": 8,
            "reserved_after": 5,
            "actor": clerk.pk,
            "reference": "order:42",
            "reason": "线上订单",
        },
    ]
    assert stock_of(store, formula) == (5, 1)
    assert stock_of(store, diapers) == (8, 5)


def test_a_reservation_is_all_or_nothing_across_its_lines(store, clerk):
    # Given plenty of one SKU and only 2 available of another
    plenty, scarce = SkuFactory(), SkuFactory()
    receive_stock(store=store, sku=plenty, quantity=50)
    receive_stock(store=store, sku=scarce, quantity=3)
    reserve_stock(store=store, lines=[StockLine(scarce, 1)], reference="order:1")
    before = ledger_state()

    # When an order wants 5 of the first and 3 of the second
    with pytest.raises(InsufficientStock) as refused:
        reserve_stock(store=store, lines=[StockLine(plenty, 5), StockLine(scarce, 3)], reference="order:2", actor=clerk)

    # Then it is refused, naming the short SKU, and even the first line was not reserved
    assert refused.value.code == "insufficient_stock"
    assert refused.value.status == 409
    assert refused.value.details == {"sku": [scarce.code], "available": [2], "wanted": [3]}
    assert ledger_state() == before
    assert not StockMove.objects.filter(reference="order:2").exists()


def test_reserving_a_sku_the_store_never_held_is_insufficient_stock(store, sku):
    before = ledger_state()

    with pytest.raises(InsufficientStock) as refused:
        reserve_stock(store=store, lines=[StockLine(sku, 1)], reference="order:1")

    assert refused.value.details["available"] == [0]
    assert ledger_state() == before


def test_releasing_gives_reserved_units_back_to_sale(store, sku, clerk):
    receive_stock(store=store, sku=sku, quantity=10)
    reserve_stock(store=store, lines=[StockLine(sku, 4)], reference="order:7")

    [move] = release_stock(store=store, lines=[StockLine(sku, 3)], reference="order:7", actor=clerk, reason="取消")

    assert stock_of(store, sku) == (10, 1)
    assert move_fields(move) == {
        "kind": StockMove.Kind.RELEASE,
        "store": store.pk,
        "sku": sku.pk,
        "on_hand_delta": 0,
        "reserved_delta": -3,
        "on_hand_after": 10,
        "reserved_after": 1,
        "actor": clerk.pk,
        "reference": "order:7",
        "reason": "取消",
    }


def test_consuming_hands_reserved_units_over_so_they_leave_on_hand_and_reserved(store, sku, clerk):
    receive_stock(store=store, sku=sku, quantity=10)
    reserve_stock(store=store, lines=[StockLine(sku, 4)], reference="order:7")

    [move] = consume_reserved_stock(store=store, lines=[StockLine(sku, 4)], reference="order:7", actor=clerk)

    assert stock_of(store, sku) == (6, 0)
    assert move_fields(move) == {
        "kind": StockMove.Kind.CONSUME,
        "store": store.pk,
        "sku": sku.pk,
        "on_hand_delta": -4,
        "reserved_delta": -4,
        "on_hand_after": 6,
        "reserved_after": 0,
        "actor": clerk.pk,
        "reference": "order:7",
        "reason": "",
    }


@pytest.mark.parametrize("service", [release_stock, consume_reserved_stock])
def test_releasing_or_consuming_more_than_is_reserved_is_refused_and_changes_nothing(store, service):
    # Given two SKUs, one with 2 reserved and one with 5 reserved
    first, second = SkuFactory(), SkuFactory()
    for sku in (first, second):
        receive_stock(store=store, sku=sku, quantity=10)
    reserve_stock(store=store, lines=[StockLine(first, 5), StockLine(second, 2)], reference="order:1")
    before = ledger_state()

    # When 3 of each are taken
    with pytest.raises(Conflict) as refused:
        service(store=store, lines=[StockLine(first, 3), StockLine(second, 3)], reference="order:1")

    # Then the whole call is refused: the first SKU's line was undone too
    assert refused.value.code == "not_reserved"
    assert ledger_state() == before


def test_an_anonymous_actor_is_recorded_as_nobody(store, sku):
    move = receive_stock(store=store, sku=sku, quantity=1, actor=AnonymousUser())

    assert move.actor is None


# --- invalid quantities -------------------------------------------------------------------------

BAD_QUANTITIES = [0, -1, 2.5, "3", True, None]


def _call(service_name: str, store, sku, quantity):
    if service_name == "receive":
        return receive_stock(store=store, sku=sku, quantity=quantity)
    if service_name == "count":
        return adjust_stock_count(store=store, sku=sku, counted=quantity)
    lines = [StockLine(sku, quantity)]
    if service_name == "reserve":
        return reserve_stock(store=store, lines=lines, reference="order:1")
    if service_name == "release":
        return release_stock(store=store, lines=lines, reference="order:1")
    if service_name == "consume":
        return consume_reserved_stock(store=store, lines=lines, reference="order:1")
    if service_name == "transfer":
        return request_transfer(from_store=store, to_store=StoreFactory(), lines=lines)
    raise AssertionError(service_name)


@pytest.mark.parametrize(
    ("service_name", "quantity"),
    [
        (service_name, quantity)
        for service_name in ("receive", "count", "reserve", "release", "consume", "transfer")
        for quantity in BAD_QUANTITIES
        if not (service_name == "count" and quantity == 0)  # a count of 0 is valid: the shelf is empty
    ],
)
def test_an_invalid_quantity_is_refused_and_changes_nothing(store, sku, service_name, quantity):
    # Given stock with some units reserved
    receive_stock(store=store, sku=sku, quantity=10)
    reserve_stock(store=store, lines=[StockLine(sku, 5)], reference="order:1")
    before = ledger_state()

    # When a service gets a quantity that is not a positive whole number
    with pytest.raises(InvalidQuantity) as refused:
        _call(service_name, store, sku, quantity)

    # Then it is refused with its code and nothing was written
    assert refused.value.code == "invalid_quantity"
    assert ledger_state() == before


@pytest.mark.parametrize("service", [reserve_stock, release_stock, consume_reserved_stock])
def test_a_call_without_lines_is_refused(store, service):
    with pytest.raises(InvalidQuantity) as refused:
        service(store=store, lines=[], reference="order:1")

    assert refused.value.code == "invalid_quantity"


# --- transfers write their moves ----------------------------------------------------------------


def test_each_transfer_step_writes_its_moves_with_the_transfer_as_reference(sku, clerk):
    # Given 10 units at the source
    source, destination = StoreFactory(), StoreFactory()
    receive_stock(store=source, sku=sku, quantity=10)

    # When 4 are requested, shipped and received
    transfer = request_transfer(
        from_store=source, to_store=destination, lines=[StockLine(sku, 4)], actor=clerk, note="补货"
    )
    ship_transfer(transfer=transfer, actor=clerk, reason="已发车")
    receive_transfer(transfer=transfer, actor=clerk, reason="已签收")

    # Then the three moves are a reservation and a shipment at the source, a receipt at the destination
    moves = StockMove.objects.filter(reference=f"transfer:{transfer.pk}").order_by("pk")
    assert [move_fields(m) for m in moves] == [
        {
            "kind": StockMove.Kind.RESERVE,
            "store": source.pk,
            "sku": sku.pk,
            "on_hand_delta": 0,
            "reserved_delta": 4,
            "on_hand_after": 10,
            "reserved_after": 4,
            "actor": clerk.pk,
            "reference": f"transfer:{transfer.pk}",
            "reason": "补货",
        },
        {
            "kind": StockMove.Kind.TRANSFER_OUT,
            "store": source.pk,
            "sku": sku.pk,
            "on_hand_delta": -4,
            "reserved_delta": -4,
            "on_hand_after": 6,
            "reserved_after": 0,
            "actor": clerk.pk,
            "reference": f"transfer:{transfer.pk}",
            "reason": "已发车",
        },
        {
            "kind": StockMove.Kind.TRANSFER_IN,
            "store": destination.pk,
            "sku": sku.pk,
            "on_hand_delta": 4,
            "reserved_delta": 0,
            "on_hand_after": 4,
            "reserved_after": 0,
            "actor": clerk.pk,
            "reference": f"transfer:{transfer.pk}",
            "reason": "已签收",
        },
    ]


def test_cancelling_a_transfer_writes_a_release_move_at_the_source(sku, clerk):
    source, destination = StoreFactory(), StoreFactory()
    receive_stock(store=source, sku=sku, quantity=10)
    transfer = request_transfer(from_store=source, to_store=destination, lines=[StockLine(sku, 4)])

    cancel_transfer(transfer=transfer, actor=clerk, reason="不需要了")

    last = StockMove.objects.filter(reference=f"transfer:{transfer.pk}").latest("pk")
    assert (last.kind, last.store_id, last.on_hand_delta, last.reserved_delta) == (
        StockMove.Kind.RELEASE,
        source.pk,
        0,
        -4,
    )
    assert (last.actor, last.reason) == (clerk, "不需要了")
    assert stock_of(source, sku) == (10, 0)


# --- the ledger is append-only ------------------------------------------------------------------


@pytest.fixture
def move(store, sku):
    return receive_stock(store=store, sku=sku, quantity=5)


def test_a_stock_move_cannot_be_edited(move):
    move.on_hand_delta = 500

    with pytest.raises(ValueError, match="append-only"):
        move.save()

    move.refresh_from_db()
    assert move.on_hand_delta == 5


def test_a_stock_move_cannot_be_deleted(move):
    with pytest.raises(ValueError, match="append-only"):
        move.delete()

    assert StockMove.objects.filter(pk=move.pk).exists()


def test_stock_moves_cannot_be_rewritten_in_bulk_either(move):
    # QuerySet.update() skips Model.save(): the ledger must refuse it as well (any error will do).
    with pytest.raises(Exception), transaction.atomic():
        StockMove.objects.filter(pk=move.pk).update(on_hand_delta=500)

    assert StockMove.objects.get(pk=move.pk).on_hand_delta == 5


def test_stock_moves_cannot_be_deleted_in_bulk_either(move):
    # QuerySet.delete() skips Model.delete(): the ledger must refuse it as well (any error will do).
    with pytest.raises(Exception), transaction.atomic():
        StockMove.objects.filter(pk=move.pk).delete()

    assert StockMove.objects.filter(pk=move.pk).exists()


# --- any sequence of changes keeps the ledger and the rows equal ---------------------------------

STORES, SKUS = 2, 3
store_index = st.integers(0, STORES - 1)
sku_index = st.integers(0, SKUS - 1)
order_lines = st.lists(st.tuples(sku_index, st.integers(1, 8)), min_size=1, max_size=4)
TRANSFER_ACTIONS = {"ship": ship_transfer, "receive": receive_transfer, "cancel": cancel_transfer}
TRANSFER_TARGETS = {"ship": "shipped", "receive": "received", "cancel": "cancelled"}


class StockLedgerMachine(RuleBasedStateMachine):
    """Random receives, counts, reservations, releases, handovers and transfers on 2 stores × 3 SKUs.

    A plain model of (on hand, reserved) per stock row predicts which calls must be refused;
    after every step the rows equal the model and the sums of their moves.
    """

    def __init__(self) -> None:
        super().__init__()
        self._savepoint = transaction.savepoint()
        self.actor = UserFactory()
        self.stores = [StoreFactory() for _ in range(STORES)]
        self.skus = [SkuFactory() for _ in range(SKUS)]
        self.expected = {(s, k): [0, 0] for s in range(STORES) for k in range(SKUS)}
        self.transfers: list[tuple[StockTransfer, int, int, dict[int, int]]] = []

    def teardown(self) -> None:
        transaction.savepoint_rollback(self._savepoint)

    # helpers

    def _lines(self, lines: list[tuple[int, int]]) -> list[StockLine]:
        return [StockLine(self.skus[k], qty) for k, qty in lines]

    @staticmethod
    def _merged(lines: list[tuple[int, int]]) -> dict[int, int]:
        merged: Counter[int] = Counter()
        for k, qty in lines:
            merged[k] += qty
        return dict(merged)

    def _refused(self, call, code: str) -> None:
        before = ledger_state()
        with pytest.raises(ApplicationError) as refused:
            call()
        assert refused.value.code == code
        assert ledger_state() == before

    def _moves_written(self, call, count: int) -> None:
        moves_before = StockMove.objects.count()
        call()
        assert StockMove.objects.count() == moves_before + count

    # rules

    @rule(s=store_index, k=sku_index, quantity=st.integers(1, 20))
    def receive(self, s, k, quantity):
        self._moves_written(
            lambda: receive_stock(store=self.stores[s], sku=self.skus[k], quantity=quantity, actor=self.actor), 1
        )
        self.expected[s, k][0] += quantity

    @rule(s=store_index, k=sku_index, counted=st.integers(0, 30))
    def count(self, s, k, counted):
        call = lambda: adjust_stock_count(store=self.stores[s], sku=self.skus[k], counted=counted)  # noqa: E731
        if counted < self.expected[s, k][1]:
            self._refused(call, "count_below_reserved")
        else:
            self._moves_written(call, 1)
            self.expected[s, k][0] = counted

    @rule(s=store_index, lines=order_lines)
    def reserve(self, s, lines):
        merged = self._merged(lines)
        call = lambda: reserve_stock(store=self.stores[s], lines=self._lines(lines), reference="order:x")  # noqa: E731
        if any(self.expected[s, k][0] - self.expected[s, k][1] < qty for k, qty in merged.items()):
            self._refused(call, "insufficient_stock")
        else:
            self._moves_written(call, len(merged))
            for k, qty in merged.items():
                self.expected[s, k][1] += qty

    @rule(s=store_index, lines=order_lines, consume=st.booleans())
    def release_or_consume(self, s, lines, consume):
        merged = self._merged(lines)
        service = consume_reserved_stock if consume else release_stock
        call = lambda: service(store=self.stores[s], lines=self._lines(lines), reference="order:x")  # noqa: E731
        if any(self.expected[s, k][1] < qty for k, qty in merged.items()):
            self._refused(call, "not_reserved")
        else:
            self._moves_written(call, len(merged))
            for k, qty in merged.items():
                self.expected[s, k][1] -= qty
                if consume:
                    self.expected[s, k][0] -= qty

    @rule(
        s=store_index,
        k=sku_index,
        service=st.sampled_from(["receive", "count", "reserve", "release", "consume", "transfer"]),
        quantity=st.sampled_from(BAD_QUANTITIES),
    )
    def invalid_quantity(self, s, k, service, quantity):
        if service == "count" and quantity == 0:
            quantity = -1  # 0 is a valid count
        self._refused(lambda: _call(service, self.stores[s], self.skus[k], quantity), "invalid_quantity")

    @rule(s=store_index, lines=order_lines)
    def request_a_transfer(self, s, lines):
        merged = self._merged(lines)
        to = (s + 1) % STORES
        call = lambda: request_transfer(  # noqa: E731
            from_store=self.stores[s], to_store=self.stores[to], lines=self._lines(lines), actor=self.actor
        )
        if any(self.expected[s, k][0] - self.expected[s, k][1] < qty for k, qty in merged.items()):
            self._refused(call, "insufficient_stock")
            return
        transfer = call()
        self.transfers.append((transfer, s, to, merged))
        for k, qty in merged.items():
            self.expected[s, k][1] += qty

    @precondition(lambda self: self.transfers)
    @rule(pick=st.integers(0, 100), action=st.sampled_from(sorted(TRANSFER_ACTIONS)))
    def move_transfer(self, pick, action):
        transfer, s, to, merged = self.transfers[pick % len(self.transfers)]
        status = StockTransfer.objects.get(pk=transfer.pk).status
        call = lambda: TRANSFER_ACTIONS[action](transfer=transfer, actor=self.actor)  # noqa: E731
        if not StockTransfer.MACHINE.can(status, TRANSFER_TARGETS[action]):
            self._refused(call, "illegal_transition")
            return
        if action in ("ship", "cancel") and any(self.expected[s, k][1] < qty for k, qty in merged.items()):
            # Other calls released the units this transfer had reserved (reservations are pooled).
            self._refused(call, "not_reserved")
            return
        call()
        assert StockTransfer.objects.get(pk=transfer.pk).status == TRANSFER_TARGETS[action]
        for k, qty in merged.items():
            if action == "ship":
                self.expected[s, k][0] -= qty
                self.expected[s, k][1] -= qty
            elif action == "cancel":
                self.expected[s, k][1] -= qty
            else:
                self.expected[to, k][0] += qty

    @invariant()
    def rows_equal_their_moves_and_stay_possible(self):
        rows = {
            (store_id, sku_id): (on_hand, reserved)
            for store_id, sku_id, on_hand, reserved in Stock.objects.filter(store__in=self.stores).values_list(
                "store_id", "sku_id", "on_hand", "reserved"
            )
        }
        for (s, k), (on_hand, reserved) in self.expected.items():
            store, sku = self.stores[s], self.skus[k]
            row = rows.get((store.pk, sku.pk), (0, 0))
            assert row == (on_hand, reserved)
            assert move_totals(store=store, sku=sku) == row
            assert on_hand >= reserved >= 0


def test_stock_rows_always_equal_the_sum_of_their_moves_whatever_the_sequence_of_changes():
    run_state_machine_as_test(
        StockLedgerMachine, settings=settings(max_examples=20, stateful_step_count=20, deadline=None)
    )
