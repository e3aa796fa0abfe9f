"""The guide's page in the store console (`/console/promotion/`): the signed-in staff member's own QR
code, customers, commission and withdrawals, and nobody else's."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from commissions.models import CommissionEntry, Payout
from commissions.services import settle_due_commissions
from members.models import Member
from members.services import Referral, sign_in_for_development
from members.session import MEMBER_SESSION_KEY
from tests.factories import MemberFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db

PAGE = "/console/promotion/"
WITHDRAW = "/console/promotion/withdraw/"


def _console(staff) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(staff.user)
    return client


def _customer_of(guide, phone: str) -> Member:
    """A shopper who registered through the guide's QR code (which earns the guide the sign-up reward)."""
    return sign_in_for_development(phone=phone, referral=Referral(guide_id=guide.pk))


@pytest.fixture
def guide(store):
    return StaffFactory(store=store, role="guide", staff_code="WS-G01", display_name="王小明")


@pytest.fixture
def rival(db):
    """A guide of another store, with customers and commission of their own."""
    return StaffFactory(store=StoreFactory(code="XH", name="西湖店"), role="guide", staff_code="XH-G01")


def _settle_everything():
    settle_due_commissions(at=timezone.now() + timedelta(days=30))


def test_the_page_shows_my_own_qr_code_with_my_absolute_guide_link(rules, guide, settings):
    settings.O2O_PUBLIC_URL = "https://mall.example.cn"

    page = _console(guide).get(PAGE)

    assert page.status_code == 200
    html = page.content.decode()
    assert "https://mall.example.cn/mall/g/WS-G01/" in html
    assert html.count("<svg") == 1 and 'id="my-qr"' in html
    assert "3%" in html and "¥5.00" in html  # HQ's guide rate and sign-up reward


def test_the_console_tabs_link_to_the_page(rules, guide):
    home = _console(guide).get(reverse("console:home"), follow=True)
    assert f'href="{PAGE}"' in home.content.decode()


def test_i_see_my_customers_with_their_purchases_and_my_commission_pending(rules, guide, buy, formula):
    customer = _customer_of(guide, "13800138000")
    order = buy(customer, {formula: 2}, complete=True)  # ¥398.00
    buy(customer, {formula: 1})  # ¥199.00, paid, not collected yet
    _customer_of(guide, "13900139000")  # registered, has not bought

    page = _console(guide).get(PAGE)
    html = page.content.decode()

    summary = page.context["summary"]
    assert (summary.customers, summary.buyers, summary.orders, summary.bought_fen) == (2, 1, 2, 59700)
    rows = {row["member"].pk: row for row in page.context["customer_rows"]}
    bought = rows[customer.pk]["member"]
    assert (bought.orders_bought, bought.orders_completed, bought.bought_fen) == (2, 1, 59700)
    assert bought.last_bought_at is not None
    # 3 % of 39,800 and of 19,900 fen, and the ¥5 sign-up reward: all pending
    assert bought.earned_fen == 1194 + 597 + 500
    assert rows[customer.pk]["earned"] == "¥22.91"
    assert page.context["balances"].pending_fen == 1194 + 597 + 500 + 500
    assert 'id="balance-pending">¥27.91<' in html
    assert order.number in html
    assert "138****8000" in html and "13800138000" not in html  # masked, as elsewhere in the console


def test_another_guides_customers_and_earnings_never_appear(rules, guide, rival, buy, formula):
    mine = _customer_of(guide, "13800138000")
    theirs = _customer_of(rival, "13700137000")
    my_order = buy(mine, {formula: 1})
    their_order = buy(theirs, {formula: 3})

    html = _console(guide).get(PAGE, {"staff": rival.pk}).content.decode()  # an id in the request changes nothing

    assert my_order.number in html and "138****8000" in html
    assert their_order.number not in html and "137****7000" not in html
    assert "XH-G01" not in html
    assert 'id="customer-count">1<' in html
    assert 'id="balance-pending">¥10.97<' in html  # 597 + 500 fen: only mine


def test_a_clerk_of_another_store_sees_their_own_empty_page_not_mine(rules, guide, buy, formula):
    order = buy(_customer_of(guide, "13800138000"), {formula: 1})
    elsewhere = StaffFactory(store=StoreFactory(code="XH"), role="clerk", staff_code="XH-C01")

    page = _console(elsewhere).get(PAGE, {"staff": guide.pk})

    html = page.content.decode()
    assert page.status_code == 200
    assert order.number not in html and "138****8000" not in html and "/mall/g/WS-G01/" not in html
    assert "/mall/g/XH-C01/" in html
    assert page.context["summary"].customers == 0
    assert page.context["balances"].pending_fen == 0


def test_a_manager_who_brought_customers_sees_them_too(rules, store, buy, formula):
    manager = StaffFactory(store=store, role="manager", staff_code="WS-M01")
    order = buy(_customer_of(manager, "13800138000"), {formula: 1})

    assert order.number in _console(manager).get(PAGE).content.decode()


def test_a_closed_account_shows_no_name(rules, guide):
    customer = _customer_of(guide, "13800138000")
    Member.objects.filter(pk=customer.pk).update(phone=None, nickname="", closed_at=timezone.now())

    page = _console(guide).get(PAGE)

    assert [row["label"] for row in page.context["customer_rows"]] == ["Closed account"]


