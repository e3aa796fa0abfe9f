"""The POS finds the member at the counter by card code or phone, and reads their points."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import Scope
from members.services import card_code, earn_points, erase_member, redeem_points
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db

LOOKUP = "/api/v1/erp/members/lookup/"


@pytest.fixture
def key(erp_client):
    return erp_client(Scope.MEMBERS_READ)[1]


@pytest.fixture
def member():
    return MemberFactory(
        nickname="王芳",
        phone="+8613800138000",
        home_store=StoreFactory(code="WS"),
        home_store_source="store_qr",
        marketing_consent=True,
    )


def test_the_lookup_url_is_where_the_docs_say():
    assert reverse("erp:member-lookup") == LOOKUP


def test_the_pos_finds_the_member_by_this_minute_s_card_code(call_erp, key, member):
    earn_points(member=member, reference="POS-1", lines=[(None, 12800)])
    code = card_code(member=member).text

    response = call_erp(LOOKUP, key, card_code=code)

    assert response.status_code == 200
    member.refresh_from_db()
    assert response.json() == {
        "id": member.pk,
        "card_number": member.card_number,
        "nickname": "王芳",
        "phone": "+8613800138000",
        "tier": "potential",
        "tier_label": "Potential",
        "points_balance": 128,
        "home_store_code": "WS",
        "marketing_consent": True,
        "do_not_call": False,
    }


def test_a_code_from_a_screenshot_two_minutes_old_is_refused_as_stale(call_erp, key, member):
    old = card_code(member=member, at=timezone.now() - timedelta(minutes=2)).text

    response = call_erp(LOOKUP, key, card_code=old)

    assert response.status_code == 404
    assert response.json()["code"] == "stale_card_code"


def test_what_cannot_be_a_card_code_is_400(call_erp, key):
    response = call_erp(LOOKUP, key, card_code="hello")

    assert response.status_code == 400
    assert response.json()["code"] == "bad_card_code"


@pytest.mark.parametrize("typed", ["13800138000", "138 0013 8000", "+86-138-0013-8000"])
def test_the_pos_finds_the_member_by_mobile_number_however_it_is_typed(call_erp, key, member, typed):
    response = call_erp(LOOKUP, key, phone=typed)

    assert response.status_code == 200
    assert response.json()["id"] == member.pk
    assert response.json()["phone"] == "+8613800138000"


def test_an_unknown_number_is_404_member_not_found(call_erp, key, member):
    response = call_erp(LOOKUP, key, phone="13900000000")

    assert response.status_code == 404
    assert response.json()["code"] == "member_not_found"


def test_a_number_that_is_no_mobile_is_400_invalid_phone(call_erp, key):
    response = call_erp(LOOKUP, key, phone="12345")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_phone"


@pytest.mark.parametrize(
    "params",
    [{}, {"card_code": "812345678901123456", "phone": "13800138000"}, {"phone": ""}],
    ids=["neither", "both", "empty"],
)
def test_the_lookup_needs_exactly_one_of_card_code_or_phone(call_erp, key, params):
    response = call_erp(LOOKUP, key, **params)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["details"]) & {"card_code", "phone"}


def test_a_closed_account_is_found_neither_by_its_old_number_nor_its_old_card(call_erp, key, member):
    code = card_code(member=member).text
    erase_member(member=member)

    by_phone = call_erp(LOOKUP, key, phone="13800138000")
    by_card = call_erp(LOOKUP, key, card_code=code)
    points = call_erp(reverse("erp:member-points", kwargs={"member_id": member.pk}), key)

    assert (by_phone.status_code, by_phone.json()["code"]) == (404, "member_not_found")
    assert (by_card.status_code, by_card.json()["code"]) == (404, "stale_card_code")
    assert (points.status_code, points.json()["code"]) == (404, "member_not_found")


# --- points ---------------------------------------------------------------------------------------


def _points_url(member) -> str:
    return reverse("erp:member-points", kwargs={"member_id": member.pk})


def test_the_points_are_the_balance_and_the_ledger_newest_first(call_erp, key, member):
    earn_points(member=member, reference="POS-1", lines=[(None, 25800)])
    redeem_points(member=member, points=100, order_fen=25800, reference="M1")

    response = call_erp(_points_url(member), key)

    assert response.status_code == 200
    body = response.json()
    assert (body["member_id"], body["balance"], body["count"], body["next"]) == (member.pk, 158, 2, None)
    assert [(e["kind"], e["points"], e["balance_after"], e["reference"]) for e in body["results"]] == [
        ("redeem", -100, 158, "M1"),
        ("earn", 258, 258, "POS-1"),
    ]


def test_the_ledger_comes_in_pages(call_erp, key, member):
    for n in range(5):
        earn_points(member=member, reference=f"POS-{n}", lines=[(None, 100)])

    first = call_erp(_points_url(member), key, page_size=2).json()
    last = call_erp(_points_url(member), key, page_size=2, page=3).json()

    assert (first["count"], len(first["results"]), first["previous"]) == (5, 2, None)
    assert "page=2" in first["next"]
    assert [e["reference"] for e in last["results"]] == ["POS-0"]
    assert last["next"] is None


def test_a_page_size_beyond_the_cap_is_refused_with_422(call_erp, key, member):
    response = call_erp(_points_url(member), key, page_size=201)

    assert response.status_code == 422
    assert response.json()["code"] == "page_size_too_large"
    assert "page_size" in response.json()["details"]


def test_the_cap_itself_is_accepted(call_erp, key, member):
    assert call_erp(_points_url(member), key, page_size=200).status_code == 200


@pytest.mark.parametrize("size", ["0", "-1", "ten"])
def test_a_page_size_that_is_no_positive_number_is_400(call_erp, key, member, size):
    response = call_erp(_points_url(member), key, page_size=size)

    assert response.status_code == 400
    assert response.json()["details"] == {"page_size": [size]}


def test_a_page_past_the_end_is_404(call_erp, key, member):
    response = call_erp(_points_url(member), key, page=9)

    assert response.status_code == 404


@pytest.mark.parametrize("member_id", [0, 987654321, 2**63, 10**30])
def test_a_member_that_does_not_exist_is_404_whatever_the_number(call_erp, key, member_id):
    response = call_erp(f"/api/v1/erp/members/{member_id}/points/", key)

    assert response.status_code == 404
    assert response.json()["code"] == "member_not_found"
