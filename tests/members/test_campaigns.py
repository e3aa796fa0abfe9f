"""Segments and campaigns: who a segment holds, and who a campaign may message, how often, and what is logged."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.vendors.sms import LoggingSmsBackend, SmsBackend, SmsError
from members import campaigns, tasks
from members.campaigns import (
    cancel_campaign,
    clean_campaign,
    create_campaign,
    create_segment,
    queue_campaign,
    send_campaign_batch,
    update_segment,
)
from members.models import Campaign, CampaignEvent, CampaignMessage, CampaignSettings, Member, Segment, Tier
from members.segments import category_family, describe_segment, segment_count, segment_members, segment_reach
from members.services import erase_member
from o2o.errors import ApplicationError
from tests.concurrency import run_at_once
from tests.factories import (
    CampaignFactory,
    CategoryFactory,
    MemberFactory,
    ProductFactory,
    PurchaseFactory,
    PurchaseLineFactory,
    SegmentFactory,
    StaffFactory,
    StoreFactory,
    UserFactory,
)
from tests.isolation import rolled_back

pytestmark = pytest.mark.django_db

MANAGER = "manager"


@pytest.fixture(autouse=True)
def _sms_outbox(settings):
    """SMS through the development backend, whose outbox each test reads from empty."""
    settings.SMS_BACKEND = "integrations.vendors.sms.LoggingSmsBackend"
    LoggingSmsBackend.clear()
    yield
    LoggingSmsBackend.clear()


def _cap(max_messages: int, per_days: int) -> None:
    CampaignSettings.objects.update_or_create(pk=1, defaults={"max_messages": max_messages, "per_days": per_days})
    from members.selectors import forget_campaign_settings

    forget_campaign_settings()


def _texted() -> list[str]:
    """The phones the SMS backend sent to, in order."""
    return [sms.phone for sms in LoggingSmsBackend.outbox]


def _fan(**fields) -> Member:
    """A member who agreed to marketing messages and has a mobile number."""
    return MemberFactory(marketing_consent=True, **fields)


def _queued(segment, **message) -> Campaign:
    """An SMS campaign to the segment, queued (its task runs only when a test calls it)."""
    message = {"name": "周末活动", "channel": "sms", "body": "本周末奶粉满300减30", **message}
    campaign = create_campaign(segment=segment, **message)
    return queue_campaign(campaign_id=campaign.pk)


def _send_all(campaign: Campaign) -> Campaign:
    tasks.send_campaign(campaign.pk)
    campaign.refresh_from_db()
    return campaign


def _log(campaign: Campaign) -> dict[int, str]:
    return dict(CampaignMessage.objects.filter(campaign=campaign).values_list("member_id", "status"))


# --- segments: each filter selects exactly the right members ----------------------------------------

DAY = timedelta(days=1)

population = st.lists(
    st.fixed_dictionaries(
        {
            "tier": st.sampled_from(Tier.values),
            "home": st.sampled_from([None, 0, 1, 2]),
            "points": st.integers(min_value=-50, max_value=500),
            "closed": st.booleans(),
            # purchases: (days ago, products bought as indexes into the catalog)
            "purchases": st.lists(
                st.tuples(st.integers(min_value=0, max_value=120), st.lists(st.integers(0, 3), max_size=2)),
                max_size=3,
            ),
        }
    ),
    min_size=1,
    max_size=8,
)
filters = st.fixed_dictionaries(
    {
        "owner": st.sampled_from([None, None, 0, 1]),
        "home": st.sampled_from([None, 0, 1, 2]),
        "tiers": st.lists(st.sampled_from(Tier.values), unique=True, max_size=3),
        "within": st.one_of(st.none(), st.integers(min_value=1, max_value=120)),
        "lapsed": st.one_of(st.none(), st.integers(min_value=1, max_value=120)),
        "product": st.one_of(st.none(), st.integers(0, 3)),
        "category": st.one_of(st.none(), st.integers(0, 2)),
        "min_points": st.one_of(st.none(), st.integers(min_value=-50, max_value=500)),
        "max_points": st.one_of(st.none(), st.integers(min_value=-50, max_value=500)),
    }
)


def _expected(spec, members, families, product_category) -> set[int]:
    """The segment's filters as plain Python over the generated members."""
    chosen = set()
    for member, person in members:
        days = [ago for ago, _products in person["purchases"]]
        bought = {product for _ago, products in person["purchases"] for product in products}
        if person["closed"]:
            continue
        if spec["owner"] is not None:
            if person["home"] != spec["owner"]:
                continue
        elif spec["home"] is not None and person["home"] != spec["home"]:
            continue
        if spec["tiers"] and person["tier"] not in spec["tiers"]:
            continue
        if spec["min_points"] is not None and person["points"] < spec["min_points"]:
            continue
        if spec["max_points"] is not None and person["points"] > spec["max_points"]:
            continue
        if spec["within"] is not None and not any(ago <= spec["within"] for ago in days):
            continue
        if spec["lapsed"] is not None and not (days and min(days) > spec["lapsed"]):
            continue
        if spec["product"] is not None and spec["product"] not in bought:
            continue
        if spec["category"] is not None and not any(product_category[p] in families[spec["category"]] for p in bought):
            continue
        chosen.add(member.pk)
    return chosen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=population, spec=filters)
