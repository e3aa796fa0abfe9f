"""HQ's member reports: follow-up completion by store and guide, and a member's timeline."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members.models import FollowUp
from members.selectors import follow_up_completion
from members.services import adjust_points, record_purchase
from tests.factories import HQUserFactory, MemberFactory, ProductFactory, StaffFactory, StoreFactory

pytestmark = pytest.mark.django_db


def _call(member, store, *, days_ago, status="open", outcome="", guide=None, kind="replenish"):
    return FollowUp.objects.create(
        member=member,
        store=store,
        guide=guide,
        product=ProductFactory(),
        kind=kind,
        due_on=timezone.localdate() - timedelta(days=days_ago),
        status=status,
        outcome=outcome,
        source_reference=f"R{FollowUp.objects.count()}",
    )


@pytest.fixture
def calls():
    north, south = StoreFactory(code="N1", name="北店"), StoreFactory(code="S1", name="南店")
    guide = StaffFactory(store=south, role="guide", display_name="小王", staff_code="G-WANG")
    member = MemberFactory()
    _call(member, north, days_ago=5, status="done", outcome="reached")
    _call(member, north, days_ago=4, status="done", outcome="ordered")
    _call(member, north, days_ago=20, status="missed")
    _call(member, north, days_ago=2)  # overdue
    _call(member, north, days_ago=-3)  # upcoming: not yet owed
    _call(member, north, days_ago=3, status="cancelled")  # moved by a new purchase: not counted
    _call(member, north, days_ago=90, status="done", outcome="reached")  # before the period
    _call(member, south, days_ago=1, status="done", outcome="no_answer", guide=guide)
    _call(member, south, days_ago=1)  # the store's own call, no guide
    return north, south, guide


def test_completion_per_store_counts_made_missed_and_overdue_calls_and_leaves_out_cancelled_ones(calls):
    north, south, _guide = calls
    today = timezone.localdate()

    rows = follow_up_completion(since=today - timedelta(days=30), until=today + timedelta(days=7), by="store")

    by_code = {row["store__code"]: row for row in rows}
    assert {k: by_code["N1"][k] for k in ("due", "made", "missed", "overdue", "upcoming", "ordered")} == {
        "due": 5,
        "made": 2,
        "missed": 1,
        "overdue": 1,
        "upcoming": 1,
        "ordered": 1,
    }
    assert by_code["N1"]["rate"] == 50.0  # 2 made of 4 owed
    assert by_code["S1"]["rate"] == 50.0  # the guide's call made, the store's own overdue


def test_completion_per_guide_separates_a_guide_s_calls_from_the_store_s_own(calls):
    _north, south, guide = calls
    today = timezone.localdate()

    rows = follow_up_completion(since=today - timedelta(days=30), until=today, by="guide")

    south_rows = {row["guide_id"]: row for row in rows if row["store_id"] == south.pk}
    assert south_rows[guide.pk]["rate"] == 100.0
    assert south_rows[None]["rate"] == 0.0


def test_hq_opens_the_completion_report_and_a_bad_period_is_a_form_error(client, calls):
    client.force_login(HQUserFactory())
    today = timezone.localdate()

    page = client.get(
        "/admin/members/followup/completion/",
        {"since": (today - timedelta(days=30)).isoformat(), "until": today.isoformat(), "by": "guide"},
    )

    assert page.status_code == 200
    html = page.content.decode()
    assert "小王 (G-WANG)" in html and "北店" in html and "50.0%" in html
    backwards = client.get("/admin/members/followup/completion/", {"since": "2026-02-01", "until": "2026-01-01"})
    assert backwards.status_code == 200
    assert backwards.context["rows"] == [] and backwards.context["form"].errors
    assert client.get("/admin/members/followup/completion/", {"since": "soon"}).status_code == 200


def test_a_clerk_without_admin_rights_cannot_open_the_report(client, calls):
    clerk = StaffFactory(store=calls[0])
    client.force_login(clerk.user)
    answer = client.get("/admin/members/followup/completion/")
    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]


def test_the_member_page_shows_the_member_s_timeline(client):
    store = StoreFactory(code="HZ9")
    member = MemberFactory()
    record_purchase(
        member=member, store=store, channel="pos", reference="POS-778", amount_fen=12345, purchased_at=timezone.now()
    )
    adjust_points(member=member, points=50, note="生日礼")
    client.force_login(HQUserFactory())

    html = client.get(f"/admin/members/member/{member.pk}/change/").content.decode()

    assert 'class="member-timeline"' in html
    assert "POS-778 · HZ9 · ¥123.45" in html
    assert "+50" in html
    assert f"?member__id__exact={member.pk}" in html
