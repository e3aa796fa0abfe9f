"""Cancelling before a store accepts (with a full refund), and reconciling notices that never came."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.models import Stock
from o2o.errors import ApplicationError
from orders.models import Order, Refund
from orders.services import (
    cancel_order,
    confirm_payment,
    expire_unpaid_orders,
    reconcile_pending_payments,
)
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _development_payments(development_payments):
    pass


def test_cancelling_an_unpaid_order_releases_its_stock_and_refunds_nothing(order, cart, store, formula):
    cancel_order(member=cart, order=order)
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert Stock.objects.get(store=store, sku=formula).reserved == 0
    assert not Refund.objects.exists()


def test_cancelling_a_paid_order_refunds_it_in_full(order, cart, django_capture_on_commit_callbacks):
    confirm_payment(
        out_trade_no=order.number, transaction_id="wx-9", amount_fen=order.total_fen, paid_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=True):
        cancel_order(member=cart, order=order)
    refund = Refund.objects.get()
    assert refund.amount_fen == order.total_fen
    assert refund.status == Refund.Status.SUCCEEDED


def test_an_expired_order_cannot_be_cancelled(order, cart):
    expire_unpaid_orders(now=order.expires_at + timedelta(seconds=1))
    with pytest.raises(ApplicationError) as refused:
        cancel_order(member=cart, order=order)
    assert refused.value.code == "not_cancellable"


def test_another_member_cannot_cancel_an_order(order):
    with pytest.raises(ApplicationError) as refused:
        cancel_order(member=MemberFactory(), order=order)
    assert refused.value.status == 404
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


class _Notice:
    def __init__(self, order):
        self.transaction_id, self.amount_fen, self.success_time, self.is_paid = "wx-lost", order.total_fen, None, True


class _Gateway:
    """WeChat Pay as the reconciliation job sees it: it knows of one order that was paid."""

    is_development = False

    def __init__(self, paid_order):
        self.paid_order, self.asked = paid_order, []

    def query_order(self, *, out_trade_no):
        self.asked.append(out_trade_no)
        return _Notice(self.paid_order) if out_trade_no == self.paid_order.number else None


def test_reconciliation_confirms_a_payment_whose_notice_never_came(order, monkeypatch):
    gateway = _Gateway(order)
    monkeypatch.setattr("integrations.vendors.wechat_pay.payment_gateway", lambda: gateway)
    assert reconcile_pending_payments(now=timezone.now() + timedelta(minutes=3)) == 1
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert reconcile_pending_payments(now=timezone.now() + timedelta(minutes=4)) == 0  # paid orders are not asked again
    assert gateway.asked == [order.number]


def test_reconciliation_leaves_fresh_orders_to_their_notice(order, monkeypatch):
    gateway = _Gateway(order)
    monkeypatch.setattr("integrations.vendors.wechat_pay.payment_gateway", lambda: gateway)
    assert reconcile_pending_payments(now=timezone.now()) == 0
    assert gateway.asked == []


class _ClosingGateway:
    is_development = False

    def __init__(self):
        self.closed = []

    def close_order(self, *, out_trade_no):
        self.closed.append(out_trade_no)


def test_an_expired_order_is_closed_at_wechat_pay_after_commit(order, monkeypatch, django_capture_on_commit_callbacks):
    gateway = _ClosingGateway()
    monkeypatch.setattr("integrations.vendors.wechat_pay.payment_gateway", lambda: gateway)
    with django_capture_on_commit_callbacks(execute=False) as pending:
        expire_unpaid_orders(now=order.expires_at + timedelta(seconds=1))
    assert gateway.closed == []  # nothing leaves the transaction before it commits
    for callback in pending:
        callback()
    assert gateway.closed == [order.number]