def test_a_segment_holds_exactly_the_members_its_filters_describe(people, spec):
    with rolled_back():
        # Given three stores, a catalog whose categories nest (baby → formula → stage 3; care apart),
        at = timezone.now()
        stores = [StoreFactory() for _ in range(3)]
        baby = CategoryFactory()
        formula = CategoryFactory(parent=baby)
        stage3 = CategoryFactory(parent=formula)
        care = CategoryFactory()
        categories = [baby, formula, care]
        families = [{baby.pk, formula.pk, stage3.pk}, {formula.pk, stage3.pk}, {care.pk}]
        catalog = [ProductFactory(category=c) for c in (baby, formula, stage3, care)]
        product_category = [p.category_id for p in catalog]
        # and members with random tiers, home stores, points, closed accounts and purchases
        members = []
        for person in people:
            home = stores[person["home"]] if person["home"] is not None else None
            member = MemberFactory(
                tier=person["tier"],
                home_store=home,
                home_store_source="store_qr" if home else "",
                points_balance=person["points"],
                closed_at=at if person["closed"] else None,
                is_active=not person["closed"],
            )
            for ago, products in person["purchases"]:
                purchase = PurchaseFactory(member=member, store=stores[0], purchased_at=at - ago * DAY)
                for index in products:
                    PurchaseLineFactory(purchase=purchase, product=catalog[index])
            members.append((member, person))
        owner = stores[spec["owner"]] if spec["owner"] is not None else None
        segment = Segment(
            name="random",
            store=owner,
            home_store=owner or (stores[spec["home"]] if spec["home"] is not None else None),
            tiers=spec["tiers"],
            bought_within_days=spec["within"],
            not_bought_for_days=spec["lapsed"],
            product=catalog[spec["product"]] if spec["product"] is not None else None,
            category=categories[spec["category"]] if spec["category"] is not None else None,
            min_points=spec["min_points"],
            max_points=spec["max_points"],
        )

        # When the segment is evaluated
        selected = set(segment_members(segment, at=at).values_list("pk", flat=True))

        # Then it holds exactly the members the filters describe
        assert selected == _expected(spec, members, families, product_category)
        assert segment_count(segment, at=at) == len(selected)


def test_a_category_includes_its_subcategories_however_deep():
    baby = CategoryFactory()
    formula = CategoryFactory(parent=baby)
    stage3 = CategoryFactory(parent=formula)
    CategoryFactory()  # unrelated

    assert category_family(baby.pk) == {baby.pk, formula.pk, stage3.pk}
    assert category_family(stage3.pk) == {stage3.pk}


def test_recent_and_lapsed_buyers_are_told_apart_by_their_last_purchase():
    at = timezone.now()
    recent, lapsed, never = MemberFactory(), MemberFactory(), MemberFactory()
    PurchaseFactory(member=recent, purchased_at=at - 3 * DAY)
    PurchaseFactory(member=recent, purchased_at=at - 90 * DAY)
    PurchaseFactory(member=lapsed, purchased_at=at - 45 * DAY)

    bought_lately = SegmentFactory(bought_within_days=30)
    not_since = SegmentFactory(not_bought_for_days=30)
    between = SegmentFactory(bought_within_days=60, not_bought_for_days=30)

    assert set(segment_members(bought_lately, at=at)) == {recent}
    assert set(segment_members(not_since, at=at)) == {lapsed}  # someone who never bought has not lapsed
    assert set(segment_members(between, at=at)) == {lapsed}
    assert never not in segment_members(SegmentFactory(not_bought_for_days=1), at=at)


def test_the_reach_counts_members_who_agreed_and_have_an_address_on_the_channel():
    segment = SegmentFactory()
    _fan()
    _fan(phone=None)  # WeChat only
    _fan(openid=None)  # SMS only
    MemberFactory(marketing_consent=False)

    assert segment_reach(segment, channel="sms") == {"members": 4, "consenting": 3, "reachable": 2}
    assert segment_reach(segment, channel="wechat") == {"members": 4, "consenting": 3, "reachable": 2}


# --- segments: who may define what -----------------------------------------------------------------


@pytest.fixture
def ws():
    return StoreFactory(code="WS", name="文三路店")


@pytest.fixture
def gd():
    return StoreFactory(code="GD", name="古墩路店")


@pytest.fixture
def ws_manager(ws):
    return StaffFactory(store=ws, role=MANAGER, user=UserFactory(username="ws-manager"))


def test_a_manager_s_segment_is_their_store_s_and_reaches_only_their_store_s_members(ws, gd, ws_manager):
    own = _fan(home_store=ws, home_store_source="store_qr")
    _fan(home_store=gd, home_store_source="store_qr")
    _fan()  # no home store

    segment = create_segment(staff=ws_manager, user=ws_manager.user, name="老顾客")

    assert (segment.store, segment.home_store, segment.created_by) == (ws, ws, ws_manager.user)
    assert list(segment_members(segment)) == [own]
    assert describe_segment(segment)[0] == "Members of 文三路店"


