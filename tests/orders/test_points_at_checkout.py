"""Points pay part of an order within HQ's limits, and come back when the order is cancelled or returned."""

import pytest

from inventory.models import Stock
from members.models import LoyaltySettings, PointsEntry
from members.selectors import forget_loyalty_settings, ledger_sum
from members.services import earn_points
from members.session import MEMBER_SESSION_KEY
from o2o.errors import ApplicationError
from orders.dispatch import accept_assignment, dispatch_order
from orders.fulfilment import hand_over, return_at_store
from orders.models import Order, Refund
from orders.services import cancel_order, confirm_payment, place_order
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rules(development_payments):
    LoyaltySettings.objects.update_or_create(
        pk=1, defaults={"points_per_yuan": 1, "point_value_fen": 1, "max_redeem_percent": 50}
    )
    forget_loyalty_settings()


@pytest.fixture
def rich(cart):
    """The cart's member (2 × ¥258 in the cart) with 100,000 points."""
    earn_points(member=cart, reference="POS-OLD", lines=[(None, 10_000_000)])
    cart.refresh_from_db()
    return cart


def _balance(member) -> int:
    member.refresh_from_db()
    assert member.points_balance == ledger_sum(member)
    return member.points_balance


def _pay(order: Order) -> Order:
    return confirm_payment(
        out_trade_no=order.number,
        transaction_id=f"wx-{order.number}",
        amount_fen=order.total_fen,
        paid_at=order.created_at,
    )


def test_points_pay_part_of_the_items_and_the_shopper_pays_the_rest(rich, store):
    order = place_order(member=rich, fulfilment="pickup", pickup_store=store, points=20_000)

    assert (order.items_fen, order.points_discount_fen, order.total_fen) == (51_600, 20_000, 31_600)
    assert _balance(rich) == 100_000 - 20_000
    assert PointsEntry.objects.get(kind="redeem", reference=order.number).points == -20_000
    assert _pay(order).status == Order.Status.PAID  # WeChat Pay is asked for the rest only


def test_more_points_than_hq_s_share_is_refused_and_nothing_is_written(rich, store, formula):
    with pytest.raises(ApplicationError) as refused:
        place_order(member=rich, fulfilment="pickup", pickup_store=store, points=25_801)  # 50 % of 51,600 is 25,800

    assert refused.value.code == "points_limit"
    assert refused.value.details["allowed"] == [25_800]
    assert not Order.objects.exists()
    assert _balance(rich) == 100_000
    assert Stock.objects.get(store=store, sku=formula).reserved == 0
    assert rich.cart_lines.count() == 1


def test_more_points_than_the_balance_is_refused(cart, store):
    earn_points(member=cart, reference="POS-1", lines=[(None, 10_000)])  # 100 points
    with pytest.raises(ApplicationError) as refused:
        place_order(member=cart, fulfilment="pickup", pickup_store=store, points=101)
    assert refused.value.code == "points_limit"


def test_points_never_pay_the_whole_order(rich, store):
    LoyaltySettings.objects.filter(pk=1).update(max_redeem_percent=100)
    forget_loyalty_settings()

    with pytest.raises(ApplicationError):
        place_order(member=rich, fulfilment="pickup", pickup_store=store, points=51_600)
    order = place_order(member=rich, fulfilment="pickup", pickup_store=store, points=51_599)
    assert order.total_fen == 1


@pytest.mark.parametrize("points", [-1, 1.5, "10", True])
def test_points_that_are_not_a_whole_positive_number_are_refused(rich, store, points):
    with pytest.raises(ApplicationError) as refused:
        place_order(member=rich, fulfilment="pickup", pickup_store=store, points=points)
    assert refused.value.code == "invalid_points"


def test_cancelling_gives_the_points_back_once(rich, store):
    order = _pay(place_order(member=rich, fulfilment="pickup", pickup_store=store, points=20_000))

    cancel_order(member=rich, order=order)

    assert _balance(rich) == 100_000
    assert Refund.objects.get(payment__order=order).amount_fen == 31_600  # the money part only
    with pytest.raises(ApplicationError):
        cancel_order(member=rich, order=order)
    assert _balance(rich) == 100_000


def test_an_unpaid_order_that_expires_gives_its_points_back(rich, store):
    from orders.services import expire_unpaid_orders

    order = place_order(member=rich, fulfilment="pickup", pickup_store=store, points=10_000)
    expire_unpaid_orders(now=order.expires_at)

    assert _balance(rich) == 100_000


def test_returns_refund_money_and_points_in_the_share_they_paid_and_earn_only_on_money(rich, store, formula):
    clerk = StaffFactory(store=store, user=UserFactory())
    order = _pay(place_order(member=rich, fulfilment="pickup", pickup_store=store, points=20_000))
    offer = dispatch_order(order_id=order.pk)
    accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user)
    hand_over(staff=clerk, order=order.number)
    # earned on ¥316 paid in money, not on the ¥516 of goods
    assert PointsEntry.objects.get(kind="earn", reference=order.number).points == 316
    assert _balance(rich) == 100_000 - 20_000 + 316
    line = order.lines.get()

    first = return_at_store(staff=clerk, order=order.number, quantities={line.pk: 1}, token="a")

    assert first.amount_fen == 31_600 // 2  # half the goods: half the money
    assert _balance(rich) == 100_000 - 20_000 + 316 + 10_000 - 158  # half the points back, half the earn reversed

    last = return_at_store(staff=clerk, order=order.number, quantities={line.pk: 1}, token="b")

    assert first.amount_fen + last.amount_fen == 31_600
    assert _balance(rich) == 100_000
    assert Order.objects.get(pk=order.pk).status == Order.Status.RETURNED


def test_the_api_and_the_checkout_page_take_points(rich, store, client, api_client):
    session = client.session
    session[MEMBER_SESSION_KEY] = rich.pk
    session.save()

    page = client.get("/mall/checkout/")
    assert page.context["points_max"] == 25_800
    response = client.post("/mall/checkout/", {"fulfilment": "pickup", "pickup_store": store.pk, "points": "30000"})
    assert response.status_code == 400  # over HQ's share: a form error, nothing placed
    assert not Order.objects.exists()

    response = client.post("/mall/checkout/", {"fulfilment": "pickup", "pickup_store": store.pk, "points": "800"})
    assert response.status_code == 302
    assert Order.objects.get().points_used == 800
