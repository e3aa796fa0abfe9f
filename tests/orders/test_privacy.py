"""PIPL: marketing consent apart from the service, a copy of one's data, and closing the account."""

import json
from decimal import Decimal

import pytest

from members.models import FollowUp, Member, PointsEntry, Purchase
from members.selectors import ledger_sum
from members.services import earn_points, open_follow_ups, sign_in_with_wechat
from members.session import MEMBER_SESSION_KEY
from o2o.errors import ApplicationError
from orders.models import Order
from orders.services import DeliveryAddress, cancel_order, close_account, confirm_payment, place_order
from tests.factories import MemberFactory, ProductFactory

pytestmark = pytest.mark.django_db


def _signed_in(client, member):
    session = client.session
    session[MEMBER_SESSION_KEY] = member.pk
    session.save()
    return client


@pytest.fixture
def shopper(cart):
    """A WeChat member with a cancelled delivery order, points, a purchase and an open call."""
    Member.objects.filter(pk=cart.pk).update(openid="o-shopper", nickname="陈女士")
    cart.refresh_from_db()
    order = place_order(
        member=cart,
        fulfilment="delivery",
        delivery=DeliveryAddress(
            recipient_name="陈女士",
            recipient_phone="13800000001",
            address="体育场路 178 号",
            latitude=30.281234,
            longitude=120.151234,
        ),
    )
    cancel_order(member=cart, order=order)
    earn_points(member=cart, reference="POS-1", lines=[(None, 30000)])
    open_follow_ups(
        member=cart, store=order.credited_store, reference="POS-1", lines=[(ProductFactory(days_per_unit=7).pk, 1)]
    )
    return cart


def test_closing_the_account_erases_personal_data_and_the_ledgers_still_reconcile(shopper):
    purchases_before = Purchase.objects.filter(member=shopper).count()
    entries_before = PointsEntry.objects.filter(member=shopper).count()

    close_account(member=shopper)

    member = Member.objects.get(pk=shopper.pk)
    personal = [member.openid, member.unionid, member.phone, member.nickname, member.avatar_url, member.card_number]
    assert all(value in (None, "") for value in personal)
    assert (member.is_active, member.marketing_consent, member.closed_at is not None) == (False, False, True)
    order = Order.objects.get(member=member)
    assert (order.recipient_name, order.recipient_phone, order.delivery_address) == ("", "", "")
    assert order.delivery_latitude == Decimal("30.28")  # a district, no longer a door
    # the books: ledgers and purchases kept, the balance still their sum
    assert PointsEntry.objects.filter(member=member).count() == entries_before
    assert Purchase.objects.filter(member=member).count() == purchases_before
    assert member.points_balance == ledger_sum(member) == 300
    assert not FollowUp.objects.filter(member=member, status="open").exists()


def test_the_same_wechat_user_signing_in_later_is_a_new_member(shopper):
    close_account(member=shopper)

    again = sign_in_with_wechat(openid="o-shopper")

    assert again.pk != shopper.pk
    assert again.points_balance == 0


def test_an_account_with_an_order_under_way_cannot_be_closed_and_nothing_changes(cart, store):
    Member.objects.filter(pk=cart.pk).update(nickname="陈女士")
    order = place_order(member=cart, fulfilment="pickup", pickup_store=store)
    confirm_payment(
        out_trade_no=order.number, transaction_id="wx-p", amount_fen=order.total_fen, paid_at=order.created_at
    )

    with pytest.raises(ApplicationError) as refused:
        close_account(member=cart)

    assert refused.value.code == "orders_open"
    assert refused.value.details["orders"] == [order.number]
    assert Member.objects.get(pk=cart.pk).nickname == "陈女士"


def test_a_member_downloads_their_own_data_and_only_theirs(client, shopper):
    MemberFactory()  # someone else
    response = _signed_in(client, shopper).get("/mall/me/data/")

    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["member"]["phone"] == shopper.phone
    assert [o["recipient_name"] for o in data["orders"]] == ["陈女士"]
    assert [p["points"] for p in data["points"]] == [300]
    assert len(data["follow_up_calls"]) == 2


def test_marketing_consent_is_off_until_the_member_says_yes_and_can_be_withdrawn(client, shopper):
    assert shopper.marketing_consent is False
    _signed_in(client, shopper).post("/mall/me/marketing/", {"consent": "1"})
    shopper.refresh_from_db()
    assert shopper.marketing_consent and shopper.marketing_consent_at

    client.post("/mall/me/marketing/", {"consent": "0"})
    shopper.refresh_from_db()
    assert shopper.marketing_consent is False


def test_closing_from_the_member_center_needs_the_confirmation_then_signs_out(client, shopper):
    _signed_in(client, shopper)
    client.post("/mall/me/close/", {})
    assert Member.objects.get(pk=shopper.pk).closed_at is None

    response = client.post("/mall/me/close/", {"confirm": "1"})

    assert response.status_code == 302
    assert Member.objects.get(pk=shopper.pk).closed_at is not None
    assert MEMBER_SESSION_KEY not in client.session
    assert client.get("/mall/me/").status_code == 302  # to the sign-in