def test_a_manager_cannot_point_a_segment_at_another_store_and_nothing_is_written(gd, ws_manager):
    with pytest.raises(ApplicationError) as refused:
        create_segment(staff=ws_manager, name="别家", home_store=gd)

    assert refused.value.code == "invalid_segment"
    assert list(refused.value.details) == ["home_store"]
    assert not Segment.objects.exists()


def test_a_clerk_cannot_define_segments(ws):
    clerk = StaffFactory(store=ws, role="clerk")

    with pytest.raises(ApplicationError) as refused:
        create_segment(staff=clerk, name="x")

    assert (refused.value.code, refused.value.status) == ("managers_only", 403)


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"name": " "}, "name"),
        ({"tiers": ["gold"]}, "tiers"),
        ({"tiers": "loyal"}, "tiers"),
        ({"bought_within_days": 0}, "bought_within_days"),
        ({"not_bought_for_days": 99999}, "not_bought_for_days"),
        ({"bought_within_days": 30, "not_bought_for_days": 30}, "bought_within_days"),
        ({"min_points": 100, "max_points": 10}, "max_points"),
        ({"min_points": "many"}, "min_points"),
        ({"max_points": 10**12}, "max_points"),  # beyond the database's integer
    ],
)
def test_a_segment_with_bad_filters_is_refused_field_by_field(fields, bad):
    with pytest.raises(ApplicationError) as refused:
        create_segment(**{"name": "好名字", **fields})

    assert refused.value.code == "invalid_segment"
    assert bad in refused.value.details
    assert not Segment.objects.exists()


def test_hq_s_segment_keeps_its_tiers_in_order_once_each_as_a_json_list():
    segment = create_segment(name="忠诚", tiers=["loyal", "ordinary", "loyal"])

    segment.refresh_from_db()
    assert segment.tiers == ["ordinary", "loyal"]


def test_a_segment_cannot_change_while_a_campaign_to_it_is_sending():
    _fan()
    segment = SegmentFactory()
    _queued(segment)

    with pytest.raises(ApplicationError) as refused:
        update_segment(segment=segment, name="改", tiers=["loyal"])

    assert refused.value.code == "segment_in_use"


# --- campaigns: the message ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"channel": "fax"}, "channel"),
        ({"body": ""}, "body"),
        ({"body": "短" * 135}, "body"),  # more than two text messages
        ({"channel": "wechat", "body": "长" * 201}, "body"),
        ({"channel": "wechat", "title": "标" * 41}, "title"),
        ({"channel": "wechat", "link": "javascript:alert(1)"}, "link"),
    ],
)
def test_a_campaign_message_out_of_bounds_is_refused(fields, bad):
    with pytest.raises(ApplicationError) as refused:
        clean_campaign(**{"name": "活动", "channel": "sms", "body": "你好", **fields})

    assert refused.value.code == "invalid_campaign"
    assert bad in refused.value.details


def test_an_sms_campaign_keeps_only_its_text():
    cleaned = clean_campaign(name="活动", channel="sms", body="短" * 134, title="标题", link="https://m.example.com")

    assert (cleaned["title"], cleaned["link"], len(cleaned["body"])) == ("", "", 134)


# --- queueing -----------------------------------------------------------------------------------------


def test_queueing_fixes_the_total_and_starts_sending_after_commit(django_capture_on_commit_callbacks):
    fans = [_fan() for _ in range(3)]
    campaign = create_campaign(segment=SegmentFactory(), name="周末", channel="sms", body="满300减30")

    with django_capture_on_commit_callbacks(execute=True):
        queued = queue_campaign(campaign_id=campaign.pk, user=UserFactory())

    assert (queued.status, queued.total) == ("queued", 3)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent, campaign.total) == ("done", 3, 3)
    assert sorted(_texted()) == sorted(f.phone for f in fans)
    assert campaign.started_at and campaign.finished_at
    assert list(CampaignEvent.objects.filter(campaign=campaign).values_list("from_status", "to_status")) == [
        ("", "draft"),
        ("draft", "queued"),
        ("queued", "sending"),
        ("sending", "done"),
    ]


def test_a_wechat_campaign_is_refused_at_queue_time_when_wechat_is_not_configured(settings):
    _fan()
    settings.WECHAT_APP_ID = ""
    campaign = create_campaign(segment=SegmentFactory(), name="公众号", channel="wechat", body="新品到店")

    with pytest.raises(ApplicationError) as refused:
        queue_campaign(campaign_id=campaign.pk)

    assert refused.value.code == "wechat_not_configured"
    campaign.refresh_from_db()
    assert campaign.status == "draft"


def test_an_empty_segment_cannot_be_queued():
    campaign = create_campaign(segment=SegmentFactory(tiers=["advocate"]), name="空", channel="sms", body="x")

    with pytest.raises(ApplicationError) as refused:
        queue_campaign(campaign_id=campaign.pk)

    assert refused.value.code == "empty_segment"


def test_a_finished_campaign_cannot_be_queued_or_cancelled_again():
    _fan()
    campaign = _send_all(_queued(SegmentFactory()))

    for move in (queue_campaign, cancel_campaign):
        with pytest.raises(ApplicationError) as refused:
            move(campaign_id=campaign.pk)
        assert refused.value.code == "illegal_transition"


