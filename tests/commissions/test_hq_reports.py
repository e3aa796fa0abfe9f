"""HQ's commission screens: results per promoter and per guide in a period, what the chain owes,
and the anomaly list; exact figures on a small chain, the period, the CSV, who may open them."""

import csv
import io
from datetime import date, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from commissions.models import CommissionEntry
from commissions.selectors import anomalies, guide_results, payable, promoter_results
from commissions.services import approve_payout, mark_payout_paid, request_payout, settle_due_commissions
from members.services import Referral, record_referral_visit, sign_in_for_development
from orders.fulfilment import cancel_by_hq, return_at_store
from tests.commissions.conftest import buy_order
from tests.factories import HQUserFactory, MemberFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db

RESULTS, ANOMALIES, LEDGER = (
    "/admin/commissions/commissionentry/results/",
    "/admin/commissions/commissionentry/anomalies/",
    "/admin/commissions/commissionentry/",
)


def _join(phone: str, *, referrer=None, guide=None, device: str = ""):
    """A shopper registers through a share link and/or a guide's QR code (with phones unlike the
    factories' +86139…, which would sign an existing member in)."""
    return sign_in_for_development(
        phone=phone,
        referral=Referral(
            referrer_id=referrer.pk if referrer else None, guide_id=guide.pk if guide else None, device=device
        ),
    )


@pytest.fixture
def chain(rules, store, clerk, formula):
    """A promoter `sharer` (referred by `top`) with two customers, a guide in each of two stores, an
    order in each state, a settlement, a payout and a refund after settlement; and, forty days
    earlier, a customer of the sharer who bought once."""
    rules(min_payout_fen=100)
    today = timezone.localdate()
    with time_machine.travel(timezone.now() - timedelta(days=40)):
        top = MemberFactory(nickname="老张")
        sharer = MemberFactory(nickname="小李", referrer=top, referral_code="SHARE234")
        early = _join("13700000009", referrer=sharer)
        buy_order(store, clerk, early, {formula: 1})  # sharer 995, top 398: pending, outside the period

    guide = StaffFactory(store=store, role="guide", display_name="小王", staff_code="G-WANG")
    elsewhere = StoreFactory(code="BJ", name="滨江店")
    other_guide = StaffFactory(store=elsewhere, role="guide", display_name="小赵", staff_code="G-ZHAO")
    for _ in range(3):
        record_referral_visit(sharer=sharer, device="d-visit")
    record_referral_visit(guide=guide)

    both = _join("15800000001", referrer=sharer, guide=guide)  # the guide's sign-up reward: 500
    alone = _join("15800000002", referrer=sharer)
    other = _join("15800000003", guide=other_guide)  # 500 for the other guide

    buy_order(store, clerk, both, {formula: 1})  # ¥199: guide 597, sharer 995, top 398, pending
    completed = buy_order(store, clerk, alone, {formula: 2}, complete=True)  # ¥398: sharer 1,990, top 796
    buy_order(store, clerk, other, {formula: 1})  # the other guide 597

    later = timezone.now() + timedelta(days=8)
    with time_machine.travel(later):
        settle_due_commissions()  # the completed order and both sign-up rewards
        _pay_by_hand(sharer, 1990)
        return_at_store(staff=clerk, order=completed.number, quantities={completed.lines.get().pk: 1}, token="late")
    request_payout(member=top, amount_fen=300)  # asked for, not yet paid
    return {
        "today": today,
        "top": top,
        "sharer": sharer,
        "guide": guide,
        "other_guide": other_guide,
        "elsewhere": elsewhere,
        "completed": completed,
    }


def _pay_by_hand(member, amount_fen):
    hq = HQUserFactory()
    payout = request_payout(member=member, amount_fen=amount_fen)
    approve_payout(payout_id=payout.pk, by=hq, method="manual")
    mark_payout_paid(payout_id=payout.pk, by=hq, reference="BANK-0001")


