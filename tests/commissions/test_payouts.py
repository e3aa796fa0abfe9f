"""Payouts: a promoter or guide withdraws settled commission; HQ approves (WeChat Pay transfer or
by hand) or rejects; a paid payout is one settled negative ledger entry."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from commissions import services
from commissions.models import CommissionEntry, Payout
from commissions.selectors import balances, ledger_sum, payouts_of
from commissions.services import (
    PayoutRefused,
    apply_transfer_result,
    approve_payout,
    mark_payout_paid,
    reconcile_payouts,
    reject_payout,
    request_payout,
    send_payout,
    settle_due_commissions,
)
from integrations.vendors.wechat_pay import PaymentGatewayError, TransferResult
from o2o.errors import NotFound
from o2o.state_machine import IllegalTransition
from orders.fulfilment import return_at_store
from tests.commissions.conftest import buy_order
from tests.concurrency import run_at_once
from tests.factories import HQUserFactory, MemberFactory, StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def hq(db):
    return HQUserFactory()


@pytest.fixture
def sharer(rules):
    return MemberFactory(openid="o-sharer-openid")


@pytest.fixture
def earned(rules, store, clerk, formula, sharer):
    """The sharer's customer bought two tins (2 × ¥199 at 5 %): ¥19.90 settled once the window passed."""
    buyer = MemberFactory(referrer=sharer)
    order = buy_order(store, clerk, buyer, {formula: 2}, complete=True)
    settle_due_commissions(at=timezone.now() + timedelta(days=8))
    assert balances(member=sharer).settled_fen == 1990
    return order


class FakeTransfers:
    """WeChat Pay's transfer API as the payout code sees it: records transfers, answers queries from a script."""

    can_transfer = True
    is_development = False

    def __init__(self):
        self.sent: list[dict] = []
        self.status: dict[str, TransferResult] = {}
        self.unreachable = False

    def transfer(self, **kwargs):
        if self.unreachable:
            raise PaymentGatewayError("unreachable")
        self.sent.append(kwargs)
        return TransferResult(
            out_batch_no=kwargs["out_batch_no"], out_detail_no=kwargs["out_detail_no"], status="PROCESSING"
        )

    def query_transfer(self, *, out_batch_no, out_detail_no):
        if self.unreachable:
            raise PaymentGatewayError("unreachable")
        if out_detail_no in self.status:
            return self.status[out_detail_no]
        if any(sent["out_detail_no"] == out_detail_no for sent in self.sent):
            return TransferResult(out_batch_no=out_batch_no, out_detail_no=out_detail_no, status="PROCESSING")
        return None

    def finish(self, out_detail_no, status, **extra):
        self.status[out_detail_no] = TransferResult(
            out_batch_no=out_detail_no[:-2], out_detail_no=out_detail_no, status=status, **extra
        )


@pytest.fixture
def wechat(monkeypatch):
    fake = FakeTransfers()
    monkeypatch.setattr(services, "payment_gateway", lambda: fake)
    return fake


def _later(minutes=2):
    return timezone.now() + timedelta(minutes=minutes)


# -- requesting ----------------------------------------------------------------------------------


def test_pending_commission_cannot_be_withdrawn(rules, store, clerk, formula, sharer):
    buy_order(store, clerk, MemberFactory(referrer=sharer), {formula: 2}, complete=True)
    assert balances(member=sharer).pending_fen == 1990

    with pytest.raises(PayoutRefused) as refused:
        request_payout(member=sharer, amount_fen=1000)

    assert refused.value.code == "payout_over_available"
    assert not Payout.objects.exists()


@pytest.mark.parametrize(
    ("amount", "code"),
    [(999, "payout_below_minimum"), (1991, "payout_over_available"), (0, "invalid_amount"), ("10", "invalid_amount")],
)
def test_a_refused_request_changes_nothing(earned, sharer, amount, code):
    with pytest.raises(PayoutRefused) as refused:
        request_payout(member=sharer, amount_fen=amount)

    assert refused.value.code == code
    assert refused.value.message
    assert not Payout.objects.exists()
    assert balances(member=sharer).available_fen == 1990