# --- sending: who is never messaged ------------------------------------------------------------------


def test_an_opted_out_member_gets_no_message_and_is_logged_skipped():
    fan = _fan()
    opted_out = MemberFactory(marketing_consent=False)

    campaign = _send_all(_queued(SegmentFactory()))

    assert _texted() == [fan.phone]
    assert _log(campaign) == {fan.pk: "sent", opted_out.pk: "skipped_no_consent"}
    assert (campaign.sent, campaign.skipped_no_consent, campaign.total) == (1, 1, 2)


def test_a_member_at_the_frequency_cap_gets_no_message_and_is_logged_capped():
    # Given HQ's cap of 2 messages a week, one member messaged twice this week, another twice but 8 days ago
    _cap(2, 7)
    capped, rested = _fan(), _fan()
    for days_ago in (1, 6):
        CampaignMessage.objects.create(
            campaign=CampaignFactory(), member=capped, channel="sms", status="sent", at=timezone.now() - days_ago * DAY
        )
    for _ in range(2):
        CampaignMessage.objects.create(
            campaign=CampaignFactory(), member=rested, channel="sms", status="sent", at=timezone.now() - 8 * DAY
        )

    # When a third campaign goes out to both
    campaign = _send_all(_queued(SegmentFactory()))

    # Then the capped member is skipped, the other one messaged
    assert _texted() == [rested.phone]
    assert _log(campaign) == {capped.pk: "skipped_capped", rested.pk: "sent"}
    assert campaign.skipped_capped == 1


def test_failed_and_skipped_messages_do_not_count_against_the_cap():
    _cap(1, 7)
    fan = _fan()
    for status in ("failed", "skipped_capped", "skipped_no_consent"):
        CampaignMessage.objects.create(
            campaign=CampaignFactory(), member=fan, channel="sms", status=status, at=timezone.now()
        )

    _send_all(_queued(SegmentFactory()))

    assert _texted() == [fan.phone]


def test_a_closed_account_is_never_messaged():
    fan = _fan()
    closed = _fan()
    erase_member(member=closed)

    campaign = _send_all(_queued(SegmentFactory()))

    assert _texted() == [fan.phone]
    assert closed.pk not in _log(campaign)


def test_an_account_closed_after_the_segment_listed_it_is_skipped_as_closed(monkeypatch):
    # Given a member whose account closes between the segment's query and their turn
    fan = _fan()
    closing = _fan()
    listed = Member.objects.filter(pk__in=[fan.pk, closing.pk])
    monkeypatch.setattr(campaigns, "segment_members", lambda segment: listed)
    campaign = _queued(SegmentFactory())
    Member.objects.filter(pk=closing.pk).update(closed_at=timezone.now(), is_active=False)

    campaign = _send_all(campaign)

    assert _texted() == [fan.phone]
    assert _log(campaign)[closing.pk] == "skipped_closed"
    assert campaign.skipped_closed == 1


def test_a_member_without_a_mobile_number_is_skipped_for_sms():
    fan, wechat_only = _fan(), _fan(phone=None)

    campaign = _send_all(_queued(SegmentFactory()))

    assert _texted() == [fan.phone]
    assert _log(campaign)[wechat_only.pk] == "skipped_no_address"


# --- sending: failures, repeats, cancelling ----------------------------------------------------------


class RefusesOneNumber(SmsBackend):
    """A provider that refuses one number and delivers the rest."""

    refused = ""
    delivered: list[str] = []

    def send(self, *, phone: str, text: str) -> str:
        if phone == self.refused:
            raise SmsError("isv.MOBILE_NUMBER_ILLEGAL", details={"errcode": "isv.MOBILE_NUMBER_ILLEGAL"})
        self.delivered.append(phone)
        return f"provider-{len(self.delivered)}"


def test_a_provider_failure_is_logged_with_its_error_and_the_rest_are_sent(settings):
    first, refused, last = _fan(), _fan(), _fan()
    settings.SMS_BACKEND = f"{__name__}.RefusesOneNumber"
    RefusesOneNumber.refused, RefusesOneNumber.delivered = refused.phone, []

    campaign = _send_all(_queued(SegmentFactory()))

    assert RefusesOneNumber.delivered == [first.phone, last.phone]
    failed = CampaignMessage.objects.get(campaign=campaign, member=refused)
    assert failed.status == "failed"
    assert "isv.MOBILE_NUMBER_ILLEGAL" in failed.error
    sent = CampaignMessage.objects.get(campaign=campaign, member=last)
    assert (sent.status, sent.provider_message_id) == ("sent", "provider-2")
    assert (campaign.status, campaign.sent, campaign.failed) == ("done", 2, 1)


