"""Writes of segments and campaigns: defining them, queueing, cancelling, and the sending core.

Who may do what: HQ (the admin, `staff=None`) any segment and campaign; a store manager (`staff`
with the manager role) only their own store's, and their segments always reach their store's
members only. Another store's campaign or segment is "not found".

Sending rules (`send_campaign_batch`): a member without marketing consent is never messaged, nor a
closed account, nor one without a number (SMS) or WeChat openid; HQ's frequency cap counts each
member's pending and sent messages of the last `per_days` days across every campaign, checked
under the member's row lock so two campaigns at once cannot both pass it. Every member handled
gets one log row (`CampaignMessage`, unique per campaign and member) with its result, written
before the provider is called: a campaign run twice never messages anyone twice. The provider is
called outside any transaction.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.vendors.sms import SMS_PART_CHARS
from inventory.models import Category, Product
from members import messaging
from members.models import Campaign, CampaignEvent, CampaignMessage, CampaignSettings, Member, Segment, Tier
from members.segments import segment_count, segment_members
from members.selectors import campaign_settings
from o2o.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from o2o.state_machine import IllegalTransition
from stores.models import Staff, Store

logger = logging.getLogger(__name__)

MAX_DAYS = 3650
MAX_POINTS = 100_000_000  # well inside the database's integer
SMS_MAX_PARTS = 2
SMS_MAX_CHARS = SMS_MAX_PARTS * SMS_PART_CHARS  # 134: two billed messages at most
WECHAT_MAX_CHARS = 200
# A message still "being sent" after this long was cut off (the worker died mid-call): its
# delivery is unknown, and it is logged failed rather than sent again.
PENDING_STALE_AFTER = timedelta(minutes=2)

# Each skip reason's counter on the campaign has the reason's own name.
_SKIP_COUNTERS = {
    status.value: status.value
    for status in (
        CampaignMessage.Status.SKIPPED_NO_CONSENT,
        CampaignMessage.Status.SKIPPED_CAPPED,
        CampaignMessage.Status.SKIPPED_NO_ADDRESS,
        CampaignMessage.Status.SKIPPED_CLOSED,
    )
}


# --- who may act --------------------------------------------------------------------------------


def _owner_store(staff: Staff | None) -> Store | None:
    """The store a segment or campaign belongs to when `staff` acts: theirs; None for HQ."""
    if staff is None:
        return None
    if staff.role != Staff.Role.MANAGER:
        raise PermissionDenied(_("Only the store manager runs the store's campaigns."), code="managers_only")
    return staff.store


def _refuse_foreign(owner_id: int | None, staff: Staff | None, *, what: str) -> None:
    """A manager acting on anything but their own store's segment or campaign is told it does not exist."""
    if staff is not None and (_owner_store(staff).pk != owner_id):
        if what == "campaign":
            raise NotFound(_("No such campaign."), code="campaign_not_found")
        raise NotFound(_("No such segment."), code="segment_not_found")


# --- segments -----------------------------------------------------------------------------------


def _days(value: Any, field: str, errors: dict[str, list[str]]) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        errors.setdefault(field, []).append(_("A number of days from 1 to %(max)d.") % {"max": MAX_DAYS})
        return None
    return value


def _points(value: Any, field: str, errors: dict[str, list[str]]) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_POINTS:
        errors.setdefault(field, []).append(
            _("A whole number of points between -%(max)d and %(max)d.") % {"max": MAX_POINTS}
        )
        return None
    return value


def clean_segment(
    *,
    staff: Staff | None = None,
    name: str,
    tiers: Any = (),
    home_store: Store | None = None,
    bought_within_days: int | None = None,
    not_bought_for_days: int | None = None,
    product: Product | None = None,
    category: Category | None = None,
    min_points: int | None = None,
    max_points: int | None = None,
) -> dict[str, Any]:
    """A segment's fields checked and normalised, or `invalid_segment` with every field's problems.

    Tiers must be known tiers; day counts 1 to 3650; points within ±100,000,000, at least ≤ at
    most; "bought within" longer than "not bought for" (else nobody could match). A manager's
    segment is their store's: another home store is refused, and the home store is set to theirs.
    """
    owner = _owner_store(staff)
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = [_("Give the segment a name.")]
    elif len(name) > 80:
        errors["name"] = [_("At most 80 characters.")]
    if isinstance(tiers, str) or not all(isinstance(tier, str) for tier in tiers or ()):
        errors["tiers"] = [_("Choose tiers from the list.")]
        tiers = ()
    chosen = set(tiers or ())
    if chosen - set(Tier.values):
        errors["tiers"] = [_("Choose tiers from the list.")]
    tiers = [tier for tier in Tier.values if tier in chosen]  # in the tiers' own order, once each
    if owner is not None:
        if home_store is not None and home_store.pk != owner.pk:
            errors["home_store"] = [_("A store's segment reaches only the store's own members.")]
        home_store = owner
    within = _days(bought_within_days, "bought_within_days", errors)
    lapsed = _days(not_bought_for_days, "not_bought_for_days", errors)
    if within is not None and lapsed is not None and within <= lapsed:
        errors.setdefault("bought_within_days", []).append(
            _("“Bought within” must be longer than “has not bought for”, or no member can match.")
        )
    low = _points(min_points, "min_points", errors)
    high = _points(max_points, "max_points", errors)
    if low is not None and high is not None and low > high:
        errors.setdefault("max_points", []).append(_("Must be at least the lower bound."))
    if errors:
        raise ApplicationError(_("Please correct the segment."), code="invalid_segment", details=errors)
    return {
        "name": name,
        "store": owner,
        "tiers": tiers,
        "home_store": home_store,
        "bought_within_days": within,
        "not_bought_for_days": lapsed,
        "product": product,
        "category": category,
        "min_points": low,
        "max_points": high,
    }


