"""Idempotency keys of the ERP API's writes: the same key has one effect and one answer, however often it is sent.

A write's key is claimed by one INSERT of a unique (client, key) row, committed before the write
runs: a duplicate arriving meanwhile fails that INSERT, finds the claim in progress and is turned
away (409) without running. The write and the storing of its answer share one transaction,
under the claim's `attempt`, so either both happened or neither did:

- a repeat after completion gets the stored status and body back;
- the same key with another method, path or body is refused (422): a key names one request;
- an unexpected failure (a 5xx) releases the claim, so a retry runs the write afresh;
- a claim whose request died without answering (a killed worker) may be taken over once its
  lease has passed; if the first request was only slow after all, its answer finds the claim
  gone and its transaction rolls back, so the write still happens once.

Answers are kept `KEY_TTL` (24 hours); older rows count as gone and are pruned nightly.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.models import ApiClient, IdempotentRequest
from o2o.errors import ApplicationError, Conflict

KEY_TTL = timedelta(hours=24)
# Longer than any request may run (gunicorn's timeout is 30 s); only then is a silent claim abandoned.
LEASE = timedelta(seconds=60)
RETRY_AFTER_SECONDS = 2


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"


class IdempotencyKeyReused(ApplicationError):
    code = "idempotency_key_reused"
    status = 422


@dataclass(frozen=True)
class Claim:
    """This request holds the key: it runs the write and stores the answer under `attempt`."""

    record_id: int
    attempt: uuid.UUID


@dataclass(frozen=True)
class StoredAnswer:
    """The key was used before, for this very request: answer what was answered then."""

    status: int
    body: str


def request_digest(*, body: Any, query: dict[str, list[str]] | None = None) -> str:
    """SHA-256 of the request's canonical JSON (keys sorted, no spaces): the same data sent with other
    spacing or key order is the same request."""
    canonical = json.dumps(
        {"body": body, "query": query or {}},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_idempotency_key(
    *, client: ApiClient, key: str, method: str, path: str, digest: str, at: datetime | None = None
) -> Claim | StoredAnswer:
    """Claim `key` for this request, or say what was answered under it.

    Raises 409 `idempotency_in_progress` while another request holds the key, and 422
    `idempotency_key_reused` when the key was used for another method, path or body.
    """
    now = at or timezone.now()
    for _attempt in range(3):
        attempt = uuid.uuid4()
        try:
            # Its own transaction (or a savepoint): outside one it commits at once, before the write runs.
            with transaction.atomic():
                record = IdempotentRequest.objects.create(
                    client=client,
                    key=key,
                    method=method,
                    path=path[:255],
                    body_digest=digest,
                    attempt=attempt,
                    created_at=now,
                    claimed_at=now,
                )
            return Claim(record_id=record.pk, attempt=attempt)
        except IntegrityError:
            pass
        existing = IdempotentRequest.objects.filter(client=client, key=key).first()
        if existing is None:
            continue  # released or pruned in between: claim it again
        expired = existing.created_at <= now - KEY_TTL
        if not expired and (existing.method, existing.path, existing.body_digest) != (method, path[:255], digest):
            raise IdempotencyKeyReused(
                _("This Idempotency-Key was used for another request; use a new key for a new request."),
                details={
                    "idempotency_key": [
                        _("Used for {method} {path}.").format(method=existing.method, path=existing.path)
                    ]
                },
            )
        if not expired and existing.state == IdempotentRequest.State.DONE:
            return StoredAnswer(status=existing.response_status, body=existing.response_body)
        # Expired (not pruned yet), or in progress: take it over if it is expired or its lease has passed.
        taken = (
            IdempotentRequest.objects.filter(pk=existing.pk, attempt=existing.attempt)
            .filter(
                Q(created_at__lte=now - KEY_TTL)
                | Q(state=IdempotentRequest.State.IN_PROGRESS, claimed_at__lte=now - LEASE)
            )
            .update(
                state=IdempotentRequest.State.IN_PROGRESS,
                attempt=attempt,
                method=method,
                path=path[:255],
                body_digest=digest,
                response_status=None,
                response_body="",
                created_at=now if expired else existing.created_at,
                claimed_at=now,
                completed_at=None,
            )
        )
        if taken:
            return Claim(record_id=existing.pk, attempt=attempt)
        raise IdempotencyInProgress(
            _("A request with this Idempotency-Key is still being processed; ask again in a moment."),
        )
    raise IdempotencyInProgress(_("This Idempotency-Key is busy; ask again in a moment."))


def complete_idempotent_request(*, claim: Claim, status: int, body: str, at: datetime | None = None) -> None:
    """Store the answer under the claim. Run inside the write's transaction: if the claim was lost
    (taken over after its lease), this raises and the write rolls back with it."""
    stored = IdempotentRequest.objects.filter(
        pk=claim.record_id, attempt=claim.attempt, state=IdempotentRequest.State.IN_PROGRESS
    ).update(
        state=IdempotentRequest.State.DONE,
        response_status=status,
        response_body=body,
        completed_at=at or timezone.now(),
    )
    if not stored:
        raise IdempotencyInProgress(
            _("Another request took over this Idempotency-Key; ask again in a moment."),
        )


def release_idempotency_key(*, claim: Claim) -> None:
    """Give the key up after an unexpected failure, so that a retry runs the write afresh."""
    IdempotentRequest.objects.filter(
        pk=claim.record_id, attempt=claim.attempt, state=IdempotentRequest.State.IN_PROGRESS
    ).delete()


def prune_idempotent_requests(
    *, older_than: timedelta = KEY_TTL, batch_size: int = 5000, at: datetime | None = None
) -> int:
    """Delete keys first seen more than `older_than` ago, in batches of primary keys; returns how many."""
    cutoff = (at or timezone.now()) - older_than
    deleted = 0
    while True:
        ids = list(
            IdempotentRequest.objects.filter(created_at__lt=cutoff)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += IdempotentRequest.objects.filter(pk__in=ids).delete()[0]
