"""A store is told about an order offered to it: e-mail to its address, WeChat to its clerks when configured."""

from decimal import Decimal

import pytest
from django.core import mail

from inventory.services import receive_stock
from orders import notifications
from orders.dispatch import accept_assignment, dispatch_order
from orders.services import confirm_payment, place_order, set_cart_quantity
from tests.factories import MemberFactory, SkuFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db


class RecordingAccount:
    """Stands in for the official account: records template messages instead of calling WeChat."""

    def __init__(self):
        self.sent = []

    def send_template_message(self, **message):
        self.sent.append(message)
        return "msg-1"


@pytest.fixture
def offer():
    store = StoreFactory(
        code="WS", name="文三路店", email="ws@example.com", latitude=Decimal("30.28"), longitude=Decimal("120.15")
    )
    sku = SkuFactory(price_fen=25800)
    receive_stock(store=store, sku=sku, quantity=5)
    member = MemberFactory(openid="o-shopper")
    set_cart_quantity(member=member, sku=sku, quantity=1)
    order = place_order(member=member, fulfilment="pickup", pickup_store=store)
    confirm_payment(
        out_trade_no=order.number, transaction_id="wx-n", amount_fen=order.total_fen, paid_at=order.created_at
    )
    return dispatch_order(order_id=order.pk)


def test_the_store_gets_an_email_naming_the_order_its_deadline_and_the_console_link(offer):
    used = notifications.notify_store_of_assignment(assignment_id=offer.pk)

    assert used == ["email"]
    [message] = mail.outbox
    assert message.to == ["ws@example.com"]
    assert offer.order.number in message.subject
    assert f"/console/orders/{offer.order.number}/" in message.body


def test_with_wechat_configured_each_clerk_with_an_openid_gets_a_template_message(offer, monkeypatch, settings):
    account = RecordingAccount()
    monkeypatch.setattr(notifications, "official_account", lambda: account)
    settings.WECHAT_TEMPLATES = {"new_order": "tpl-new", "order_status": ""}
    StaffFactory(store=offer.store, wechat_openid="o-clerk-1")
    StaffFactory(store=offer.store, wechat_openid="")  # no WeChat: e-mail and the console only
    StaffFactory(store=StoreFactory(), wechat_openid="o-other-store")

    used = notifications.notify_store_of_assignment(assignment_id=offer.pk)

    assert used == ["email", "wechat"]
    assert [(m["openid"], m["template_id"]) for m in account.sent] == [("o-clerk-1", "tpl-new")]
    assert account.sent[0]["data"]["keyword1"] == offer.order.number


def test_an_offer_already_answered_sends_nothing(offer):
    clerk = StaffFactory(store=offer.store, user=UserFactory())
    accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user)

    assert notifications.notify_store_of_assignment(assignment_id=offer.pk) == []
    assert mail.outbox == []


def test_the_shopper_is_told_by_wechat_only_when_a_template_is_configured(offer, monkeypatch, settings):
    account = RecordingAccount()
    monkeypatch.setattr(notifications, "official_account", lambda: account)
    settings.WECHAT_TEMPLATES = {"new_order": "", "order_status": ""}
    assert notifications.notify_shopper(order_id=offer.order_id) is False

    settings.WECHAT_TEMPLATES = {"new_order": "", "order_status": "tpl-status"}
    assert notifications.notify_shopper(order_id=offer.order_id) is True
    assert account.sent[0]["openid"] == "o-shopper"
