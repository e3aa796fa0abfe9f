"""HQ moves a member to another referrer or guide from the member's admin page: with a reason,
through `rebind_referral`, every refusal a form error that changes nothing, the history on the page."""

import pytest
from django.contrib.auth.models import Permission

from members.models import Member, ReferralChange
from members.services import rebind_referral
from o2o.errors import ApplicationError
from tests.factories import HQUserFactory, MemberFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def family():
    """top brought middle, who brought bottom; `stranger` is nobody's; bottom has a guide."""
    store = StoreFactory(code="WS")
    guide = StaffFactory(store=store, role="guide", staff_code="G-WANG", display_name="小王")
    top = MemberFactory(nickname="顶层", phone="+8615800000001", referral_code="TOPCODE2")
    middle = MemberFactory(nickname="中间", referrer=top)
    bottom = MemberFactory(nickname="底层", referrer=middle, guide=guide)
    stranger = MemberFactory(nickname="路人", phone="+8615800000009", referral_code="STRANGE3")
    return {"top": top, "middle": middle, "bottom": bottom, "stranger": stranger, "guide": guide, "store": store}


@pytest.fixture
def hq(client):
    user = HQUserFactory(username="hq-admin")
    client.force_login(user)
    client.user = user
    return client


def _url(member: Member) -> str:
    return f"/admin/members/member/{member.pk}/referral/"


def _unchanged(member: Member, referrer: Member | None, guide) -> bool:
    member.refresh_from_db()
    return (member.referrer, member.guide) == (referrer, guide) and not ReferralChange.objects.exists()


def test_hq_moves_a_member_to_a_referrer_named_by_mobile_and_the_change_is_recorded(hq, family):
    bottom, stranger, guide = family["bottom"], family["stranger"], family["guide"]

    answer = hq.post(_url(bottom), {"referrer": "158 0000 0009", "guide": "G-WANG", "reason": "顾客要求更换推荐人"})

    assert answer.status_code == 302 and answer["Location"] == f"/admin/members/member/{bottom.pk}/change/"
    bottom.refresh_from_db()
    assert (bottom.referrer, bottom.guide) == (stranger, guide)
    change = ReferralChange.objects.get(member=bottom)
    assert (change.from_referrer, change.to_referrer, change.from_guide, change.to_guide) == (
        family["middle"],
        stranger,
        guide,
        guide,
    )
    assert (change.reason, change.changed_by) == ("顾客要求更换推荐人", hq.user)
    page = hq.get(f"/admin/members/member/{bottom.pk}/change/").content.decode()
    assert "顾客要求更换推荐人" in page and "路人" in page  # the history, read-only on the member's page
    assert _url(bottom) in page  # the button to the form


def test_a_referral_code_in_any_case_names_the_referrer_and_empty_fields_unbind(hq, family):
    bottom = family["bottom"]

    hq.post(_url(bottom), {"referrer": "strange3", "guide": "G-WANG", "reason": "合并账号"})
    bottom.refresh_from_db()
    assert bottom.referrer == family["stranger"]

    hq.post(_url(bottom), {"referrer": "", "guide": "", "reason": "推荐关系无效"})
    bottom.refresh_from_db()
    assert (bottom.referrer, bottom.guide) == (None, None)
    assert ReferralChange.objects.filter(member=bottom).count() == 2


def test_the_form_opens_with_the_member_s_referrer_and_guide(hq, family):
    page = hq.get(_url(family["middle"]))

    assert page.status_code == 200
    assert page.context["form"].initial == {"referrer": "+8615800000001", "guide": ""}


