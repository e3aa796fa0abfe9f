"""Proving a mobile number with a texted code, and taking over the membership a store opened for it
(members.verification; docs/member-identity.md)."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.vendors.sms import LoggingSmsBackend, SmsBackend, SmsError
from members.crm import CrmMember, upsert_member_from_crm
from members.models import Member, PhoneCode, PointsEntry
from members.services import earn_points, sign_in_with_wechat
from members.session import MEMBER_SESSION_KEY
from members.verification import (
    CODES_PER_PHONE_PER_DAY,
    WRONG_ATTEMPTS_ALLOWED,
    claim_membership,
    confirm_phone_code,
    send_phone_code,
)
from o2o.errors import ApplicationError
from tests.concurrency import run_at_once
from tests.factories import MemberFactory, StaffFactory

pytestmark = pytest.mark.django_db

STORE_PHONE = "+8613800000401"


@pytest.fixture(autouse=True)
def texts(settings):
    settings.SMS_BACKEND = "integrations.vendors.sms.LoggingSmsBackend"
    LoggingSmsBackend.clear()
    return LoggingSmsBackend.outbox


@pytest.fixture
def shopper():
    """A shopper who has just signed in through WeChat, with no number yet."""
    return sign_in_with_wechat(openid="o-wechat-1", unionid="u-wechat-1", nickname="小吴", avatar_url="https://a/x.png")


@pytest.fixture
def store_member():
    """A membership the chain's CRM opened at a till: a number, points, no WeChat."""
    member = upsert_member_from_crm(item=CrmMember(phone=STORE_PHONE, nickname="吴女士")).member
    earn_points(member=member, reference="POS:WS:0001", lines=[(None, 12_000)])
    return Member.objects.get(pk=member.pk)


def _code_in(texts) -> str:
    return re.search(r"\b(\d{6})\b", texts[-1].text).group(1)


def _prove(member, phone, texts, *, at=None) -> Member:
    send_phone_code(member=member, phone=phone, at=at)
    return confirm_phone_code(member=member, phone=phone, code=_code_in(texts), at=at)


# --- the code ------------------------------------------------------------------------------------


def test_the_code_goes_by_text_to_the_number_and_only_its_digest_is_kept(shopper, texts):
    sent = send_phone_code(member=shopper, phone="138 0013 8000")
    assert [text.phone for text in texts] == ["+8613800138000"]
    code = _code_in(texts)
    assert code == sent.code
    row = PhoneCode.objects.get()
    assert (row.member, row.phone) == (shopper, "+8613800138000")
    assert code not in row.digest and len(row.digest) == 64
    assert row.expires_at - row.created_at == timedelta(minutes=10)


def test_the_right_code_binds_a_free_number(shopper, texts):
    assert _prove(shopper, "13800138000", texts) == shopper
    shopper.refresh_from_db()
    assert shopper.phone == "+8613800138000"
    assert PhoneCode.objects.get().used_at is not None


def test_a_code_works_once(shopper, texts):
    send_phone_code(member=shopper, phone="13800138000")
    code = _code_in(texts)
    confirm_phone_code(member=shopper, phone="13800138000", code=code)
    with pytest.raises(ApplicationError) as refused:
        confirm_phone_code(member=shopper, phone="13800138000", code=code)
    assert refused.value.code == "code_expired"


def test_wrong_codes_count_and_the_fifth_spends_the_code(shopper, texts):
    send_phone_code(member=shopper, phone="13800138000")
    right = _code_in(texts)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for attempt in range(1, WRONG_ATTEMPTS_ALLOWED + 1):
        with pytest.raises(ApplicationError) as refused:
            confirm_phone_code(member=shopper, phone="13800138000", code=wrong)
        assert refused.value.code == "wrong_code"
        assert PhoneCode.objects.get().attempts == attempt
    with pytest.raises(ApplicationError) as refused:
        confirm_phone_code(member=shopper, phone="13800138000", code=right)
    assert refused.value.code == "code_expired"
    shopper.refresh_from_db()
    assert shopper.phone is None


def test_an_expired_code_is_refused(shopper, texts):
    sent_at = timezone.now() - timedelta(minutes=11)
    send_phone_code(member=shopper, phone="13800138000", at=sent_at)
    with pytest.raises(ApplicationError) as refused:
        confirm_phone_code(member=shopper, phone="13800138000", code=_code_in(texts))
    assert refused.value.code == "code_expired"


def test_a_code_proves_only_the_number_it_was_sent_to(shopper, texts):
    send_phone_code(member=shopper, phone="13800138000")
    with pytest.raises(ApplicationError) as refused:
        confirm_phone_code(member=shopper, phone="13800138001", code=_code_in(texts))
    assert refused.value.code == "code_expired"  # no code was sent to that number


def test_not_six_digits_is_refused_without_counting_as_a_guess(shopper, texts):
    send_phone_code(member=shopper, phone="13800138000")
    for bad in ["", "12345", "1234567", "abcdef", "12 456"]:
        with pytest.raises(ApplicationError) as refused:
            confirm_phone_code(member=shopper, phone="13800138000", code=bad)
        assert refused.value.code == "invalid_code"
    assert PhoneCode.objects.get().attempts == 0


