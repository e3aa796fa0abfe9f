"""Dispatch: which store is offered a paid order, its hour to accept, the deadline sweeper, races between
accepts and sweepers, the two shortage policies, and HQ's exception queue."""

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.utils import timezone, translation
from django.utils.translation import gettext
from hypothesis import example, given, settings
from hypothesis import strategies as st

from inventory.models import Stock, StockMove, StockTransfer
from inventory.selectors import move_totals, reserved_under
from inventory.services import (
    StockLine,
    adjust_stock_count,
    receive_stock,
    receive_transfer,
    reserve_stock,
    ship_transfer,
)
from members.models import Purchase
from members.services import record_purchase
from o2o.errors import ApplicationError, Conflict, NotFound
from o2o.geo import Point, distance_m
from orders.dispatch import (
    accept_assignment,
    assign_by_hand,
    decline_assignment,
    dispatch_order,
    dispatch_stranded_orders,
    expire_overdue_assignments,
    rank_candidates,
)
from orders.fulfilment import cancel_by_hq, send_out_for_delivery, start_preparing
from orders.models import Assignment, MallSettings, Order, OrderEvent, Refund
from orders.selectors import exception_queue, forget_mall_settings, waiting_for_transfer_ids
from orders.services import DeliveryAddress, confirm_payment, place_order, set_cart_quantity
from tests.concurrency import run_at_once
from tests.factories import MemberFactory, SkuFactory, StaffFactory, StoreFactory, UserFactory
from tests.isolation import rolled_back

pytestmark = pytest.mark.django_db

# The shopper's address; stores are placed by their distance from it.
ADDRESS_LAT, ADDRESS_LNG = Decimal("30.270000"), Decimal("120.150000")
HERE = Point(float(ADDRESS_LAT), float(ADDRESS_LNG))
_KM_PER_DEGREE_LAT = 110.85  # near latitude 30°
_KM_PER_DEGREE_LNG = 110.85 * math.cos(math.radians(30.27))


@pytest.fixture(autouse=True)
def _development_payments(development_payments):
    pass


@pytest.fixture
def milk():
    return SkuFactory(product__name="飞鹤星飞帆", spec="800g 3段", price_fen=25800)


@pytest.fixture
def diapers():
    return SkuFactory(product__name="花王纸尿裤", spec="L 54片", price_fen=12900)


def _store(north_km: float, *, east_km: float = 0.0, radius_km: str = "3.00", **fields):
    """A store about `north_km` north (and `east_km` east) of the shopper's address."""
    return StoreFactory(
        latitude=ADDRESS_LAT + Decimal(f"{north_km / _KM_PER_DEGREE_LAT:.6f}"),
        longitude=ADDRESS_LNG + Decimal(f"{east_km / _KM_PER_DEGREE_LNG:.6f}"),
        delivery_radius_km=Decimal(radius_km),
        **fields,
    )


def _bought_at_the_till(member, store):
    """A POS sale at the store, today: it makes the store the member's affinity store."""
    record_purchase(
        member=member,
        store=store,
        channel=Purchase.Channel.POS,
        reference="POS-1",
        amount_fen=100,
        purchased_at=timezone.now(),
    )


def _stock(store, *holdings):
    for sku, quantity in holdings:
        receive_stock(store=store, sku=sku, quantity=quantity)


def _clerk(store):
    return StaffFactory(store=store, user=UserFactory())


def _paid_delivery_order(member, lines, *, north_km: float = 0.0):
    for sku, quantity in lines.items():
        set_cart_quantity(member=member, sku=sku, quantity=quantity)
    order = place_order(
        member=member,
        fulfilment="delivery",
        delivery=DeliveryAddress(
            recipient_name="王女士",
            recipient_phone="13800000000",
            address="杭州市西湖区文三路100号",
            latitude=float(ADDRESS_LAT) + north_km / _KM_PER_DEGREE_LAT,
            longitude=float(ADDRESS_LNG),
        ),
    )
    return _pay(order)


def _paid_pickup_order(member, store, lines):
    for sku, quantity in lines.items():
        set_cart_quantity(member=member, sku=sku, quantity=quantity)
    return _pay(place_order(member=member, fulfilment="pickup", pickup_store=store))


def _pay(order):
    return confirm_payment(
        out_trade_no=order.number,
        transaction_id=f"wx-{order.number}",
        amount_fen=order.total_fen,
        paid_at=timezone.now(),
    )


def _open_offer(order):
    return Assignment.objects.get(order=order, status__in=Assignment.OPEN)


def _held(store, order):
    return reserved_under(store=store, reference=order.reference)


def _stock_row(store, sku):
    row = Stock.objects.get(store=store, sku=sku)
    return row.on_hand, row.reserved


def _assert_ledger_matches_stock():
    for row in Stock.objects.select_related("store", "sku"):
        assert move_totals(store=row.store, sku=row.sku) == (row.on_hand, row.reserved), row


def _status_trail(order):
    """The order's status changes, without timeline notes."""
    return [
        (event.from_status, event.to_status)
        for event in OrderEvent.objects.filter(order=order).order_by("created_at", "pk")
        if event.from_status != event.to_status
    ]


def _as_written(message):
    """A timeline reason in the reader's language or in the chain's, which the order's timeline may be kept in."""
    with translation.override(django_settings.LANGUAGE_CODE):
        return {message, gettext(message)}


def _use_shortage_policy(policy):
    MallSettings.objects.update_or_create(pk=1, defaults={"shortage_policy": policy})
    forget_mall_settings()


# --- ranking ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", [Purchase.Channel.ONLINE, Purchase.Channel.POS])
def test_the_member_s_affinity_store_beats_a_nearer_store_that_also_holds_everything(member, milk, channel):
    # Given a store 0.5 km away and the member's usual store 2 km away, both delivering here with the goods
    near, usual = _store(0.5), _store(2.0)
    _stock(near, (milk, 5))
    _stock(usual, (milk, 5))
    record_purchase(
        member=member,
        store=usual,
        channel=channel,
        reference="R-0001",
        amount_fen=25800,
        purchased_at=timezone.now() - timedelta(days=3),
    )
    order = _paid_delivery_order(member, {milk: 2})

    # When the paid order is dispatched
    offer = dispatch_order(order_id=order.pk)

    # Then the usual store is offered it, and only its stock is reserved
    assert (offer.store, offer.basis) == (usual, Assignment.Basis.AFFINITY)
    assert _held(usual, order) == {milk.pk: 2}
    assert _held(near, order) == {}


