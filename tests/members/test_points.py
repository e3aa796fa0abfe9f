"""Points: the balance is always the ledger's sum; earn, redeem, reverse in proportion, expire oldest first."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from members.models import CategoryPointsRate, LoyaltySettings, PointsEntry
from members.selectors import forget_loyalty_settings, ledger_sum, points_liability
from members.services import (
    adjust_points,
    earn_points,
    expire_due_points,
    expire_points,
    redeem_points,
    redeemable_points,
    reverse_points,
)
from o2o.errors import ApplicationError
from tests.factories import CategoryFactory, MemberFactory

pytestmark = pytest.mark.django_db


def _rules(**fields):
    LoyaltySettings.objects.update_or_create(pk=1, defaults=fields)
    forget_loyalty_settings()


def test_a_purchase_earns_hq_s_rate_per_whole_yuan_with_category_overrides():
    formula, wipes = CategoryFactory(code="formula"), CategoryFactory(code="wipes")
    CategoryPointsRate.objects.create(category=formula, points_per_yuan=2)
    member = MemberFactory()

    entry = earn_points(member=member, reference="A1", lines=[(formula.pk, 25899), (wipes.pk, 1299), (None, 99)])

    # 258.99 yuan × 2 = 517 (rounded down), 12.99 × 1 = 12, 0.99 × 1 = 0
    assert entry.points == 517 + 12
    member.refresh_from_db()
    assert member.points_balance == 529 == ledger_sum(member)


def test_the_same_purchase_earns_once_however_often_it_is_reported():
    member = MemberFactory()
    earn_points(member=member, reference="A1", lines=[(None, 10000)])
    assert earn_points(member=member, reference="A1", lines=[(None, 10000)]) is None

    assert PointsEntry.objects.filter(member=member).count() == 1
    member.refresh_from_db()
    assert member.points_balance == 100


def test_partial_refunds_reverse_in_proportion_and_add_up_to_the_whole_earn():
    member = MemberFactory()
    earn_points(member=member, reference="A1", lines=[(None, 30000)])  # 300 points

    reverse_points(member=member, reference="A1", refunded_fen=10000, paid_fen=30000)
    reverse_points(member=member, reference="A1", refunded_fen=10000, paid_fen=30000)  # the same total again
    member.refresh_from_db()
    assert member.points_balance == 200

    reverse_points(member=member, reference="A1", refunded_fen=30000, paid_fen=30000)
    member.refresh_from_db()
    assert member.points_balance == 0 == ledger_sum(member)
    assert [e.points for e in PointsEntry.objects.filter(kind="reverse").order_by("pk")] == [-100, -200]


def test_a_refund_after_the_points_were_spent_leaves_a_debt_that_later_earnings_repay():
    member = MemberFactory()
    earn_points(member=member, reference="A1", lines=[(None, 20000)])
    redeem_points(member=member, points=100, order_fen=20000, reference="B1")

    reverse_points(member=member, reference="A1", refunded_fen=20000, paid_fen=20000)
    member.refresh_from_db()
    assert member.points_balance == -100 == ledger_sum(member)

    earn_points(member=member, reference="C1", lines=[(None, 15000)])
    member.refresh_from_db()
    assert member.points_balance == 50


def test_redemption_is_limited_by_the_balance_and_hq_s_share_of_the_order():
    _rules(point_value_fen=1, max_redeem_percent=30)
    member = MemberFactory()
    earn_points(member=member, reference="A1", lines=[(None, 50000)])  # 500 points

    assert redeemable_points(member=member, order_fen=1000) == 300  # 30 % of ¥10 is 300 fen: 300 points
    assert redeemable_points(member=member, order_fen=500000) == 500  # the whole balance
    with pytest.raises(ApplicationError) as refused:
        redeem_points(member=member, points=301, order_fen=1000, reference="B1")
    assert refused.value.code == "points_limit"
    member.refresh_from_db()
    assert member.points_balance == 500

    redeem_points(member=member, points=300, order_fen=1000, reference="B1")
    member.refresh_from_db()
    assert member.points_balance == 200


def test_points_of_more_value_lower_the_cap_in_points():
    _rules(point_value_fen=10, max_redeem_percent=50)
    member = MemberFactory()
    earn_points(member=member, reference="A1", lines=[(None, 500000)])

    # half of ¥100 is 5,000 fen: 500 points at 10 fen each
    assert redeemable_points(member=member, order_fen=10000) == 500


def test_unspent_points_expire_oldest_first_after_hq_s_months():
    _rules(points_valid_months=12)
    member = MemberFactory()
    start = timezone.now()
    earn_points(member=member, reference="OLD", lines=[(None, 30000)], at=start)  # 300, due in 360 days
    earn_points(member=member, reference="NEW", lines=[(None, 20000)], at=start + timedelta(days=200))
    redeem_points(member=member, points=100, order_fen=100000, reference="B1")  # spends the oldest first

    assert expire_points(member=member, at=start + timedelta(days=359)) is None
    entry = expire_points(member=member, at=start + timedelta(days=361))

    assert entry.points == -200  # 300 earned − 100 spent; the newer 200 stay
    assert expire_points(member=member, at=start + timedelta(days=361)) is None  # once
    member.refresh_from_db()
    assert member.points_balance == 200 == ledger_sum(member)


def test_the_nightly_job_expires_the_due_points_of_every_member_and_only_theirs():
    _rules(points_valid_months=1)
    start = timezone.now()
    due, fresh = MemberFactory(), MemberFactory()
    earn_points(member=due, reference="A", lines=[(None, 10000)], at=start)
    earn_points(member=fresh, reference="B", lines=[(None, 10000)], at=start + timedelta(days=20))

    assert expire_due_points(at=start + timedelta(days=31)) == 1
    assert expire_due_points(at=start + timedelta(days=31)) == 0
    due.refresh_from_db()
    fresh.refresh_from_db()
    assert (due.points_balance, fresh.points_balance) == (0, 100)


def test_a_reversed_earn_does_not_shield_older_points_from_expiry():
    _rules(points_valid_months=1)
    member = MemberFactory()
    start = timezone.now()
    earn_points(member=member, reference="OLD", lines=[(None, 10000)], at=start)
    earn_points(member=member, reference="NEW", lines=[(None, 5000)], at=start + timedelta(days=20))
    reverse_points(member=member, reference="NEW", refunded_fen=5000, paid_fen=5000)

    entry = expire_points(member=member, at=start + timedelta(days=31))

    assert entry.points == -100
    member.refresh_from_db()
    assert member.points_balance == 0


def test_hq_adjusts_with_a_reason_and_the_liability_counts_outstanding_points():
    _rules(point_value_fen=2)
    member = MemberFactory()
    with pytest.raises(ApplicationError):
        adjust_points(member=member, points=50, note=" ")
    adjust_points(member=member, points=50, note="补录门店活动积分")

    assert points_liability() == {"points": 50, "value_fen": 100}


def test_the_ledger_is_append_only():
    member = MemberFactory()
    entry = earn_points(member=member, reference="A1", lines=[(None, 1000)])
    entry.points = 1000
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()


class PointsLedger(RuleBasedStateMachine):
    """Any mix of earning, redeeming, refunds (partial, repeated), expiry and HQ adjustments."""

    @initialize()
    def start(self):
        _rules(points_valid_months=1, max_redeem_percent=50, point_value_fen=1)
        self.member = MemberFactory()
        self.now = timezone.now()
        self.purchases = {}  # reference → (paid fen, refunded fen)

    @rule(amount=st.integers(min_value=1, max_value=200_000))
    def earn(self, amount):
        reference = f"P{len(self.purchases)}"
        earn_points(member=self.member, reference=reference, lines=[(None, amount)], at=self.now)
        self.purchases[reference] = (amount, 0)

    @rule(points=st.integers(min_value=1, max_value=5_000), order_fen=st.integers(min_value=1, max_value=500_000))
    def redeem(self, points, order_fen):
        self.member.refresh_from_db()
        allowed = redeemable_points(member=self.member, order_fen=order_fen)
        before = self.member.points_balance
        try:
            redeem_points(member=self.member, points=points, order_fen=order_fen, reference="R")
        except ApplicationError:
            assert points > allowed
        else:
            assert points <= allowed and before - points >= 0

    @rule(data=st.data())
    def refund(self, data):
        if not self.purchases:
            return
        reference = data.draw(st.sampled_from(sorted(self.purchases)))
        paid, refunded = self.purchases[reference]
        refunded = data.draw(st.integers(min_value=refunded, max_value=paid))
        reverse_points(member=self.member, reference=reference, refunded_fen=refunded, paid_fen=paid)
        self.purchases[reference] = (paid, refunded)

    @rule(days=st.integers(min_value=1, max_value=40))
    def time_passes_and_points_expire(self, days):
        self.now += timedelta(days=days)
        expire_points(member=self.member, at=self.now)

    @rule(points=st.integers(min_value=-500, max_value=500).filter(bool))
    def hq_adjusts(self, points):
        adjust_points(member=self.member, points=points, note="盘点")

    @invariant()
    def the_balance_is_the_ledger_s_sum(self):
        if hasattr(self, "member"):
            self.member.refresh_from_db()
            assert self.member.points_balance == ledger_sum(self.member)
            last = PointsEntry.objects.filter(member=self.member).order_by("-pk").first()
            assert last is None or last.balance_after == self.member.points_balance

    @invariant()
    def no_purchase_loses_more_than_it_earned(self):
        if hasattr(self, "member"):
            for reference in self.purchases:
                entries = PointsEntry.objects.filter(member=self.member, reference=reference)
                earned = sum(e.points for e in entries if e.kind == "earn")
                reversed_ = -sum(e.points for e in entries if e.kind == "reverse")
                assert 0 <= reversed_ <= earned


def test_the_balance_equals_the_ledger_after_any_mix_of_earn_redeem_refund_expiry_and_adjustment():
    run_state_machine_as_test(
        PointsLedger,
        settings=settings(
            max_examples=25,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
