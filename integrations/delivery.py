"""Sending webhook deliveries: claim due rows, POST them signed, record how each attempt ended.

A sweeper claims a batch of due deliveries in a short transaction (`FOR UPDATE SKIP LOCKED`): it
counts the attempt and pushes `next_attempt_at` past a lease, then commits, so no row lock is held
while it talks to receivers and a second sweeper skips those rows. Each answer is then written in
its own short UPDATE, guarded by the attempt number it claimed: a sweeper that outlived its lease
(another one took the row meanwhile) cannot overwrite the newer attempt. A worker that dies
mid-batch leaves its rows to come due again when the lease ends (at least once delivery; the
receiver drops repeats by `webhook-id`).

A 2xx answer is success. Anything else (another status, a timeout, a refused connection) is
retried after `backoff_delay` (exponential, full jitter) until `O2O_WEBHOOK_MAX_ATTEMPTS`, then the
delivery is dead. HQ may redeliver a dead or succeeded delivery from the admin.
"""

import logging
import random
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.models import Scope, WebhookDelivery
from integrations.vendors.http import PostResult, post_bytes
from integrations.webhooks import backoff_delay, render_body, signature_headers
from o2o.errors import ApplicationError

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 20
# Full jitter may draw a wait near zero; a retry still waits this long, so it never runs in the same sweep.
MIN_RETRY_WAIT = timedelta(seconds=1)
LEASE_MARGIN = timedelta(seconds=60)
# The jitter's random source; tests replace it to check the schedule's bounds.
jitter: Callable[[], float] = random.random


def _lease(batch_size: int) -> timedelta:
    # Long enough for every message of the batch to time out, one after another.
    return timedelta(seconds=batch_size * (settings.O2O_WEBHOOK_TIMEOUT_SECONDS + 1)) + LEASE_MARGIN


