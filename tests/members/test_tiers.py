"""Tiers follow HQ's thresholds: potential until a purchase, loyal with enough purchases and spending in the window."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members.models import LoyaltySettings, Member, Tier, TierChange
from members.selectors import forget_loyalty_settings
from members.services import next_tier_needs, recompute_all_tiers, recompute_tier, record_purchase
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


def _make_loyal(member, store):
    for n in range(3):
        _buy(member, store, 25000, days_ago=n, ref=f"L{member.pk}-{n}")


def test_a_loyal_member_becomes_an_advocate_once_enough_members_they_brought_buy(store):
    LoyaltySettings.objects.filter(pk=1).update(advocate_min_referrals=2)
    forget_loyalty_settings()
    sharer = MemberFactory()
    _make_loyal(sharer, store)
    first, second, idle = (MemberFactory(referrer=sharer) for _ in range(3))
    assert _tier(sharer) == Tier.LOYAL

    _buy(first, store, 1000)
    _buy(first, store, 2000)  # the same friend buying twice still counts once
    assert _tier(sharer) == Tier.LOYAL

    _buy(second, store, 1000)  # the second friend's purchase recomputes the sharer at once

    assert _tier(sharer) == Tier.ADVOCATE
    assert TierChange.objects.filter(member=sharer, to_tier=Tier.ADVOCATE, reason__startswith="referral").exists()
    assert idle.tier == Tier.POTENTIAL


def test_referrals_do_not_make_an_advocate_of_a_member_who_is_not_loyal(store):
    LoyaltySettings.objects.filter(pk=1).update(advocate_min_referrals=1)
    forget_loyalty_settings()
    sharer = MemberFactory()
    _buy(sharer, store, 1000)
    friend = MemberFactory(referrer=sharer)

    _buy(friend, store, 90000)

    assert _tier(sharer) == Tier.ORDINARY


def test_the_nightly_pass_drops_an_advocate_whose_referrals_stopped_buying(store):
    LoyaltySettings.objects.filter(pk=1).update(advocate_min_referrals=1)
    forget_loyalty_settings()
    sharer = MemberFactory()
    friend = MemberFactory(referrer=sharer)
    _buy(friend, store, 1000, days_ago=200)
    _make_loyal(sharer, store)
    assert _tier(sharer) == Tier.ADVOCATE

    # 200 days on the friend's purchase has left the window, the sharer's own have not
    assert recompute_all_tiers(at=timezone.now() + timedelta(days=200)) >= 1

    assert _tier(sharer) == Tier.LOYAL


def test_the_nightly_pass_gives_the_same_tiers_as_recomputing_each_member(store):
    """The range-based pass and the per-member recomputation agree on a mixed population."""
    LoyaltySettings.objects.filter(pk=1).update(advocate_min_referrals=1)
    forget_loyalty_settings()
    members = [MemberFactory() for _ in range(8)]
    members[1].referrer = members[0]
    members[1].save(update_fields=["referrer"])
    for n, member in enumerate(members):
        for k in range(n % 4):
            bought_at = timezone.now() - timedelta(days=100 * k)
            record_purchase(
                member=member,
                store=store,
                channel="pos",
                reference=f"N{member.pk}-{k}",
                amount_fen=30000,
                purchased_at=bought_at,
            )
    Member.objects.update(tier=Tier.POTENTIAL)  # forget what the purchases set

    recompute_all_tiers(chunk_size=3)
    nightly = {m.pk: _tier(m) for m in members}
    for member in members:
        recompute_tier(member=member)

    assert nightly == {m.pk: _tier(m) for m in members}
    assert set(nightly.values()) >= {Tier.POTENTIAL, Tier.ORDINARY, Tier.LOYAL}


def test_a_loyal_member_is_told_how_many_friends_still_need_to_buy(client, store):
    LoyaltySettings.objects.filter(pk=1).update(advocate_min_referrals=3)
    forget_loyalty_settings()
    sharer = MemberFactory()
    _make_loyal(sharer, store)
    _buy(MemberFactory(referrer=sharer), store, 1000)
    sharer.refresh_from_db()

    assert next_tier_needs(member=sharer) == {"tier": Tier.ADVOCATE, "referrals": 2, "days": 365}
    session = client.session
    session[MEMBER_SESSION_KEY] = sharer.pk
    session.save()
    assert client.get("/mall/me/").context["next_tier"]["referrals"] == 2


def test_a_member_cannot_be_their_own_referrer():
    from django.db import IntegrityError, transaction

    member = MemberFactory()
    member.referrer = member
    with pytest.raises(IntegrityError), transaction.atomic():
        member.save(update_fields=["referrer"])