@transaction.atomic
def create_segment(*, staff: Staff | None = None, user: AbstractBaseUser | None = None, **fields: Any) -> Segment:
    """Define a segment (checked by `clean_segment`): HQ's, or the manager's store's."""
    return Segment.objects.create(**clean_segment(staff=staff, **fields), created_by=user)


def check_segment_editable(segment: Segment) -> None:
    """A segment decides its campaigns' recipients: it cannot change while one of them is queued or sending."""
    if segment.campaigns.filter(status__in=[Campaign.Status.QUEUED, Campaign.Status.SENDING]).exists():
        raise Conflict(_("A campaign to this segment is being sent; change it afterwards."), code="segment_in_use")


@transaction.atomic
def update_segment(*, segment: Segment, staff: Staff | None = None, **fields: Any) -> Segment:
    """Change a segment's filters (checked by `clean_segment`); refused while one of its campaigns is
    queued or sending (`check_segment_editable`)."""
    locked = Segment.objects.select_for_update().get(pk=segment.pk)
    _refuse_foreign(locked.store_id, staff, what="segment")
    if staff is None and locked.store_id is not None:
        # HQ edits a store's segment as that store's: it keeps reaching the store's members only.
        fields["home_store"] = locked.store
    check_segment_editable(locked)
    cleaned = clean_segment(staff=staff, **fields)
    cleaned["store"] = locked.store
    for field, value in cleaned.items():
        setattr(locked, field, value)
    locked.save(update_fields=list(cleaned))
    return locked


# --- campaigns ----------------------------------------------------------------------------------


def clean_campaign(*, name: str, channel: str, body: str, title: str = "", link: str = "") -> dict[str, Any]:
    """A campaign's message checked and normalised, or `invalid_campaign` with every field's problems.

    SMS: the text only, at most 134 characters (two billed messages); WeChat: a title of at most
    40 characters (the campaign's name when empty), a text of at most 200 and an optional
    http(s) link.
    """
    errors: dict[str, list[str]] = {}
    name, body, title, link = (name or "").strip(), (body or "").strip(), (title or "").strip(), (link or "").strip()
    if not name:
        errors["name"] = [_("Give the campaign a name.")]
    elif len(name) > 80:
        errors["name"] = [_("At most 80 characters.")]
    if channel not in Campaign.Channel.values:
        errors["channel"] = [_("Choose WeChat or SMS.")]
    limit = SMS_MAX_CHARS if channel == Campaign.Channel.SMS else WECHAT_MAX_CHARS
    if not body:
        errors["body"] = [_("Write the message.")]
    elif len(body) > limit:
        errors["body"] = [
            _("At most %(max)d characters; this text has %(length)d.") % {"max": limit, "length": len(body)}
        ]
    if channel == Campaign.Channel.SMS:
        title, link = "", ""
    if len(title) > 40:
        errors["title"] = [_("At most 40 characters.")]
    if link:
        try:
            URLValidator(schemes=["http", "https"])(link)
        except ValidationError:
            errors["link"] = [_("A web address starting with https://.")]
        if len(link) > 500:
            errors["link"] = [_("At most 500 characters.")]
    if errors:
        raise ApplicationError(_("Please correct the campaign."), code="invalid_campaign", details=errors)
    return {"name": name, "channel": channel, "body": body, "title": title, "link": link}


@transaction.atomic
def create_campaign(
    *, segment: Segment, staff: Staff | None = None, user: AbstractBaseUser | None = None, **message: Any
) -> Campaign:
    """A draft campaign to a segment (checked by `clean_campaign`); it belongs to the segment's owner.

    A manager may only use their own store's segments.
    """
    _refuse_foreign(segment.store_id, staff, what="segment")
    campaign = Campaign.objects.create(
        **clean_campaign(**message), segment=segment, store_id=segment.store_id, created_by=user
    )
    CampaignEvent.objects.create(
        campaign=campaign, from_status="", to_status=campaign.status, actor=user, created_at=campaign.created_at
    )
    return campaign