def test_running_the_task_twice_sends_once():
    fans = [_fan() for _ in range(4)]
    campaign = _send_all(_queued(SegmentFactory()))
    assert len(_texted()) == 4

    # When the same task runs again, even from a campaign put back to sending at its first member
    tasks.send_campaign(campaign.pk)
    Campaign.objects.filter(pk=campaign.pk).update(status="sending", last_member_id=0)
    tasks.send_campaign(campaign.pk)

    # Then nobody got a second message
    assert sorted(_texted()) == sorted(f.phone for f in fans)
    assert CampaignMessage.objects.filter(campaign=campaign).count() == 4
    campaign.refresh_from_db()
    assert (campaign.sent, campaign.status) == (4, "done")


def test_batches_go_through_the_segment_in_order_and_update_the_progress():
    fans = [_fan() for _ in range(5)]
    campaign = _queued(SegmentFactory())

    first = send_campaign_batch(campaign_id=campaign.pk, batch_size=2)
    campaign.refresh_from_db()
    assert (first.handled, first.finished, campaign.status, campaign.sent) == (2, False, "sending", 2)
    assert campaign.last_member_id == fans[1].pk

    send_campaign_batch(campaign_id=campaign.pk, batch_size=2)
    send_campaign_batch(campaign_id=campaign.pk, batch_size=2)
    last = send_campaign_batch(campaign_id=campaign.pk, batch_size=2)
    campaign.refresh_from_db()
    assert (last.handled, last.finished, campaign.status, campaign.sent, campaign.total) == (0, True, "done", 5, 5)
    assert _texted() == [f.phone for f in fans]


def test_cancel_stops_sending():
    fans = [_fan() for _ in range(5)]
    campaign = _queued(SegmentFactory())
    send_campaign_batch(campaign_id=campaign.pk, batch_size=2)

    cancelled = cancel_campaign(campaign_id=campaign.pk, reason="文案有误")
    tasks.send_campaign(campaign.pk)

    assert cancelled.status == "cancelled" and cancelled.finished_at
    assert _texted() == [fans[0].phone, fans[1].phone]
    assert CampaignMessage.objects.filter(campaign=campaign).count() == 2
    assert send_campaign_batch(campaign_id=campaign.pk).finished


def test_a_message_cut_off_mid_call_is_logged_failed_not_sent_again():
    # Given a run that died while the provider was being called for the only member
    fan = _fan()
    campaign = _queued(SegmentFactory())
    Campaign.objects.filter(pk=campaign.pk).update(status="sending", last_member_id=fan.pk)
    CampaignMessage.objects.create(
        campaign=campaign, member=fan, channel="sms", status="pending", at=timezone.now() - timedelta(minutes=5)
    )

    # When the task runs again
    campaign = _send_all(campaign)

    # Then the campaign finishes without messaging the member a second time
    assert _texted() == []
    assert (campaign.status, campaign.failed) == ("done", 1)
    assert CampaignMessage.objects.get(campaign=campaign).error.startswith("interrupted")


# --- the WeChat channel ------------------------------------------------------------------------------


class FakeOfficialAccount:
    def __init__(self):
        self.sent = []

    def send_template_message(self, *, openid, template_id, data, url=""):
        self.sent.append({"openid": openid, "template_id": template_id, "data": data, "url": url})
        return f"msg-{len(self.sent)}"


def test_a_wechat_campaign_sends_the_campaign_template_to_followers_only(settings, monkeypatch):
    account = FakeOfficialAccount()
    monkeypatch.setattr("members.messaging.official_account", lambda: account)
    settings.WECHAT_TEMPLATES = {**settings.WECHAT_TEMPLATES, "campaign": "TPL-CAMPAIGN"}
    follower, texter = _fan(), _fan(openid=None)
    campaign = create_campaign(
        segment=SegmentFactory(),
        name="新品",
        channel="wechat",
        title="星飞帆新包装到店",
        body="会员到店试吃",
        link="https://mall.example.com/mall/",
    )

    campaign = _send_all(queue_campaign(campaign_id=campaign.pk))

    [message] = account.sent
    assert (message["openid"], message["template_id"], message["url"]) == (
        follower.openid,
        "TPL-CAMPAIGN",
        "https://mall.example.com/mall/",
    )
    assert (message["data"]["first"], message["data"]["keyword1"]) == ("星飞帆新包装到店", "会员到店试吃")
    assert _log(campaign) == {follower.pk: "sent", texter.pk: "skipped_no_address"}
    assert CampaignMessage.objects.get(member=follower).provider_message_id == "msg-1"


# --- races on real connections -----------------------------------------------------------------------


