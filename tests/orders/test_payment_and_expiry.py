"""Payment confirmation (once per transaction, exact amount) and the unpaid-order sweeper."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.models import Stock, StockMove
from o2o.errors import ApplicationError
from orders.models import Order, OrderEvent, Payment, Refund
from orders.services import confirm_payment, expire_unpaid_orders, place_order, set_cart_quantity
from tests.concurrency import run_at_once
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _development_payments(development_payments):
    pass


def _pay(order, transaction_id="wx-0001", amount=None):
    return confirm_payment(
        out_trade_no=order.number,
        transaction_id=transaction_id,
        amount_fen=order.total_fen if amount is None else amount,
        paid_at=timezone.now(),
    )


def test_a_confirmed_payment_marks_a_pickup_order_paid_with_its_event(order):
    paid = _pay(order)
    assert paid.status == Order.Status.PAID
    assert paid.paid_at is not None
    assert list(paid.events.values_list("to_status", "actor_type")) == [
        ("pending_payment", "member"),
        ("paid", "payment"),
    ]


def test_a_replayed_notice_has_one_effect(order):
    _pay(order)
    _pay(order)
    assert Payment.objects.filter(order=order).count() == 1
    assert OrderEvent.objects.filter(order=order, from_status="pending_payment", to_status="paid").count() == 1


def test_a_wrong_amount_is_refused_and_changes_nothing(order):
    with pytest.raises(ApplicationError) as refused:
        _pay(order, amount=order.total_fen - 1)
    assert refused.value.code == "amount_mismatch"
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
    assert not Payment.objects.exists()


def test_the_sweeper_expires_only_due_orders_and_releases_their_stock_once(order, store, formula):
    assert expire_unpaid_orders(now=order.expires_at - timedelta(seconds=1)) == 0
    assert expire_unpaid_orders(now=order.expires_at + timedelta(seconds=1)) == 1
    assert expire_unpaid_orders(now=order.expires_at + timedelta(minutes=5)) == 0
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED
    assert Stock.objects.get(store=store, sku=formula).reserved == 0
    assert StockMove.objects.filter(reference=f"order:{order.number}", kind="release").count() == 1


def test_a_payment_after_expiry_is_recorded_and_refunded_in_full(order, django_capture_on_commit_callbacks):
    expire_unpaid_orders(now=order.expires_at + timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True) as after_commit:
        _pay(order, transaction_id="wx-late")
    assert len(after_commit) == 1  # the refund goes to the gateway only once the payment is committed
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED
    refund = Refund.objects.get(payment__transaction_id="wx-late")
    assert refund.amount_fen == order.total_fen
    assert refund.status == Refund.Status.SUCCEEDED  # the development gateway refunds at once


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_notices_pay_once(cart, store):
    order = place_order(member=cart, fulfilment="pickup", pickup_store=store)
    _results, errors = run_at_once([lambda: _pay(order, transaction_id="wx-dup")] * 4)
    assert not errors
    assert Payment.objects.filter(transaction_id="wx-dup").count() == 1
    assert OrderEvent.objects.filter(order=order, from_status="pending_payment", to_status="paid").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_expire_each_order_once(store, formula):
    orders = []
    for _ in range(6):
        member = MemberFactory()
        set_cart_quantity(member=member, sku=formula, quantity=1)
        orders.append(place_order(member=member, fulfilment="pickup", pickup_store=store))
    later = max(o.expires_at for o in orders) + timedelta(seconds=1)

    def sweep_twice():
        return expire_unpaid_orders(now=later, batch_size=3) + expire_unpaid_orders(now=later, batch_size=3)

    counts, errors = run_at_once([sweep_twice, sweep_twice])
    assert not errors
    assert sum(counts) == 6
    assert Order.objects.filter(status="expired").count() == 6
    assert StockMove.objects.filter(kind="release", reference__startswith="order:").count() == 6
    assert Stock.objects.get(store=store, sku=formula).reserved == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_checkouts_of_the_last_units_never_oversell(store, formula):
    # 10 on hand; 25 shoppers each want 1 at once
    members = [MemberFactory() for _ in range(25)]
    for member in members:
        set_cart_quantity(member=member, sku=formula, quantity=1)
    placed, raised = run_at_once(
        [lambda m=m: place_order(member=m, fulfilment="pickup", pickup_store=store) for m in members]
    )
    assert len(placed) == 10
    assert [getattr(exc, "code", repr(exc)) for exc in raised] == ["insufficient_stock"] * 15
    stock = Stock.objects.get(store=store, sku=formula)
    assert (stock.on_hand, stock.reserved) == (10, 10)
