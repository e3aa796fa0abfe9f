"""The commission ledger: who earns on a paid order, exact fen within the cap, reversal on
refunds, settlement after the return window, and nothing for recruiting alone."""

from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from commissions.models import CategoryCommissionRate, CommissionEntry
from commissions.selectors import balances, ledger_sum
from commissions.services import record_order_commissions, reverse_order_commissions, settle_due_commissions
from members.models import LoyaltySettings, Member
from members.selectors import forget_loyalty_settings
from members.services import Referral, adjust_points, rebind_referral, sign_in_for_development
from o2o.errors import ApplicationError
from o2o.events import publish
from orders.fulfilment import cancel_by_hq, return_at_store
from tests.factories import CategoryFactory, HQUserFactory, MemberFactory, SkuFactory, StaffFactory

pytestmark = pytest.mark.django_db


def _entries(**where):
    return list(CommissionEntry.objects.filter(**where).order_by("level", "pk"))


def _chain(length: int) -> list[Member]:
    """members[0] brought members[1], who brought members[2], …"""
    members = [MemberFactory()]
    for _ in range(length - 1):
        members.append(MemberFactory(referrer=members[-1]))
    return members


def test_a_paid_order_earns_the_guide_and_two_levels_of_referrers_exact_fen(rules, buy, formula, store):
    top, sharer = _chain(2)
    guide = StaffFactory(store=store, role="guide")
    buyer = MemberFactory(referrer=sharer, guide=guide)

    order = buy(buyer, {formula: 1})  # ¥199.00

    earned = {(e.level, e.member_id or e.staff_id): e.amount_fen for e in _entries(order=order)}
    assert earned == {(0, guide.pk): 597, (1, sharer.pk): 995, (2, top.pk): 398}  # 3 %, 5 %, 2 % of 19,900 fen
    assert {e.status for e in _entries(order=order)} == {"pending"}
    assert balances(member=sharer).pending_fen == 995 and balances(member=sharer).available_fen == 0


def test_commission_is_on_what_was_paid_after_points_and_without_the_delivery_fee(rules, buy, formula):
    LoyaltySettings.objects.update_or_create(pk=1, defaults={"point_value_fen": 1, "max_redeem_percent": 50})
    forget_loyalty_settings()
    sharer = MemberFactory()
    buyer = MemberFactory(referrer=sharer)
    adjust_points(member=buyer, points=1000, note="gift")

    order = buy(buyer, {formula: 1}, points=1000)  # ¥10 of ¥199 paid with points

    assert order.items_paid_fen == 18900
    assert _entries(order=order)[0].amount_fen == 945  # 5 % of 18,900


def test_a_category_override_and_the_rounding_down_to_the_fen(rules, buy, store):
    from inventory.services import receive_stock

    rules(depth=1)
    formula_cat = CategoryFactory(code="FORMULA")
    CategoryCommissionRate.objects.create(category=formula_cat, level=1, rate_bp=333)  # 3.33 %
    cheap = SkuFactory(product__category=formula_cat, price_fen=1999)
    toy = SkuFactory(price_fen=1001)
    for sku in (cheap, toy):
        receive_stock(store=store, sku=sku, quantity=10)
    sharer = MemberFactory()

    order = buy(MemberFactory(referrer=sharer), {cheap: 1, toy: 1})

    # floor(1999 × 333 / 10,000 + 1001 × 500 / 10,000) = floor(66.5667 + 50.05) = 116
    assert _entries(order=order)[0].amount_fen == 116


def test_the_order_cap_limits_the_total_nearest_first(rules, buy, formula, store):
    rules(depth=3, guide_rate_bp=800, level_1_rate_bp=900, level_2_rate_bp=500, level_3_rate_bp=500, order_cap_bp=2000)
    top, middle, sharer = _chain(3)
    guide = StaffFactory(store=store, role="guide")

    order = buy(MemberFactory(referrer=sharer, guide=guide), {formula: 1})

    amounts = [e.amount_fen for e in _entries(order=order)]
    assert amounts == [1592, 1791, 597]  # 8 %, 9 %, then what is left of the 20 % cap (3,980 fen); level 3 nothing
    assert sum(amounts) == 19900 * 2000 // 10000
    assert not _entries(order=order, member=top)


def test_recruiting_alone_earns_a_member_nothing(rules, store):
    sharer = MemberFactory()
    for n in range(5):
        sign_in_for_development(phone=f"1770000000{n}", referral=Referral(referrer_id=sharer.pk))

    assert Member.objects.filter(referrer=sharer).count() == 5
    assert not CommissionEntry.objects.filter(member=sharer).exists()
    assert balances(member=sharer).pending_fen == balances(member=sharer).settled_fen == 0