def test_the_latest_purchase_online_or_at_the_pos_names_the_affinity_store(member, milk):
    # Given purchases at two stores, the later one at the POS, and a nearer third store
    near, earlier, latest = _store(0.3), _store(1.0), _store(2.0)
    for store in (near, earlier, latest):
        _stock(store, (milk, 5))
    now = timezone.now()
    record_purchase(
        member=member,
        store=latest,
        channel=Purchase.Channel.POS,
        reference="POS-77",
        amount_fen=100,
        purchased_at=now - timedelta(days=1),
    )
    record_purchase(
        member=member,
        store=earlier,
        channel=Purchase.Channel.ONLINE,
        reference="2501010001",
        amount_fen=100,
        purchased_at=now - timedelta(days=10),
    )
    order = _paid_delivery_order(member, {milk: 1})

    # When it is dispatched, then the store of the latest purchase gets it
    offer = dispatch_order(order_id=order.pk)
    assert (offer.store, offer.basis) == (latest, Assignment.Basis.AFFINITY)


def test_the_affinity_store_loses_when_the_address_is_outside_its_own_delivery_radius(member, milk):
    # Given the usual store 2.5 km away delivering only 2 km, and a store 1 km away delivering 3 km
    near, usual = _store(1.0), _store(2.5, radius_km="2.00")
    _stock(near, (milk, 5))
    _stock(usual, (milk, 5))
    assert distance_m(HERE, usual.point) > usual.delivery_radius_m
    _bought_at_the_till(member, usual)
    order = _paid_delivery_order(member, {milk: 2})

    offer = dispatch_order(order_id=order.pk)

    assert (offer.store, offer.basis) == (near, Assignment.Basis.NEAREST)
    assert _held(usual, order) == {}


def test_the_affinity_store_loses_when_it_lacks_one_item(member, milk, diapers):
    # Given the usual store holds the formula but no diapers; a farther store holds both
    usual, other = _store(0.5), _store(2.0)
    _stock(usual, (milk, 5))
    _stock(other, (milk, 5), (diapers, 5))
    _bought_at_the_till(member, usual)
    order = _paid_delivery_order(member, {milk: 1, diapers: 1})

    offer = dispatch_order(order_id=order.pk)

    assert (offer.store, offer.basis) == (other, Assignment.Basis.NEAREST)
    assert _held(usual, order) == {}
    assert _held(other, order) == {milk.pk: 1, diapers.pk: 1}


@pytest.mark.parametrize("refusal", ["declined", "expired"])
def test_the_affinity_store_that_declined_or_missed_the_order_is_not_offered_it_again(member, milk, refusal):
    # Given the usual store was offered the order first
    near, usual = _store(0.5), _store(2.0)
    _stock(near, (milk, 5))
    _stock(usual, (milk, 5))
    record_purchase(
        member=member,
        store=usual,
        channel=Purchase.Channel.ONLINE,
        reference="2501010001",
        amount_fen=100,
        purchased_at=timezone.now(),
    )
    order = _paid_delivery_order(member, {milk: 2})
    first = dispatch_order(order_id=order.pk)
    assert first.store == usual

    # When it declines, or lets the deadline pass
    if refusal == "declined":
        clerk = _clerk(usual)
        decline_assignment(assignment_id=first.pk, staff=clerk, user=clerk.user, reason="冷柜检修")
    else:
        assert expire_overdue_assignments(now=first.deadline) == 1

    # Then the order goes to the nearest store, though the member still buys at the usual one
    second = _open_offer(order)
    assert (second.store, second.basis) == (near, Assignment.Basis.NEAREST)
    assert _held(usual, order) == {}
    assert _held(near, order) == {milk.pk: 2}


def test_without_an_affinity_store_the_nearest_store_that_holds_everything_wins(member, milk):
    # Given three stores created far to near, so their ids do not give the answer
    far, middle, nearest = _store(2.5), _store(1.5), _store(0.8)
    for store in (far, middle, nearest):
        _stock(store, (milk, 5))
    order = _paid_delivery_order(member, {milk: 2})

    offer = dispatch_order(order_id=order.pk)

    assert (offer.store, offer.basis) == (nearest, Assignment.Basis.NEAREST)
    assert offer.distance_m == round(distance_m(HERE, nearest.point))


@pytest.mark.parametrize("shortfall", ["lacks_the_sku", "too_few_units", "units_reserved_for_another_order"])
def test_a_store_that_holds_only_some_of_the_items_is_not_a_candidate(member, milk, diapers, shortfall):
    # Given the nearest store cannot supply the 2 diapers wanted, and a farther store holds everything
    nearest, farther = _store(0.4), _store(2.0)
    _stock(nearest, (milk, 5), (diapers, 2))
    _stock(farther, (milk, 5), (diapers, 5))
    order = _paid_delivery_order(member, {milk: 1, diapers: 2})
    if shortfall == "lacks_the_sku":
        adjust_stock_count(store=nearest, sku=diapers, counted=0)
    elif shortfall == "too_few_units":
        adjust_stock_count(store=nearest, sku=diapers, counted=1)
    else:
        reserve_stock(store=nearest, lines=[StockLine(diapers, 1)], reference="order:another")

    offer = dispatch_order(order_id=order.pk)

    assert (offer.store, offer.basis) == (farther, Assignment.Basis.NEAREST)
    assert _held(nearest, order) == {}


@pytest.mark.parametrize("closed", [{"delivers": False}, {"is_active": False}])
def test_a_store_that_does_not_deliver_or_is_inactive_is_never_chosen_even_as_the_affinity_store(member, milk, closed):
    # Given the nearest store, where the member last bought, does not deliver (or is closed)
    nearest, farther = _store(0.3, **closed), _store(2.5)
    _stock(nearest, (milk, 5))
    _stock(farther, (milk, 5))
    _bought_at_the_till(member, nearest)
    order = _paid_delivery_order(member, {milk: 1})

    offer = dispatch_order(order_id=order.pk)

    assert (offer.store, offer.basis) == (farther, Assignment.Basis.NEAREST)
    assert _held(nearest, order) == {}


