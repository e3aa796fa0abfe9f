"""The first pages as their users meet them, in a real browser on a phone-sized screen."""

from datetime import time
from decimal import Decimal

import pytest

from inventory.services import receive_stock
from o2o.geo import Point, wgs84_to_gcj02
from stores.services import set_opening_hours
from tests.factories import SkuFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ALL_DAY = {day: [(time(0, 0), time(0, 0))] for day in range(7)}


def _store_near(gcj: Point, *, north_m: float, name: str, code: str):
    store = StoreFactory(
        code=code,
        name=name,
        latitude=Decimal(f"{gcj.lat + north_m / 111_000:.6f}"),
        longitude=Decimal(f"{gcj.lng:.6f}"),
    )
    set_opening_hours(store=store, weekly=ALL_DAY)
    return store


def test_mall_lists_the_nearest_store_first_from_the_browser_position(live_server, phone, screenshot):
    # Given a shopper standing near West Lake (the browser reports WGS-84)
    shopper_wgs = Point(30.2560, 120.1440)
    shopper_gcj = wgs84_to_gcj02(shopper_wgs)
    _store_near(shopper_gcj, north_m=2500, name="远店", code="FAR")
    _store_near(shopper_gcj, north_m=300, name="近店", code="NEAR")
    page = phone(geolocation={"latitude": shopper_wgs.lat, "longitude": shopper_wgs.lng}, permissions=["geolocation"])

    # When they open the mall
    page.goto(f"{live_server.url}/mall/")
    page.wait_for_selector("#nearby .store-list li")
    screenshot(page, "mall-nearby")

    # Then the store 300 m away (in GCJ-02) comes first, with its distance and open state, in Chinese
    names = page.locator("#nearby .store-list li strong").all_inner_texts()
    assert names == ["近店", "远店"]
    first = page.locator("#nearby .store-list li").first.inner_text()
    assert "300 米" in first or "299 米" in first or "301 米" in first
    assert "营业中" in first


def test_mall_offers_the_city_chooser_when_location_is_refused(live_server, phone, screenshot):
    store = _store_near(Point(30.27, 120.15), north_m=0, name="文三路店", code="WS")
    page = phone(permissions=[])  # geolocation not granted: the browser refuses

    page.goto(f"{live_server.url}/mall/")
    page.wait_for_selector("#nearby .notice")
    assert page.locator("#chooser").is_visible()

    page.get_by_role("button", name="选择此店").first.click()
    page.wait_for_selector(".card.chosen")
    screenshot(page, "mall-chooser")
    assert store.name in page.locator(".card.chosen").inner_text()


def test_clerk_signs_in_and_sees_only_their_own_store_stock(live_server, phone, screenshot):
    own = StoreFactory(name="文三路店", code="WS")
    other = StoreFactory(name="滨江店", code="BJ")
    formula = SkuFactory(product__name="飞鹤星飞帆 3段", spec="800g")
    diapers = SkuFactory(product__name="花王纸尿裤", spec="M 64片")
    receive_stock(store=own, sku=formula, quantity=12)
    receive_stock(store=other, sku=diapers, quantity=30)
    StaffFactory(store=own, user=UserFactory(username="ws-clerk"), display_name="王小明")
    page = phone()

    page.goto(f"{live_server.url}/console/")
    page.fill("#id_username", "ws-clerk")
    page.fill("#id_password", "pass-word-123")
    page.click("main button[type=submit]")
    page.wait_for_selector("#order-list")  # the console opens on its new orders
    page.click(".tabs a[href='/console/stock/']")
    page.wait_for_selector(".stock-list")
    screenshot(page, "console-stock")

    text = page.locator(".stock-list").inner_text()
    assert "飞鹤星飞帆 3段" in text
    assert "花王纸尿裤" not in text
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing overflows a 360 px screen
