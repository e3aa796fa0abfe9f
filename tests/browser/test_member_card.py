"""A member opens their card in the mall: the QR and the minute's code a till can read."""

import pytest

from members.models import Member
from members.services import earn_points, member_by_card_code

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_member_opens_the_card_page_and_the_till_can_read_its_code(live_server, phone, screenshot, settings):
    settings.DEBUG = True  # the development sign-in stands in for WeChat
    settings.WECHAT_APP_ID = ""
    page = phone()

    page.goto(f"{live_server.url}/mall/signin/?next=/mall/me/")
    page.fill("#id_phone", "13800138000")
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("#member-card .qr svg")

    member = Member.objects.get(phone="+8613800138000")
    earn_points(member=member, reference="POS-1", lines=[(None, 12800)])
    page.reload()
    page.wait_for_selector("#member-card .qr svg")
    screenshot(page, "member-card")

    number = page.inner_text(".card-number").replace(" ", "")
    code = page.inner_text(".card-code strong")
    assert member_by_card_code(text=number + code) == member  # what the page shows is what the till accepts
    assert page.inner_text("#points-balance") == "128"
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