def _figures(row) -> dict:
    names = ("visits", "signups", "orders", "sales_fen", "earned_fen", "reversed_fen", "settled_fen", "pending_fen")
    return {name: getattr(row, name) for name in (*names, "paid_out_fen")}


def _period(chain):
    return chain["today"] - timedelta(days=1), chain["today"] + timedelta(days=10)


# --- results ---------------------------------------------------------------------------------------


def test_promoter_results_count_visits_sign_ups_orders_and_commission_exactly(chain):
    rows = promoter_results(*_period(chain))

    by_member = {row.member.pk: row for row in rows}
    assert _figures(by_member[chain["sharer"].pk]) == {
        "visits": 3,
        "signups": 2,
        "orders": 2,
        "sales_fen": 19900 + 39800 - 19900,  # items paid, less the partial return
        "earned_fen": 995 + 1990,
        "reversed_fen": 995,  # half the completed order came back after it settled
        "settled_fen": 1990 - 995,
        "pending_fen": 995,
        "paid_out_fen": 1990,
    }
    assert _figures(by_member[chain["top"].pk]) == {
        "visits": 0,
        "signups": 0,  # the sharer joined forty days ago
        "orders": 0,  # level 2 is not their team
        "sales_fen": 0,
        "earned_fen": 398 + 796,
        "reversed_fen": 398,
        "settled_fen": 796 - 398,
        "pending_fen": 398,
        "paid_out_fen": 0,
    }
    assert [row.member.pk for row in rows] == [chain["sharer"].pk, chain["top"].pk]  # most earned first
    for row in rows:
        assert row.earned_fen - row.reversed_fen + row.adjusted_fen == row.settled_fen + row.pending_fen


def test_an_order_cancelled_after_payment_is_not_brought_but_its_commission_and_reversal_show(chain, clerk):
    buyer = _join("15800000088", referrer=chain["sharer"])
    order = buy_order(chain["completed"].pickup_store, clerk, buyer, {chain["completed"].lines.get().sku: 1})
    cancel_by_hq(order=order, user=HQUserFactory(), reason="缺货")

    row = next(row for row in promoter_results(*_period(chain)) if row.member == chain["sharer"])

    assert (row.signups, row.orders, row.sales_fen) == (3, 2, 39800)
    assert (row.earned_fen, row.reversed_fen) == (2985 + 995, 995 + 995)


def test_guide_results_count_customers_bound_orders_and_commission_with_sign_up_rewards(chain):
    rows = guide_results(*_period(chain))

    by_staff = {row.staff.pk: row for row in rows}
    assert _figures(by_staff[chain["guide"].pk]) == {
        "visits": 1,
        "signups": 1,
        "orders": 1,
        "sales_fen": 19900,
        "earned_fen": 597 + 500,
        "reversed_fen": 0,
        "settled_fen": 500,
        "pending_fen": 597,
        "paid_out_fen": 0,
    }
    assert _figures(by_staff[chain["other_guide"].pk])["earned_fen"] == 1097
    assert by_staff[chain["other_guide"].pk].staff.store.code == "BJ"


def test_guide_results_of_one_store_leave_the_other_stores_guides_out(chain):
    rows = guide_results(*_period(chain), store=chain["elsewhere"])

    assert [row.staff.pk for row in rows] == [chain["other_guide"].pk]
    assert rows[0].orders == 1 and rows[0].signups == 1


def test_results_count_only_the_period(chain):
    today = chain["today"]

    earlier = promoter_results(today - timedelta(days=41), today - timedelta(days=39))
    later = promoter_results(today + timedelta(days=20), today + timedelta(days=30))

    by_member = {row.member.pk: row for row in earlier}
    assert (by_member[chain["sharer"].pk].signups, by_member[chain["sharer"].pk].orders) == (1, 1)
    assert by_member[chain["sharer"].pk].earned_fen == 995 and by_member[chain["top"].pk].earned_fen == 398
    assert by_member[chain["top"].pk].signups == 1  # the sharer joined then
    assert later == []