def test_re_dispatch_leaves_out_every_store_that_declined_or_missed_the_order(member, milk):
    # Given three stores holding the goods, nearest first
    first, second, third = _store(0.5), _store(1.0), _store(1.5)
    for store in (first, second, third):
        _stock(store, (milk, 5))
    order = _paid_delivery_order(member, {milk: 2})
    offer = dispatch_order(order_id=order.pk)
    assert offer.store == first

    # When the first declines and the second lets its hour pass
    clerk = _clerk(first)
    decline_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user, reason="今天没有骑手")
    offer = _open_offer(order)
    assert offer.store == second
    expire_overdue_assignments(now=offer.deadline)

    # Then the third is offered it, and only the third holds its stock
    assert list(order.assignments.order_by("pk").values_list("store", "status")) == [
        (first.pk, Assignment.Status.DECLINED),
        (second.pk, Assignment.Status.EXPIRED),
        (third.pk, Assignment.Status.OFFERED),
    ]
    assert (_held(first, order), _held(second, order), _held(third, order)) == ({}, {}, {milk.pk: 2})
    _assert_ledger_matches_stock()


# --- the ranking, as a property -----------------------------------------------------------------------

_store_specs = st.fixed_dictionaries(
    {
        # thousandths of a degree from the address: about 111 m north, 96 m east
        "north": st.integers(min_value=-30, max_value=30),
        "east": st.integers(min_value=-30, max_value=30),
        "radius_km": st.sampled_from(["0.50", "1.00", "2.00", "3.00", "5.00"]),
        "is_active": st.sampled_from([True, True, True, False]),
        "delivers": st.sampled_from([True, True, True, False]),
        # weighted so that most stores hold enough and the other rules decide
        "on_hand": st.tuples(st.sampled_from([0, 2, 3, 5, 5]), st.sampled_from([0, 2, 3, 5, 5])),
        "held_for_others": st.tuples(st.sampled_from([0, 0, 1, 2]), st.sampled_from([0, 0, 1, 2])),
        "excluded": st.sampled_from([False, False, False, True]),
    }
)


def _spec(north=0, east=0, radius_km="3.00", *, is_active=True, delivers=True, on_hand=(5, 5), excluded=False):
    return {
        "north": north,
        "east": east,
        "radius_km": radius_km,
        "is_active": is_active,
        "delivers": delivers,
        "on_hand": on_hand,
        "held_for_others": (0, 0),
        "excluded": excluded,
    }


@st.composite
def rankings(draw):
    stores = draw(st.lists(_store_specs, min_size=1, max_size=6))
    return {
        "stores": stores,
        # units wanted of each of two SKUs; the second may not be ordered at all
        "wanted": draw(st.tuples(st.integers(min_value=1, max_value=2), st.integers(min_value=0, max_value=2))),
        "affinity": draw(st.none() | st.integers(min_value=0, max_value=len(stores) - 1)),
        "limit": draw(st.integers(min_value=1, max_value=8)),
    }


@settings(max_examples=50, deadline=None)
@given(scene=rankings())
# The affinity store holds everything but the address is 1.1 km away, outside its 1 km radius.
@example(scene={"stores": [_spec(10, 0, "1.00"), _spec(20)], "wanted": (1, 1), "affinity": 0, "limit": 5})
# The affinity store holds everything and covers the address, but does not deliver.
@example(scene={"stores": [_spec(5, delivers=False), _spec(20)], "wanted": (1, 0), "affinity": 0, "limit": 5})
# Two stores on the same spot: the older one first; the cut at the limit keeps the affinity store.
@example(scene={"stores": [_spec(-8), _spec(5), _spec(5), _spec(25)], "wanted": (2, 1), "affinity": 3, "limit": 3})
def test_rank_candidates_gives_the_qualifying_stores_affinity_first_then_nearest_first(scene):
    with rolled_back():
        # Given random stores around the address, with random radii, flags, stock and exclusions
        skus = [SkuFactory(), SkuFactory()]
        stores = []
        for spec in scene["stores"]:
            store = StoreFactory(
                latitude=ADDRESS_LAT + Decimal(spec["north"]) / 1000,
                longitude=ADDRESS_LNG + Decimal(spec["east"]) / 1000,
                delivery_radius_km=Decimal(spec["radius_km"]),
                is_active=spec["is_active"],
                delivers=spec["delivers"],
            )
            for sku, on_hand, held in zip(skus, spec["on_hand"], spec["held_for_others"], strict=True):
                if on_hand:
                    receive_stock(store=store, sku=sku, quantity=on_hand)
                if min(held, on_hand):
                    reserve_stock(store=store, lines=[StockLine(sku, min(held, on_hand))], reference="order:other")
            stores.append((store, spec))
        lines = [StockLine(sku, wanted) for sku, wanted in zip(skus, scene["wanted"], strict=True) if wanted]
        affinity = stores[scene["affinity"]][0] if scene["affinity"] is not None else None
        excluded = {store.pk for store, spec in stores if spec["excluded"]}

        # When the candidates are ranked
        ranked = rank_candidates(point=HERE, lines=lines, affinity=affinity, excluded=excluded, limit=scene["limit"])

        # Then they are the brute-force answer: every qualifying store, the affinity store first when it
        # qualifies, the others by geodesic distance (ties by id), cut at the limit
        distance = {
            store.pk: distance_m(HERE, Point(float(store.latitude), float(store.longitude))) for store, _ in stores
        }

        def qualifies(store, spec):
            available = [
                on_hand - min(held, on_hand) for on_hand, held in zip(spec["on_hand"], spec["held_for_others"])
            ]
            return (
                spec["is_active"]
                and spec["delivers"]
                and not spec["excluded"]
                and distance[store.pk] <= float(spec["radius_km"]) * 1000
                and all(available[i] >= wanted for i, wanted in enumerate(scene["wanted"]))
            )

        qualifying = [store for store, spec in stores if qualifies(store, spec)]
        first = [affinity] if affinity is not None and affinity in qualifying else []
        rest = sorted((s for s in qualifying if s not in first), key=lambda s: (distance[s.pk], s.pk))
        expected = (first + rest)[: scene["limit"]]
        assert [(choice.store.pk, choice.basis) for choice in ranked] == [
            (store.pk, Assignment.Basis.AFFINITY if store in first else Assignment.Basis.NEAREST) for store in expected
        ]
        for choice in ranked:
            assert choice.distance_m == pytest.approx(distance[choice.store.pk], abs=1e-6)
        distances_after_the_first = [choice.distance_m for choice in ranked[1:]]
        assert distances_after_the_first == sorted(distances_after_the_first)
        if not qualifying:
            assert ranked == []