def test_a_customer_s_nickname_is_masked(rules, guide):
    MemberFactory(guide=guide, nickname="张三丰", phone="+8613600136000")

    html = _console(guide).get(PAGE).content.decode()

    assert "张***" in html and "136****6000" in html and "张三丰" not in html


def test_customers_come_in_pages_and_the_queries_do_not_grow_with_them(
    rules, guide, buy, formula, django_assert_max_num_queries
):
    for n in range(3):
        buy(_customer_of(guide, f"1380013800{n}"), {formula: 1})
    client = _console(guide)
    with django_assert_max_num_queries(30) as few:
        client.get(PAGE)
    for n in range(3, 25):
        buy(_customer_of(guide, f"138001380{n:02d}"), {formula: 1})

    with django_assert_max_num_queries(len(few.captured_queries)):
        first = client.get(PAGE)
    second = client.get(PAGE, {"page": 2})

    assert len(first.context["customer_rows"]) == 20
    assert len(second.context["customer_rows"]) == 5
    assert first.context["summary"].customers == 25
    assert client.get(PAGE, {"page": "nonsense"}).status_code == 200


# --- withdrawals ------------------------------------------------------------------------------------


def test_a_guide_withdraws_from_the_settled_balance(rules, guide, buy, formula):
    buy(_customer_of(guide, "13800138000"), {formula: 5}, complete=True)  # 3 % of ¥995 = ¥29.85, + ¥5
    _settle_everything()
    client = _console(guide)
    assert 'id="request-payout">' in client.get(PAGE).content.decode()  # the button is live

    response = client.post(WITHDRAW, {"amount": "20.50"})

    assert response.status_code == 302 and response["Location"] == PAGE
    payout = Payout.objects.get()
    assert (payout.staff, payout.member, payout.amount_fen, payout.status) == (guide, None, 2050, "requested")
    page = client.get(PAGE)
    balances = page.context["balances"]
    assert (balances.settled_fen, balances.requested_fen, balances.available_fen) == (3485, 2050, 1435)
    html = page.content.decode()
    assert "¥20.50" in html and "Requested" in html
    assert 'id="request-payout" disabled' in html  # one open payout at a time


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("5.00", "The smallest withdrawal is ¥10.00."),  # HQ's minimum is ¥10
        ("100.00", "You can withdraw at most ¥34.85 now."),
        ("abc", "Enter a number."),
        ("10.001", "no more than 2 decimal places"),
        ("-10", "greater than or equal to 0.01"),
        ("", "This field is required."),
    ],
)
def test_a_refused_withdrawal_shows_why_and_changes_nothing(rules, guide, buy, formula, amount, error):
    buy(_customer_of(guide, "13800138000"), {formula: 5}, complete=True)
    _settle_everything()
    entries = CommissionEntry.objects.count()

    response = _console(guide).post(WITHDRAW, {"amount": amount})

    assert response.status_code == 400
    assert error in response.content.decode()
    assert not Payout.objects.exists()
    assert CommissionEntry.objects.count() == entries


def test_pending_commission_cannot_be_withdrawn(rules, guide, buy, formula):
    buy(_customer_of(guide, "13800138000"), {formula: 5})  # paid, not completed: all pending
    client = _console(guide)
    assert 'id="request-payout" disabled' in client.get(PAGE).content.decode()

    response = client.post(WITHDRAW, {"amount": "10.00"})

    assert response.status_code == 400
    assert "You can withdraw at most ¥0.00 now." in response.content.decode()
    assert not Payout.objects.exists()


def test_one_open_withdrawal_at_a_time(rules, guide, buy, formula):
    buy(_customer_of(guide, "13800138000"), {formula: 10}, complete=True)
    _settle_everything()
    client = _console(guide)
    assert client.post(WITHDRAW, {"amount": "10.00"}).status_code == 302

    response = client.post(WITHDRAW, {"amount": "10.00"})

    assert response.status_code == 400
    assert "A withdrawal of yours is still open" in response.content.decode()
    assert Payout.objects.count() == 1


def test_a_withdrawal_draws_on_my_balance_only(rules, guide, rival, buy, formula):
    buy(_customer_of(rival, "13700137000"), {formula: 10}, complete=True)  # the rival has ¥64.70 settled
    _settle_everything()

    response = _console(guide).post(WITHDRAW, {"amount": "10.00", "staff": rival.pk})

    assert response.status_code == 400
    assert not Payout.objects.exists()


def test_withdrawing_takes_a_post(rules, guide):
    assert _console(guide).get(WITHDRAW).status_code == 405


# --- who may open the page --------------------------------------------------------------------------


@pytest.mark.parametrize("url", [PAGE, WITHDRAW])
def test_without_signing_in_the_page_sends_to_the_console_sign_in(client, url):
    response = client.get(url) if url == PAGE else client.post(url, {"amount": "10.00"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))
    assert not Payout.objects.exists()


def test_a_shopper_s_mall_session_does_not_open_the_console(client, rules, guide):
    customer = _customer_of(guide, "13800138000")
    session = client.session
    session[MEMBER_SESSION_KEY] = customer.pk
    session.save()

    response = client.get(PAGE)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))


def test_an_account_without_a_store_is_refused(client, rules):
    client.force_login(UserFactory())

    assert client.get(PAGE).status_code == 403
    assert client.post(WITHDRAW, {"amount": "10.00"}).status_code == 403


def test_a_guide_who_left_cannot_open_the_page(rules, guide):
    client = _console(guide)
    guide.is_active = False
    guide.save(update_fields=["is_active"])

    assert client.get(PAGE).status_code == 403