@pytest.fixture
def no_worker(monkeypatch):
    """Queued campaigns wait for the test to send them (these tests commit, so on_commit would run the task)."""
    monkeypatch.setattr(campaigns, "_send_later", lambda campaign_id: None)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_cap_holds_when_two_campaigns_send_to_the_same_members_at_once(monkeypatch, no_worker):
    # Given a cap of one message a week and two campaigns queued to the same twenty members,
    _cap(1, 7)
    fans = [_fan() for _ in range(20)]
    first, second = _queued(SegmentFactory()), _queued(SegmentFactory())
    # and a decision that takes a while after counting the member's messages, so the runs overlap
    decide = campaigns._skip_reason

    def slow_decision(*args, **kwargs):
        reason = decide(*args, **kwargs)
        time.sleep(0.02)
        return reason

    monkeypatch.setattr(campaigns, "_skip_reason", slow_decision)

    # When both send at the same moment on separate connections
    results, raised = run_at_once(
        [lambda c=c: send_campaign_batch(campaign_id=c.pk, batch_size=50) for c in (first, second)]
    )

    # Then each member got exactly one message, and the other campaign logged them as capped
    assert raised == []
    assert sum(result.handled for result in results) == 40
    assert sorted(_texted()) == sorted(f.phone for f in fans)
    for fan in fans:
        statuses = sorted(CampaignMessage.objects.filter(member=fan).values_list("status", flat=True))
        assert statuses == ["sent", "skipped_capped"]
    totals = Campaign.objects.filter(pk__in=[first.pk, second.pk]).values_list("sent", "skipped_capped")
    assert sum(sent for sent, _c in totals) == 20
    assert sum(capped for _s, capped in totals) == 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_of_one_campaign_at_once_message_each_member_once(no_worker):
    fans = [_fan() for _ in range(15)]
    campaign = _queued(SegmentFactory())

    def run():
        handled = 0
        while not (result := send_campaign_batch(campaign_id=campaign.pk, batch_size=4)).finished:
            handled += result.handled
        return handled

    results, raised = run_at_once([run, run])

    assert raised == []
    assert sum(results) == 15
    assert sorted(_texted()) == sorted(f.phone for f in fans)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent, campaign.total) == ("done", 15, 15)


def test_a_member_s_data_download_lists_the_marketing_messages_sent_to_them():
    from members.services import member_data

    fan = _fan()
    campaign = _send_all(_queued(SegmentFactory(), name="周末活动"))

    assert [(m["campaign"], m["channel"], m["result"]) for m in member_data(fan)["marketing_messages"]] == [
        (campaign.name, "sms", "sent")
    ]


# --- the store manager's console -------------------------------------------------------------------


@pytest.fixture
def manager_console(client, ws_manager):
    client.force_login(ws_manager.user)
    return client


def _console_form(**fields) -> dict:
    return {"name": "老客回访", "channel": "sms", "body": "本周末会员日，奶粉满300减30。", **fields}


def test_a_manager_makes_a_campaign_for_their_store_sees_the_count_and_sends_it(
    manager_console, ws, gd, django_capture_on_commit_callbacks
):
    # Given loyal members of the store (two agreed to messages) and a loyal member of another store
    own = [_fan(home_store=ws, home_store_source="store_qr", tier="loyal") for _ in range(2)]
    MemberFactory(home_store=ws, home_store_source="store_qr", tier="loyal")
    _fan(home_store=gd, home_store_source="store_qr", tier="loyal")
    assert manager_console.get("/console/campaigns/").status_code == 200
    assert manager_console.get("/console/campaigns/new/").status_code == 200

    # When the manager saves a campaign to loyal members
    saved = manager_console.post("/console/campaigns/new/", _console_form(tiers=["loyal"]))

    # Then a draft shows how many members it reaches, all of their own store
    campaign = Campaign.objects.get()
    assert saved.status_code == 302 and saved["Location"] == f"/console/campaigns/{campaign.pk}/"
    assert (campaign.store, campaign.segment.store, campaign.segment.tiers) == (ws, ws, ["loyal"])
    page = manager_console.get(saved["Location"])
    assert page.context["reach"] == {"members": 3, "consenting": 2, "reachable": 2}
    assert 'id="send-campaign"' in page.content.decode()

    # When they send it
    with django_capture_on_commit_callbacks(execute=True):
        sent = manager_console.post(f"/console/campaigns/{campaign.pk}/send/")

    # Then only their own consenting members were messaged, and the page shows the progress
    assert sent.status_code == 302
    assert sorted(_texted()) == sorted(member.phone for member in own)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent, campaign.skipped_no_consent) == ("done", 2, 1)
    listing = manager_console.get("/console/campaigns/")
    assert [row[1]["sent"] for row in listing.context["rows"]] == [2]
    fragment = manager_console.get(f"/console/campaigns/{campaign.pk}/", HTTP_HX_REQUEST="true")
    assert b'class="progress"' in fragment.content and b"<html" not in fragment.content


def test_bad_input_in_the_console_shows_field_errors_and_writes_nothing(manager_console):
    response = manager_console.post(
        "/console/campaigns/new/", _console_form(product="NO-SUCH-CODE", bought_within_days="0", channel="fax")
    )

    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"product", "bought_within_days", "channel"}
    assert not Segment.objects.exists() and not Campaign.objects.exists()
    # The service's own checks show at their fields too, once the form's are met
    response = manager_console.post("/console/campaigns/new/", _console_form(min_points="100", max_points="10"))
    assert response.status_code == 400
    assert response.context["form"].errors["max_points"] == ["Must be at least the lower bound."]
    assert b'class="notice error"' in response.content
    assert not Segment.objects.exists() and not Campaign.objects.exists()


def test_points_beyond_the_database_s_integer_are_a_form_error_not_a_server_error(manager_console):
    response = manager_console.post("/console/campaigns/new/", _console_form(min_points="99999999999"))

    assert response.status_code == 400
    assert "min_points" in response.context["form"].errors
    assert not Segment.objects.exists()