def test_results_sort_by_the_chosen_figure_largest_first(chain):
    by_visits = promoter_results(*_period(chain), sort="-visits")
    by_sales_smallest_first = guide_results(*_period(chain), sort="sales_fen")

    assert by_visits[0].member == chain["sharer"]
    assert [row.sales_fen for row in by_sales_smallest_first] == sorted(
        row.sales_fen for row in by_sales_smallest_first
    )
    with pytest.raises(ValueError):
        promoter_results(*_period(chain), sort="member__phone")


# --- payable ---------------------------------------------------------------------------------------


def test_payable_is_settled_less_paid_out_with_balances_below_zero_pending_and_open_requests(chain):
    owed = payable()

    # settled: 1,990 + 796 (the completed order) + 500 + 500 (sign-ups) − 995 − 398 (late refund) − 1,990 (paid)
    assert owed.settled_fen == 403
    assert (owed.negative_fen, owed.negative_count) == (-995, 1)  # the sharer, paid before the refund
    assert owed.owed_fen == 398 + 500 + 500  # top and the two guides
    assert owed.pending_fen == (597 + 995 + 398) + 597 + (995 + 398)  # two orders today, one forty days ago
    assert (owed.requested_fen, owed.requested_count, owed.paid_fen) == (300, 1, 1990)


# --- anomalies -------------------------------------------------------------------------------------


def test_many_sign_ups_from_one_device_are_listed_with_who_gained_them_and_two_are_not(rules, store):
    sharer, guide = MemberFactory(nickname="推广甲"), StaffFactory(store=store, role="guide")
    with time_machine.travel(timezone.now() - timedelta(days=40)):
        _join("13600000001", referrer=sharer, device="dev-old")  # before the period
    for n in range(2):
        _join(f"1360000001{n}", referrer=sharer, device="dev-old")
    for n in range(3):
        _join(f"1350000000{n}", referrer=sharer, guide=guide if n == 0 else None, device="dev-farm")
    for n in range(2):
        _join(f"1340000000{n}", referrer=sharer, device="dev-family")
    today = timezone.localdate()

    found = anomalies(today, today).shared_devices

    assert [group.device for group in found] == ["dev-farm"]
    assert len(found[0].members) == 3
    assert found[0].referrers == [sharer] and found[0].guides == [guide]
    assert [group.device for group in anomalies(today, today, min_members=2).shared_devices] == [
        "dev-farm",
        "dev-family",
        "dev-old",
    ]


def test_many_sign_ups_under_one_referrer_or_guide_with_one_phone_prefix_are_listed(rules, store):
    sharer, neighbour = MemberFactory(phone="+8613300000000"), MemberFactory(phone="+8613300000001")
    guide = StaffFactory(store=store, role="guide", staff_code="G-PRE")
    for n in range(3):
        _join(f"1391234000{n}", referrer=sharer)  # one referrer, one prefix: flagged
    for n in range(2):
        _join(f"1380000000{n}", referrer=sharer)  # two only
    _join("13912340009", referrer=neighbour)  # the same prefix under someone else
    for n in range(3):
        _join(f"1501111000{n}", guide=guide)
    today = timezone.localdate()

    found = anomalies(today, today).phone_prefixes

    assert {(c.prefix, c.referrer, c.guide, len(c.members)) for c in found} == {
        ("1391234", sharer, None, 3),
        ("1501111", None, guide, 3),
    }


