"""Proving a mobile number online, and taking over the membership opened for it in a store.

A member signed in through WeChat asks for a code (`send_phone_code`); the code goes by SMS to the
number; typing it back (`confirm_phone_code`) proves the number is theirs. Then:

- the number is free: it is bound to the member;
- it belongs to a membership with no WeChat identity (opened at a till, or by the chain's CRM
  through the ERP API): the WeChat identity moves onto that membership, which keeps its card,
  points, purchases and history (`claim_membership`), and the sign-up that asked is retired and
  points to it (`merged_into`);
- it belongs to another WeChat member: refused (`phone_taken`).

See docs/member-identity.md for the rules, the limits and the failure modes.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _

from integrations.vendors.sms import sms_backend
from members.models import Member, PhoneCode, PointsEntry, Purchase
from members.services import bind_phone, set_home_store_once
from o2o.errors import ApplicationError, Conflict
from o2o.events import publish
from o2o.phone import normalize_cn_mobile

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=10)
RESEND_AFTER = timedelta(seconds=60)
DAY = timedelta(hours=24)
CODES_PER_PHONE_PER_DAY = 5  # a number cannot be flooded with texts through us
CODES_PER_MEMBER_PER_DAY = 10  # nor can one account text many numbers
WRONG_ATTEMPTS_ALLOWED = 5  # per code: a million codes, five guesses

_CODE = re.compile(rf"[0-9]{{{CODE_DIGITS}}}")


class TooSoon(ApplicationError):
    code = "code_sent_recently"
    status = 429

    def __init__(self, message: str, *, retry_after: int, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


@dataclass(frozen=True)
class SentCode:
    phone: str
    expires_at: datetime
    resend_at: datetime
    code: str  # for the development page only (LoggingSmsBackend); never logged, never stored in clear


def _digest(phone: str, code: str) -> str:
    return salted_hmac("members.phone-code", f"{phone}:{code}", algorithm="sha256").hexdigest()


def _holder(phone: str, *, member: Member) -> Member | None:
    return Member.objects.filter(phone=phone).exclude(pk=member.pk).first()


def _claimable(holder: Member) -> bool:
    """A membership the number's owner may take over: open, and never signed in through WeChat."""
    return holder.is_active and holder.closed_at is None and not holder.openid and not holder.unionid


def _taken() -> Conflict:
    return Conflict(
        _("This mobile number belongs to another WeChat account."),
        code="phone_taken",
        details={"phone": [_("This mobile number belongs to another WeChat account.")]},
    )


