"""Checkout: server-side prices, exact totals, stock reserved at the pickup store, all or nothing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.models import Stock, StockMove
from inventory.services import InsufficientStock, receive_stock, set_store_price
from members.models import Member
from o2o.errors import ApplicationError
from orders.models import CartLine, Order, OrderEvent
from orders.selectors import mall_settings
from orders.services import DeliveryAddress, place_order, set_cart_quantity
from tests.factories import MemberFactory, SkuFactory, StoreFactory
from tests.isolation import rolled_back

pytestmark = pytest.mark.django_db


def test_a_pickup_order_reserves_its_stock_at_the_store_and_empties_the_cart(cart, store, formula):
    order = place_order(member=cart, fulfilment="pickup", pickup_store=store)

    assert order.status == Order.Status.PENDING_PAYMENT
    assert order.items_fen == 2 * 25800 and order.delivery_fee_fen == 0 and order.total_fen == 51600
    assert len(order.pickup_code) == 6 and order.pickup_code.isdigit()
    stock = Stock.objects.get(store=store, sku=formula)
    assert (stock.on_hand, stock.reserved) == (10, 2)
    assert StockMove.objects.filter(reference=f"order:{order.number}", kind="reserve").count() == 1
    assert not CartLine.objects.filter(member=cart).exists()
    assert list(order.events.values_list("from_status", "to_status")) == [("", "pending_payment")]


def test_the_pickup_store_s_own_price_is_charged_and_snapshotted(cart, store, formula):
    set_store_price(store=store, sku=formula, price_fen=24900)
    order = place_order(member=cart, fulfilment="pickup", pickup_store=store)
    line = order.lines.get()
    assert (line.unit_price_fen, line.quantity, line.line_total_fen) == (24900, 2, 49800)
    assert order.total_fen == 49800


def test_a_shortage_at_the_pickup_store_changes_nothing(member, store, formula):
    set_cart_quantity(member=member, sku=formula, quantity=11)  # 10 on hand
    moves_before = StockMove.objects.count()
    with pytest.raises(InsufficientStock):
        place_order(member=member, fulfilment="pickup", pickup_store=store)
    assert not Order.objects.exists()
    assert StockMove.objects.count() == moves_before
    assert CartLine.objects.get(member=member).quantity == 11
    assert Stock.objects.get(store=store, sku=formula).reserved == 0


def test_an_empty_cart_cannot_be_ordered(member, store):
    with pytest.raises(ApplicationError) as refused:
        place_order(member=member, fulfilment="pickup", pickup_store=store)
    assert refused.value.code == "empty_cart"


def test_a_store_without_pickup_is_refused(cart):
    no_pickup = StoreFactory(offers_pickup=False)
    with pytest.raises(ApplicationError) as refused:
        place_order(member=cart, fulfilment="pickup", pickup_store=no_pickup)
    assert refused.value.code == "invalid_pickup_store"


def test_a_first_order_makes_its_store_the_home_store_and_credits_it(cart, store):
    order = place_order(member=cart, fulfilment="pickup", pickup_store=store)
    cart.refresh_from_db()
    assert cart.home_store == store
    assert cart.home_store_source == Member.HomeStoreSource.FIRST_ORDER
    assert order.credited_store == store


def test_the_home_store_is_credited_even_when_another_store_fulfils(cart, store):
    home = StoreFactory(name="滨江店")
    cart.home_store, cart.home_store_source = home, "store_qr"
    cart.save()
    order = place_order(member=cart, fulfilment="pickup", pickup_store=store)
    assert order.credited_store == home
    assert order.pickup_store == store


def _address(store, **overrides):
    fields = {
        "recipient_name": "李女士",
        "recipient_phone": "13800138000",
        "address": "文三路 100 号 2 幢 301",
        "latitude": float(store.latitude) + 0.005,
        "longitude": float(store.longitude),
    }
    return DeliveryAddress(**{**fields, **overrides})


def test_delivery_below_the_free_threshold_pays_the_fee(member, store):
    cheap = SkuFactory(price_fen=2990)
    receive_stock(store=store, sku=cheap, quantity=5)
    set_cart_quantity(member=member, sku=cheap, quantity=1)
    order = place_order(member=member, fulfilment="delivery", delivery=_address(store))
    rules = mall_settings()
    assert order.delivery_fee_fen == rules.delivery_fee_fen
    assert order.total_fen == 2990 + rules.delivery_fee_fen
    assert order.recipient_phone == "+8613800138000"
    assert Stock.objects.get(store=store, sku=cheap).reserved == 0  # dispatch reserves, once paid


def test_delivery_at_the_free_threshold_is_free(cart, store):
    order = place_order(member=cart, fulfilment="delivery", delivery=_address(store))
    assert order.items_fen >= mall_settings().free_delivery_from_fen
    assert order.delivery_fee_fen == 0


def test_delivery_outside_every_store_radius_is_refused_and_changes_nothing(cart, store):
    far = _address(store, latitude=31.2304, longitude=121.4737)  # Shanghai
    with pytest.raises(ApplicationError) as refused:
        place_order(member=cart, fulfilment="delivery", delivery=far)
    assert refused.value.code == "no_store_delivers_here"
    assert not Order.objects.exists()
    assert CartLine.objects.filter(member=cart).exists()


def test_a_bad_delivery_phone_or_point_is_refused(cart, store):
    with pytest.raises(ApplicationError) as bad_phone:
        place_order(member=cart, fulfilment="delivery", delivery=_address(store, recipient_phone="123"))
    assert bad_phone.value.code == "invalid_phone"
    with pytest.raises(ApplicationError) as bad_point:
        place_order(member=cart, fulfilment="delivery", delivery=_address(store, latitude=95.0))
    assert bad_point.value.code == "invalid_coordinates"
    assert not Order.objects.exists()


def test_a_cart_quantity_out_of_range_is_refused(member, formula):
    for quantity in (-1, 100):
        with pytest.raises(ApplicationError) as refused:
            set_cart_quantity(member=member, sku=formula, quantity=quantity)
        assert refused.value.code == "invalid_quantity"


@settings(max_examples=40, deadline=None)
@given(
    lines=st.lists(
        st.tuples(st.integers(min_value=1, max_value=999_999), st.integers(min_value=1, max_value=99)),
        min_size=1,
        max_size=5,
    ),
    delivery=st.booleans(),
)
def test_totals_are_exact_in_fen(lines, delivery):
    with rolled_back():
        store = StoreFactory()
        member = MemberFactory()
        expected_items = 0
        for price, quantity in lines:
            sku = SkuFactory(price_fen=price)
            receive_stock(store=store, sku=sku, quantity=quantity)
            set_cart_quantity(member=member, sku=sku, quantity=quantity)
            expected_items += price * quantity
        if delivery:
            order = place_order(member=member, fulfilment="delivery", delivery=_address(store))
            rules = mall_settings()
            fee = 0 if expected_items >= rules.free_delivery_from_fen else rules.delivery_fee_fen
        else:
            order = place_order(member=member, fulfilment="pickup", pickup_store=store)
            fee = 0
        assert order.items_fen == expected_items == sum(line.line_total_fen for line in order.lines.all())
        assert order.total_fen == expected_items + fee
        assert OrderEvent.objects.filter(order=order).count() == 1
