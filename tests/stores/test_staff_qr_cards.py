"""HQ prints guides' QR cards from the staff admin: one A6 card per selected staff member, carrying
the absolute address of their guide entry `/mall/g/<staff code>/`."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import HQUserFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/stores/staff/"


@pytest.fixture
def hq(settings) -> Client:
    settings.O2O_PUBLIC_URL = "https://mall.example.cn"
    settings.O2O_CHAIN_NAME = "贝恩母婴"
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(HQUserFactory())
    return client


@pytest.fixture
def guides(db):
    store = StoreFactory(code="WS", name="文三路店")
    return [
        StaffFactory(store=store, role="guide", staff_code="WS-G01", display_name="王小明"),
        StaffFactory(store=store, role="clerk", staff_code="WS-C02", display_name="李小红"),
    ]


def _print(client: Client, staff) -> str:
    response = client.post(
        CHANGELIST, {"action": "print_qr_cards", "_selected_action": [person.pk for person in staff]}
    )
    assert response.status_code == 200
    return response.content.decode()


def test_the_action_prints_one_card_per_selected_staff_member(hq, guides):
    html = _print(hq, guides)

    assert html.count('class="qr-card"') == 2 and html.count("<svg") == 2
    for code, name in (("WS-G01", "王小明"), ("WS-C02", "李小红")):
        assert f'id="qr-card-{code}"' in html and name in html
        assert f"https://mall.example.cn/mall/g/{code}/" in html
    assert "文三路店" in html
    assert "Scan to join 贝恩母婴 with your guide" in html
    assert "@page" in html and "@media print" in html


def test_the_card_carries_the_address_the_members_app_answers(hq, guides):
    """The address on the card is the guide entry page itself (resolved by its URL name)."""
    assert reverse("members:guide-entry", args=["WS-G01"]) == "/mall/g/WS-G01/"
    assert "/mall/g/WS-G01/" in _print(hq, guides[:1])


def test_staff_who_left_and_closed_stores_get_no_card(hq, guides):
    left = StaffFactory(store=guides[0].store, staff_code="WS-X09", is_active=False)
    closed = StaffFactory(store=StoreFactory(code="OLD", is_active=False), staff_code="OLD-G01")

    html = _print(hq, [guides[0], left, closed])

    assert html.count('class="qr-card"') == 1
    assert "WS-X09" not in html and "OLD-G01" not in html


def test_the_staff_page_has_a_print_tool_for_its_own_card(hq, guides):
    guide = guides[0]
    change = hq.get(reverse("admin:stores_staff_change", args=[guide.pk])).content.decode()
    card_url = reverse("admin:stores_staff_qr_card", args=[guide.pk])
    assert f'href="{card_url}"' in change

    html = hq.get(card_url).content.decode()

    assert html.count('class="qr-card"') == 1 and "https://mall.example.cn/mall/g/WS-G01/" in html
    assert hq.get(reverse("admin:stores_staff_qr_card", args=[999999])).status_code == 404


def test_only_hq_prints_cards(client, guides):
    card_url = reverse("admin:stores_staff_qr_card", args=[guides[0].pk])
    assert client.get(card_url).status_code == 302  # to the admin sign-in
    client.force_login(guides[0].user)  # a clerk: not an HQ account
    response = client.get(card_url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(UserFactory(is_staff=True))  # HQ, without the right to see staff
    assert client.get(card_url).status_code == 404
