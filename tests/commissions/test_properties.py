"""Properties of commission: the depth over random referral trees, the arithmetic of rules.py,
and the ledger under any mix of sales, refunds and settlement (stateful)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from commissions import rules as arithmetic
from commissions.models import OPEN_PAYOUT_STATES, CommissionEntry, CommissionSettings, Payout
from commissions.selectors import balances, forget_commission_settings, ledger_sum
from commissions.services import (
    approve_payout,
    beneficiaries_of,
    mark_payout_paid,
    reject_payout,
    request_payout,
    settle_due_commissions,
)
from inventory.services import receive_stock
from o2o.errors import ApplicationError
from orders.fulfilment import cancel_by_hq, return_at_store
from orders.models import Order
from tests.commissions.conftest import buy_order
from tests.factories import HQUserFactory, MemberFactory, SkuFactory, StaffFactory, StoreFactory

pytestmark = pytest.mark.django_db
SLOW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Random referral forests of twelve members, at least one path five deep: parent[i] < i or None.
trees = st.lists(st.one_of(st.none(), st.integers(min_value=0)), min_size=12, max_size=12).map(
    lambda raw: [None, 0, 1, 2, 3, 4] + [None if p is None else p % i for i, p in enumerate(raw[6:], start=6)]
)


@SLOW
@given(parents=trees, depth=st.integers(min_value=0, max_value=7), buyer=st.integers(min_value=0, max_value=11))
def test_commission_never_reaches_beyond_the_configured_depth_or_three(db, parents, depth, buyer):
    members = []
    for parent in parents:
        members.append(MemberFactory(referrer=None if parent is None else members[parent]))

    found = beneficiaries_of(members[buyer], depth=depth)

    ancestors, at = [], parents[buyer]
    while at is not None:
        ancestors.append(members[at].pk)
        at = parents[at]
    expected = ancestors[: min(depth, 3)]
    assert [member.pk for _level, member, _staff in found] == expected
    assert [level for level, _m, _s in found] == list(range(1, len(expected) + 1))


def test_the_database_refuses_a_depth_above_three(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        CommissionSettings.objects.update_or_create(pk=1, defaults={"depth": 4})
    with pytest.raises(IntegrityError), transaction.atomic():
        CommissionEntry.objects.create(
            member=MemberFactory(), kind="adjust", level=4, amount_fen=1, created_at=timezone.now()
        )


line_totals = st.lists(st.integers(min_value=1, max_value=1_000_000), min_size=1, max_size=6)


@given(totals=line_totals, discount=st.integers(min_value=0, max_value=100), data=st.data())
def test_lines_paid_add_up_to_exactly_what_was_paid(totals, discount, data):
    lines = [arithmetic.Line(category_id=None, total_fen=t) for t in totals]
    paid = sum(totals) * (100 - discount) // 100

    shares = arithmetic.lines_paid(lines, paid)

    assert sum(shares) == paid and all(s >= 0 for s in shares)


@given(
    totals=line_totals,
    rates=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=4),
    cap=st.integers(min_value=0, max_value=10_000),
)
def test_the_total_commission_of_an_order_never_exceeds_its_cap_and_each_share_its_rate(totals, rates, cap):
    lines = [arithmetic.Line(category_id=None, total_fen=t) for t in totals]
    paid = sum(totals)

    shares = arithmetic.order_shares(
        lines=lines, items_paid_fen=paid, levels=list(range(len(rates))), rate_bp=lambda lv, _c: rates[lv], cap_bp=cap
    )

    assert sum(s.amount_fen for s in shares) <= paid * cap // 10_000
    for share, rate in zip(shares, rates, strict=True):
        assert 0 <= share.amount_fen <= paid * rate // 10_000


@given(
    earned=st.integers(min_value=1, max_value=10**7),
    paid=st.integers(min_value=1, max_value=10**8),
    cuts=st.lists(st.integers(min_value=0, max_value=10**8), max_size=5),
)
def test_partial_refunds_reverse_at_most_the_earning_and_a_full_refund_exactly_it(earned, paid, cuts):
    refunded, taken = 0, 0
    for cut in cuts:
        refunded = min(paid, refunded + cut)
        target = arithmetic.reversal_target(earned_fen=earned, refunded_fen=refunded, paid_fen=paid)
        assert target >= taken
        taken = target
    assert taken <= earned
    assert arithmetic.reversal_target(earned_fen=earned, refunded_fen=paid, paid_fen=paid) == earned


class CommissionLedger(RuleBasedStateMachine):
    """Any mix of paid orders, collections, partial and full refunds, cancellations, settlement and
    payouts (requested, approved and paid by hand, or rejected): pending → settled → paid."""

    @initialize()
    def start(self):
        CommissionSettings.objects.update_or_create(
            pk=1, defaults={"depth": 2, "order_cap_bp": 2000, "return_window_days": 7, "min_payout_fen": 100}
        )
        forget_commission_settings()
        self.store = StoreFactory(latitude=Decimal("30.28"), longitude=Decimal("120.15"))
        self.clerk = StaffFactory(store=self.store)
        self.guide = StaffFactory(store=self.store, role="guide")
        self.top = MemberFactory()
        self.sharer = MemberFactory(referrer=self.top)
        self.buyer = MemberFactory(referrer=self.sharer, guide=self.guide)
        self.sku = SkuFactory(price_fen=12_345)
        receive_stock(store=self.store, sku=self.sku, quantity=10_000)
        self.orders: list[int] = []
        self.now = timezone.now()
        self.settled: set[int] = set()
        self.hq = HQUserFactory()
        # One collected sale already settled, so withdrawals have something to draw on from the start.
        self.orders.append(buy_order(self.store, self.clerk, self.buyer, {self.sku: 4}, complete=True).pk)
        self.now += timedelta(days=8)
        settle_due_commissions(at=self.now)
        self.beneficiaries = [{"member": self.sharer}, {"member": self.top}, {"staff": self.guide}]

    @rule(quantity=st.integers(min_value=1, max_value=4), collect=st.booleans())
    def a_sale(self, quantity, collect):
        order = buy_order(self.store, self.clerk, self.buyer, {self.sku: quantity}, complete=collect)
        self.orders.append(order.pk)

    @rule(data=st.data())
    def a_refund(self, data):
        if not self.orders:
            return
        order = Order.objects.get(pk=data.draw(st.sampled_from(self.orders)))
        if order.status == Order.Status.COMPLETED:
            line = order.lines.get()
            quantity = data.draw(st.integers(min_value=1, max_value=line.quantity))
            try:
                return_at_store(
                    staff=self.clerk,
                    order=order.number,
                    quantities={line.pk: quantity},
                    token=f"t{len(self.orders)}-{data.draw(st.integers(0, 10**9))}",
                )
            except ApplicationError as refused:  # more than is left to return: refused, nothing changes
                assert refused.status < 500
        elif order.status == Order.Status.PAID or order.status == Order.Status.AWAITING_DISPATCH:
            cancel_by_hq(order=order, user=HQUserFactory(), reason="退款")

    @rule(days=st.integers(min_value=1, max_value=10))
    def time_passes_and_commission_settles(self, days):
        self.now += timedelta(days=days)
        settle_due_commissions(at=self.now)
        self.settled |= set(CommissionEntry.objects.filter(status="settled").values_list("pk", flat=True))

    @rule(data=st.data())
    def a_withdrawal(self, data):
        who = data.draw(st.sampled_from(self.beneficiaries))
        before = balances(**who)
        within = st.integers(min_value=100, max_value=max(before.available_fen, 100))
        amount = data.draw(st.one_of(within, within, st.integers(min_value=1, max_value=before.available_fen + 500)))
        count = self._payouts().count()
        try:
            payout = request_payout(**who, amount_fen=amount)
        except ApplicationError as refused:
            assert refused.status < 500
            assert self._payouts().count() == count
            assert balances(**who) == before
            return
        assert 100 <= amount <= before.available_fen
        decision = data.draw(st.sampled_from(["later", "pay", "reject"]))
        if decision != "later":
            self._decide(payout.pk, pay=decision == "pay")

    @rule(data=st.data(), pay=st.booleans())
    def hq_decides(self, data, pay):
        open_ids = list(self._payouts().filter(status="requested").order_by("pk").values_list("pk", flat=True))
        if not open_ids:
            return
        self._decide(data.draw(st.sampled_from(open_ids)), pay=pay)

    def _payouts(self):
        """This example's payouts only: the database is not emptied between examples."""
        return Payout.objects.filter(Q(member__in=[self.sharer, self.top]) | Q(staff=self.guide))

    def _decide(self, payout_id, *, pay):
        try:
            if pay:
                approve_payout(payout_id=payout_id, by=self.hq, method="manual")
                mark_payout_paid(payout_id=payout_id, by=self.hq, reference=f"bank-{payout_id}")
                event("a payout paid")
            else:
                reject_payout(payout_id=payout_id, by=self.hq, reason="核实中")
        except ApplicationError as refused:  # a late refund took the balance below the amount
            assert refused.code == "payout_over_available"
            reject_payout(payout_id=payout_id, by=self.hq, reason="余额不足")

    @invariant()
    def balances_are_the_ledger_s_sum(self):
        if not hasattr(self, "buyer"):
            return
        for who in self.beneficiaries:
            owed = balances(**who)
            assert owed.pending_fen + owed.settled_fen == ledger_sum(**who)
            payouts = Payout.objects.filter(**who)
            assert owed.paid_fen == sum(p.amount_fen for p in payouts if p.status == "paid")
            assert owed.requested_fen == sum(p.amount_fen for p in payouts if p.status in OPEN_PAYOUT_STATES)
            assert owed.available_fen >= 0

    @invariant()
    def each_paid_payout_is_one_ledger_entry_of_its_amount(self):
        if not hasattr(self, "buyer"):
            return
        for payout in self._payouts():
            entries = list(CommissionEntry.objects.filter(payout=payout).values_list("amount_fen", "status"))
            assert entries == ([(-payout.amount_fen, "settled")] if payout.status == "paid" else [])

    @invariant()
    def no_order_takes_back_more_than_it_earned_and_the_cap_holds(self):
        if not hasattr(self, "buyer"):
            return
        for order in Order.objects.filter(pk__in=self.orders):
            entries = list(CommissionEntry.objects.filter(order=order))
            earned = sum(e.amount_fen for e in entries if e.kind == "earn")
            taken = -sum(e.amount_fen for e in entries if e.kind == "reverse")
            assert 0 <= taken <= earned <= order.items_paid_fen * 2000 // 10_000
            if order.status in (Order.Status.CANCELLED, Order.Status.RETURNED):
                assert taken == earned

    @invariant()
    def settled_entries_stay_settled(self):
        if hasattr(self, "settled"):
            assert not CommissionEntry.objects.filter(pk__in=self.settled, status="pending").exists()


def test_the_commission_ledger_balances_after_any_mix_of_sales_refunds_and_settlement(db):
    run_state_machine_as_test(
        CommissionLedger,
        settings=settings(
            max_examples=12,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
