"""Tiers follow HQ's thresholds: potential until a purchase, loyal with enough purchases and spending in the window."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members.models import LoyaltySettings, Member, Tier, TierChange
from members.selectors import forget_loyalty_settings
from members.services import next_tier_needs, recompute_all_tiers, record_purchase
from members.session import MEMBER_SESSION_KEY
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _thresholds():
    LoyaltySettings.objects.update_or_create(
        pk=1, defaults={"tier_window_days": 365, "loyal_min_purchases": 3, "loyal_min_amount_fen": 60000}
    )
    forget_loyalty_settings()


@pytest.fixture
def store():
    return StoreFactory()


def _buy(member, store, amount_fen, *, days_ago=0, ref=None):
    return record_purchase(
        member=member,
        store=store,
        channel="pos",
        reference=ref or f"R{member.pk}-{days_ago}-{amount_fen}",
        amount_fen=amount_fen,
        purchased_at=timezone.now() - timedelta(days=days_ago),
    )


def _tier(member) -> str:
    return Member.objects.get(pk=member.pk).tier


def test_a_new_member_is_potential_and_the_first_purchase_makes_them_ordinary(store):
    member = MemberFactory()
    assert _tier(member) == Tier.POTENTIAL

    _buy(member, store, 5000)

    assert _tier(member) == Tier.ORDINARY
    change = TierChange.objects.get(member=member)
    assert (change.from_tier, change.to_tier) == (Tier.POTENTIAL, Tier.ORDINARY)


@pytest.mark.parametrize(
    ("amounts", "expected"),
    [
        ([20000, 20000, 20000], Tier.LOYAL),  # three purchases, ¥600: both thresholds met
        ([30000, 30000], Tier.ORDINARY),  # enough spent, too few purchases
        ([10000, 10000, 10000, 10000], Tier.ORDINARY),  # enough purchases, too little spent
    ],
)
def test_loyal_needs_both_hq_thresholds_within_the_window(store, amounts, expected):
    member = MemberFactory()
    for n, amount in enumerate(amounts):
        _buy(member, store, amount, days_ago=n)

    assert _tier(member) == expected


def test_the_same_purchase_reported_twice_counts_once(store):
    member = MemberFactory()
    for _ in range(3):
        _buy(member, store, 30000, ref="POS-1")
    assert _tier(member) == Tier.ORDINARY


def test_the_nightly_pass_lowers_members_whose_purchases_left_the_window_and_records_why(store):
    member, fresh = MemberFactory(), MemberFactory()
    for n in range(3):
        _buy(member, store, 25000, days_ago=300 + n)
        _buy(fresh, store, 25000, days_ago=n)
    assert _tier(member) == _tier(fresh) == Tier.LOYAL

    changed = recompute_all_tiers(at=timezone.now() + timedelta(days=70), chunk_size=1)

    assert changed == 1
    assert (_tier(member), _tier(fresh)) == (Tier.ORDINARY, Tier.LOYAL)
    assert TierChange.objects.filter(member=member, reason="nightly", to_tier=Tier.ORDINARY).count() == 1
    assert recompute_all_tiers(at=timezone.now() + timedelta(days=70)) == 0  # nothing left to change


def test_the_member_center_says_what_the_next_tier_needs(client, store):
    member = MemberFactory()
    _buy(member, store, 15000)
    member.refresh_from_db()

    assert next_tier_needs(member=member) == {
        "tier": Tier.LOYAL,
        "purchases": 2,
        "amount_fen": 45000,
        "days": 365,
    }
    session = client.session
    session[MEMBER_SESSION_KEY] = member.pk
    session.save()
    html = client.get("/mall/me/").content.decode()
    assert "¥450.00" in html