def test_moving_a_member_under_someone_they_brought_in_is_a_form_error_and_changes_nothing(hq, family):
    top, bottom = family["top"], family["bottom"]

    page = hq.post(_url(top), {"referrer": bottom.phone, "guide": "", "reason": "合并账号"})

    assert page.status_code == 200
    assert page.context["form"].errors["referrer"]
    assert _unchanged(top, None, None)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"referrer": "SELF", "reason": "自己推荐自己"}, "referrer"),  # SELF: the member's own mobile
        ({"referrer": "13000000000", "reason": "不存在的人"}, "referrer"),
        ({"referrer": "NOSUCHCD", "reason": "不存在的码"}, "referrer"),
        ({"referrer": "+8615800000009", "reason": "   "}, "reason"),
        ({"referrer": "+8615800000009", "reason": ""}, "reason"),
        ({"referrer": "+8615800000009", "guide": "G-NOBODY", "reason": "换导购"}, "guide"),
        ({"referrer": "+8615800000001", "guide": "G-WANG"}, "reason"),
        ({"referrer": "x" * 40, "reason": "太长"}, "referrer"),
    ],
)
def test_a_refusal_is_a_form_error_and_changes_nothing(hq, family, data, field):
    member = family["bottom"]
    if data["referrer"] == "SELF":
        data = {**data, "referrer": member.phone}

    page = hq.post(_url(member), {"guide": "G-WANG", **data})

    assert page.status_code == 200
    assert page.context["form"].errors[field]
    assert _unchanged(member, family["middle"], family["guide"])


def test_a_closed_account_cannot_become_a_referrer_nor_a_guide_who_left_a_guide(hq, family):
    stranger, member = family["stranger"], family["top"]
    stranger.closed_at = stranger.joined_at
    stranger.save(update_fields=["closed_at"])
    left = StaffFactory(store=family["store"], staff_code="G-LEFT", is_active=False)

    closed = hq.post(_url(member), {"referrer": stranger.phone, "guide": "", "reason": "换推荐人"})
    gone = hq.post(_url(member), {"referrer": "", "guide": left.staff_code, "reason": "换导购"})

    assert closed.context["form"].errors["referrer"] and gone.context["form"].errors["guide"]
    assert _unchanged(member, None, None)


def test_naming_the_same_referrer_and_guide_again_is_a_form_error(hq, family):
    middle = family["middle"]

    page = hq.post(_url(middle), {"referrer": family["top"].referral_code, "guide": "", "reason": "无变化"})

    assert page.context["form"].non_field_errors()
    assert _unchanged(middle, family["top"], None)


def test_a_member_whose_guide_left_may_still_be_moved_to_another_referrer(hq, family):
    bottom, guide = family["bottom"], family["guide"]
    guide.is_active = False
    guide.save(update_fields=["is_active"])

    answer = hq.post(_url(bottom), {"referrer": family["stranger"].phone, "guide": "G-WANG", "reason": "换推荐人"})

    assert answer.status_code == 302
    bottom.refresh_from_db()
    assert (bottom.referrer, bottom.guide) == (family["stranger"], guide)


def test_the_service_refuses_a_closed_referrer_with_a_code(family):
    family["stranger"].closed_at = family["stranger"].joined_at
    family["stranger"].save(update_fields=["closed_at"])

    with pytest.raises(ApplicationError) as refused:
        rebind_referral(member=family["top"], referrer=family["stranger"], guide=None, reason="x", user=None)

    assert refused.value.code == "referrer_inactive"


def test_a_clerk_without_admin_rights_is_sent_to_the_sign_in_and_changes_nothing(client, family):
    client.force_login(StaffFactory(store=family["store"]).user)

    answer = client.post(_url(family["top"]), {"referrer": family["stranger"].phone, "reason": "偷偷改"})

    assert answer.status_code == 302 and "/admin/login/" in answer["Location"]
    assert _unchanged(family["top"], None, None)


def test_an_admin_user_who_may_only_view_members_is_refused(client, family):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_member"))
    client.force_login(user)

    answer = client.post(_url(family["top"]), {"referrer": family["stranger"].phone, "reason": "偷偷改"})

    assert answer.status_code == 403
    assert _unchanged(family["top"], None, None)


def test_an_unknown_member_is_a_404(hq, family):
    assert hq.get("/admin/members/member/999999/referral/").status_code == 404