def claim_deliveries(*, now: datetime, limit: int, ids: Iterable[int] | None = None) -> list[WebhookDelivery]:
    """Take up to `limit` due deliveries (of `ids` if given) that no other sweeper holds, in due order.

    Commits before returning: the claim is the attempt count and a lease, not a held lock.
    """
    with transaction.atomic():
        due = WebhookDelivery.objects.filter(state__in=WebhookDelivery.OPEN_STATES, next_attempt_at__lte=now)
        if ids is not None:
            due = due.filter(pk__in=list(ids))
        claimed = list(
            due.select_for_update(skip_locked=True)
            .order_by("next_attempt_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not claimed:
            return []
        WebhookDelivery.objects.filter(pk__in=claimed).update(
            attempts=F("attempts") + 1, next_attempt_at=now + _lease(limit), last_attempt_at=now
        )
    return list(
        WebhookDelivery.objects.select_related("event", "endpoint__client")
        .filter(pk__in=claimed)
        .order_by("next_attempt_at", "pk")
    )


def _refusal(delivery: WebhookDelivery) -> str:
    """Why this delivery may no longer be sent, or "" if it may."""
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        return _("The endpoint is disabled.")
    if not endpoint.client.is_active:
        return _("The API client is disabled.")
    if not endpoint.client.has_scope(Scope.WEBHOOKS):
        return _("The API client lost the webhooks scope.")
    return ""


def send_delivery(delivery: WebhookDelivery, *, at: datetime) -> PostResult:
    """POST one message, signed for `at`; no database access."""
    event = delivery.event
    body = render_body(event_type=event.event_type, created_at=event.created_at, data=event.payload)
    headers = signature_headers(delivery.endpoint.signing_secrets(at), delivery.message_id, int(at.timestamp()), body)
    return post_bytes(delivery.endpoint.url, body=body, headers=headers, timeout=settings.O2O_WEBHOOK_TIMEOUT_SECONDS)


def record_attempt(delivery: WebhookDelivery, result: PostResult, *, at: datetime) -> str:
    """Write how the claimed attempt ended; returns the new state ("" if the claim was lost meanwhile)."""
    changes = {
        "last_status_code": result.status_code,
        "last_error": result.error[:255],
        "response_excerpt": result.excerpt,
        "last_duration_ms": result.duration_ms,
        "total_duration_ms": F("total_duration_ms") + result.duration_ms,
    }
    if result.succeeded:
        changes.update(state=WebhookDelivery.State.SUCCEEDED, next_attempt_at=None, delivered_at=at)
    elif delivery.attempts >= settings.O2O_WEBHOOK_MAX_ATTEMPTS:
        changes.update(state=WebhookDelivery.State.DEAD, next_attempt_at=None)
    else:
        wait = backoff_delay(
            delivery.attempts,
            base=settings.O2O_WEBHOOK_BACKOFF_BASE_SECONDS,
            cap=settings.O2O_WEBHOOK_BACKOFF_CAP_SECONDS,
            rand=jitter,
        )
        changes.update(
            state=WebhookDelivery.State.RETRYING, next_attempt_at=at + max(MIN_RETRY_WAIT, timedelta(seconds=wait))
        )
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, attempts=delivery.attempts, state__in=WebhookDelivery.OPEN_STATES
    ).update(**changes)
    if not updated:
        logger.warning("Webhook delivery %s: claim lost before its answer was recorded", delivery.message_id)
        return ""
    if changes["state"] == WebhookDelivery.State.DEAD:
        logger.warning(
            "Webhook delivery %s dead after %d attempts: %s", delivery.message_id, delivery.attempts, result.error
        )
    return changes["state"]


def _give_up(delivery: WebhookDelivery, reason: str) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(
        state=WebhookDelivery.State.DEAD, next_attempt_at=None, last_error=reason[:255]
    )


def deliver_claimed(deliveries: list[WebhookDelivery]) -> int:
    """Send each claimed delivery and record its outcome, outside any transaction; returns how many were sent."""
    sent = 0
    for delivery in deliveries:
        refusal = _refusal(delivery)
        if refusal:
            _give_up(delivery, refusal)
            continue
        at = timezone.now()
        result = send_delivery(delivery, at=at)
        record_attempt(delivery, result, at=timezone.now())
        sent += 1
    return sent


def deliver_due_webhooks(*, batch_size: int = DEFAULT_BATCH, time_budget: float = 20.0) -> int:
    """The sweeper: send due deliveries batch by batch until none is due or the time budget is spent.

    "Due" is fixed at the start, so an attempt that failed in this run waits for a later run.
    """
    now = timezone.now()
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < time_budget:
        claimed = claim_deliveries(now=now, limit=batch_size)
        if not claimed:
            break
        sent += deliver_claimed(claimed)
    return sent


def deliver_now(*, delivery_ids: list[int]) -> int:
    """Send these deliveries if they are still due (just committed ones); the sweeper takes any left."""
    return deliver_claimed(claim_deliveries(now=timezone.now(), limit=len(delivery_ids) or 1, ids=delivery_ids))


@transaction.atomic
def redeliver(*, delivery: WebhookDelivery, at: datetime | None = None) -> WebhookDelivery:
    """Send a dead or succeeded delivery again: pending now, attempts from zero, the same message id.

    The receiver sees the same `webhook-id`, so one that already processed it can tell.
    """
    locked = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
    if locked.state in WebhookDelivery.OPEN_STATES:
        raise ApplicationError(_("This delivery is still being attempted."), code="delivery_in_progress", status=409)
    now = at or timezone.now()
    locked.state = WebhookDelivery.State.PENDING
    locked.attempts = 0
    locked.next_attempt_at = now
    locked.redelivered_at = now
    locked.save(update_fields=["state", "attempts", "next_attempt_at", "redelivered_at"])
    if settings.O2O_WEBHOOK_DELIVER_ON_COMMIT:
        from integrations import tasks

        transaction.on_commit(lambda: tasks.deliver_webhooks_now.delay([locked.pk]), robust=True)
    return locked
