"""Writes of members: sign-in, phone binding, the home store, purchases."""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from members.models import Member, Purchase
from o2o.errors import Conflict
from o2o.phone import mask_phone, normalize_cn_mobile
from stores.models import Store


def sign_in_with_wechat(*, openid: str, unionid: str = "", nickname: str = "", avatar_url: str = "") -> Member:
    """Find the member by unionid, else openid, or create one; refresh the profile WeChat gave.

    Safe against two first sign-ins at once: the unique openid decides, the loser reads the winner.
    """
    for _attempt in range(2):
        try:
            with transaction.atomic():
                member = None
                if unionid:
                    member = Member.objects.select_for_update().filter(unionid=unionid).first()
                if member is None:
                    member = Member.objects.select_for_update().filter(openid=openid).first()
                if member is None:
                    return Member.objects.create(
                        openid=openid, unionid=unionid or None, nickname=nickname[:64], avatar_url=avatar_url[:500]
                    )
                changed = []
                for field, value in (
                    ("openid", openid),
                    ("unionid", unionid),
                    ("nickname", nickname[:64]),
                    ("avatar_url", avatar_url[:500]),
                ):
                    if value and getattr(member, field) != value:
                        setattr(member, field, value)
                        changed.append(field)
                if changed:
                    member.save(update_fields=changed)
                return member
        except IntegrityError:
            continue  # another request created the same member first: read it on the next pass
    raise Conflict(_("Sign-in conflicted with another request; try again."), code="sign_in_conflict")


def sign_in_for_development(*, phone: str) -> Member:
    """The demo stand-in for WeChat: a member found or created by phone (views allow it only in DEBUG)."""
    phone = normalize_cn_mobile(phone)
    member = Member.objects.filter(phone=phone).first()
    if member is not None:
        return member
    try:
        with transaction.atomic():
            return Member.objects.create(phone=phone, openid=f"dev-{phone[3:]}", nickname=mask_phone(phone))
    except IntegrityError:
        return Member.objects.get(phone=phone)


@transaction.atomic
def bind_phone(*, member: Member, phone: str) -> Member:
    """Bind a mobile number; one number belongs to one member."""
    phone = normalize_cn_mobile(phone)
    if Member.objects.filter(phone=phone).exclude(pk=member.pk).exists():
        raise Conflict(
            _("This mobile number belongs to another member."),
            code="phone_taken",
            details={"phone": [_("Already bound.")]},
        )
    member.phone = phone
    try:
        with transaction.atomic():
            member.save(update_fields=["phone"])
    except IntegrityError:
        raise Conflict(_("This mobile number belongs to another member."), code="phone_taken") from None
    return member


def set_home_store_once(*, member: Member, store: Store, source: str) -> bool:
    """Give the member a home store unless they have one: the first store that brought them in wins.

    One conditional UPDATE, so two entries at once cannot both set it. Returns whether it was set.
    """
    now = timezone.now()
    updated = Member.objects.filter(pk=member.pk, home_store__isnull=True).update(
        home_store=store, home_store_source=source, home_store_set_at=now
    )
    if updated:
        member.home_store, member.home_store_source, member.home_store_set_at = store, source, now
    return bool(updated)


def record_purchase(
    *, member: Member, store: Store, channel: str, reference: str, amount_fen: int, purchased_at: datetime
) -> Purchase:
    """Record that the member bought at a store (an online order completed, a POS sale).

    The same (channel, store, reference) is recorded once, however often it is reported.
    """
    purchase, _created = Purchase.objects.get_or_create(
        channel=channel,
        store=store,
        reference=reference[:64],
        defaults={"member": member, "amount_fen": amount_fen, "purchased_at": purchased_at},
    )
    return purchase