def test_one_open_payout_at_a_time_and_its_amount_is_held(earned, sharer):
    request_payout(member=sharer, amount_fen=1000)

    assert balances(member=sharer).available_fen == 990
    with pytest.raises(PayoutRefused) as refused:
        request_payout(member=sharer, amount_fen=990)
    assert refused.value.code == "payout_already_open"
    assert Payout.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_spend_one_balance_once(rules, store, clerk, formula):
    sharer = MemberFactory()
    buy_order(store, clerk, MemberFactory(referrer=sharer), {formula: 2}, complete=True)
    settle_due_commissions(at=timezone.now() + timedelta(days=8))

    results, raised = run_at_once([lambda: request_payout(member=sharer, amount_fen=1990)] * 2)

    assert len(results) == 1
    assert [error.code for error in raised] == ["payout_already_open"]
    assert Payout.objects.get().amount_fen == 1990


# -- by hand -------------------------------------------------------------------------------------


def test_pending_then_settled_then_paid_by_hand(rules, store, clerk, formula, sharer, hq):
    buy_order(store, clerk, MemberFactory(referrer=sharer), {formula: 2}, complete=True)
    assert (balances(member=sharer).pending_fen, balances(member=sharer).settled_fen) == (1990, 0)
    settle_due_commissions(at=timezone.now() + timedelta(days=8))
    assert (balances(member=sharer).pending_fen, balances(member=sharer).settled_fen) == (0, 1990)

    payout = request_payout(member=sharer, amount_fen=1500)
    approve_payout(payout_id=payout.pk, by=hq, method="manual")
    paid = mark_payout_paid(payout_id=payout.pk, by=hq, reference="ICBC 20261123-0042")

    assert (paid.status, paid.method, paid.reference) == ("paid", "manual", "ICBC 20261123-0042")
    entry = CommissionEntry.objects.get(kind="payout")
    assert (entry.member, entry.amount_fen, entry.status, entry.payout_id) == (sharer, -1500, "settled", payout.pk)
    mine = balances(member=sharer)
    assert (mine.settled_fen, mine.paid_fen, mine.requested_fen, mine.available_fen) == (490, 1500, 0, 490)
    assert ledger_sum(member=sharer) == mine.pending_fen + mine.settled_fen == 490
    assert [e.to_status for e in paid.events.all()] == ["requested", "approved", "paid"]
    assert list(payouts_of(member=sharer)) == [paid]


def test_without_wechat_pay_an_approval_waits_to_be_paid_by_hand(earned, sharer, hq):
    """The development stand-in moves no money: nothing is ever sent, HQ pays by hand."""
    payout = request_payout(member=sharer, amount_fen=1990)

    with pytest.raises(PayoutRefused) as refused:
        approve_payout(payout_id=payout.pk, by=hq, method="wechat")
    assert refused.value.code == "wechat_transfer_unavailable"
    approved = approve_payout(payout_id=payout.pk, by=hq)

    assert (approved.status, approved.method) == ("approved", "manual")
    assert not CommissionEntry.objects.filter(kind="payout").exists()


def test_paying_by_hand_needs_a_reference_and_is_recorded_once(earned, sharer, hq):
    payout = request_payout(member=sharer, amount_fen=1990)
    approve_payout(payout_id=payout.pk, by=hq, method="manual")

    with pytest.raises(PayoutRefused):
        mark_payout_paid(payout_id=payout.pk, by=hq, reference="  ")
    mark_payout_paid(payout_id=payout.pk, by=hq, reference="cash 17")
    with pytest.raises(IllegalTransition):
        mark_payout_paid(payout_id=payout.pk, by=hq, reference="cash 17")

    assert CommissionEntry.objects.filter(kind="payout").count() == 1
    assert balances(member=sharer).settled_fen == 0


