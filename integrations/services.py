"""Writes of the ERP/POS API's clients: issuing, rotating and revoking keys, checking a key, logging calls.

A key reads `o2o_<8 characters>.<secret>`. The part before the dot is the prefix, stored in clear
and unique, so a call finds its key with one indexed read; the secret (256 random bits) is stored
only as its SHA-256 digest. A fast digest is enough for a secret of that entropy, unlike a password:
nothing can be guessed from it, and checking a key costs nothing on a busy till.
"""

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.models import ApiCall, ApiClient, ApiKey
from o2o.errors import ApplicationError

KEY_PREFIX = "o2o_"
PREFIX_LENGTH = 8
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=30)
# last_used_at is a hint for HQ, not an audit trail (the call log is): one UPDATE a minute per key at most.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class InvalidApiKey(ApplicationError):
    code = "invalid_api_key"
    status = 401


@dataclass(frozen=True)
class IssuedKey:
    """A key just made: the row, and the full key to hand over once (it is not stored)."""

    key: ApiKey
    raw: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(raw: str) -> tuple[str, str] | None:
    """ "o2o_ab12cd34.secret" → ("o2o_ab12cd34", "secret"); None if it cannot be a key."""
    prefix, dot, secret = (raw or "").strip().partition(".")
    if not dot or not secret or not prefix.startswith(KEY_PREFIX) or len(prefix) != len(KEY_PREFIX) + PREFIX_LENGTH:
        return None
    return prefix, secret


def _new_prefix() -> str:
    return KEY_PREFIX + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))


def issue_api_key(*, client: ApiClient, expires_at: datetime | None = None, created_by=None) -> IssuedKey:
    """Make a new key for the client; the full key is returned once and only its digest is kept.

    The client's other keys are untouched (see `rotate_api_key` to retire them).
    """
    secret = secrets.token_urlsafe(32)
    for _attempt in range(5):
        prefix = _new_prefix()
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    client=client, prefix=prefix, hashed=digest(secret), expires_at=expires_at, created_by=created_by
                )
            return IssuedKey(key=key, raw=f"{prefix}.{secret}")
        except IntegrityError:
            continue  # the prefix was taken (36^8 of them): draw another
    raise ApplicationError(_("Could not make a new key; try again."), code="key_not_issued", status=503)


@transaction.atomic
def rotate_api_key(
    *, client: ApiClient, overlap: timedelta = DEFAULT_OVERLAP, created_by=None, at: datetime | None = None
) -> IssuedKey:
    """Issue a new key and let the client's working keys expire after `overlap` (0 to 30 days).

    During the overlap old and new keys both work, so the client can switch without a gap. A key
    that already expires sooner keeps its earlier date.
    """
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ApplicationError(
            _("The overlap must be between 0 and 30 days."),
            code="invalid_overlap",
            details={"overlap": [str(overlap)]},
        )
    now = at or timezone.now()
    ApiClient.objects.select_for_update().filter(pk=client.pk).first()  # one rotation of a client at a time
    ends = now + overlap
    working = ApiKey.objects.filter(client=client, revoked_at__isnull=True)
    working.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=ends)).update(expires_at=ends)
    return issue_api_key(client=client, created_by=created_by)


def revoke_api_key(*, key: ApiKey, at: datetime | None = None) -> ApiKey:
    """Stop a key at once. Revoking a revoked key changes nothing (its first date stays)."""
    now = at or timezone.now()
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now)
    key.refresh_from_db(fields=["revoked_at"])
    return key


def authenticate_api_key(*, raw: str, at: datetime | None = None) -> ApiKey:
    """The key `raw` names, with its client, if it may call now; else 401 `invalid_api_key`.

    Refused: a malformed or unknown key, a wrong secret, a revoked or expired key, an inactive
    client. Which one is said only to a caller holding the right secret.
    """
    now = at or timezone.now()
    parts = split_key(raw)
    key = None
    if parts is not None:
        key = ApiKey.objects.select_related("client").filter(prefix=parts[0]).first()
    if key is None or not hmac.compare_digest(key.hashed, digest(parts[1])):
        raise InvalidApiKey(_("This API key is not valid."))
    if key.revoked_at is not None:
        raise InvalidApiKey(_("This API key was revoked."))
    if key.expires_at is not None and key.expires_at <= now:
        raise InvalidApiKey(_("This API key has expired."))
    if not key.client.is_active:
        raise InvalidApiKey(_("This API client is disabled."))
    if key.last_used_at is None or key.last_used_at <= now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


def record_api_call(
    *,
    client_id: int | None,
    key_prefix: str,
    method: str,
    endpoint: str,
    path: str,
    status_code: int,
    duration_ms: int,
) -> None:
    """Log one call: a single INSERT. A refused call that named a known key is logged under its client."""
    client = client_id
    if client is None and key_prefix:
        # Resolved inside the INSERT, so a 401 with a revoked key still shows whose key it was.
        client = Subquery(ApiKey.objects.filter(prefix=key_prefix).values("client_id")[:1])
    ApiCall.objects.create(
        client_id=client,
        key_prefix=key_prefix[:16],
        method=method[:8],
        endpoint=endpoint[:200],
        path=path[:255],
        status_code=status_code,
        duration_ms=max(duration_ms, 0),
    )


def prune_api_calls(*, older_than: timedelta, batch_size: int = 5000, at: datetime | None = None) -> int:
    """Delete logged calls older than `older_than`, in batches of primary keys; returns how many."""
    cutoff = (at or timezone.now()) - older_than
    deleted = 0
    while True:
        ids = list(ApiCall.objects.filter(at__lt=cutoff).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += ApiCall.objects.filter(pk__in=ids).delete()[0]
