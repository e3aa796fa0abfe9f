"""The CRM writes members by mobile number, member by member: created, updated, unchanged or rejected."""

import pytest
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from integrations.models import Scope
from members.crm import CrmMember, upsert_member_from_crm
from members.models import Member
from members.services import adjust_points
from o2o.events import subscribe, unsubscribe
from orders.services import close_account
from tests.concurrency import run_at_once
from tests.factories import MemberFactory, StaffFactory, StoreFactory
from tests.integrations.erp_writes import post_erp

pytestmark = pytest.mark.django_db

UPSERT = reverse("erp:member-upsert")


@pytest.fixture
def crm(api_client, erp_client):
    """POST to the upsert with a members:write key."""
    _client, key = erp_client(Scope.MEMBERS_WRITE)

    def post(members):
        return post_erp(api_client, UPSERT, {"members": members}, key)

    return post


@pytest.fixture
def registered():
    """Every `member.registered` published, as its payload."""
    seen = []

    def handler(**payload):
        seen.append(payload)

    subscribe("member.registered", handler, when="transaction")
    yield seen
    unsubscribe("member.registered", handler)


def test_each_member_is_answered_in_the_order_sent(crm):
    known = MemberFactory(phone="+8613800138000", nickname="王芳", card_number="812345678901")
    MemberFactory(phone="+8613700137000", nickname="李娜")

    response = crm(
        [
            {"phone": "138 0013 8000", "nickname": "王芳芳"},
            {"phone": "+86-139-0013-9000", "nickname": "陈静"},
            {"phone": "13700137000", "nickname": "李娜"},
            {"phone": "12345", "nickname": "?"},
        ]
    )

    assert response.status_code == 200, response.content
    body = response.json()
    created = Member.objects.get(phone="+8613900139000")
    assert (body["created"], body["updated"], body["unchanged"], body["rejected"]) == (1, 1, 1, 1)
    assert [(r["index"], r["phone"], r["result"], r["member_id"]) for r in body["results"]] == [
        (0, "+8613800138000", "updated", known.pk),
        (1, "+8613900139000", "created", created.pk),
        (2, "+8613700137000", "unchanged", Member.objects.get(phone="+8613700137000").pk),
        (3, "12345", "rejected", None),
    ]
    assert body["results"][0]["card_number"] == "812345678901"
    assert body["results"][3]["code"] == "invalid_phone"
    known.refresh_from_db()
    assert known.nickname == "王芳芳"
    assert created.nickname == "陈静"


def test_sending_the_same_batch_again_changes_nothing(crm):
    batch = [{"phone": "13900139000", "nickname": "陈静"}, {"phone": "13900139001", "do_not_call": True}]
    crm(batch)
    members = list(Member.objects.order_by("pk").values())

    again = crm(batch).json()

    assert [r["result"] for r in again["results"]] == ["unchanged", "unchanged"]
    assert list(Member.objects.order_by("pk").values()) == members


def test_the_crm_never_touches_points_referrals_home_store_or_consent(crm):
    store = StoreFactory(code="WS")
    referrer = MemberFactory()
    guide = StaffFactory(store=store)
    member = MemberFactory(
        phone="+8613800138000",
        home_store=store,
        home_store_source="store_qr",
        referrer=referrer,
        guide=guide,
        marketing_consent=True,
        marketing_consent_at=timezone.now(),
    )
    adjust_points(member=member, points=300, note="welcome")
    member.refresh_from_db()
    fields = ("points_balance", "referrer_id", "guide_id", "home_store_id", "marketing_consent", "tier")
    before = {name: getattr(member, name) for name in fields}

    response = crm(
        [
            {
                "phone": "13800138000",
                "nickname": "王芳",
                # Fields the CRM does not own are not read at all
                "points_balance": 0,
                "marketing_consent": False,
                "referrer": None,
                "home_store": "GD",
            }
        ]
    )

    assert response.json()["results"][0]["result"] == "updated"
    member.refresh_from_db()
    assert {name: getattr(member, name) for name in fields} == before
    assert member.nickname == "王芳"