# --- the hour to accept, the sweeper, and the store's answer -----------------------------------------


def test_an_offer_not_accepted_within_the_hour_expires_its_stock_is_released_and_the_next_store_is_offered(
    member, milk, diapers
):
    # Given an order offered to the nearest of two stores
    first, second = _store(0.5), _store(1.5)
    for store in (first, second):
        _stock(store, (milk, 5), (diapers, 4))
    order = _paid_delivery_order(member, {milk: 2, diapers: 1})
    offered_at = timezone.now()
    offer = dispatch_order(order_id=order.pk, now=offered_at)
    assert offer.store == first
    assert offer.deadline == offered_at + timedelta(minutes=60)  # HQ's default acceptance_minutes
    assert (_stock_row(first, milk), _stock_row(first, diapers)) == ((5, 2), (4, 1))

    # When the sweeper runs a moment before the deadline, nothing happens
    assert expire_overdue_assignments(now=offer.deadline - timedelta(microseconds=1)) == 0
    assert _open_offer(order).pk == offer.pk

    # When it runs at the deadline
    swept_at = offer.deadline
    assert expire_overdue_assignments(now=swept_at) == 1

    # Then the offer expired, the first store got back exactly what it held, and the next store has the order
    offer.refresh_from_db()
    assert (offer.status, offer.decided_at) == (Assignment.Status.EXPIRED, swept_at)
    assert (_stock_row(first, milk), _stock_row(first, diapers)) == ((5, 0), (4, 0))
    assert sorted(
        StockMove.objects.filter(store=first, reference=order.reference).values_list("kind", "sku", "reserved_delta")
    ) == sorted(
        [
            ("reserve", milk.pk, 2),
            ("reserve", diapers.pk, 1),
            ("release", milk.pk, -2),
            ("release", diapers.pk, -1),
        ]
    )
    nxt = _open_offer(order)
    assert (nxt.store, nxt.status) == (second, Assignment.Status.OFFERED)
    assert (nxt.offered_at, nxt.deadline) == (swept_at, swept_at + timedelta(minutes=60))
    assert _held(second, order) == {milk.pk: 2, diapers.pk: 1}
    refreshed = Order.objects.get(pk=order.pk)
    assert refreshed.status == Order.Status.ASSIGNED
    assert refreshed.paid_at == order.paid_at  # being offered again is not being paid again
    assert _status_trail(order)[-3:] == [
        ("awaiting_dispatch", "assigned"),
        ("assigned", "awaiting_dispatch"),
        ("awaiting_dispatch", "assigned"),
    ]
    _assert_ledger_matches_stock()


def test_the_hour_to_accept_is_hq_s_acceptance_minutes(member, milk):
    MallSettings.objects.update_or_create(pk=1, defaults={"acceptance_minutes": 20})
    forget_mall_settings()
    store = _store(0.5)
    _stock(store, (milk, 5))
    order = _paid_delivery_order(member, {milk: 1})
    offered_at = timezone.now()

    offer = dispatch_order(order_id=order.pk, now=offered_at)

    assert offer.deadline == offered_at + timedelta(minutes=20)
    assert expire_overdue_assignments(now=offered_at + timedelta(minutes=20)) == 1


def test_an_accept_within_the_hour_gives_the_order_to_the_store(member, milk):
    store = _store(0.5)
    _stock(store, (milk, 5))
    order = _paid_delivery_order(member, {milk: 2})
    offer = dispatch_order(order_id=order.pk)
    clerk = _clerk(store)
    on_time = offer.deadline - timedelta(seconds=1)

    accepted = accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user, now=on_time)

    assert (accepted.status, accepted.fulfilling_store, accepted.accepted_at) == (
        Order.Status.ACCEPTED,
        store,
        on_time,
    )
    offer.refresh_from_db()
    assert (offer.status, offer.decided_by, offer.decided_at) == (Assignment.Status.ACCEPTED, clerk.user, on_time)
    assert expire_overdue_assignments(now=offer.deadline + timedelta(hours=1)) == 0
    assert _held(store, order) == {milk.pk: 2}


def test_an_accept_at_or_after_the_deadline_is_refused_even_before_the_sweeper_ran_and_changes_nothing(member, milk):
    # Given an offer whose hour has passed, not yet swept
    store = _store(0.5)
    _stock(store, (milk, 5))
    order = _paid_delivery_order(member, {milk: 2})
    offer = dispatch_order(order_id=order.pk)
    clerk = _clerk(store)
    events_before = OrderEvent.objects.filter(order=order).count()

    # When the clerk accepts at the deadline, or later
    for late in (offer.deadline, offer.deadline + timedelta(minutes=5)):
        with pytest.raises(Conflict) as refused:
            accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user, now=late)

        # Then it is refused as expired, and nothing changed
        assert refused.value.code == "assignment_expired"
    offer.refresh_from_db()
    assert (offer.status, offer.decided_at, offer.decided_by) == (Assignment.Status.OFFERED, None, None)
    refreshed = Order.objects.get(pk=order.pk)
    assert (refreshed.status, refreshed.fulfilling_store, refreshed.accepted_at) == (Order.Status.ASSIGNED, None, None)
    assert OrderEvent.objects.filter(order=order).count() == events_before
    assert _stock_row(store, milk) == (5, 2)


