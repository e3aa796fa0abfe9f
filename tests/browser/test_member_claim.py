"""A member the chain's CRM opened at a till comes to the mall through WeChat, proves her number with
the texted code, and finds her store card and points there."""

import re

import pytest

from integrations.vendors.sms import LoggingSmsBackend
from members.crm import CrmMember, upsert_member_from_crm
from members.models import Member
from members.services import earn_points

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_store_member_proves_her_number_and_her_points_come_online(live_server, phone, screenshot, settings):
    settings.DEBUG = True  # the development sign-in stands in for WeChat
    settings.WECHAT_APP_ID = ""
    settings.SMS_BACKEND = "integrations.vendors.sms.LoggingSmsBackend"
    LoggingSmsBackend.clear()
    store_member = upsert_member_from_crm(item=CrmMember(phone="13800000401", nickname="吴女士")).member
    earn_points(member=store_member, reference="POS:WS:0001", lines=[(None, 65_600)])
    page = phone()

    page.goto(f"{live_server.url}/mall/signin/?next=/mall/me/")
    page.fill("#id_phone", "13900009999")  # her WeChat sign-up, a member of its own so far
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("#member-card")
    page.get_by_role("link", name="更换手机号").click()

    page.fill("#id_phone", "13800000401")
    page.get_by_role("button", name="获取验证码").click()
    page.wait_for_selector("#id_code")
    code = re.search(r"\b(\d{6})\b", LoggingSmsBackend.outbox[-1].text).group(1)
    assert LoggingSmsBackend.outbox[-1].phone == "+8613800000401"
    screenshot(page, "member-claim-code")
    page.fill("#id_code", code)
    page.get_by_role("button", name="确认").click()

    page.wait_for_selector("#points-balance")
    screenshot(page, "member-claim-done")
    assert page.inner_text("#points-balance") == "656"
    assert "欢迎回来" in page.inner_text(".messages")
    store_member.refresh_from_db()
    assert store_member.openid == "dev-13900009999"
    assert Member.objects.get(openid__isnull=True, merged_into=store_member)
