"""A store manager makes a campaign for their store's loyal members on the phone, checks the count, sends it."""

import pytest

from integrations.vendors.sms import LoggingSmsBackend
from members.models import Campaign
from tests.factories import MemberFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_manager_makes_and_sends_a_campaign_on_a_phone(live_server, phone, screenshot, settings):
    settings.SMS_BACKEND = "integrations.vendors.sms.LoggingSmsBackend"
    LoggingSmsBackend.clear()
    store = StoreFactory(name="文三路店", code="WS")
    StaffFactory(store=store, role="manager", user=UserFactory(username="ws-manager"), display_name="张店长")
    fans = [
        MemberFactory(home_store=store, home_store_source="store_qr", tier="loyal", marketing_consent=True)
        for _ in range(3)
    ]
    MemberFactory(home_store=store, home_store_source="store_qr", tier="loyal")  # did not agree
    page = phone()

    page.goto(f"{live_server.url}/console/login/?next=/console/campaigns/")
    page.fill("#id_username", "ws-manager")
    page.fill("#id_password", "pass-word-123")
    page.click("main button[type=submit]")
    page.wait_for_selector("#new-campaign")
    page.click("#new-campaign")
    page.wait_for_selector("#campaign-form")
    page.fill("#id_name", "会员日")
    page.check("input[name=tiers][value=loyal]")
    page.fill("#id_bought_within_days", "0")  # a slip first: refused at its field
    page.check("input[name=channel][value=sms]")
    page.fill("#id_body", "本周六会员日，奶粉满300减30，到店出示会员卡。")
    screenshot(page, "console-campaign-new")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.click("#save-campaign")
    page.wait_for_selector(".notice.error")
    assert not Campaign.objects.exists()

    page.fill("#id_bought_within_days", "")
    page.click("#save-campaign")
    page.wait_for_selector("#reach")
    assert page.locator("#reach dd").all_inner_texts() == ["4", "3", "3"]
    screenshot(page, "console-campaign-draft")
    page.click("#send-campaign")
    page.wait_for_selector(".messages .success")
    screenshot(page, "console-campaign-sent")

    campaign = Campaign.objects.get()
    assert (campaign.status, campaign.sent, campaign.skipped_no_consent) == ("done", 3, 1)
    assert sorted(sms.phone for sms in LoggingSmsBackend.outbox) == sorted(fan.phone for fan in fans)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