def _move(locked: Campaign, to: str, *, actor: AbstractBaseUser | None, reason: str = "", **fields: Any) -> Campaign:
    """Move a locked campaign along its state machine and record the event."""
    Campaign.MACHINE.check(locked.status, to)
    now = timezone.now()
    previous = locked.status
    fields["status"] = to
    Campaign.objects.filter(pk=locked.pk).update(**fields)
    for field, value in fields.items():
        setattr(locked, field, value)
    CampaignEvent.objects.create(
        campaign=locked, from_status=previous, to_status=to, actor=actor, reason=reason[:255], created_at=now
    )
    return locked


def _locked_campaign(campaign_id: int, staff: Staff | None) -> Campaign:
    locked = Campaign.objects.select_for_update().select_related("segment").filter(pk=campaign_id).first()
    if locked is None:
        raise NotFound(_("No such campaign."), code="campaign_not_found")
    _refuse_foreign(locked.store_id, staff, what="campaign")
    return locked


@transaction.atomic
def queue_campaign(*, campaign_id: int, staff: Staff | None = None, user: AbstractBaseUser | None = None) -> Campaign:
    """Draft → queued: the segment's size now is the campaign's total, and sending starts in a
    Celery task after commit. Refused when the channel cannot send (WeChat or its campaign template
    not configured) or the segment is empty."""
    locked = _locked_campaign(campaign_id, staff)
    Campaign.MACHINE.check(locked.status, Campaign.Status.QUEUED)
    template = messaging.check_channel_ready(locked.channel)
    total = segment_count(locked.segment)
    if total == 0:
        raise Conflict(_("No member is in this segment now; nothing to send."), code="empty_segment")
    queued = _move(
        locked,
        Campaign.Status.QUEUED,
        actor=user,
        queued_at=timezone.now(),
        total=total,
        wechat_template_id=template,
    )
    transaction.on_commit(lambda: _send_later(queued.pk))
    return queued


def _send_later(campaign_id: int) -> None:
    from members import tasks

    tasks.send_campaign.delay(campaign_id)


@transaction.atomic
def cancel_campaign(
    *, campaign_id: int, staff: Staff | None = None, user: AbstractBaseUser | None = None, reason: str = ""
) -> Campaign:
    """Stop a campaign that is not done: no member is messaged after this (a message already with
    the provider finishes); what was sent stays logged."""
    locked = _locked_campaign(campaign_id, staff)
    return _move(locked, Campaign.Status.CANCELLED, actor=user, reason=reason, finished_at=timezone.now())


# --- sending ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    handled: int  # members given a log row by this batch
    finished: bool  # nothing more to do: done, cancelled, or not sendable


def _skip_reason(member: Member, sender: messaging.Sender, rules: CampaignSettings, now: datetime) -> str:
    if member.closed_at is not None or not member.is_active:
        return CampaignMessage.Status.SKIPPED_CLOSED
    if not member.marketing_consent:
        return CampaignMessage.Status.SKIPPED_NO_CONSENT
    if not sender.address(member):
        return CampaignMessage.Status.SKIPPED_NO_ADDRESS
    recent = CampaignMessage.objects.filter(
        member_id=member.pk,
        status__in=[CampaignMessage.Status.PENDING, CampaignMessage.Status.SENT],
        at__gte=now - timedelta(days=rules.per_days),
    ).count()
    if recent >= rules.max_messages:
        return CampaignMessage.Status.SKIPPED_CAPPED
    return ""