@pytest.mark.parametrize("refusal", ["expired", "declined"])
def test_a_pickup_order_its_store_does_not_take_goes_to_the_exception_queue_keeping_its_reservation(
    member, milk, refusal
):
    # Given a paid pickup order offered to its pickup store, another store nearby holding the goods too
    store, other = _store(0.5), _store(0.6)
    _stock(store, (milk, 5))
    _stock(other, (milk, 5))
    order = _paid_pickup_order(member, store, {milk: 2})
    offer = dispatch_order(order_id=order.pk)
    assert (offer.store, offer.basis) == (store, Assignment.Basis.PICKUP)
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID

    # When the store lets the hour pass, or declines
    if refusal == "expired":
        assert expire_overdue_assignments(now=offer.deadline) == 1
    else:
        clerk = _clerk(store)
        decline_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user, reason="货架上找不到")

    # Then HQ decides: the order waits in its queue with a reason, still reserved at the shopper's store
    refreshed = Order.objects.get(pk=order.pk)
    assert refreshed.status == Order.Status.EXCEPTION
    assert store.name in refreshed.exception_reason
    assert list(exception_queue()) == [refreshed]
    assert not Assignment.objects.filter(order=order, status__in=Assignment.OPEN).exists()
    assert _stock_row(store, milk) == (5, 2)
    assert _held(store, order) == {milk.pk: 2}
    assert not StockMove.objects.filter(reference=order.reference, kind="release").exists()
    assert _held(other, order) == {}


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_decline_without_a_reason_is_refused_and_changes_nothing(member, milk, reason):
    first, second = _store(0.5), _store(1.5)
    _stock(first, (milk, 5))
    _stock(second, (milk, 5))
    order = _paid_delivery_order(member, {milk: 2})
    offer = dispatch_order(order_id=order.pk)
    clerk = _clerk(first)
    events_before = OrderEvent.objects.filter(order=order).count()

    with pytest.raises(ApplicationError) as refused:
        decline_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user, reason=reason)

    assert refused.value.code == "reason_required"
    offer.refresh_from_db()
    assert offer.status == Assignment.Status.OFFERED
    assert Assignment.objects.filter(order=order).count() == 1
    assert Order.objects.get(pk=order.pk).status == Order.Status.ASSIGNED
    assert OrderEvent.objects.filter(order=order).count() == events_before
    assert (_held(first, order), _held(second, order)) == ({milk.pk: 2}, {})


def test_a_declined_delivery_order_goes_to_the_next_store_with_the_reason_recorded(member, milk):
    first, second = _store(0.5), _store(1.5)
    _stock(first, (milk, 5))
    _stock(second, (milk, 5))
    order = _paid_delivery_order(member, {milk: 2})
    offer = dispatch_order(order_id=order.pk)
    clerk = _clerk(first)

    decline_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user, reason="冷柜坏了")

    offer.refresh_from_db()
    assert (offer.status, offer.reason, offer.decided_by) == (Assignment.Status.DECLINED, "冷柜坏了", clerk.user)
    nxt = _open_offer(order)
    assert (nxt.store, nxt.status) == (second, Assignment.Status.OFFERED)
    assert (_held(first, order), _held(second, order)) == ({}, {milk.pk: 2})
    assert _stock_row(first, milk) == (5, 0)
    back = OrderEvent.objects.get(order=order, from_status="assigned", to_status="awaiting_dispatch")
    assert back.actor_type == OrderEvent.Actor.STAFF
    assert "冷柜坏了" in back.reason
    assert Order.objects.get(pk=order.pk).status == Order.Status.ASSIGNED


def test_when_every_store_that_delivers_here_declined_the_order_waits_for_hq_with_a_reason(member, milk):
    first, second = _store(0.5), _store(1.5)
    _stock(first, (milk, 5))
    _stock(second, (milk, 5))
    order = _paid_delivery_order(member, {milk: 2})
    dispatch_order(order_id=order.pk)

    for store in (first, second):
        clerk = _clerk(store)
        decline_assignment(assignment_id=_open_offer(order).pk, staff=clerk, user=clerk.user, reason="人手不够")

    refreshed = Order.objects.get(pk=order.pk)
    assert refreshed.status == Order.Status.EXCEPTION
    assert refreshed.exception_reason in _as_written(
        "Every store that delivers here has declined or missed this order."
    )
    assert list(exception_queue()) == [refreshed]
    assert not Assignment.objects.filter(order=order, status__in=Assignment.OPEN).exists()
    assert (_held(first, order), _held(second, order)) == ({}, {})
    assert (_stock_row(first, milk), _stock_row(second, milk)) == ((5, 0), (5, 0))


def test_dispatching_an_order_that_is_already_offered_or_accepted_changes_nothing(member, milk):
    first, second = _store(0.5), _store(1.5)
    _stock(first, (milk, 5))
    _stock(second, (milk, 5))
    order = _paid_delivery_order(member, {milk: 2})
    offer = dispatch_order(order_id=order.pk)

    assert dispatch_order(order_id=order.pk) is None
    clerk = _clerk(first)
    accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user)
    assert dispatch_order(order_id=order.pk) is None

    assert list(Assignment.objects.filter(order=order).values_list("pk", flat=True)) == [offer.pk]
    assert OrderEvent.objects.filter(order=order, to_status="assigned").count() == 1
    assert StockMove.objects.filter(reference=order.reference, kind="reserve").count() == 1
    assert (_stock_row(first, milk), _stock_row(second, milk)) == ((5, 2), (5, 0))


def test_the_sweeper_offers_paid_orders_whose_dispatch_never_ran(milk):
    # Given a paid delivery order and a paid pickup order whose dispatch tasks were lost
    store = _store(0.5)
    _stock(store, (milk, 5))
    delivery = _paid_delivery_order(MemberFactory(), {milk: 1})
    pickup = _paid_pickup_order(MemberFactory(), store, {milk: 1})
    assert not Assignment.objects.exists()
    paid_at = max(delivery.paid_at, pickup.paid_at)

    # When the sweeper looks while their own tasks may still be on the way, it leaves them alone
    assert dispatch_stranded_orders(now=paid_at + timedelta(seconds=30)) == 0

    # When it looks later, it offers both, once
    later = paid_at + timedelta(minutes=2)
    assert dispatch_stranded_orders(now=later) == 2
    assert dispatch_stranded_orders(now=later + timedelta(minutes=1)) == 0
    for order, basis in ((delivery, Assignment.Basis.NEAREST), (pickup, Assignment.Basis.PICKUP)):
        offer = _open_offer(order)
        assert (offer.store, offer.basis, offer.deadline) == (store, basis, later + timedelta(minutes=60))
        assert _held(store, order) == {milk.pk: 1}


def test_a_clerk_of_another_store_cannot_answer_the_offer(member, milk):
    store, elsewhere = _store(0.5), _store(0.6)
    _stock(store, (milk, 5))
    order = _paid_delivery_order(member, {milk: 1})
    offer = dispatch_order(order_id=order.pk)
    stranger = _clerk(elsewhere)

    with pytest.raises(NotFound):
        accept_assignment(assignment_id=offer.pk, staff=stranger, user=stranger.user)
    with pytest.raises(NotFound):
        decline_assignment(assignment_id=offer.pk, staff=stranger, user=stranger.user, reason="不是我们的")

    offer.refresh_from_db()
    assert offer.status == Assignment.Status.OFFERED