def send_phone_code(*, member: Member, phone: str, at: datetime | None = None) -> SentCode:
    """Text a one-time code to `phone` for `member` to type back, within the limits above."""
    at = at or timezone.now()
    phone = normalize_cn_mobile(phone)
    if member.phone == phone:
        message = _("This number is already yours.")
        raise ApplicationError(message, code="phone_unchanged", details={"phone": [message]})
    holder = _holder(phone, member=member)
    if holder is not None and not _claimable(holder):
        raise _taken()  # no text for a number that cannot be bound here
    with transaction.atomic():
        Member.objects.select_for_update().only("pk").get(pk=member.pk)  # one request per member at a time
        recent = PhoneCode.objects.filter(created_at__gt=at - DAY)
        last = recent.filter(member=member).order_by("-created_at").first()
        last_to_phone = recent.filter(phone=phone).order_by("-created_at").first()
        latest = max((row.created_at for row in (last, last_to_phone) if row), default=None)
        if latest is not None and latest + RESEND_AFTER > at:
            wait = int((latest + RESEND_AFTER - at).total_seconds()) + 1
            message = _("A code was just sent. You can ask for another in {seconds} seconds.").format(seconds=wait)
            raise TooSoon(message, retry_after=wait, details={"phone": [message]})
        if (
            recent.filter(phone=phone).count() >= CODES_PER_PHONE_PER_DAY
            or recent.filter(member=member).count() >= CODES_PER_MEMBER_PER_DAY
        ):
            message = _("Too many codes were asked for today. Please try again tomorrow.")
            raise ApplicationError(message, code="too_many_codes", status=429, details={"phone": [message]})
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        row = PhoneCode.objects.create(
            member=member, phone=phone, digest=_digest(phone, code), created_at=at, expires_at=at + CODE_TTL
        )
    text = _("[{chain}] Your verification code is {code}. It is valid for {minutes} minutes; do not share it.").format(
        chain=settings.O2O_CHAIN_NAME, code=code, minutes=int(CODE_TTL.total_seconds() // 60)
    )
    try:
        sms_backend().send(phone=phone, text=text)
    except ApplicationError:
        PhoneCode.objects.filter(pk=row.pk).delete()  # not sent: not counted, and nothing to type back
        raise
    return SentCode(phone=phone, expires_at=row.expires_at, resend_at=at + RESEND_AFTER, code=code)


def confirm_phone_code(*, member: Member, phone: str, code: str, at: datetime | None = None) -> Member:
    """The member typed `code` back: bind `phone`, or take over the membership it belongs to.

    Returns the member the shopper is from now on: `member`, or the membership they took over (the
    caller signs the session into it). A wrong code counts against the code; five and it is spent.
    """
    at = at or timezone.now()
    phone = normalize_cn_mobile(phone)
    code = (code or "").strip()
    if not _CODE.fullmatch(code):
        raise ApplicationError(
            _("The code is the {digits} digits in the text message.").format(digits=CODE_DIGITS),
            code="invalid_code",
            details={"code": [_("{digits} digits.").format(digits=CODE_DIGITS)]},
        )
    with transaction.atomic():
        row = (
            PhoneCode.objects.select_for_update()
            .filter(member=member, phone=phone, used_at__isnull=True)
            .order_by("-created_at", "-pk")
            .first()
        )
        if row is None or row.expires_at <= at or row.attempts >= WRONG_ATTEMPTS_ALLOWED:
            message = _("This code has expired or was used up. Ask for a new one.")
            raise ApplicationError(message, code="code_expired", details={"code": [message]})
        right = constant_time_compare(row.digest, _digest(phone, code))
        if right:
            row.used_at = at
            row.save(update_fields=["used_at"])
            return _bind_proven(member=member, phone=phone, at=at)
        row.attempts += 1
        row.save(update_fields=["attempts"])  # committed: the guess counts even though it is refused
        left = WRONG_ATTEMPTS_ALLOWED - row.attempts
    message = (
        _("The code is not right. {left} tries left.").format(left=left)
        if left
        else _("The code is not right, and it is used up. Ask for a new one.")
    )
    raise ApplicationError(message, code="wrong_code", details={"code": [message]})


def _bind_proven(*, member: Member, phone: str, at: datetime) -> Member:
    holder = _holder(phone, member=member)
    if holder is None:
        return bind_phone(member=member, phone=phone)  # a number taken meanwhile is refused there
    if not _claimable(holder):
        raise _taken()
    return claim_membership(member=member, holder=holder, at=at)


def claim_membership(*, member: Member, holder: Member, at: datetime | None = None) -> Member:
    """`member` (a WeChat sign-up) proved the number of `holder` (a membership opened in a store):
    the WeChat identity moves to `holder`, and `member` is retired, merged into it.

    What the holder has stays: card, points, purchases, tier, follow-up calls. The sign-up gives it
    what it lacks: WeChat identity, avatar, a home store, a referral code and the latest marketing
    choice. Bindings are made once: the sign-up's referrer and guide become the holder's only if the
    holder had none (this is the membership's first arrival through a share or a guide's code);
    otherwise they are dropped, and the apps to the right take back what the sign-up earned
    anyone (`member.claimed`). A sign-up with a history of its own (points, purchases, orders,
    a team, commission) is refused, for HQ to sort out: ledgers are not moved between members.
    """
    at = at or timezone.now()
    with transaction.atomic():
        both = Member.objects.select_for_update().filter(pk__in=[member.pk, holder.pk]).order_by("pk")
        locked = {row.pk: row for row in both}  # locked in the order of their ids, as every claim does
        member, holder = locked[member.pk], locked[holder.pk]
        if not member.is_active or member.merged_into_id is not None or not _claimable(holder):
            raise _taken()
        if (
            PointsEntry.objects.filter(member=member).exists()
            or Purchase.objects.filter(member=member).exists()
            or Member.objects.filter(referrer=member).exists()
        ):
            raise has_history()
        carried = holder.bound_at is None and member.bound_at is not None and member.referrer_id != holder.pk
        identity = {
            "openid": member.openid,
            "unionid": member.unionid,
            "referral_code": member.referral_code if not holder.referral_code else None,
        }
        bindings = (member.referrer_id, member.guide_id, member.bound_at)

        # The sign-up lets go of what is unique first, then the holder takes it.
        member.openid = member.unionid = member.phone = None  # a retired row holds nothing unique
        if identity["referral_code"]:
            member.referral_code = None
        member.referrer = member.guide = member.bound_at = None
        member.is_active = False
        member.merged_into, member.merged_at = holder, at
        member.save(
            update_fields=[
                "openid",
                "unionid",
                "phone",
                "referral_code",
                "referrer",
                "guide",
                "bound_at",
                "is_active",
                "merged_into",
                "merged_at",
            ]
        )
        changed = ["openid", "unionid"]
        holder.openid, holder.unionid = identity["openid"], identity["unionid"]
        if identity["referral_code"]:
            holder.referral_code = identity["referral_code"]
            changed.append("referral_code")
        if not holder.avatar_url and member.avatar_url:
            holder.avatar_url = member.avatar_url
            changed.append("avatar_url")
        if not holder.nickname and member.nickname:
            holder.nickname = member.nickname
            changed.append("nickname")
        if member.marketing_consent_at and (
            holder.marketing_consent_at is None or member.marketing_consent_at > holder.marketing_consent_at
        ):
            holder.marketing_consent = member.marketing_consent
            holder.marketing_consent_at = member.marketing_consent_at
            changed += ["marketing_consent", "marketing_consent_at"]
        if carried:
            holder.referrer_id, holder.guide_id, holder.bound_at = bindings
            changed += ["referrer", "guide", "bound_at"]
        holder.save(update_fields=changed)
        if member.home_store_id:
            set_home_store_once(member=holder, store=member.home_store, source=member.home_store_source)
        publish("member.claimed", member_id=holder.pk, retired_id=member.pk, bindings_carried=carried)
    return holder


def has_history() -> Conflict:
    """The refusal of a claim by a sign-up with a history of its own (raised here and by the apps
    that own orders and commissions, from their `member.claimed` subscribers)."""
    message = _(
        "This number belongs to a membership opened in a store, and this WeChat account already has "
        "orders or points of its own, so the two cannot be joined here. Please ask customer service "
        "to merge them."
    )
    return Conflict(message, code="claim_has_history", details={"phone": [message]})