def test_do_not_call_can_be_raised_by_the_crm_but_not_lowered(crm):
    quiet = MemberFactory(phone="+8613800138000", do_not_call=True)
    open_to_calls = MemberFactory(phone="+8613800138001", do_not_call=False)

    body = crm([{"phone": "13800138000", "do_not_call": False}, {"phone": "13800138001", "do_not_call": True}]).json()

    assert [r["result"] for r in body["results"]] == ["unchanged", "updated"]
    quiet.refresh_from_db()
    open_to_calls.refresh_from_db()
    assert quiet.do_not_call is True
    assert open_to_calls.do_not_call is True


def test_a_closed_account_is_never_recreated_by_the_crm(crm):
    member = MemberFactory(phone="+8613800138000", nickname="王芳")
    close_account(member=member)
    members_before = Member.objects.count()

    body = crm([{"phone": "138 0013 8000", "nickname": "王芳"}, {"phone": "13900139000"}]).json()

    first, second = body["results"]
    assert (first["result"], first["code"], first["member_id"]) == ("rejected", "member_closed", None)
    assert second["result"] == "created"  # the others in the batch go on
    assert Member.objects.count() == members_before + 1
    assert not Member.objects.filter(phone="+8613800138000").exists()
    # The closed row holds no number, only the digest that recognises it
    member.refresh_from_db()
    assert member.phone is None
    assert member.closed_phone_digest and "13800138000" not in member.closed_phone_digest


def test_a_member_who_closed_and_came_back_by_themselves_is_updated(crm):
    old = MemberFactory(phone="+8613800138000")
    close_account(member=old)
    again = MemberFactory(phone="+8613800138000")  # signed up again through WeChat and bound the number

    body = crm([{"phone": "13800138000", "nickname": "回来了"}]).json()

    assert (body["results"][0]["result"], body["results"][0]["member_id"]) == ("updated", again.pk)


def test_a_number_that_is_not_a_mobile_is_rejected_alone_with_the_reason(crm):
    body = crm(
        [
            {"phone": "1380013800"},  # ten digits
            {"phone": "23800138000"},  # not a mobile prefix
            {"phone": "13800138001", "nickname": "ok"},
        ]
    ).json()

    assert [(r["result"], r.get("code")) for r in body["results"]] == [
        ("rejected", "invalid_phone"),
        ("rejected", "invalid_phone"),
        ("created", None),
    ]
    assert list(Member.objects.values_list("phone", flat=True)) == ["+8613800138001"]


@pytest.mark.parametrize(
    "malformed",
    [
        {"nickname": "no phone"},
        {"phone": "13800138000", "nickname": "x" * 65},
        "not an object",
        {"phone": 13800138000},
        {"phone": "13800138000", "do_not_call": "yes"},
    ],
    ids=["no phone", "nickname too long", "not an object", "phone a number", "do_not_call a string"],
)
def test_a_malformed_member_refuses_the_whole_batch_and_writes_nothing(crm, malformed):
    response = crm([{"phone": "13800138001", "nickname": "ok"}, malformed])

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "members" in body["details"]
    assert not Member.objects.exists()


def test_more_than_500_members_is_refused_whole(crm):
    response = crm([{"phone": f"139{n:08d}"} for n in range(501)])

    assert response.status_code == 422
    assert response.json()["code"] == "batch_too_large"
    assert not Member.objects.exists()


def test_an_empty_or_missing_list_is_400(crm):
    assert crm([]).status_code == 400


def test_a_member_created_by_the_crm_is_registered_without_referrer_or_guide(crm, registered):
    body = crm([{"phone": "13900139000", "nickname": "陈静"}]).json()

    member_id = body["results"][0]["member_id"]
    assert registered == [{"member_id": member_id, "referrer_id": None, "guide_id": None}]
    member = Member.objects.get(pk=member_id)
    assert (member.openid, member.home_store_id, member.points_balance, member.marketing_consent) == (
        None,
        None,
        0,
        False,
    )


def test_an_update_publishes_no_registration(crm, registered):
    MemberFactory(phone="+8613900139000")

    crm([{"phone": "13900139000", "nickname": "陈静"}])

    assert registered == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_number_sent_twice_at_once_makes_one_member():
    def send():
        try:
            return upsert_member_from_crm(item=CrmMember(phone="13900139000", nickname="陈静")).outcome
        finally:
            connections.close_all()

    results, raised = run_at_once([send, send])

    assert not raised
    assert sorted(results) in (["created", "unchanged"], ["created", "updated"])
    assert Member.objects.filter(phone="+8613900139000").count() == 1
