"""A guide's QR code at work, in real browsers: the code on the guide's console page opens the mall;
the shopper registers and buys through it; the guide's page then shows the new customer, the sign-up
reward and the commission on the order, both pending."""

from datetime import time
from decimal import Decimal

import pytest

from commissions.selectors import commission_settings
from inventory.services import receive_stock
from orders.models import Order
from stores.services import set_opening_hours
from tests.factories import SkuFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PHONE_SCREEN = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "locale": "zh-CN"}

# Draws the page's QR (an inline SVG) onto a canvas and decodes it with the vendored jsQR.
DECODE_QR = """async () => {
  const svg = document.querySelector("#my-qr .qr svg");
  const image = new Image();
  image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(new XMLSerializer().serializeToString(svg));
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 400;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, 400, 400);
  context.drawImage(image, 0, 0, 400, 400);
  const found = window.jsQR(context.getImageData(0, 0, 400, 400).data, 400, 400);
  return found ? found.data : null;
}"""


def _yuan(fen: int) -> str:
    return f"¥{Decimal(fen) / 100:,.2f}"


def test_a_shopper_joins_through_the_guides_qr_buys_and_the_guide_sees_the_commission_pending(
    live_server, browser, screenshot, settings
):
    settings.DEBUG = True  # the development sign-in and payment stand in for WeChat
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_APP_ID = settings.WECHAT_PAY_MCH_ID = ""
    settings.O2O_PUBLIC_URL = live_server.url
    store = StoreFactory(name="文三路店", code="WS", latitude=Decimal("30.280000"), longitude=Decimal("120.150000"))
    set_opening_hours(store=store, weekly={day: [(time(0), time(0))] for day in range(7)})
    StaffFactory(
        store=store, role="guide", staff_code="WS-G01", display_name="王小明", user=UserFactory(username="ws-guide")
    )
    sku = SkuFactory(product__name="飞鹤星飞帆", spec="800g 3段", price_fen=25800)
    receive_stock(store=store, sku=sku, quantity=8)
    rules = commission_settings()

    # The guide signs in to the console and opens their page; its QR code carries their link
    guide = browser.new_context(**PHONE_SCREEN).new_page()
    guide.goto(f"{live_server.url}/console/")
    guide.fill("#id_username", "ws-guide")
    guide.fill("#id_password", "pass-word-123")
    guide.click("main button[type=submit]")
    guide.wait_for_selector("#tab-promotion")
    guide.click("#tab-promotion")
    guide.wait_for_selector("#my-qr .qr svg")
    guide.add_script_tag(url=f"{live_server.url}/static/vendor/jsqr/jsQR.js")
    guide_link = guide.evaluate(DECODE_QR)
    assert guide_link == f"{live_server.url}/mall/g/WS-G01/"
    assert guide.inner_text("#customer-count") == "0"
    screenshot(guide, "guide-1-qr-code")

    # A shopper opens that link: the guide's store is chosen; they sign in (registering) and buy
    shopper = browser.new_context(**PHONE_SCREEN).new_page()
    shopper.goto(guide_link)
    shopper.goto(f"{live_server.url}/mall/products/{sku.product_id}/")
    assert "本店有货" in shopper.inner_text(".availability")
    shopper.get_by_role("button", name="加入购物车").click()
    shopper.fill("#id_phone", "13800138000")
    shopper.get_by_role("button", name="登录").click()
    shopper.wait_for_url(f"**/mall/products/{sku.product_id}/")
    shopper.get_by_role("button", name="加入购物车").click()
    shopper.wait_for_selector(".qty")
    shopper.get_by_role("link", name="去结算").click()
    shopper.wait_for_selector("#checkout")
    shopper.get_by_role("button", name="提交订单").click()
    shopper.wait_for_selector("h1.status")
    shopper.get_by_role("button", name="支付（开发环境）").click()
    shopper.wait_for_selector(".pickup .qr svg")
    screenshot(shopper, "guide-2-shopper-paid")
    order = Order.objects.get()
    assert order.status == Order.Status.PAID
    assert (order.member.guide.staff_code, order.member.home_store_id) == ("WS-G01", store.pk)

    # The guide's page now shows the customer, the sign-up reward and the order's commission, pending
    earned = order.items_paid_fen * rules.guide_rate_bp // 10000  # 3 % of ¥258.00 with HQ's defaults
    guide.reload()
    guide.wait_for_selector("#ledger .entry-earn")
    assert guide.inner_text("#customer-count") == "1"
    assert "138****8000" in guide.inner_text("#customers")
    sale = guide.locator("#ledger .entry-earn")
    assert order.number in sale.inner_text()
    assert sale.locator(".amount").inner_text() == _yuan(earned)
    assert sale.locator(".badge").inner_text() == "待结算"
    reward = guide.locator("#ledger .entry-signup")
    assert reward.locator(".amount").inner_text() == _yuan(rules.guide_signup_reward_fen)
    assert reward.locator(".badge").inner_text() == "待结算"
    assert guide.inner_text("#balance-pending") == _yuan(earned + rules.guide_signup_reward_fen)
    assert guide.inner_text("#balance-available") == _yuan(0)
    assert guide.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(guide, "guide-3-commission-pending")