# --- races on real connections -----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_accept_racing_the_sweeper_at_the_deadline_has_exactly_one_outcome():
    rounds = 15
    near, far = _store(0.5), _store(1.5)
    milk = SkuFactory()
    _stock(near, (milk, 2 * rounds))
    _stock(far, (milk, 2 * rounds))
    clerk = _clerk(near)
    seen = {"accepted": 0, "expired": 0}

    for _round in range(rounds):
        # Given an order offered to the nearest store (dispatched on commit of the payment)
        order = _paid_delivery_order(MemberFactory(), {milk: 2})
        offer = _open_offer(order)
        assert offer.store == near

        # When the clerk accepts a millisecond before the deadline while the sweeper runs a millisecond after
        def accept(offer=offer):
            try:
                accept_assignment(
                    assignment_id=offer.pk,
                    staff=clerk,
                    user=clerk.user,
                    now=offer.deadline - timedelta(milliseconds=1),
                )
            except Conflict as refused:
                return ("accept", refused.code)
            return ("accept", "ok")

        def sweep(offer=offer):
            return ("sweep", expire_overdue_assignments(now=offer.deadline + timedelta(milliseconds=1)))

        results, raised = run_at_once([accept, sweep])

        # Then exactly one of them took effect, and the order and the stock agree with it
        assert raised == []
        outcome = dict(results)
        offer.refresh_from_db()
        refreshed = Order.objects.get(pk=order.pk)
        assignments = list(Assignment.objects.filter(order=order).order_by("pk"))
        if offer.status == Assignment.Status.ACCEPTED:
            assert outcome == {"accept": "ok", "sweep": 0}
            assert (refreshed.status, refreshed.fulfilling_store_id) == (Order.Status.ACCEPTED, near.pk)
            assert assignments == [offer]
            assert (_held(near, order), _held(far, order)) == ({milk.pk: 2}, {})
            seen["accepted"] += 1
        else:
            assert offer.status == Assignment.Status.EXPIRED
            assert outcome == {"accept": "assignment_closed", "sweep": 1}
            assert (refreshed.status, refreshed.fulfilling_store_id) == (Order.Status.ASSIGNED, None)
            assert [(a.store_id, a.status) for a in assignments] == [
                (near.pk, Assignment.Status.EXPIRED),
                (far.pk, Assignment.Status.OFFERED),
            ]
            assert (_held(near, order), _held(far, order)) == ({}, {milk.pk: 2})
            seen["expired"] += 1
        _assert_ledger_matches_stock()

    assert sum(seen.values()) == rounds
    assert _stock_row(near, milk) == (2 * rounds, 2 * seen["accepted"])
    assert _stock_row(far, milk) == (2 * rounds, 2 * seen["expired"])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_expire_each_overdue_offer_exactly_once():
    # Given twelve offers past their deadline: half made to one store, half to the other, each store being
    # the other half's next choice
    south, north = _store(0.0), _store(1.0)
    milk = SkuFactory()
    _stock(south, (milk, 20))
    _stock(north, (milk, 20))
    # By deadline: to north, to south, to south, to north, …: batches of two taken at once start at different stores
    orders = [
        _paid_delivery_order(MemberFactory(), {milk: 1}, north_km=1.3 if n % 4 in (0, 3) else -0.3) for n in range(12)
    ]
    first_store = {order.pk: _open_offer(order).store_id for order in orders}
    assert sorted(first_store.values()) == sorted([south.pk] * 6 + [north.pk] * 6)
    later = max(_open_offer(order).deadline for order in orders) + timedelta(seconds=1)

    def sweep_until_done():
        expired = 0
        while done := expire_overdue_assignments(now=later, batch_size=2):
            expired += done
        return expired

    # When two sweepers run at once
    counts, raised = run_at_once([sweep_until_done, sweep_until_done])

    # Then every offer expired once, and every order has exactly one new offer, at the other store
    assert raised == []
    assert sum(counts) == 12
    assert Assignment.objects.filter(status=Assignment.Status.EXPIRED).count() == 12
    for order in orders:
        assignments = list(Assignment.objects.filter(order=order).order_by("pk"))
        assert [a.status for a in assignments] == [Assignment.Status.EXPIRED, Assignment.Status.OFFERED]
        assert assignments[0].store_id == first_store[order.pk] != assignments[1].store_id
        assert assignments[1].deadline == later + timedelta(minutes=60)
        assert _status_trail(order) == [
            ("", "pending_payment"),
            ("pending_payment", "awaiting_dispatch"),
            ("awaiting_dispatch", "assigned"),
            ("assigned", "awaiting_dispatch"),
            ("awaiting_dispatch", "assigned"),
        ]
    assert StockMove.objects.filter(kind="release", reference__startswith="order:").count() == 12
    assert _stock_row(south, milk) == (20, 6)
    assert _stock_row(north, milk) == (20, 6)
    _assert_ledger_matches_stock()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_clerks_accepting_the_same_offer_at_once_one_succeeds():
    store = _store(0.5)
    milk = SkuFactory()
    _stock(store, (milk, 5))
    clerks = [_clerk(store), _clerk(store)]
    order = _paid_delivery_order(MemberFactory(), {milk: 2})
    offer = _open_offer(order)

    results, raised = run_at_once(
        [
            lambda clerk=clerk: accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user)
            for clerk in clerks
        ]
    )

    assert len(results) == 1
    assert [getattr(exc, "code", repr(exc)) for exc in raised] == ["already_accepted"]
    offer.refresh_from_db()
    winner = next(clerk for clerk in clerks if clerk.user == offer.decided_by)
    assert offer.status == Assignment.Status.ACCEPTED
    accepted = OrderEvent.objects.get(order=order, to_status="accepted")
    assert accepted.actor_label == str(winner)
    refreshed = Order.objects.get(pk=order.pk)
    assert (refreshed.status, refreshed.fulfilling_store) == (Order.Status.ACCEPTED, store)
    assert _stock_row(store, milk) == (5, 2)


# --- shortages and HQ's exception queue --------------------------------------------------------------


