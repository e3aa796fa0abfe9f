"""Members: sign-in by WeChat identity, phone binding, and the home store that brought them in."""

import pytest

from members.models import Member
from members.services import bind_phone, set_home_store_once, sign_in_for_development, sign_in_with_wechat
from o2o.errors import ApplicationError
from o2o.phone import InvalidPhone, mask_phone, normalize_cn_mobile
from tests.concurrency import run_at_once
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("13800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("+86-138-0013-8000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
    ],
)
def test_mobile_numbers_are_stored_in_one_form(text, expected):
    assert normalize_cn_mobile(text) == expected


@pytest.mark.parametrize(
    "text", ["", "12800138000", "1380013800", "138001380001", "abc", "+1 415 555 0100", "0571-88886666"]
)
def test_anything_but_a_mainland_mobile_is_refused(text):
    with pytest.raises(InvalidPhone):
        normalize_cn_mobile(text)


def test_a_masked_phone_keeps_only_the_first_three_and_last_four_digits():
    assert mask_phone("+8613800138000") == "138****8000"


def test_the_same_openid_signs_in_as_the_same_member_and_refreshes_the_nickname():
    first = sign_in_with_wechat(openid="o-1", nickname="小王")
    again = sign_in_with_wechat(openid="o-1", nickname="王小明")
    assert again.pk == first.pk
    assert Member.objects.get(pk=first.pk).nickname == "王小明"
    assert Member.objects.count() == 1


def test_the_unionid_finds_the_member_across_official_accounts():
    member = sign_in_with_wechat(openid="o-mall", unionid="u-1")
    other_account = sign_in_with_wechat(openid="o-other", unionid="u-1")
    assert other_account.pk == member.pk


def test_a_phone_belongs_to_one_member_only():
    MemberFactory(phone="+8613800138000")
    newcomer = MemberFactory(phone=None)
    with pytest.raises(ApplicationError) as refused:
        bind_phone(member=newcomer, phone="138 0013 8000")
    assert refused.value.code == "phone_taken"
    newcomer.refresh_from_db()
    assert newcomer.phone is None


def test_binding_a_bad_phone_changes_nothing():
    member = MemberFactory(phone=None)
    with pytest.raises(InvalidPhone):
        bind_phone(member=member, phone="12345")
    member.refresh_from_db()
    assert member.phone is None


def test_development_sign_in_finds_the_member_by_phone():
    first = sign_in_for_development(phone="13900001111")
    assert sign_in_for_development(phone="+86 139 0000 1111").pk == first.pk


def test_the_first_store_that_brought_a_member_in_stays_their_home_store():
    member = MemberFactory()
    first, second = StoreFactory(), StoreFactory()
    assert set_home_store_once(member=member, store=first, source=Member.HomeStoreSource.STORE_QR)
    assert not set_home_store_once(member=member, store=second, source=Member.HomeStoreSource.PRODUCT_QR)
    member.refresh_from_db()
    assert member.home_store == first
    assert member.home_store_source == "store_qr"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_first_sign_ins_at_once_make_one_member():
    results, errors = run_at_once([lambda: sign_in_with_wechat(openid="o-race", nickname="并发").pk] * 2)
    assert not errors
    assert len(set(results)) == 1
    assert Member.objects.filter(openid="o-race").count() == 1
