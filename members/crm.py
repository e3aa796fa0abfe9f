"""Members written by the chain's CRM: found or created by mobile number, with the few fields it owns.

The number is the key (normalised to +86…). The CRM may set the nickname and record that the member
asked not to be called; it never touches points, tiers, the referrer, the guide, the home store or
marketing consent (consent is the member's own choice, given in the member center). A closed
account is never brought back: its number is refused (`member_closed`). A member created here is
registered like any other (`member.registered`, without referrer or guide).
"""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from members.models import Member
from members.services import _register, closed_phone_digest
from o2o.errors import ApplicationError
from o2o.phone import normalize_cn_mobile


class Outcome:
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


@dataclass(frozen=True)
class CrmMember:
    """One member as the CRM sends it; None: the CRM says nothing about that field."""

    phone: str
    nickname: str | None = None
    do_not_call: bool | None = None


@dataclass(frozen=True)
class UpsertResult:
    outcome: str
    phone: str
    member: Member | None = None
    code: str = ""
    message: str = ""


def upsert_member_from_crm(*, item: CrmMember) -> UpsertResult:
    """Create or update the member with this number, in its own transaction (a savepoint inside the
    caller's); a refusal is an answer.

    `do_not_call` can only be raised from here (the member asked the CRM's call centre not to be
    called); lowering it again is the member's or HQ's decision, so `false` changes nothing.
    """
    try:
        phone = normalize_cn_mobile(item.phone)
    except ApplicationError as refusal:
        return UpsertResult(Outcome.REJECTED, str(item.phone)[:32], code=refusal.code, message=refusal.message)
    for _attempt in range(2):
        try:
            with transaction.atomic():
                return _upsert(phone, item)
        except IntegrityError:
            continue  # the same number created at the same moment: the next pass updates it
    return UpsertResult(
        Outcome.REJECTED,
        phone,
        code="conflict",
        message=_("Another request wrote this member at the same moment; send it again."),
    )


def _upsert(phone: str, item: CrmMember) -> UpsertResult:
    member = Member.objects.select_for_update().filter(phone=phone).first()
    if member is None:
        if Member.objects.filter(closed_phone_digest=closed_phone_digest(phone), closed_at__isnull=False).exists():
            return UpsertResult(
                Outcome.REJECTED,
                phone,
                code="member_closed",
                message=_("The member with this number closed the account; it is not recreated."),
            )
        member = _register(
            referral=None,
            phone=phone,
            nickname=(item.nickname or "")[:64],
            do_not_call=bool(item.do_not_call),
        )
        return UpsertResult(Outcome.CREATED, phone, member=member)
    if not member.is_active:
        return UpsertResult(
            Outcome.REJECTED,
            phone,
            member=member,
            code="member_inactive",
            message=_("This member is deactivated; HQ must reactivate it first."),
        )
    changed = []
    if item.nickname is not None and item.nickname[:64] != member.nickname:
        member.nickname = item.nickname[:64]
        changed.append("nickname")
    if item.do_not_call and not member.do_not_call:
        member.do_not_call = True
        changed.append("do_not_call")
    if not changed:
        return UpsertResult(Outcome.UNCHANGED, phone, member=member)
    member.save(update_fields=changed)
    return UpsertResult(Outcome.UPDATED, phone, member=member)
