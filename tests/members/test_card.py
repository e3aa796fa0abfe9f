"""The member card: a code that changes every minute, accepted at the till only while it is fresh."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from members.services import card_code, earn_points, member_by_card_code
from members.session import MEMBER_SESSION_KEY
from o2o.errors import ApplicationError
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def _signed_in(client, member):
    session = client.session
    session[MEMBER_SESSION_KEY] = member.pk
    session.save()
    return client


def test_the_till_finds_the_member_by_this_minute_s_code():
    member = MemberFactory()
    now = timezone.now()

    shown = card_code(member=member, at=now)

    assert member_by_card_code(text=shown.text, at=now) == member
    assert member_by_card_code(text=f"{shown.card_number[:4]} {shown.card_number[4:]} {shown.code}", at=now) == member


def test_a_code_scanned_within_the_next_minute_is_still_accepted():
    member = MemberFactory()
    now = timezone.now()
    shown = card_code(member=member, at=now)

    assert member_by_card_code(text=shown.text, at=now + timedelta(seconds=60)) == member


@pytest.mark.parametrize("later", [timedelta(minutes=2), timedelta(hours=1), timedelta(minutes=-2)])
def test_a_stale_code_such_as_a_screenshot_is_refused(later):
    member = MemberFactory()
    now = timezone.now().replace(second=0, microsecond=0)
    shown = card_code(member=member, at=now)

    with pytest.raises(ApplicationError) as refused:
        member_by_card_code(text=shown.text, at=now + later)
    assert refused.value.code == "stale_card_code"
    assert refused.value.status == 404


def test_the_code_changes_every_minute_and_differs_between_members():
    one, two = MemberFactory(), MemberFactory()
    now = timezone.now().replace(second=0, microsecond=0)

    codes = {card_code(member=one, at=now + timedelta(minutes=m)).code for m in range(5)}
    assert len(codes) >= 4  # six digits: a repeat within five minutes is a one-in-a-hundred-thousand event
    assert card_code(member=one, at=now).card_number != card_code(member=two, at=now).card_number


def test_another_member_s_number_with_this_code_is_refused():
    one, two = MemberFactory(), MemberFactory()
    now = timezone.now()
    mine, theirs = card_code(member=one, at=now), card_code(member=two, at=now)

    with pytest.raises(ApplicationError) as refused:
        member_by_card_code(text=theirs.card_number + mine.code, at=now)
    assert refused.value.code == "stale_card_code"


@pytest.mark.parametrize("text", ["", "abc", "12345", "8" * 19, "8" * 12 + "12345x"])
def test_what_cannot_be_a_card_code_is_refused_as_such(text):
    with pytest.raises(ApplicationError) as refused:
        member_by_card_code(text=text)
    assert refused.value.code == "bad_card_code"


def test_the_member_center_shows_the_card_and_the_points(client):
    member = MemberFactory()
    earn_points(member=member, reference="A1", lines=[(None, 12800)])

    with time_machine.travel(timezone.now(), tick=False):  # one minute for the page and the check
        response = _signed_in(client, member).get("/mall/me/")
        member.refresh_from_db()
        expected_code = card_code(member=member).code

    assert response.status_code == 200
    html = response.content.decode()
    assert member.card_number[:4] in html and "<svg" in html
    assert response.context["points"] == 128
    assert [entry.reference for entry in response.context["history"]] == ["A1"]
    assert response.context["card_code"] == expected_code


def test_the_card_alone_refreshes_and_the_center_needs_a_member(client):
    assert client.get("/mall/me/").status_code == 302
    member = MemberFactory()
    response = _signed_in(client, member).get("/mall/me/card/")
    assert response.status_code == 200
    assert 'hx-trigger="every' in response.content.decode()
