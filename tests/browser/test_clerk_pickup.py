"""A clerk's pickup in real browsers: the new order arrives, the clerk accepts it, then scans the
shopper's pickup QR with the phone camera (Chromium's fake camera playing the QR) and hands over."""

from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from inventory.models import Stock
from inventory.services import receive_stock
from members.services import bind_phone
from orders.models import Order
from orders.services import confirm_payment, place_order, set_cart_quantity
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.factories import MemberFactory, SkuFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

FRAME_WIDTH, FRAME_HEIGHT = 640, 480


def write_y4m(png: Path, target: Path, frames: int = 20) -> Path:
    """A still video for Chromium's fake camera: the image centred on white, as YUV 4:2:0 frames."""
    code = Image.open(png).convert("L")
    code.thumbnail((FRAME_HEIGHT - 40, FRAME_HEIGHT - 40))
    frame = Image.new("L", (FRAME_WIDTH, FRAME_HEIGHT), 255)
    frame.paste(code, ((FRAME_WIDTH - code.width) // 2, (FRAME_HEIGHT - code.height) // 2))
    luma = frame.tobytes()
    chroma = bytes([128]) * (FRAME_WIDTH * FRAME_HEIGHT // 4)
    with target.open("wb") as video:
        video.write(f"YUV4MPEG2 W{FRAME_WIDTH} H{FRAME_HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            video.write(b"FRAME\n" + luma + chroma + chroma)
    return target


def test_a_clerk_accepts_the_new_order_and_hands_it_over_by_scanning_the_shoppers_qr(
    live_server, browser, phone, screenshot, settings, tmp_path
):
    settings.DEBUG = True  # the development sign-in stands in for WeChat
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_APP_ID = settings.WECHAT_PAY_MCH_ID = ""
    store = StoreFactory(name="文三路店", code="WS", latitude=Decimal("30.280000"), longitude=Decimal("120.150000"))
    StaffFactory(store=store, user=UserFactory(username="ws-clerk"), display_name="王小明")
    sku = SkuFactory(product__name="飞鹤星飞帆", spec="800g 3段", price_fen=25800)
    receive_stock(store=store, sku=sku, quantity=8)
    member = bind_phone(member=MemberFactory(), phone="13800138000")
    set_cart_quantity(member=member, sku=sku, quantity=2)
    order = place_order(member=member, fulfilment="pickup", pickup_store=store)
    # Paid: on commit the order is offered to its pickup store (Celery runs eagerly in tests)
    confirm_payment(
        out_trade_no=order.number, transaction_id="wx-browser", amount_fen=order.total_fen, paid_at=order.created_at
    )

    # The clerk signs in and sees the new order with its countdown, then accepts it
    clerk = phone()
    clerk.goto(f"{live_server.url}/console/")
    clerk.fill("#id_username", "ws-clerk")
    clerk.fill("#id_password", "pass-word-123")
    clerk.click("main button[type=submit]")
    clerk.wait_for_selector("#order-list .card.offer")
    clerk.wait_for_function("document.querySelector('.countdown').textContent.includes(':')")
    assert order.number in clerk.inner_text("#order-list")
    assert clerk.inner_text("#new-badge") == "1"
    assert clerk.evaluate("document.documentElement.scrollWidth") <= 360
    screenshot(clerk, "console-1-new-order")
    clerk.click("#order-list .card.offer")
    clerk.wait_for_selector("#accept")
    assert "****" in clerk.inner_text(".phone")  # masked until the store accepts
    clerk.click("#accept")
    clerk.wait_for_selector(".messages .success")
    assert "13800138000" in clerk.inner_text(".phone")
    screenshot(clerk, "console-2-accepted")

    # The shopper opens their order page, which shows the pickup QR
    shopper = phone()
    shopper.goto(f"{live_server.url}/mall/signin/?next=/mall/orders/{order.number}/")
    shopper.fill("#id_phone", "13800138000")
    shopper.get_by_role("button", name="登录").click()
    shopper.wait_for_selector(".pickup .qr svg")
    qr_png = tmp_path / "pickup-qr.png"
    shopper.locator(".pickup .qr").screenshot(path=str(qr_png))
    camera_feed = write_y4m(qr_png, tmp_path / "pickup-qr.y4m")

    # The clerk's phone camera sees that QR on the scan tab; the console decodes it and offers the handover
    camera_browser = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_feed}",
        ],
    )
    try:
        context = camera_browser.new_context(
            viewport={"width": 360, "height": 740}, locale="zh-CN", permissions=["camera"]
        )
        context.add_cookies(clerk.context.cookies())  # the same signed-in clerk, now with the camera
        counter = context.new_page()
        counter.goto(f"{live_server.url}/console/orders/scan/")
        counter.wait_for_selector("#confirm-handover", timeout=15000)
        assert order.number in counter.inner_text(".scan-found")
        screenshot(counter, "console-3-scanned")
        counter.click("#confirm-handover")
        counter.wait_for_selector(".messages .success")
        screenshot(counter, "console-4-handed-over")
        assert counter.evaluate("document.documentElement.scrollWidth") <= 360

        # A second scan of the same code says it was already collected
        counter.goto(f"{live_server.url}/console/orders/scan/")
        counter.wait_for_selector(".scan-error [data-code=already_collected]", timeout=15000)
        screenshot(counter, "console-5-already-collected")
    finally:
        camera_browser.close()

    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    stock = Stock.objects.get(store=store, sku=sku)
    assert (stock.on_hand, stock.reserved) == (6, 0)
