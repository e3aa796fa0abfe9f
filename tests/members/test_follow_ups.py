"""Opportunity windows: a first-use check after a first purchase, a replenishment call before it runs out."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members.models import FollowUp, LoyaltySettings
from members.selectors import forget_loyalty_settings
from members.services import open_follow_ups, record_follow_up_outcome, refresh_follow_ups
from o2o.errors import ApplicationError
from tests.factories import MemberFactory, ProductFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _windows():
    LoyaltySettings.objects.update_or_create(
        pk=1, defaults={"first_use_check_after_days": 3, "replenish_call_before_days": 5}
    )
    forget_loyalty_settings()


@pytest.fixture
def home():
    return StoreFactory(code="WS")


@pytest.fixture
def formula():
    return ProductFactory(name="飞鹤星飞帆", days_per_unit=7)  # a can lasts about a week


@pytest.fixture
def member(home):
    return MemberFactory(home_store=home, home_store_source="store_qr")


def _open(member, store, product, quantity, *, ref, days_later=0):
    return open_follow_ups(
        member=member,
        store=store,
        reference=ref,
        lines=[(product.pk, quantity)],
        at=timezone.now() + timedelta(days=days_later),
    )


def test_a_first_purchase_opens_a_first_use_check_and_a_replenishment_call(member, home, formula):
    today = timezone.localdate()

    calls = _open(member, home, formula, 3, ref="A1")

    first_use, replenish = sorted(calls, key=lambda c: c.kind)
    assert (first_use.kind, first_use.due_on) == ("first_use", today + timedelta(days=3))
    assert replenish.runs_out_on == today + timedelta(days=21)  # 3 cans × 7 days
    assert replenish.due_on == today + timedelta(days=16)  # five days before
    assert {c.store for c in calls} == {home}


def test_a_repeat_purchase_moves_the_replenishment_call_and_opens_no_second_first_use_check(member, home, formula):
    today = timezone.localdate()
    _open(member, home, formula, 3, ref="A1")

    _open(member, home, formula, 2, ref="A2", days_later=10)

    open_calls = FollowUp.objects.filter(member=member, status="open")
    assert open_calls.filter(kind="first_use").count() == 1
    [replenish] = open_calls.filter(kind="replenish")
    # 11 days of supply were left on day 10; two more cans add 14
    assert replenish.runs_out_on == today + timedelta(days=21 + 14)
    assert replenish.due_on == replenish.runs_out_on - timedelta(days=5)
    assert FollowUp.objects.get(member=member, kind="replenish", source_reference="A1").status == "cancelled"


def test_a_purchase_after_the_supply_ran_out_counts_from_the_day_of_purchase(member, home, formula):
    _open(member, home, formula, 1, ref="A1")
    _open(member, home, formula, 1, ref="A2", days_later=30)

    replenish = FollowUp.objects.get(member=member, status="open", kind="replenish")
    assert replenish.runs_out_on == timezone.localdate() + timedelta(days=37)


def test_the_same_purchase_reported_twice_opens_its_calls_once(member, home, formula):
    _open(member, home, formula, 3, ref="A1")
    assert _open(member, home, formula, 3, ref="A1") == []
    assert FollowUp.objects.filter(member=member).count() == 2


def test_products_without_a_consumption_rate_open_nothing(member, home):
    toy = ProductFactory(days_per_unit=None)
    assert _open(member, home, toy, 1, ref="A1") == []


def test_the_call_goes_to_the_members_home_store_else_where_they_bought(formula, home):
    elsewhere = StoreFactory(code="BJ")
    walk_in = MemberFactory()
    calls = _open(walk_in, elsewhere, formula, 1, ref="B1")
    assert {c.store for c in calls} == {elsewhere}


def test_do_not_call_again_closes_every_open_call_and_opens_no_more(member, home, formula):
    clerk = StaffFactory(store=home, user=UserFactory())
    calls = _open(member, home, formula, 3, ref="A1")

    record_follow_up_outcome(staff=clerk, follow_up_id=calls[0].pk, outcome="do_not_call")

    member.refresh_from_db()
    assert member.do_not_call
    assert not FollowUp.objects.filter(member=member, status="open").exists()
    assert _open(member, home, formula, 1, ref="A2", days_later=5) == []


def test_a_clerk_records_only_their_own_store_s_calls_once_with_a_known_outcome(member, home, formula):
    mine, other = StaffFactory(store=home, user=UserFactory()), StaffFactory(store=StoreFactory(), user=UserFactory())
    call = _open(member, home, formula, 1, ref="A1")[0]

    with pytest.raises(ApplicationError) as refused:
        record_follow_up_outcome(staff=other, follow_up_id=call.pk, outcome="reached")
    assert refused.value.status == 404
    with pytest.raises(ApplicationError) as refused:
        record_follow_up_outcome(staff=mine, follow_up_id=call.pk, outcome="maybe")
    assert refused.value.code == "invalid_outcome"

    done = record_follow_up_outcome(staff=mine, follow_up_id=call.pk, outcome="reached", note="奶粉喝得惯")
    assert (done.status, done.outcome, done.done_by) == ("done", "reached", mine.user)
    with pytest.raises(ApplicationError) as refused:
        record_follow_up_outcome(staff=mine, follow_up_id=call.pk, outcome="ordered")
    assert refused.value.code == "follow_up_closed"


def test_the_console_lists_today_s_calls_of_the_store_only_and_records_an_outcome(client, member, home, formula):
    clerk = StaffFactory(store=home, user=UserFactory())
    other = MemberFactory(home_store=StoreFactory(code="XS"), home_store_source="store_qr")
    _open(member, home, formula, 1, ref="A1", days_later=-3)  # the first-use check is due today
    _open(other, home, formula, 1, ref="B1", days_later=-3)  # due, but at the other member's home store
    client.force_login(clerk.user)

    page = client.get("/console/calls/")

    assert page.status_code == 200
    # both of the member's calls are due (the week's supply runs out in four days); none of the other's
    assert [c.member for c in page.context["calls"]] == [member, member]
    call = page.context["calls"][0]
    foreign = FollowUp.objects.filter(member=other).first()
    assert client.get(f"/console/calls/{foreign.pk}/").status_code == 404
    assert client.post(f"/console/calls/{foreign.pk}/", {"outcome": "reached"}).status_code == 404
    detail = client.get(f"/console/calls/{call.pk}/")
    assert member.phone in detail.content.decode()

    client.post(f"/console/calls/{call.pk}/", {"outcome": "no_answer", "note": ""})

    call.refresh_from_db()
    assert (call.status, call.outcome) == ("done", "no_answer")
    assert FollowUp.objects.get(pk=foreign.pk).status == "open"


def test_a_member_brought_by_a_guide_is_called_by_the_guide_at_the_guide_s_store(formula, home):
    guide_store = StoreFactory(code="GS")
    guide = StaffFactory(store=guide_store, role="guide")
    member = MemberFactory(home_store=home, home_store_source="store_qr", guide=guide)

    calls = _open(member, home, formula, 1, ref="G1")

    assert {(c.store, c.guide) for c in calls} == {(guide_store, guide)}


def test_a_call_left_too_long_is_missed_by_the_nightly_pass(member, home, formula):
    LoyaltySettings.objects.filter(pk=1).update(follow_up_missed_after_days=10)
    forget_loyalty_settings()
    first_use, replenish = _open(member, home, formula, 1, ref="A1")  # due in 3 and 2 days

    assert refresh_follow_ups(at=timezone.now() + timedelta(days=12))["missed"] == 0  # 10 days late: not yet
    assert refresh_follow_ups(at=timezone.now() + timedelta(days=13))["missed"] == 1  # replenish: 11 days late
    assert FollowUp.objects.get(pk=replenish.pk).status == "missed"
    assert FollowUp.objects.get(pk=first_use.pk).status == "open"
    assert refresh_follow_ups(at=timezone.now() + timedelta(days=14))["missed"] == 1
    assert FollowUp.objects.get(pk=first_use.pk).status == "missed"


def test_open_calls_follow_the_guide_and_fall_back_to_the_home_store_when_the_guide_leaves(member, home, formula):
    calls = _open(member, home, formula, 1, ref="A1")
    guide = StaffFactory(store=StoreFactory(code="GS"), role="guide")
    member.guide = guide
    member.save(update_fields=["guide"])
    done = calls[0]
    clerk = StaffFactory(store=home)
    record_follow_up_outcome(staff=clerk, follow_up_id=done.pk, outcome="reached")

    assert refresh_follow_ups()["moved"] == 1
    moved = FollowUp.objects.get(pk=calls[1].pk)
    assert (moved.store, moved.guide) == (guide.store, guide)
    assert FollowUp.objects.get(pk=done.pk).store == home  # a recorded call stays where it was made

    guide.is_active = False
    guide.save(update_fields=["is_active"])
    refresh_follow_ups()

    back = FollowUp.objects.get(pk=calls[1].pk)
    assert (back.store, back.guide) == (home, None)
    assert refresh_follow_ups() == {"missed": 0, "moved": 0, "unguided": 0}


def test_a_store_manager_sees_only_their_own_store_s_calls(client, member, home, formula):
    ours = _open(member, home, formula, 1, ref="A1", days_later=-3)
    elsewhere = StoreFactory(code="XS")
    theirs_member = MemberFactory(home_store=elsewhere, home_store_source="store_qr")
    theirs = _open(theirs_member, elsewhere, formula, 1, ref="B1", days_later=-3)
    manager = StaffFactory(store=elsewhere, role="manager")
    client.force_login(manager.user)

    listed = client.get("/console/calls/").context["calls"]

    assert {c.pk for c in listed} == {c.pk for c in theirs}
    for call in ours:
        assert client.get(f"/console/calls/{call.pk}/").status_code == 404
        assert client.post(f"/console/calls/{call.pk}/", {"outcome": "reached"}).status_code == 404
    assert member.phone not in client.get("/console/calls/").content.decode()
    assert not FollowUp.objects.filter(member=member).exclude(status="open").exists()
