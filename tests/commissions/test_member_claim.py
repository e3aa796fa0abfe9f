"""What a claim (a WeChat sign-up taking over a store membership, members.verification) does to
orders and commissions: the guide's sign-up reward is taken back when the binding is dropped, a
sign-up with paid orders or commission of its own is refused, a cart and unpaid orders follow."""

from datetime import timedelta

import pytest
from django.utils import timezone

from commissions.models import CommissionEntry
from commissions.selectors import balances
from commissions.services import settle_due_commissions
from members.crm import CrmMember, upsert_member_from_crm
from members.models import Member
from members.services import Referral, sign_in_with_wechat
from members.verification import claim_membership
from o2o.errors import ApplicationError
from orders.models import CartLine, Order
from orders.services import place_order, set_cart_quantity
from tests.commissions.conftest import buy_order
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

STORE_PHONE = "+8613800000401"


@pytest.fixture
def holder(db):
    return upsert_member_from_crm(item=CrmMember(phone=STORE_PHONE, nickname="吴女士")).member


def _sign_up_through(guide) -> Member:
    return sign_in_with_wechat(openid="o-new", referral=Referral(guide_id=guide.pk))


def test_a_guide_whose_binding_is_dropped_loses_the_sign_up_reward_and_it_settles_to_nothing(rules, store, holder):
    own_guide, scanning_guide = StaffFactory(store=store), StaffFactory(store=store)
    Member.objects.filter(pk=holder.pk).update(guide=own_guide, bound_at=timezone.now())
    shell = _sign_up_through(scanning_guide)
    assert balances(staff=scanning_guide).pending_fen == 500

    claim_membership(member=shell, holder=holder)

    reversal = CommissionEntry.objects.get(staff=scanning_guide, kind=CommissionEntry.Kind.REVERSE)
    assert (reversal.amount_fen, reversal.status, reversal.customer_id) == (-500, "pending", shell.pk)
    assert balances(staff=scanning_guide).pending_fen == 0
    settle_due_commissions(at=timezone.now() + timedelta(days=8))
    assert CommissionEntry.objects.filter(staff=scanning_guide, status="pending").count() == 0
    figures = balances(staff=scanning_guide)
    assert (figures.pending_fen, figures.settled_fen) == (0, 0)


def test_before_the_window_neither_the_reward_nor_its_taking_back_settles(rules, store, holder):
    Member.objects.filter(pk=holder.pk).update(guide=StaffFactory(store=store), bound_at=timezone.now())
    scanning_guide = StaffFactory(store=store)
    claim_membership(member=_sign_up_through(scanning_guide), holder=holder)
    settle_due_commissions(at=timezone.now() + timedelta(days=3))
    assert set(CommissionEntry.objects.filter(staff=scanning_guide).values_list("status", flat=True)) == {"pending"}


def test_a_settled_reward_is_taken_back_at_once(rules, store, holder):
    Member.objects.filter(pk=holder.pk).update(guide=StaffFactory(store=store), bound_at=timezone.now())
    scanning_guide = StaffFactory(store=store)
    shell = _sign_up_through(scanning_guide)
    settle_due_commissions(at=timezone.now() + timedelta(days=8))
    assert balances(staff=scanning_guide).settled_fen == 500

    claim_membership(member=shell, holder=holder)

    assert balances(staff=scanning_guide).settled_fen == 0


def test_a_guide_who_brings_a_store_member_online_first_keeps_the_reward_and_the_customer(rules, store, holder):
    guide = StaffFactory(store=store)
    claim_membership(member=_sign_up_through(guide), holder=holder)
    assert balances(staff=guide).pending_fen == 500
    assert not CommissionEntry.objects.filter(kind=CommissionEntry.Kind.REVERSE).exists()
    holder.refresh_from_db()
    assert holder.guide == guide


def test_a_sign_up_with_a_paid_order_cannot_take_over_a_membership(rules, store, clerk, formula, holder):
    shell = sign_in_with_wechat(openid="o-buyer")
    buy_order(store, clerk, shell, {formula: 1})

    with pytest.raises(ApplicationError) as refused:
        claim_membership(member=shell, holder=holder)

    assert refused.value.code == "claim_has_history"
    shell.refresh_from_db()
    holder.refresh_from_db()
    assert (shell.is_active, shell.openid, holder.openid) == (True, "o-buyer", None)
    assert Order.objects.get().member == shell


def test_a_sign_up_that_earned_commission_cannot_take_over_a_membership(rules, holder):
    shell = sign_in_with_wechat(openid="o-promoter")
    CommissionEntry.objects.create(
        member=shell, kind=CommissionEntry.Kind.ADJUST, amount_fen=100, created_at=timezone.now()
    )
    with pytest.raises(ApplicationError) as refused:
        claim_membership(member=shell, holder=holder)
    assert refused.value.code == "claim_has_history"
    assert Member.objects.get(pk=shell.pk).merged_into is None


def test_the_cart_and_an_unpaid_order_follow_the_shopper(rules, store, formula, holder):
    shell = sign_in_with_wechat(openid="o-cart")
    set_cart_quantity(member=shell, sku=formula, quantity=1)
    unpaid = place_order(member=shell, fulfilment="pickup", pickup_store=store)
    set_cart_quantity(member=shell, sku=formula, quantity=2)

    claim_membership(member=shell, holder=holder)

    assert Order.objects.get(pk=unpaid.pk).member_id == holder.pk
    assert list(CartLine.objects.values_list("member_id", "quantity")) == [(holder.pk, 2)]