def test_a_rejection_needs_a_reason_and_frees_the_amount(earned, sharer, hq):
    payout = request_payout(member=sharer, amount_fen=1990)

    with pytest.raises(PayoutRefused):
        reject_payout(payout_id=payout.pk, by=hq, reason="")
    rejected = reject_payout(payout_id=payout.pk, by=hq, reason="同一设备注册异常，待核实")

    assert (rejected.status, rejected.reason) == ("rejected", "同一设备注册异常，待核实")
    assert balances(member=sharer).available_fen == 1990
    assert request_payout(member=sharer, amount_fen=1990).status == "requested"


def test_a_refund_after_the_request_can_stop_the_approval(earned, sharer, hq, clerk):
    payout = request_payout(member=sharer, amount_fen=1990)
    line = earned.lines.get()
    return_at_store(staff=clerk, order=earned.number, quantities={line.pk: 1}, token="late-return")
    assert balances(member=sharer).settled_fen == 995

    with pytest.raises(PayoutRefused) as refused:
        approve_payout(payout_id=payout.pk, by=hq, method="manual")

    assert refused.value.code == "payout_over_available"
    assert Payout.objects.get().status == "requested"


def test_an_unknown_payout_is_not_found(hq):
    with pytest.raises(NotFound):
        approve_payout(payout_id=987654, by=hq)


def test_a_guide_withdraws_like_a_promoter(rules, store, clerk, formula, hq):
    guide = StaffFactory(store=store, role="guide")
    buy_order(store, clerk, MemberFactory(guide=guide), {formula: 2}, complete=True)
    settle_due_commissions(at=timezone.now() + timedelta(days=8))
    owed = balances(staff=guide).settled_fen  # 3 % of ¥398 + the ¥5 sign-up reward is not earned here
    assert owed == 1194

    payout = request_payout(staff=guide, amount_fen=owed)
    approve_payout(payout_id=payout.pk, by=hq)
    mark_payout_paid(payout_id=payout.pk, by=hq, reference="payroll 2026-11")

    assert balances(staff=guide).settled_fen == 0
    assert balances(staff=guide).paid_fen == 1194


# -- by WeChat Pay transfer -------------------------------------------------------------------------


def test_an_approved_payout_goes_out_by_wechat_pay_and_is_paid_when_wechat_pay_says_so(
    earned, sharer, hq, wechat, django_capture_on_commit_callbacks
):
    payout = request_payout(member=sharer, amount_fen=1990)

    with django_capture_on_commit_callbacks(execute=True):
        approved = approve_payout(payout_id=payout.pk, by=hq)

    assert (approved.status, approved.method, approved.attempts) == ("approved", "wechat", 1)
    assert wechat.sent == [
        {
            "out_batch_no": f"PO{payout.pk}A1",
            "out_detail_no": f"PO{payout.pk}A1D1",
            "amount_fen": 1990,
            "openid": "o-sharer-openid",
            "remark": "Commission payout",
        }
    ]
    with pytest.raises(PayoutRefused) as refused:
        mark_payout_paid(payout_id=payout.pk, by=hq, reference="cash")
    assert refused.value.code == "transfer_in_flight"

    reconcile_payouts(at=_later())  # still processing: nothing changes, nothing is sent again
    assert Payout.objects.get().status == "approved"
    assert len(wechat.sent) == 1

    wechat.finish(f"PO{payout.pk}A1D1", "SUCCESS", detail_id="1040000071100999991182020050700019500100")
    reconcile_payouts(at=_later())
    reconcile_payouts(at=_later(5))

    paid = Payout.objects.get()
    assert (paid.status, paid.reference) == ("paid", "1040000071100999991182020050700019500100")
    assert CommissionEntry.objects.filter(kind="payout").count() == 1
    assert balances(member=sharer).paid_fen == 1990


