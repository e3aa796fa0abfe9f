"""A promoter opens their promotion page from the member center on a phone: link, QR code, team,
earnings, a withdrawal, and a product's poster."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from commissions.models import CommissionSettings
from commissions.selectors import forget_commission_settings
from commissions.services import settle_due_commissions
from inventory.services import receive_stock
from members.models import ReferralVisit
from tests.commissions.conftest import buy_order
from tests.factories import MemberFactory, SkuFactory, StaffFactory, StoreFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def iphone(browser):
    """A 390 × 844 phone (an iPhone 14's viewport), Chinese."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, locale="zh-CN")
    yield context.new_page()
    context.close()


def _demo_team():
    """A promoter with friends who bought, friends of friends, and some settled commission."""
    CommissionSettings.objects.update_or_create(pk=1, defaults={"depth": 2, "min_payout_fen": 1000})
    forget_commission_settings()
    store = StoreFactory(code="WS", name="文三路店", latitude=Decimal("30.28"), longitude=Decimal("120.15"))
    clerk = StaffFactory(store=store)
    formula = SkuFactory(product__name="飞鹤星飞帆 幼儿配方奶粉", spec="800g 3段", price_fen=19900)
    receive_stock(store=store, sku=formula, quantity=100)
    promoter = MemberFactory(nickname="陈静", phone="+8613800138000")
    friends = [
        MemberFactory(referrer=promoter, nickname=name, phone=f"+86139000000{i:02d}")
        for i, name in enumerate(["王小芳", "李娜", "赵敏", "刘洋"])
    ]
    second = [MemberFactory(referrer=friends[0], nickname="周杰", phone="+8613700000001")]
    for buyer, cans in ((friends[0], 3), (friends[1], 1), (second[0], 2)):
        buy_order(store, clerk, buyer, {formula: cans}, complete=True)
    settle_due_commissions(at=timezone.now() + timedelta(days=8))
    buy_order(store, clerk, friends[0], {formula: 1})  # pending
    ReferralVisit.objects.bulk_create([ReferralVisit(sharer=promoter, device=f"d{i}") for i in range(23)])
    return promoter, formula


def test_a_promoter_opens_their_promotion_page_on_a_phone(live_server, iphone, screenshot, settings):
    settings.DEBUG = True  # the development sign-in stands in for WeChat
    settings.WECHAT_APP_ID = ""
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""
    promoter, formula = _demo_team()
    page = iphone

    page.goto(f"{live_server.url}/mall/signin/?next=/mall/me/")
    page.fill("#id_phone", "13800138000")
    page.get_by_role("button", name="登录").click()
    page.click("#promotion-link")
    page.wait_for_selector(".share-qr svg")
    screenshot(page, "promoter-center")

    promoter.refresh_from_db()
    assert page.inner_text("#referral-code") == promoter.referral_code
    assert page.input_value("#share-link").endswith(f"/mall/r/{promoter.referral_code}/")
    assert page.inner_text("#visits") == "23" and page.inner_text("#signups") == "4"
    assert page.inner_text("#available") == "¥47.76"  # 5 % of ¥796.00 and 2 % of ¥398.00, settled
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.fill("#id_amount", "5")
    page.click("#withdraw button[type=submit]")
    page.wait_for_selector(".field-error")
    assert "¥10.00" in page.inner_text(".field-error")
    page.fill("#id_amount", "20")
    page.click("#withdraw button[type=submit]")
    page.wait_for_selector(".messages .success")
    assert page.inner_text("#available") == "¥27.76"

    page.click("#level-1")
    page.wait_for_selector(".team-list")
    screenshot(page, "promoter-team")
    assert "王***" in page.inner_text(".team-list") and "王小芳" not in page.content()

    page.goto(f"{live_server.url}/mall/me/promotion/share/?sku={formula.code}")
    page.wait_for_function("document.getElementById('poster').naturalWidth > 0")
    screenshot(page, "promoter-share-product")
    assert page.evaluate("document.getElementById('poster').naturalWidth") == 750