def test_with_the_transfer_policy_the_best_store_reserves_what_it_has_and_the_rest_arrives_by_transfer(
    member, milk, diapers
):
    # Given the nearest store holds no diapers, a farther one holds 1 of the 3 wanted (fewest units short),
    # and two stores that do not deliver here hold more diapers, the nearer of them just 1
    _use_shortage_policy("transfer")
    nearest, best = _store(0.3), _store(1.5)
    near_source, far_source = _store(6.0), _store(12.0)
    _stock(nearest, (milk, 5))
    _stock(best, (milk, 5), (diapers, 3))
    _stock(near_source, (diapers, 1))
    _stock(far_source, (diapers, 10))
    order = _paid_delivery_order(member, {milk: 2, diapers: 3})
    adjust_stock_count(store=best, sku=diapers, counted=1)  # sold at the till after checkout

    # When the order is dispatched
    offer = dispatch_order(order_id=order.pk)

    # Then the best store is offered it, reserves what it has, and the rest is on its way, held for the order
    assert (offer.store, offer.basis) == (best, Assignment.Basis.TRANSFER)
    assert _held(best, order) == {milk.pk: 2, diapers.pk: 1}
    assert _held(nearest, order) == {}
    transfers = list(StockTransfer.objects.filter(hold_reference=order.reference).order_by("pk"))
    assert sorted(
        (t.from_store_id, t.to_store_id, t.status, [(line.sku_id, line.quantity) for line in t.lines.all()])
        for t in transfers
    ) == sorted(
        [
            (near_source.pk, best.pk, StockTransfer.Status.REQUESTED, [(diapers.pk, 1)]),
            (far_source.pk, best.pk, StockTransfer.Status.REQUESTED, [(diapers.pk, 1)]),
        ]
    )
    assert (_stock_row(near_source, diapers), _stock_row(far_source, diapers)) == ((1, 1), (10, 1))
    assert waiting_for_transfer_ids([order]) == {order.pk}

    # When the store accepts, it cannot start preparing until every transfer is received
    clerk = _clerk(best)
    accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user)
    with pytest.raises(Conflict) as waiting:
        start_preparing(staff=clerk, order=order.number)
    assert waiting.value.code == "waiting_for_transfer"
    for transfer in transfers:
        ship_transfer(transfer=transfer)
    with pytest.raises(Conflict) as still_waiting:
        start_preparing(staff=clerk, order=order.number)
    assert still_waiting.value.code == "waiting_for_transfer"
    receive_transfer(transfer=transfers[0])
    assert waiting_for_transfer_ids([order]) == {order.pk}
    with pytest.raises(Conflict) as one_to_go:
        start_preparing(staff=clerk, order=order.number)
    assert one_to_go.value.code == "waiting_for_transfer"
    receive_transfer(transfer=transfers[1])

    # Then the units are reserved for the order at the store, and sending it out takes exactly the order
    assert waiting_for_transfer_ids([order]) == set()
    assert _held(best, order) == {milk.pk: 2, diapers.pk: 3}
    assert _stock_row(best, diapers) == (3, 3)
    assert start_preparing(staff=clerk, order=order.number).status == Order.Status.PREPARING
    assert send_out_for_delivery(staff=clerk, order=order.number).status == Order.Status.OUT_FOR_DELIVERY
    assert (_stock_row(best, milk), _stock_row(best, diapers)) == ((3, 0), (0, 0))
    assert sorted(
        StockMove.objects.filter(reference=order.reference, kind="consume").values_list("store", "sku", "on_hand_delta")
    ) == sorted([(best.pk, milk.pk, -2), (best.pk, diapers.pk, -3)])
    assert (_stock_row(near_source, diapers), _stock_row(far_source, diapers)) == ((0, 0), (9, 0))
    _assert_ledger_matches_stock()


def test_with_the_transfer_policy_the_affinity_store_is_the_one_short_of_stock_that_gets_the_order(
    member, milk, diapers
):
    # Given the member's usual store covers the address but is short of more units than a nearer store
    _use_shortage_policy("transfer")
    nearer, usual, source = _store(0.3), _store(2.0), _store(8.0)
    _stock(nearer, (milk, 5), (diapers, 2))
    _stock(usual, (milk, 5), (diapers, 2))
    _stock(source, (diapers, 5))
    _bought_at_the_till(member, usual)
    order = _paid_delivery_order(member, {milk: 1, diapers: 2})
    adjust_stock_count(store=nearer, sku=diapers, counted=1)
    adjust_stock_count(store=usual, sku=diapers, counted=0)

    offer = dispatch_order(order_id=order.pk)

    assert (offer.store, offer.basis) == (usual, Assignment.Basis.TRANSFER)
    assert _held(usual, order) == {milk.pk: 1}
    assert sorted(
        StockTransfer.objects.filter(hold_reference=order.reference).values_list(
            "from_store", "to_store", "lines__sku", "lines__quantity"
        )
    ) == sorted([(nearer.pk, usual.pk, diapers.pk, 1), (source.pk, usual.pk, diapers.pk, 1)])


def test_with_the_transfer_policy_units_found_nowhere_send_the_order_to_hq_holding_nothing(member, milk, diapers):
    _use_shortage_policy("transfer")
    store = _store(0.5)
    _stock(store, (milk, 5), (diapers, 2))
    order = _paid_delivery_order(member, {milk: 2, diapers: 2})
    adjust_stock_count(store=store, sku=diapers, counted=1)

    assert dispatch_order(order_id=order.pk) is None

    refreshed = Order.objects.get(pk=order.pk)
    assert refreshed.status == Order.Status.EXCEPTION
    assert diapers.code in refreshed.exception_reason
    assert _held(store, order) == {}
    assert _stock_row(store, milk) == (5, 0)
    assert not StockTransfer.objects.exists()
    assert not Assignment.objects.filter(order=order).exists()


def test_transfers_come_from_a_store_with_free_units_not_a_nearer_one_whose_units_are_all_held(
    member, milk, diapers, monkeypatch
):
    # Given the best store short of diapers, a nearer source whose diapers are all reserved for
    # another order, and a farther one with free diapers, and dispatch looking at one source only
    monkeypatch.setattr("orders.dispatch.TRANSFER_STORES_CONSIDERED", 1)
    _use_shortage_policy("transfer")
    store, held_source, free_source = _store(0.5), _store(1.0, east_km=0.5), _store(8.0)
    _stock(store, (milk, 5), (diapers, 2))
    _stock(held_source, (diapers, 2))
    _stock(free_source, (diapers, 4))
    reserve_stock(store=held_source, lines=[StockLine(sku=diapers, quantity=2)], reference="order:other")
    order = _paid_delivery_order(member, {milk: 2, diapers: 2})
    adjust_stock_count(store=store, sku=diapers, counted=0)

    # When it is dispatched
    offer = dispatch_order(order_id=order.pk)

    # Then the diapers come from the store that has them free
    assert offer is not None and offer.store == store
    [transfer] = StockTransfer.objects.filter(hold_reference=order.reference)
    assert transfer.from_store == free_source
    assert _stock_row(held_source, diapers) == (2, 2)


