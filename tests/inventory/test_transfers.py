"""Stock transfers (调货) move only along their state table, and every move is recorded."""

import pytest

from inventory.models import Stock, StockMove, StockTransfer, StockTransferEvent, StockTransferLine
from inventory.services import (
    InsufficientStock,
    StockLine,
    cancel_transfer,
    receive_stock,
    receive_transfer,
    request_transfer,
    ship_transfer,
)
from o2o.errors import ApplicationError
from o2o.state_machine import IllegalTransition
from tests.factories import SkuFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db

Status = StockTransfer.Status
SERVICES = {Status.SHIPPED: ship_transfer, Status.RECEIVED: receive_transfer, Status.CANCELLED: cancel_transfer}
# How to reach each state from a fresh request.
PATHS = {
    Status.REQUESTED: [],
    Status.SHIPPED: [Status.SHIPPED],
    Status.RECEIVED: [Status.SHIPPED, Status.RECEIVED],
    Status.CANCELLED: [Status.CANCELLED],
}
LEGAL = {(Status.REQUESTED, Status.SHIPPED), (Status.REQUESTED, Status.CANCELLED), (Status.SHIPPED, Status.RECEIVED)}
ILLEGAL = [
    (source, target) for source in PATHS for target in SERVICES if (source, target) not in LEGAL
]  # received->shipped, cancelled->shipped, requested->received, shipped->cancelled, received->cancelled, …


@pytest.fixture
def hq():
    return UserFactory(username="hq-ops", is_staff=True)


@pytest.fixture
def setup():
    """A source with 10 of a formula and 6 of diapers, and an empty destination."""
    source, destination = StoreFactory(name="文三路店"), StoreFactory(name="滨江店")
    formula, diapers = SkuFactory(), SkuFactory()
    receive_stock(store=source, sku=formula, quantity=10)
    receive_stock(store=source, sku=diapers, quantity=6)
    return source, destination, formula, diapers


def stock(store, sku) -> tuple[int, int]:
    row = Stock.objects.filter(store=store, sku=sku).values_list("on_hand", "reserved").first()
    return row or (0, 0)


def everything():
    """All rows a transfer service may write."""
    return (
        sorted(Stock.objects.values_list("store_id", "sku_id", "on_hand", "reserved")),
        StockMove.objects.count(),
        sorted(StockTransfer.objects.values_list("pk", "status", "shipped_at", "received_at", "cancelled_at")),
        StockTransferEvent.objects.count(),
    )


def requested(setup, actor=None) -> StockTransfer:
    source, destination, formula, diapers = setup
    return request_transfer(
        from_store=source,
        to_store=destination,
        lines=[StockLine(formula, 4), StockLine(diapers, 2)],
        actor=actor,
        reference="ERP-TR-0001",
        note="周末促销补货",
    )


@pytest.mark.parametrize(("source", "target"), ILLEGAL)
def test_an_illegal_transition_is_refused_and_changes_nothing(setup, hq, source, target):
    # Given a transfer in the source state
    transfer = requested(setup, actor=hq)
    for step in PATHS[source]:
        transfer = SERVICES[step](transfer=transfer, actor=hq)
    before = everything()

    # When it is asked to move to a state its table does not allow from there
    with pytest.raises(IllegalTransition) as refused:
        SERVICES[target](transfer=transfer, actor=hq, reason="误操作")

    # Then it is refused as illegal_transition (409), and no row changed
    assert refused.value.code == "illegal_transition"
    assert refused.value.status == 409
    assert refused.value.details["state"] == [source]
    assert everything() == before


def test_the_illegal_list_covers_the_named_cases():
    named = {
        (Status.RECEIVED, Status.SHIPPED),
        (Status.CANCELLED, Status.SHIPPED),
        (Status.REQUESTED, Status.RECEIVED),
        (Status.SHIPPED, Status.CANCELLED),
        (Status.RECEIVED, Status.CANCELLED),
    }
    assert named <= set(ILLEGAL)
    assert all(not StockTransfer.MACHINE.can(source, target) for source, target in ILLEGAL)


def test_the_state_is_read_from_the_locked_row_not_from_the_callers_stale_copy(setup, hq):
    # Given a caller holding an old copy of a transfer that has since been shipped and received
    transfer = requested(setup, actor=hq)
    stale = StockTransfer.objects.get(pk=transfer.pk)
    ship_transfer(transfer=transfer, actor=hq)
    receive_transfer(transfer=transfer, actor=hq)
    before = everything()

    # When it ships its copy (which still says "requested")
    with pytest.raises(IllegalTransition):
        ship_transfer(transfer=stale, actor=hq)

    # Then the goods are not shipped twice
    assert everything() == before


