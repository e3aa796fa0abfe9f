"""A shopper's whole way in a real browser: nearest store, product, cart, pickup checkout, payment, pickup QR."""

from datetime import time
from decimal import Decimal

import pytest

from inventory.services import receive_stock
from o2o.geo import Point, wgs84_to_gcj02
from orders.models import Order
from stores.services import set_opening_hours
from tests.factories import SkuFactory, StoreFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_shopper_finds_a_store_buys_for_pickup_pays_and_gets_the_pickup_qr(live_server, phone, screenshot, settings):
    settings.DEBUG = True  # the demo: development sign-in and payment stand in for WeChat
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_APP_ID = settings.WECHAT_PAY_MCH_ID = ""
    shopper = Point(30.2560, 120.1440)
    here = wgs84_to_gcj02(shopper)
    store = StoreFactory(
        name="文三路店", latitude=Decimal(f"{here.lat + 0.003:.6f}"), longitude=Decimal(f"{here.lng:.6f}")
    )
    set_opening_hours(store=store, weekly={day: [(time(0), time(0))] for day in range(7)})
    sku = SkuFactory(product__name="飞鹤星飞帆", spec="800g 3段", price_fen=25800)
    receive_stock(store=store, sku=sku, quantity=8)
    page = phone(geolocation={"latitude": shopper.lat, "longitude": shopper.lng}, permissions=["geolocation"])

    # The mall finds the nearest store; the shopper chooses it
    page.goto(f"{live_server.url}/mall/")
    page.wait_for_selector("#nearby .store-list li")
    screenshot(page, "walk-1-nearest")
    page.locator("#nearby .store-list li").first.get_by_role("button", name="选择此店").click()
    page.wait_for_selector(".card.chosen")

    # Product page, then add to cart (sign in first, with the development sign-in)
    page.goto(f"{live_server.url}/mall/products/{sku.product_id}/")
    assert "本店有货" in page.inner_text(".availability")
    screenshot(page, "walk-2-product")
    page.get_by_role("button", name="加入购物车").click()
    page.fill("#id_phone", "13800138000")
    screenshot(page, "walk-3-sign-in")
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"**/mall/products/{sku.product_id}/")  # back where the shopper was
    page.get_by_role("button", name="加入购物车").click()
    page.wait_for_selector(".qty")
    screenshot(page, "walk-4-cart")

    # Checkout with pickup at the chosen store
    page.get_by_role("link", name="去结算").click()
    page.wait_for_selector("#checkout")
    screenshot(page, "walk-5-checkout")
    page.get_by_role("button", name="提交订单").click()
    page.wait_for_selector("h1.status")
    assert "待支付" in page.inner_text("h1.status")

    # The development payment, then the pickup QR and code
    page.get_by_role("button", name="支付（开发环境）").click()
    page.wait_for_selector(".pickup .qr svg")
    screenshot(page, "walk-6-paid-pickup-qr")
    order = Order.objects.get()
    assert order.status == Order.Status.PAID
    assert order.pickup_code in page.inner_text(".pickup-code")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