def test_refunds_after_settlement_are_listed_with_the_beneficiary_s_balance_and_others_are_not(chain, clerk):
    # an order cancelled before anything settled: its reversals are pending, not an anomaly
    buyer = _join("15800000077", referrer=chain["sharer"])
    order = buy_order(chain["completed"].pickup_store, clerk, buyer, {chain["completed"].lines.get().sku: 1})
    cancel_by_hq(order=order, user=HQUserFactory(), reason="缺货")
    assert CommissionEntry.objects.filter(order=order, kind="reverse").count() == 2

    found = anomalies(*_period(chain)).late_refunds

    rows = {(r.entry.member_id, r.entry.order_id): r for r in found}
    assert set(rows) == {(chain["sharer"].pk, chain["completed"].pk), (chain["top"].pk, chain["completed"].pk)}
    sharer_row = rows[(chain["sharer"].pk, chain["completed"].pk)]
    assert (sharer_row.entry.amount_fen, sharer_row.settled_balance_fen, sharer_row.balance_below_zero) == (
        -995,
        -995,
        True,
    )
    assert rows[(chain["top"].pk, chain["completed"].pk)].balance_below_zero is False


# --- the pages -------------------------------------------------------------------------------------


@pytest.fixture
def hq(client):
    client.force_login(HQUserFactory())
    return client


def test_hq_sees_the_promoters_results_and_the_payable_summary(hq, chain):
    since, until = _period(chain)

    page = hq.get(RESULTS, {"since": since.isoformat(), "until": until.isoformat()})

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="commission-payable"' in html and "¥4.03" in html and "-¥9.95" in html
    assert "小李" in html and "SHARE234" in html and "¥398.00" in html and "¥29.85" in html
    assert f"/admin/members/member/{chain['sharer'].pk}/change/" in html


def test_hq_sees_the_guides_of_one_store(hq, chain):
    since, until = _period(chain)

    page = hq.get(
        RESULTS,
        {"since": since.isoformat(), "until": until.isoformat(), "who": "guides", "store": chain["elsewhere"].pk},
    )

    html = page.content.decode()
    assert "小赵" in html and "G-ZHAO" in html and "滨江店" in html
    assert "小王" not in html


def test_the_results_open_on_this_month_by_default(hq, rules):
    with time_machine.travel(datetime(2026, 3, 17, 12, tzinfo=timezone.get_current_timezone())):
        page = hq.get(RESULTS)

    assert page.context["form"].cleaned_data["since"] == date(2026, 3, 1)
    assert page.context["form"].cleaned_data["until"] == date(2026, 3, 17)


@pytest.mark.parametrize(
    "query",
    [
        {"since": "2026-02-01", "until": "2026-01-01"},
        {"since": "soon"},
        {"until": "9999-12-31"},
        {"since": "0001-01-01"},
        {"who": "everyone"},
        {"store": "999999"},
        {"sort": "member__phone"},
    ],
)
def test_a_bad_filter_is_a_form_error_not_a_server_error(hq, rules, query):
    page = hq.get(RESULTS, query)

    assert page.status_code == 200
    assert page.context["form"].errors and page.context["rows"] == []


def test_the_csv_has_one_row_per_promoter_with_yuan_amounts(hq, chain):
    since, until = _period(chain)

    answer = hq.get(RESULTS, {"since": since.isoformat(), "until": until.isoformat(), "format": "csv"})

    assert answer["Content-Type"].startswith("text/csv") and "attachment" in answer["Content-Disposition"]
    header, *rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert len(header) == 14
    assert rows[0] == [
        str(chain["sharer"].pk),
        "小李",
        chain["sharer"].phone,
        "SHARE234",
        "3",
        "2",
        "2",
        "398.00",
        "29.85",
        "9.95",
        "0.00",
        "9.95",
        "9.95",
        "19.90",
    ]
    assert len(rows) == 2


def test_the_guides_csv_names_the_store(hq, chain):
    since, until = _period(chain)

    answer = hq.get(RESULTS, {"since": since.isoformat(), "until": until.isoformat(), "who": "guides", "format": "csv"})

    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))[1:]
    assert sorted(row[:4] for row in rows) == [["G-WANG", "小王", "WS", "文三路店"], ["G-ZHAO", "小赵", "BJ", "滨江店"]]