def test_the_campaign_list_costs_the_same_queries_for_one_campaign_or_many(
    manager_console, ws_manager, django_assert_max_num_queries
):
    segment = create_segment(staff=ws_manager, name="老客")
    create_campaign(segment=segment, staff=ws_manager, name="一", channel="sms", body="x")
    with CaptureQueriesContext(connection) as one:
        manager_console.get("/console/campaigns/")
    for n in range(5):
        CampaignFactory(segment=segment, status="sending", total=10, sent=n)

    with django_assert_max_num_queries(len(one)):
        response = manager_console.get("/console/campaigns/")

    assert len(response.context["rows"]) == 6


def test_an_sms_text_over_two_messages_is_refused_at_its_field(manager_console):
    response = manager_console.post("/console/campaigns/new/", _console_form(body="短" * 135))

    assert response.status_code == 400
    assert "body" in response.context["form"].errors
    assert not Campaign.objects.exists()


def test_a_manager_cannot_see_or_send_another_store_s_or_hq_s_campaign_or_segment(manager_console, gd):
    # Given a campaign of another store and one of HQ
    gd_manager = StaffFactory(store=gd, role=MANAGER)
    foreign_segment = create_segment(staff=gd_manager, name="古墩")
    foreign = create_campaign(segment=foreign_segment, staff=gd_manager, name="古墩活动", channel="sms", body="x")
    hq = create_campaign(segment=SegmentFactory(), name="总部活动", channel="sms", body="x")

    # Then every page and action of theirs is a 404, and nothing moves
    for campaign in (foreign, hq):
        assert manager_console.get(f"/console/campaigns/{campaign.pk}/").status_code == 404
        assert manager_console.post(f"/console/campaigns/{campaign.pk}/send/").status_code == 404
        assert manager_console.post(f"/console/campaigns/{campaign.pk}/cancel/").status_code == 404
    for segment in (foreign_segment, hq.segment):
        assert manager_console.get(f"/console/campaigns/segments/{segment.pk}/new/").status_code == 404
        assert (
            manager_console.post(f"/console/campaigns/segments/{segment.pk}/new/", _console_form()).status_code == 404
        )
    assert set(Campaign.objects.values_list("status", flat=True)) == {"draft"}
    assert Campaign.objects.count() == 2
    assert manager_console.get("/console/campaigns/").context["rows"] == []


def test_the_services_refuse_a_manager_another_store_s_campaign_as_not_found(ws_manager, gd):
    foreign = create_campaign(
        segment=create_segment(staff=StaffFactory(store=gd, role=MANAGER), name="古墩"),
        name="古墩活动",
        channel="sms",
        body="x",
    )

    for move in (queue_campaign, cancel_campaign):
        with pytest.raises(ApplicationError) as refused:
            move(campaign_id=foreign.pk, staff=ws_manager)
        assert refused.value.status == 404
    with pytest.raises(ApplicationError) as refused:
        create_campaign(segment=foreign.segment, staff=ws_manager, name="借用", channel="sms", body="x")
    assert refused.value.status == 404


def test_a_manager_sends_another_message_to_one_of_their_segments(manager_console, ws, ws_manager):
    segment = create_segment(staff=ws_manager, name="老客")

    response = manager_console.post(f"/console/campaigns/segments/{segment.pk}/new/", _console_form(name="第二波"))

    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert (campaign.segment, campaign.name, Segment.objects.count()) == (segment, "第二波", 1)


@pytest.mark.parametrize("role", ["clerk", "guide"])
def test_clerks_and_guides_cannot_open_the_campaigns_page_nor_see_its_tab(client, ws, role):
    staff = StaffFactory(store=ws, role=role)
    client.force_login(staff.user)

    for url in ("/console/campaigns/", "/console/campaigns/new/"):
        assert client.get(url).status_code == 403
    assert client.post("/console/campaigns/new/", _console_form()).status_code == 403
    assert not Segment.objects.exists()
    assert b'id="tab-campaigns"' not in client.get("/console/calls/").content


def test_the_manager_sees_the_campaigns_tab(manager_console):
    assert b'id="tab-campaigns"' in manager_console.get("/console/calls/").content


def test_a_cancelled_campaign_in_the_console_sends_nothing(manager_console, ws, ws_manager):
    _fan(home_store=ws, home_store_source="store_qr")
    campaign = create_campaign(
        segment=create_segment(staff=ws_manager, name="老客"), staff=ws_manager, name="取消", channel="sms", body="x"
    )

    manager_console.post(f"/console/campaigns/{campaign.pk}/cancel/", follow=True)
    refused = manager_console.post(f"/console/campaigns/{campaign.pk}/send/", follow=True)

    campaign.refresh_from_db()
    assert campaign.status == "cancelled"
    assert [m.level_tag for m in refused.context["messages"]] == ["error"]
    assert _texted() == []


# --- HQ's admin ----------------------------------------------------------------------------------------


