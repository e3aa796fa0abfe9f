"""A clerk opens today's calls in the console and records how a call went."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members.models import FollowUp
from members.services import open_follow_ups
from tests.factories import MemberFactory, ProductFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_clerk_sees_today_s_calls_and_records_an_outcome(live_server, phone, screenshot):
    store = StoreFactory(name="文三路店", code="WS")
    StaffFactory(store=store, user=UserFactory(username="ws-clerk"), display_name="王小明")
    member = MemberFactory(nickname="陈女士", home_store=store, home_store_source="store_qr")
    formula = ProductFactory(name="飞鹤星飞帆 3段", days_per_unit=7)
    open_follow_ups(
        member=member, store=store, reference="POS-1", lines=[(formula.pk, 1)], at=timezone.now() - timedelta(days=3)
    )
    page = phone()

    page.goto(f"{live_server.url}/console/login/?next=/console/calls/")
    page.fill("#id_username", "ws-clerk")
    page.fill("#id_password", "pass-word-123")
    page.click("main button[type=submit]")
    page.wait_for_selector(".card.call")
    assert "陈女士" in page.inner_text("main")
    screenshot(page, "console-calls")

    page.click(".card.call >> nth=0")
    page.wait_for_selector("#record-outcome")
    assert member.phone in page.inner_text(".phone")
    page.check("input[value=reached]")
    page.fill("#note", "奶粉喝得惯，下周再买")
    screenshot(page, "console-call")
    page.click("#record-outcome")
    page.wait_for_selector(".messages .success")

    done = FollowUp.objects.filter(member=member, status="done").get()
    assert (done.outcome, done.note) == ("reached", "奶粉喝得惯，下周再买")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