def test_a_failed_transfer_can_be_approved_again_as_a_new_transfer(
    earned, sharer, hq, wechat, django_capture_on_commit_callbacks
):
    payout = request_payout(member=sharer, amount_fen=1990)
    with django_capture_on_commit_callbacks(execute=True):
        approve_payout(payout_id=payout.pk, by=hq)
    wechat.finish(f"PO{payout.pk}A1D1", "FAIL", fail_reason="ACCOUNT_FROZEN")
    reconcile_payouts(at=_later())

    failed = Payout.objects.get()
    assert (failed.status, failed.reason) == ("failed", "ACCOUNT_FROZEN")
    assert balances(member=sharer).available_fen == 0  # still held until HQ decides
    assert not CommissionEntry.objects.filter(kind="payout").exists()

    with django_capture_on_commit_callbacks(execute=True):
        approve_payout(payout_id=payout.pk, by=hq)
    assert [sent["out_batch_no"] for sent in wechat.sent] == [f"PO{payout.pk}A1", f"PO{payout.pk}A2"]

    # A late answer about the first attempt changes nothing.
    apply_transfer_result(
        payout_id=payout.pk,
        attempt=1,
        result=TransferResult(out_batch_no=f"PO{payout.pk}A1", out_detail_no=f"PO{payout.pk}A1D1", status="SUCCESS"),
    )
    assert Payout.objects.get().status == "approved"


def test_when_wechat_pay_cannot_be_reached_the_reconciler_sends_later(
    earned, sharer, hq, wechat, django_capture_on_commit_callbacks
):
    wechat.unreachable = True
    payout = request_payout(member=sharer, amount_fen=1990)
    with django_capture_on_commit_callbacks(execute=True):
        approve_payout(payout_id=payout.pk, by=hq)  # the task logs and gives up for now
    assert wechat.sent == []
    assert reconcile_payouts(at=_later()) == 1  # still unreachable: logged, no error

    wechat.unreachable = False
    reconcile_payouts(at=_later())

    assert len(wechat.sent) == 1
    send_payout(payout_id=payout.pk)  # asked again: WeChat Pay has it, nothing sent twice
    assert len(wechat.sent) == 1


def test_a_payee_without_wechat_or_a_large_amount_is_paid_by_hand(earned, hq, wechat, rules, store, clerk, formula):
    no_openid = MemberFactory(openid=None)
    buy_order(store, clerk, MemberFactory(referrer=no_openid), {formula: 2}, complete=True)
    settle_due_commissions(at=timezone.now() + timedelta(days=8))
    payout = request_payout(member=no_openid, amount_fen=1990)

    assert approve_payout(payout_id=payout.pk, by=hq).method == "manual"
    assert wechat.sent == []


# -- HQ's admin ----------------------------------------------------------------------------------------


def test_hq_approves_and_marks_paid_in_the_admin(earned, sharer, hq, client):
    payout = request_payout(member=sharer, amount_fen=1990)
    client.force_login(hq)
    page = reverse("admin:commissions_payout_change", args=[payout.pk])
    decide = reverse("admin:commissions_payout_decide", args=[payout.pk])

    assert client.get(page).status_code == 200
    client.post(decide, {"decision": "approve_manual"})
    assert Payout.objects.get().status == "approved"
    response = client.post(decide, {"decision": "paid", "reference": ""}, follow=True)
    assert Payout.objects.get().status == "approved"
    assert "reference" in response.content.decode().lower() or "参考" in response.content.decode()
    client.post(decide, {"decision": "paid", "reference": "ICBC 0042"})

    assert Payout.objects.get().status == "paid"
    assert balances(member=sharer).paid_fen == 1990


def test_a_rejection_without_a_reason_in_the_admin_changes_nothing(earned, sharer, hq, client):
    payout = request_payout(member=sharer, amount_fen=1990)
    client.force_login(hq)

    client.post(reverse("admin:commissions_payout_decide", args=[payout.pk]), {"decision": "reject", "reason": ""})

    assert Payout.objects.get().status == "requested"


def test_the_admin_refuses_a_get_and_a_user_without_rights(earned, sharer, client, clerk):
    payout = request_payout(member=sharer, amount_fen=1990)
    decide = reverse("admin:commissions_payout_decide", args=[payout.pk])
    client.force_login(clerk.user)

    response = client.post(decide, {"decision": "approve_manual"})

    assert response.status_code in (302, 403)
    assert Payout.objects.get().status == "requested"