def _claim(
    campaign: Campaign, member_id: int, sender: messaging.Sender, rules: CampaignSettings
) -> tuple[str, CampaignMessage | None, Member | None]:
    """Decide, under the member's row lock, whether the member gets the message, and log it.

    Returns ("cancelled" | "already" | a message status, the log row, the member).
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            if not Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SENDING).exists():
                return "cancelled", None, None
            # The lock serialises every campaign's decision about this member: the cap holds.
            member = Member.objects.select_for_update().filter(pk=member_id).first()
            if member is None or CampaignMessage.objects.filter(campaign=campaign, member_id=member_id).exists():
                return "already", None, None
            status = _skip_reason(member, sender, rules, now) or CampaignMessage.Status.PENDING
            message = CampaignMessage.objects.create(
                campaign=campaign, member=member, channel=campaign.channel, status=status, at=now
            )
            if status in _SKIP_COUNTERS:
                counter = _SKIP_COUNTERS[status]
                Campaign.objects.filter(pk=campaign.pk).update(**{counter: F(counter) + 1})
            return status, message, member
    except IntegrityError:
        return "already", None, None  # another run of this campaign logged the member first


def _record_result(campaign: Campaign, message: CampaignMessage, *, provider_id: str = "", error: str = "") -> str:
    status = CampaignMessage.Status.FAILED if error else CampaignMessage.Status.SENT
    counter = "failed" if error else "sent"
    with transaction.atomic():
        updated = CampaignMessage.objects.filter(pk=message.pk, status=CampaignMessage.Status.PENDING).update(
            status=status, provider_message_id=provider_id[:64], error=error[:255], at=timezone.now()
        )
        if updated:
            Campaign.objects.filter(pk=campaign.pk).update(**{counter: F(counter) + 1})
    return status


def _error_text(error: Exception) -> str:
    if isinstance(error, ApplicationError):
        detail = {key: value for key, value in error.details.items() if key in ("errcode", "errmsg", "http_status")}
        return f"{error.code}: {error.message}" + (f" {detail}" if detail else "")
    return f"{type(error).__name__}: {error}"


def _deliver(campaign: Campaign, member: Member, message: CampaignMessage, sender: messaging.Sender) -> str:
    """Call the provider (outside any transaction) and log the result; a failure never stops the batch."""
    try:
        provider_id = sender.send(member)
    except Exception as error:  # noqa: BLE001 - any provider failure is logged on the message; the batch goes on
        logger.warning("campaign %s: message to member %s failed: %s", campaign.pk, member.pk, _error_text(error))
        return _record_result(campaign, message, error=_error_text(error))
    return _record_result(campaign, message, provider_id=str(provider_id or ""))


def _finish(campaign_id: int) -> bool:
    """Sending → done once no message is still with the provider; returns whether it is over."""
    now = timezone.now()
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign_id)
        if locked.status != Campaign.Status.SENDING:
            return True
        log = CampaignMessage.objects.filter(campaign_id=campaign_id)
        interrupted = log.filter(status=CampaignMessage.Status.PENDING, at__lt=now - PENDING_STALE_AFTER).update(
            status=CampaignMessage.Status.FAILED, error="interrupted: delivery unknown, not sent again", at=now
        )
        if interrupted:
            Campaign.objects.filter(pk=campaign_id).update(failed=F("failed") + interrupted)
        if log.filter(status=CampaignMessage.Status.PENDING).exists():
            return False  # another run is still calling the provider; look again later
        _move(locked, Campaign.Status.DONE, actor=None, finished_at=now, total=log.count())
        return True


def send_campaign_batch(*, campaign_id: int, batch_size: int = 50, until: float | None = None) -> BatchResult:
    """Handle the next `batch_size` members of a queued or sending campaign, in primary-key order.

    Each member is claimed under their row lock (consent, account, address and frequency cap
    decided there, the log row written), then messaged outside the transaction and the result
    logged with the campaign's counters (atomic F() updates). Stops early at `until`
    (`time.monotonic()`) or when the campaign is cancelled. With no member left the campaign is
    done. Safe to run twice at once: the log's unique row hands each member to one run.
    """
    campaign = Campaign.objects.select_related("segment", "store").filter(pk=campaign_id).first()
    if campaign is None:
        return BatchResult(handled=0, finished=True)
    if campaign.status == Campaign.Status.QUEUED:
        try:
            with transaction.atomic():
                locked = Campaign.objects.select_for_update().get(pk=campaign_id)
                _move(locked, Campaign.Status.SENDING, actor=None, started_at=timezone.now())
        except IllegalTransition:
            pass  # another run started it, or it was cancelled meanwhile
        campaign.refresh_from_db(fields=["status", "last_member_id"])
    if campaign.status != Campaign.Status.SENDING:
        return BatchResult(handled=0, finished=True)

    members = list(
        segment_members(campaign.segment)
        .filter(pk__gt=campaign.last_member_id)
        .order_by("pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    if not members:
        return BatchResult(handled=0, finished=_finish(campaign_id))
    rules = campaign_settings()
    sender = messaging.sender_for(campaign)
    handled, last = 0, campaign.last_member_id
    for member_id in members:
        if until is not None and time.monotonic() >= until:
            break
        status, message, member = _claim(campaign, member_id, sender, rules)
        if status == "cancelled":
            return BatchResult(handled=handled, finished=True)
        last = member_id
        if status == "already":
            continue
        handled += 1
        if status == CampaignMessage.Status.PENDING:
            _deliver(campaign, member, message, sender)
    # The cursor only moves forward, whichever of two runs gets here first.
    Campaign.objects.filter(pk=campaign_id, last_member_id__lt=last).update(last_member_id=last)
    return BatchResult(handled=handled, finished=False)
