"""HQ on a desktop browser: the commission results, the anomaly list, the ledger's payable summary,
and moving a member to another referrer (a cycle refused on the form, then a real change)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from commissions.services import approve_payout, mark_payout_paid, request_payout, settle_due_commissions
from inventory.services import receive_stock
from members.services import Referral, record_referral_visit, sign_in_for_development
from orders.fulfilment import return_at_store
from tests.commissions.conftest import buy_order
from tests.factories import HQUserFactory, MemberFactory, SkuFactory, StaffFactory, StoreFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def desktop(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    yield context.new_page()
    context.close()


@pytest.fixture
def chain(settings):
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""
    store = StoreFactory(code="WS", name="文三路店", latitude=Decimal("30.28"), longitude=Decimal("120.15"))
    clerk = StaffFactory(store=store)
    formula = SkuFactory(product__name="飞鹤星飞帆", spec="800g 3段", price_fen=19900)
    receive_stock(store=store, sku=formula, quantity=100)
    top = MemberFactory(nickname="老张")
    sharer = MemberFactory(nickname="小李", referrer=top, referral_code="SHARE234")
    guide = StaffFactory(store=store, role="guide", display_name="小王", staff_code="G-WANG")
    for _ in range(3):
        record_referral_visit(sharer=sharer, device="d1")
    customers = [
        sign_in_for_development(
            phone=f"1580000000{n}",
            referral=Referral(referrer_id=sharer.pk, guide_id=guide.pk if n == 0 else None, device="dev-farm"),
        )
        for n in range(3)
    ]
    buy_order(store, clerk, customers[0], {formula: 1})
    completed = buy_order(store, clerk, customers[1], {formula: 2}, complete=True)
    later = timezone.now() + timedelta(days=8)
    with time_machine.travel(later):
        settle_due_commissions()
        _pay_by_hand(sharer, 1990)
        return_at_store(staff=clerk, order=completed.number, quantities={completed.lines.get().pk: 1}, token="late")
    HQUserFactory(username="hq")
    return {"top": top, "sharer": sharer, "customers": customers}


def _pay_by_hand(member, amount_fen):
    hq = HQUserFactory()
    payout = request_payout(member=member, amount_fen=amount_fen)
    approve_payout(payout_id=payout.pk, by=hq, method="manual")
    mark_payout_paid(payout_id=payout.pk, by=hq, reference="BANK-0001")


def _sign_in(page, url):
    page.goto(f"{url}/admin/login/?next=/admin/")
    page.fill("#id_username", "hq")
    page.fill("#id_password", "pass-word-123")
    page.click("input[type=submit]")
    page.wait_for_url(f"{url}/admin/")  # signed in before going anywhere else


def test_hq_reads_the_results_and_anomalies_and_moves_a_member(live_server, desktop, screenshot, chain):
    page = desktop
    _sign_in(page, live_server.url)
    today = timezone.localdate()
    period = f"since={today - timedelta(days=1)}&until={today + timedelta(days=10)}"

    page.goto(f"{live_server.url}/admin/commissions/commissionentry/results/?{period}")
    assert page.locator("#commission-payable").is_visible()
    assert page.locator("#results tbody tr").count() == 2
    assert "小李" in page.locator("#results tbody tr").first.inner_text()
    screenshot(page, "hq-commission-results-promoters")

    page.click("a[href*='who=guides']")
    page.wait_for_url(re.compile("who=guides"))
    assert "小王" in page.locator("#results").inner_text()
    screenshot(page, "hq-commission-results-guides")

    page.goto(f"{live_server.url}/admin/commissions/commissionentry/anomalies/?{period}")
    assert page.locator("#shared-devices tbody tr").count() == 1
    assert page.locator("#late-refunds .below-zero").count() == 1
    screenshot(page, "hq-commission-anomalies")

    page.goto(f"{live_server.url}/admin/commissions/commissionentry/")
    assert page.locator("#commission-payable").is_visible()
    screenshot(page, "hq-commission-ledger")

    # the top member may not be moved under a member the chain below them brought in
    top = chain["top"]
    page.goto(f"{live_server.url}/admin/members/member/{top.pk}/change/")
    page.click(f"a[href='/admin/members/member/{top.pk}/referral/']")
    page.fill("#id_referrer", chain["customers"][0].phone)
    page.fill("#id_reason", "合并账号")
    page.click("#rebind-form input[type=submit]")
    assert page.locator(".errorlist").count() >= 1
    screenshot(page, "hq-member-rebind-refused")

    page.fill("#id_referrer", "")
    page.fill("#id_guide", "G-WANG")
    page.fill("#id_reason", "门店导购认领")
    page.click("#rebind-form input[type=submit]")
    page.wait_for_url(f"**/admin/members/member/{top.pk}/change/")
    assert "门店导购认领" in page.content()
    screenshot(page, "hq-member-referral-history")