def test_hq_sees_the_anomaly_list_with_links(hq, chain):
    for n in range(3):
        _join(f"1350000000{n}", referrer=chain["sharer"], device="dev-farm")
    since, until = _period(chain)

    page = hq.get(ANOMALIES, {"since": since.isoformat(), "until": until.isoformat()})

    assert page.status_code == 200
    html = page.content.decode()
    assert "dev-farm" in html
    assert f"/admin/orders/order/{chain['completed'].pk}/change/" in html and "below-zero" in html
    assert hq.get(ANOMALIES, {"min_members": "1"}).context["form"].errors


def test_the_ledger_list_shows_the_payable_summary_and_links_to_the_reports(hq, chain):
    html = hq.get(LEDGER).content.decode()

    assert 'id="commission-payable"' in html and "¥4.03" in html
    assert RESULTS in html and ANOMALIES in html


def _results_queries(client, since, until, who):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(RESULTS, {"since": since, "until": until, "who": who}).status_code == 200
    return len(queries)


def _busy_promoters_and_guides(count: int, store, at) -> None:
    """Each promoter gains two members from one device with one phone prefix: both anomalies at two."""
    for n in range(count):
        promoter = MemberFactory()
        for _ in range(2):
            MemberFactory(referrer=promoter, signup_device=f"dev-{promoter.pk}")
        record_referral_visit(sharer=promoter)
        CommissionEntry.objects.create(member=promoter, kind="adjust", amount_fen=100 + n, created_at=at)
        guide = StaffFactory(store=store, role="guide")
        MemberFactory(guide=guide, bound_at=at)
        CommissionEntry.objects.create(staff=guide, kind="adjust", amount_fen=100 + n, created_at=at)


def test_the_reports_make_as_many_queries_for_forty_rows_as_for_two(hq, rules, store):
    today, at = timezone.localdate().isoformat(), timezone.now()
    _busy_promoters_and_guides(2, store, at)
    few = {who: _results_queries(hq, today, today, who) for who in ("promoters", "guides")}
    with CaptureQueriesContext(connection) as anomaly_queries_few:
        hq.get(ANOMALIES, {"since": today, "until": today, "min_members": 2})

    _busy_promoters_and_guides(40, store, at)

    assert {who: _results_queries(hq, today, today, who) for who in ("promoters", "guides")} == few
    assert len(promoter_results(timezone.localdate(), timezone.localdate())) == 42
    with CaptureQueriesContext(connection) as anomaly_queries_many:
        page = hq.get(ANOMALIES, {"since": today, "until": today, "min_members": 2})
    assert len(page.context["found"].shared_devices) == len(page.context["found"].phone_prefixes) == 42
    assert len(anomaly_queries_many) == len(anomaly_queries_few)


# --- who may open them -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [RESULTS, ANOMALIES])
def test_a_shopper_or_a_clerk_without_admin_rights_is_sent_to_the_admin_sign_in(client, rules, store, url):
    assert client.get(url).status_code == 302
    client.force_login(UserFactory())
    assert "/admin/login/" in client.get(url)["Location"]
    client.force_login(StaffFactory(store=store).user)
    answer = client.get(url)
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]


@pytest.mark.parametrize("url", [RESULTS, ANOMALIES])
def test_an_admin_user_needs_the_right_to_view_the_ledger(client, rules, url):
    user = UserFactory(is_staff=True)
    client.force_login(user)
    assert client.get(url).status_code == 403

    user.user_permissions.add(Permission.objects.get(codename="view_commissionentry"))
    assert client.get(url).status_code == 200


def test_a_nickname_that_looks_like_a_formula_is_written_as_text_in_the_csv(hq, rules):
    promoter = MemberFactory(nickname='=HYPERLINK("http://x.example","点我")')
    MemberFactory(referrer=promoter)
    today = timezone.localdate().isoformat()

    answer = hq.get(RESULTS, {"since": today, "until": today, "format": "csv"})

    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))[1:]
    assert rows[0][1] == "'" + promoter.nickname