def test_a_guide_earns_the_sign_up_reward_once_per_customer(rules, store):
    guide = StaffFactory(store=store, role="guide")

    customer = sign_in_for_development(phone="17700000011", referral=Referral(guide_id=guide.pk))
    sign_in_for_development(phone="17700000011", referral=Referral(guide_id=guide.pk))  # signs in again
    publish("member.registered", member_id=customer.pk, referrer_id=None, guide_id=guide.pk)  # a repeated event

    assert [(e.kind, e.amount_fen) for e in _entries(staff=guide)] == [("signup", 500)]
    customer.refresh_from_db()
    assert (customer.guide, customer.home_store, customer.home_store_source) == (guide, store, "guide_qr")


def test_repeated_payment_events_create_no_duplicate_entries(rules, buy, formula):
    sharer = MemberFactory()
    order = buy(MemberFactory(referrer=sharer), {formula: 2})

    record_order_commissions(order_id=order.pk)
    publish("order.paid", order_id=order.pk)

    assert len(_entries(order=order)) == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        CommissionEntry.objects.create(
            member=sharer, kind="earn", level=1, order=order, amount_fen=1, created_at=timezone.now()
        )


def test_settlement_waits_for_completion_and_the_return_window(rules, buy, formula):
    sharer = MemberFactory()
    waiting = buy(MemberFactory(referrer=sharer), {formula: 1})  # paid, never collected
    done = buy(MemberFactory(referrer=sharer), {formula: 1}, complete=True)

    assert settle_due_commissions() == 0
    with time_machine.travel(timezone.now() + timedelta(days=6, hours=23)):
        assert settle_due_commissions() == 0
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        assert settle_due_commissions() == 1

    assert _entries(order=done)[0].status == "settled"
    assert _entries(order=waiting)[0].status == "pending"
    assert balances(member=sharer).settled_fen == 995 and balances(member=sharer).pending_fen == 995


def test_a_partial_return_reverses_in_proportion_and_the_whole_return_reverses_exactly_all(rules, buy, formula, clerk):
    sharer = MemberFactory()
    order = buy(MemberFactory(referrer=sharer), {formula: 3}, complete=True)  # 59,700 fen: earns 2,985
    line = order.lines.get()

    return_at_store(staff=clerk, order=order.number, quantities={line.pk: 1}, token="t1")
    assert ledger_sum(member=sharer) == 2985 - 995
    return_at_store(staff=clerk, order=order.number, quantities={line.pk: 2}, token="t2")

    assert ledger_sum(member=sharer) == 0
    assert [e.amount_fen for e in _entries(order=order, kind="reverse")] == [-995, -1990]


def test_a_cancelled_order_reverses_everything_and_settles_to_nothing(rules, buy, formula):
    sharer = MemberFactory()
    order = buy(MemberFactory(referrer=sharer), {formula: 1})

    cancel_by_hq(order=order, user=HQUserFactory(), reason="缺货")
    settle_due_commissions()

    assert ledger_sum(member=sharer) == 0
    assert {e.status for e in _entries(order=order)} == {"settled"}
    assert balances(member=sharer).available_fen == 0


def test_a_refund_after_settlement_is_settled_at_once_and_may_leave_a_negative_balance(rules, buy, formula, clerk):
    sharer = MemberFactory()
    order = buy(MemberFactory(referrer=sharer), {formula: 1}, complete=True)
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        settle_due_commissions()
        return_at_store(staff=clerk, order=order.number, quantities={order.lines.get().pk: 1}, token="late")

    reversal = _entries(order=order, kind="reverse")[0]
    assert (reversal.status, reversal.amount_fen, reversal.note) == ("settled", -995, "refunded after settlement")
    assert balances(member=sharer).settled_fen == 0
    # running the reversal again takes nothing more
    assert reverse_order_commissions(order_id=order.pk) == []


def test_nobody_refers_themselves_and_hq_cannot_make_a_cycle(rules):
    top, middle, bottom = _chain(3)
    hq = HQUserFactory()

    for referrer in (top, bottom):
        with pytest.raises(ApplicationError) as refused:
            rebind_referral(member=top, referrer=referrer, guide=None, reason="合并账号", user=hq)
        assert refused.value.code == "referral_cycle"
    with pytest.raises(ApplicationError) as refused:
        rebind_referral(member=bottom, referrer=top, guide=None, reason="  ", user=hq)
    assert refused.value.code == "reason_required"

    change = rebind_referral(member=bottom, referrer=top, guide=None, reason="顾客要求", user=hq)

    bottom.refresh_from_db()
    assert bottom.referrer == top and (change.from_referrer, change.to_referrer) == (middle, top)


def test_a_registration_link_never_rebinds_an_existing_member(rules):
    sharer, other = MemberFactory(), MemberFactory()
    member = sign_in_for_development(phone="17700000019", referral=Referral(referrer_id=sharer.pk))

    again = sign_in_for_development(phone="17700000019", referral=Referral(referrer_id=other.pk))

    assert again.pk == member.pk
    assert Member.objects.get(pk=member.pk).referrer == sharer