def test_hq_defines_a_segment_in_the_admin_and_sees_its_count_and_a_few_members(admin_client, ws):
    fan = _fan(home_store=ws, home_store_source="store_qr", tier="loyal", nickname="陈女士")
    _fan(tier="ordinary")

    response = admin_client.post(
        "/admin/members/segment/add/", {"name": "忠诚会员", "tiers": ["loyal", "advocate"], "home_store": ws.pk}
    )

    segment = Segment.objects.get()
    assert response.status_code == 302
    assert (segment.tiers, segment.home_store, segment.store) == (["loyal", "advocate"], ws, None)
    page = admin_client.get(f"/admin/members/segment/{segment.pk}/change/").content.decode()
    assert "1 · agreed to marketing messages: 1 · reachable: 1" in page
    assert "陈女士" in page and f"/admin/members/member/{fan.pk}/change/" in page


def test_a_bad_segment_in_the_admin_is_a_form_error_and_nothing_is_written(admin_client):
    response = admin_client.post(
        "/admin/members/segment/add/", {"name": "坏", "bought_within_days": "10", "not_bought_for_days": "30"}
    )

    assert response.status_code == 200
    assert "bought_within_days" in response.context["adminform"].form.errors
    assert not Segment.objects.exists()


def test_hq_creates_a_campaign_in_the_admin_sends_it_and_sees_its_progress(
    admin_client, django_capture_on_commit_callbacks
):
    fans = [_fan() for _ in range(3)]
    MemberFactory(marketing_consent=False)
    segment = SegmentFactory()

    created = admin_client.post(
        "/admin/members/campaign/add/", {"segment": segment.pk, "name": "会员日", "channel": "sms", "body": "满300减30"}
    )
    campaign = Campaign.objects.get()
    assert created.status_code == 302
    assert (campaign.status, campaign.store, campaign.body) == ("draft", None, "满300减30")
    assert 'id="send-campaign"' in admin_client.get(f"/admin/members/campaign/{campaign.pk}/change/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        sent = admin_client.post(f"/admin/members/campaign/{campaign.pk}/send/")

    assert sent.status_code == 302
    assert sorted(_texted()) == sorted(f.phone for f in fans)
    page = admin_client.get(f"/admin/members/campaign/{campaign.pk}/change/").content.decode()
    assert "sent 3 · skipped 1 · failed 0 · 4/4" in page
    assert "http-equiv" not in page  # done: no more refreshing
    listing = admin_client.get("/admin/members/campaign/").content.decode()
    assert "sent 3 · skipped 1" in listing


def test_the_admin_page_of_a_sending_campaign_refreshes_itself(admin_client):
    campaign = CampaignFactory(status="sending", total=10, sent=4)

    page = admin_client.get(f"/admin/members/campaign/{campaign.pk}/change/").content.decode()

    assert 'http-equiv="refresh"' in page
    assert 'http-equiv="refresh"' in admin_client.get("/admin/members/campaign/").content.decode()


def test_the_admin_actions_queue_and_cancel_campaigns_and_report_refusals(admin_client):
    _fan()
    ready, empty = CampaignFactory(), CampaignFactory(segment=SegmentFactory(tiers=["advocate"]))

    response = admin_client.post(
        "/admin/members/campaign/",
        {"action": "queue_campaign_action", "_selected_action": [ready.pk, empty.pk]},
        follow=True,
    )

    levels = sorted(m.level_tag for m in response.context["messages"])
    assert levels == ["error", "success"]
    ready.refresh_from_db()
    empty.refresh_from_db()
    assert (ready.status, empty.status) == ("queued", "draft")
    admin_client.post("/admin/members/campaign/", {"action": "cancel_campaign_action", "_selected_action": [ready.pk]})
    ready.refresh_from_db()
    assert ready.status == "cancelled"


def test_hq_s_frequency_cap_applies_as_soon_as_it_is_saved(admin_client):
    from members.selectors import campaign_settings

    assert campaign_settings().max_messages == 2
    response = admin_client.post("/admin/members/campaignsettings/1/change/", {"max_messages": 1, "per_days": 14})

    assert response.status_code == 302
    assert (campaign_settings().max_messages, campaign_settings().per_days) == (1, 14)


def test_the_console_offers_wechat_only_when_it_can_send(manager_console, settings, monkeypatch):
    settings.WECHAT_APP_ID = ""
    form = manager_console.get("/console/campaigns/new/").context["form"]
    assert [value for value, _l in form.fields["channel"].choices] == ["sms"]
    assert "title" not in form.fields

    monkeypatch.setattr("members.messaging.official_account", FakeOfficialAccount)
    settings.WECHAT_TEMPLATES = {**settings.WECHAT_TEMPLATES, "campaign": "TPL-CAMPAIGN"}
    form = manager_console.get("/console/campaigns/new/").context["form"]
    assert [value for value, _l in form.fields["channel"].choices] == ["wechat", "sms"]
    assert {"title", "link"} <= set(form.fields)


def test_console_form_errors_come_in_the_manager_s_language(ws_manager):
    from django.test import Client

    chinese = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    chinese.force_login(ws_manager.user)

    response = chinese.post("/console/campaigns/new/", _console_form(min_points="100", max_points="10"))

    assert response.status_code == 400
    assert response.context["form"].errors["max_points"] == ["不能小于下限。"]
    assert "营销" in response.content.decode()
    assert not Segment.objects.exists()