def test_with_the_exception_policy_a_shortage_sends_the_order_to_hq_s_queue(member, milk, diapers):
    _use_shortage_policy("exception")
    store, source = _store(0.5), _store(6.0)
    _stock(store, (milk, 5), (diapers, 2))
    _stock(source, (diapers, 5))
    order = _paid_delivery_order(member, {milk: 2, diapers: 2})
    adjust_stock_count(store=store, sku=diapers, counted=1)

    assert dispatch_order(order_id=order.pk) is None

    refreshed = Order.objects.get(pk=order.pk)
    assert refreshed.status == Order.Status.EXCEPTION
    assert refreshed.exception_reason in _as_written("No single store holds every item.")
    assert list(exception_queue()) == [refreshed]
    assert (_held(store, order), _held(source, order)) == ({}, {})
    assert not StockTransfer.objects.exists()
    assert not Assignment.objects.filter(order=order).exists()


def test_an_address_no_store_covers_any_more_goes_to_hq_s_queue(member, milk):
    store = _store(2.0)
    _stock(store, (milk, 5))
    order = _paid_delivery_order(member, {milk: 1})
    type(store).objects.filter(pk=store.pk).update(delivery_radius_km=Decimal("1.00"))

    assert dispatch_order(order_id=order.pk) is None

    refreshed = Order.objects.get(pk=order.pk)
    assert refreshed.status == Order.Status.EXCEPTION
    assert refreshed.exception_reason in _as_written("No store delivers to this address.")
    assert _held(store, order) == {}


def test_hq_assigns_an_order_from_the_exception_queue_to_the_store_it_chooses(member, milk, hq_user):
    # Given an order in the queue because its only store stopped delivering that far
    store = _store(2.0)
    _stock(store, (milk, 5))
    order = _paid_delivery_order(member, {milk: 2})
    type(store).objects.filter(pk=store.pk).update(delivery_radius_km=Decimal("1.00"))
    dispatch_order(order_id=order.pk)
    assert Order.objects.get(pk=order.pk).status == Order.Status.EXCEPTION

    # When HQ gives it to the store by hand
    offer = assign_by_hand(order=order, store=store, user=hq_user, reason="客服已与门店确认")

    # Then the store is offered it, with its stock reserved, and can accept it
    assert (offer.store, offer.basis, offer.status) == (store, Assignment.Basis.HQ, Assignment.Status.OFFERED)
    assert Order.objects.get(pk=order.pk).status == Order.Status.ASSIGNED
    assert _held(store, order) == {milk.pk: 2}
    assert OrderEvent.objects.filter(order=order, actor_type=OrderEvent.Actor.HQ, reason="客服已与门店确认").exists()
    with pytest.raises(Conflict) as again:
        assign_by_hand(order=order, store=store, user=hq_user)
    assert again.value.code == "not_in_exception_queue"
    clerk = _clerk(store)
    assert accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user).status == Order.Status.ACCEPTED


def test_hq_cancels_an_order_from_the_exception_queue_refunding_it_in_full_and_releasing_its_stock(
    member, milk, hq_user, django_capture_on_commit_callbacks
):
    # Given a pickup order in the queue after its store let the hour pass, its stock still reserved
    store = _store(0.5)
    _stock(store, (milk, 5))
    order = _paid_pickup_order(member, store, {milk: 2})
    offer = dispatch_order(order_id=order.pk)
    expire_overdue_assignments(now=offer.deadline)
    assert Order.objects.get(pk=order.pk).status == Order.Status.EXCEPTION

    # When HQ cancels it
    with django_capture_on_commit_callbacks(execute=True):
        cancel_by_hq(order=order, user=hq_user, reason="门店停业")

    # Then it is cancelled, the whole payment is refunded, and the stock is free again
    assert Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED
    payment = order.payments.get()
    refund = Refund.objects.get(payment=payment)
    assert refund.amount_fen == payment.amount_fen == order.total_fen
    assert refund.status == Refund.Status.SUCCEEDED
    assert _stock_row(store, milk) == (5, 0)
    assert _held(store, order) == {}
    _assert_ledger_matches_stock()


def test_hq_cancelling_an_order_it_assigned_with_transfers_cancels_them_and_releases_every_unit(
    member, milk, diapers, hq_user
):
    # Given an order in the queue (shortage, exception policy), assigned by HQ to a store short of diapers
    _use_shortage_policy("exception")
    store, source = _store(0.5), _store(6.0)
    _stock(store, (milk, 5), (diapers, 3))
    _stock(source, (diapers, 5))
    order = _paid_delivery_order(member, {milk: 2, diapers: 3})
    adjust_stock_count(store=store, sku=diapers, counted=1)
    dispatch_order(order_id=order.pk)
    offer = assign_by_hand(order=order, store=store, user=hq_user)
    transfer = StockTransfer.objects.get(hold_reference=order.reference)
    assert (transfer.from_store, transfer.to_store, transfer.status) == (source, store, StockTransfer.Status.REQUESTED)
    assert _held(store, order) == {milk.pk: 2, diapers.pk: 1}
    assert _stock_row(source, diapers) == (5, 2)

    # When HQ cancels the order
    cancel_by_hq(order=order, user=hq_user, reason="顾客改主意")

    # Then the offer is withdrawn, the transfer is called off, every unit is free, and the payment is refunded
    offer.refresh_from_db()
    transfer.refresh_from_db()
    assert offer.status == Assignment.Status.WITHDRAWN
    assert transfer.status == StockTransfer.Status.CANCELLED
    assert (_stock_row(store, milk), _stock_row(store, diapers), _stock_row(source, diapers)) == (
        (5, 0),
        (1, 0),
        (5, 0),
    )
    assert waiting_for_transfer_ids([order]) == set()
    assert Refund.objects.get(payment__order=order).amount_fen == order.total_fen
    _assert_ledger_matches_stock()