def test_another_code_waits_a_minute_and_a_number_gets_at_most_five_a_day(shopper, texts):
    start = timezone.now()
    send_phone_code(member=shopper, phone="13800138000", at=start)
    with pytest.raises(ApplicationError) as refused:
        send_phone_code(member=shopper, phone="13800138000", at=start + timedelta(seconds=30))
    assert (refused.value.code, refused.value.status, refused.value.retry_after) == ("code_sent_recently", 429, 31)
    for n in range(1, CODES_PER_PHONE_PER_DAY):
        # different accounts asking for one number: the number is protected, not just the account
        send_phone_code(member=MemberFactory(phone=None), phone="13800138000", at=start + timedelta(minutes=2 * n))
    with pytest.raises(ApplicationError) as refused:
        send_phone_code(member=MemberFactory(phone=None), phone="13800138000", at=start + timedelta(minutes=30))
    assert refused.value.code == "too_many_codes"
    assert len(texts) == CODES_PER_PHONE_PER_DAY
    send_phone_code(member=shopper, phone="13800138000", at=start + timedelta(hours=24, minutes=1))


def test_a_text_that_could_not_be_sent_leaves_no_code_behind(shopper, settings):
    settings.SMS_BACKEND = "tests.members.test_phone_verification.FailingSms"
    with pytest.raises(SmsError):
        send_phone_code(member=shopper, phone="13800138000")
    assert not PhoneCode.objects.exists()


class FailingSms(SmsBackend):
    def send(self, *, phone: str, text: str) -> str:
        raise SmsError("provider down")


def test_a_number_of_another_wechat_account_gets_no_text(shopper, texts):
    MemberFactory(phone="+8613800138000")  # signed in through WeChat (has an openid)
    with pytest.raises(ApplicationError) as refused:
        send_phone_code(member=shopper, phone="13800138000")
    assert refused.value.code == "phone_taken"
    assert list(texts) == [] and not PhoneCode.objects.exists()


def test_ones_own_number_needs_no_code(shopper, texts):
    _prove(shopper, "13800138000", texts)
    with pytest.raises(ApplicationError) as refused:
        send_phone_code(member=shopper, phone="13800138000", at=timezone.now() + timedelta(minutes=5))
    assert refused.value.code == "phone_unchanged"


# --- taking over a store membership ----------------------------------------------------------------


def test_proving_a_store_members_number_takes_the_membership_over(shopper, store_member, texts):
    balance = store_member.points_balance
    assert balance > 0

    now_member = _prove(shopper, "13800000401", texts)

    assert now_member.pk == store_member.pk
    store_member.refresh_from_db()
    shopper.refresh_from_db()
    assert (store_member.openid, store_member.unionid) == ("o-wechat-1", "u-wechat-1")
    assert (
        store_member.points_balance == balance == sum(e.points for e in PointsEntry.objects.filter(member=store_member))
    )
    assert store_member.nickname == "吴女士"  # the store's name for her stays
    assert store_member.avatar_url == "https://a/x.png"  # WeChat fills what the store lacked
    assert (shopper.is_active, shopper.merged_into, shopper.openid, shopper.phone) == (False, store_member, None, None)
    # WeChat now signs her in as the store membership
    assert sign_in_with_wechat(openid="o-wechat-1").pk == store_member.pk
    assert sign_in_with_wechat(openid="o-other-account", unionid="u-wechat-1").pk == store_member.pk


def test_the_sign_ups_guide_binds_a_membership_that_had_none(shopper, texts):
    guide = StaffFactory()
    referrer = MemberFactory()
    shopper.referrer, shopper.guide, shopper.bound_at = referrer, guide, timezone.now()
    shopper.save()
    holder = upsert_member_from_crm(item=CrmMember(phone=STORE_PHONE)).member

    _prove(shopper, STORE_PHONE, texts)

    holder.refresh_from_db()
    shopper.refresh_from_db()
    assert (holder.referrer, holder.guide) == (referrer, guide)
    assert (shopper.referrer, shopper.guide) == (None, None)  # counted once, on the membership
    assert Member.objects.filter(guide=guide).get() == holder


def test_a_membership_keeps_the_guide_it_had(shopper, texts):
    own_guide, other_guide = StaffFactory(), StaffFactory()
    holder = upsert_member_from_crm(item=CrmMember(phone=STORE_PHONE)).member
    Member.objects.filter(pk=holder.pk).update(guide=own_guide, bound_at=timezone.now())
    shopper.guide, shopper.bound_at = other_guide, timezone.now()
    shopper.save()

    _prove(shopper, STORE_PHONE, texts)

    holder.refresh_from_db()
    assert holder.guide == own_guide
    assert not Member.objects.filter(guide=other_guide).exists()


def test_a_store_member_who_already_uses_wechat_cannot_be_taken_over(shopper, texts):
    MemberFactory(phone=STORE_PHONE, openid="o-her-own")
    with pytest.raises(ApplicationError) as refused:
        send_phone_code(member=shopper, phone=STORE_PHONE)
    assert refused.value.code == "phone_taken"