def test_a_requested_transfer_reserves_the_goods_at_the_source(setup, hq):
    source, destination, formula, diapers = setup

    transfer = requested(setup, actor=hq)

    assert transfer.status == Status.REQUESTED
    assert (transfer.requested_by, transfer.reference, transfer.note) == (hq, "ERP-TR-0001", "周末促销补货")
    assert sorted(transfer.lines.values_list("sku_id", "quantity")) == sorted([(formula.pk, 4), (diapers.pk, 2)])
    assert stock(source, formula) == (10, 4)
    assert stock(source, diapers) == (6, 2)
    assert stock(destination, formula) == (0, 0)


def test_shipping_takes_the_goods_out_of_the_source_and_receiving_puts_them_in_the_destination(setup, hq):
    source, destination, formula, diapers = setup
    transfer = requested(setup, actor=hq)

    # When it ships
    shipped = ship_transfer(transfer=transfer, actor=hq, reason="顺丰 SF123")

    # Then the goods have left the source and are not yet at the destination
    assert shipped.status == Status.SHIPPED and shipped.shipped_at is not None
    assert stock(source, formula) == (6, 0)
    assert stock(source, diapers) == (4, 0)
    assert stock(destination, formula) == (0, 0)

    # When it is received
    received = receive_transfer(transfer=transfer, actor=hq, reason="签收")

    # Then they are on hand at the destination, and the source is unchanged
    assert received.status == Status.RECEIVED and received.received_at is not None
    assert stock(destination, formula) == (4, 0)
    assert stock(destination, diapers) == (2, 0)
    assert stock(source, formula) == (6, 0)
    assert StockTransfer.objects.get(pk=transfer.pk).status == Status.RECEIVED


def test_cancelling_a_requested_transfer_releases_its_reservation(setup, hq):
    source, destination, formula, diapers = setup
    transfer = requested(setup, actor=hq)

    cancelled = cancel_transfer(transfer=transfer, actor=hq, reason="门店自行采购")

    assert cancelled.status == Status.CANCELLED and cancelled.cancelled_at is not None
    assert stock(source, formula) == (10, 0)
    assert stock(source, diapers) == (6, 0)
    assert stock(destination, formula) == (0, 0)


def test_every_transition_writes_an_event_with_from_to_actor_and_reason(setup, hq):
    # Given a transfer requested by HQ, then shipped by the source's clerk, received by the destination's
    clerk_out, clerk_in = UserFactory(), UserFactory()
    transfer = requested(setup, actor=hq)

    ship_transfer(transfer=transfer, actor=clerk_out, reason="已发出")
    receive_transfer(transfer=transfer, actor=clerk_in, reason="已收到")

    # Then the history shows each step: from, to, who, why
    events = StockTransferEvent.objects.filter(transfer=transfer).order_by("pk")
    assert [(e.from_status, e.to_status, e.actor, e.reason) for e in events] == [
        ("", Status.REQUESTED, hq, "周末促销补货"),
        (Status.REQUESTED, Status.SHIPPED, clerk_out, "已发出"),
        (Status.SHIPPED, Status.RECEIVED, clerk_in, "已收到"),
    ]
    assert all(e.created_at is not None for e in events)


def test_a_cancellation_is_recorded_as_an_event(setup, hq):
    transfer = requested(setup, actor=hq)

    cancel_transfer(transfer=transfer, actor=hq, reason="门店自行采购")

    last = StockTransferEvent.objects.filter(transfer=transfer).latest("pk")
    assert (last.from_status, last.to_status, last.actor, last.reason) == (
        Status.REQUESTED,
        Status.CANCELLED,
        hq,
        "门店自行采购",
    )


def test_a_transfer_to_the_same_store_is_refused_and_nothing_is_written(setup, hq):
    source, _destination, formula, _diapers = setup
    before = everything()

    with pytest.raises(ApplicationError) as refused:
        request_transfer(from_store=source, to_store=source, lines=[StockLine(formula, 1)], actor=hq)

    assert refused.value.code == "same_store"
    assert everything() == before


def test_a_transfer_the_source_cannot_supply_is_refused_and_leaves_no_transfer_behind(setup, hq):
    source, destination, formula, diapers = setup
    before = everything()

    # When 4 formula (there are 10) and 7 diapers (there are 6) are requested
    with pytest.raises(InsufficientStock):
        request_transfer(
            from_store=source,
            to_store=destination,
            lines=[StockLine(formula, 4), StockLine(diapers, 7)],
            actor=hq,
        )

    # Then no transfer, line, event or reservation survives
    assert everything() == before
    assert not StockTransferLine.objects.exists()