def test_a_sign_up_with_points_of_its_own_is_refused_and_nothing_changes(shopper, store_member, texts):
    earn_points(member=shopper, reference="ORDER-1", lines=[(None, 5_000)])
    with pytest.raises(ApplicationError) as refused:
        _prove(shopper, STORE_PHONE, texts)
    assert refused.value.code == "claim_has_history"
    shopper.refresh_from_db()
    store_member.refresh_from_db()
    assert (shopper.is_active, shopper.openid, store_member.openid) == (True, "o-wechat-1", None)
    assert PhoneCode.objects.get().used_at is None  # the code was not spent on a refusal


def test_a_sign_up_that_brought_in_members_is_refused(shopper, store_member, texts):
    MemberFactory(referrer=shopper)
    with pytest.raises(ApplicationError) as refused:
        _prove(shopper, STORE_PHONE, texts)
    assert refused.value.code == "claim_has_history"


@pytest.mark.django_db(transaction=True)
def test_two_wechat_accounts_proving_one_store_number_at_once_take_it_over_once(texts):
    holder = upsert_member_from_crm(item=CrmMember(phone=STORE_PHONE)).member
    first = sign_in_with_wechat(openid="o-a")
    second = sign_in_with_wechat(openid="o-b")

    results, raised = run_at_once(
        [lambda: claim_membership(member=first, holder=holder), lambda: claim_membership(member=second, holder=holder)]
    )

    assert len(results) == 1 and [error.code for error in raised] == ["phone_taken"]
    holder.refresh_from_db()
    assert holder.openid in {"o-a", "o-b"}
    assert Member.objects.filter(merged_into=holder).count() == 1
    winner, loser = (first, second) if holder.openid == "o-a" else (second, first)
    assert Member.objects.get(pk=winner.pk).merged_into == holder
    loser.refresh_from_db()
    assert (loser.is_active, loser.merged_into, loser.phone) == (True, None, None)  # untouched, may try again


@pytest.mark.django_db(transaction=True)
def test_the_right_code_typed_twice_at_once_is_used_once(texts):
    shopper = sign_in_with_wechat(openid="o-twice")
    send_phone_code(member=shopper, phone="13800138000")
    code = _code_in(texts)

    results, raised = run_at_once([lambda: confirm_phone_code(member=shopper, phone="13800138000", code=code)] * 2)

    assert len(results) == 1 and [error.code for error in raised] == ["code_expired"]
    assert Member.objects.get(pk=shopper.pk).phone == "+8613800138000"


# --- the mall page ---------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, shopper):
    session = client.session
    session[MEMBER_SESSION_KEY] = shopper.pk
    session.save()
    return client


def test_the_page_sends_a_code_then_takes_the_membership_over_and_signs_in_to_it(
    signed_in, shopper, store_member, texts, settings
):
    settings.DEBUG = True
    url = reverse("members:bind-phone")
    page = signed_in.post(url, {"phone": "138 0000 0401", "action": "send", "next": "/mall/me/"})
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="code"' in body
    code = _code_in(texts)
    assert code in body  # development only: the page shows the code it wrote to the log

    wrong = signed_in.post(
        url, {"phone": "13800000401", "code": "000000" if code != "000000" else "111111", "action": "confirm"}
    )
    assert wrong.status_code == 400
    assert 'name="code"' in wrong.content.decode()

    done = signed_in.post(url, {"phone": "13800000401", "code": code, "action": "confirm", "next": "/mall/me/"})
    assert done.status_code == 302 and done["Location"] == "/mall/me/"
    assert signed_in.session[MEMBER_SESSION_KEY] == store_member.pk
    center = signed_in.get("/mall/me/").content.decode()
    assert str(store_member.points_balance) in center


def test_the_page_does_not_show_the_code_outside_development(signed_in, texts, settings):
    settings.DEBUG = False
    page = signed_in.post(reverse("members:bind-phone"), {"phone": "13800138000", "action": "send"})
    assert page.status_code == 200
    assert _code_in(texts) not in page.content.decode()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"phone": "12345", "action": "send"}, "phone"),
        ({"phone": "13800138000", "code": "12", "action": "confirm"}, "code"),
        ({"phone": "13800138000", "code": "123456", "action": "confirm"}, "code"),
    ],
)
def test_bad_input_on_the_page_is_a_form_error(signed_in, shopper, data, field):
    response = signed_in.post(reverse("members:bind-phone"), data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    shopper.refresh_from_db()
    assert shopper.phone is None


def test_hq_sees_where_a_sign_up_went_and_cannot_reactivate_it(admin_client, shopper, store_member, texts):
    _prove(shopper, STORE_PHONE, texts)
    url = reverse("admin:members_member_change", args=[shopper.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "is_active" in page.context["adminform"].readonly_fields
    assert "merged_into" in page.context["adminform"].readonly_fields
    assert str(store_member) in page.content.decode()
