"""Signing and verifying webhooks the Standard Webhooks way, and the retry schedule. Pure: no database.

A message carries three headers:

- `webhook-id`: the message id (`msg_…`), the same on every attempt, so a receiver can drop repeats;
- `webhook-timestamp`: the attempt's time in unix seconds;
- `webhook-signature`: `v1,<base64 HMAC-SHA256>` of `"{id}.{timestamp}.{body}"` with the secret's
  bytes; several space-separated signatures while a rotated secret's overlap lasts.

A secret reads `whsec_<base64 of 24 to 64 random bytes>`; the bytes after the prefix are the key.
See https://www.standardwebhooks.com/ and docs/webhooks.md.
"""

import base64
import binascii
import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64
DEFAULT_TOLERANCE = 300  # seconds a timestamp may differ from the receiver's clock


class WebhookVerificationError(Exception):
    """The message is not proven to come from the sender now: missing header, bad signature, stale or future."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_…` secret stands for."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("A webhook secret is whsec_ followed by base64.") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"A webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes.")
    return key


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(16)


def render_body(*, event_type: str, created_at: datetime, data: Mapping) -> bytes:
    """The body of a message, byte for byte the same on every attempt (keys sorted, compact)."""
    envelope = {"type": event_type, "timestamp": created_at.isoformat(), "data": data}
    return json.dumps(envelope, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secrets_: Iterable[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, signed with every secret given (space-separated)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, message_id, timestamp, body) for secret in secrets_),
    }


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> None:
    """Raise WebhookVerificationError unless `body` was signed with `secret` within `tolerance` seconds.

    Header names are matched in any case. Any one of several space-separated `v1,` signatures may
    match (a sender signs with two secrets while a rotation overlaps). A timestamp older or further
    in the future than the tolerance is refused, so a captured message cannot be replayed later.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not timestamp_text or not signatures:
        raise WebhookVerificationError("Missing webhook-id, webhook-timestamp or webhook-signature header.")
    try:
        timestamp = int(timestamp_text)
    except ValueError as exc:
        raise WebhookVerificationError("The webhook-timestamp header is not unix seconds.") from exc
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("The message timestamp is too old.")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("The message timestamp is in the future.")
    payload = body.encode() if isinstance(body, str) else body
    try:
        expected = sign(secret, message_id, timestamp, payload).partition(",")[2]
    except ValueError as exc:
        raise WebhookVerificationError(str(exc)) from exc
    for candidate in signatures.split(" "):
        version, _comma, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return
    raise WebhookVerificationError("No signature matches.")


def backoff_delay(attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, …): exponential with full jitter.

    Uniform in [0, min(cap, base × 2^(attempt−1))), so many receivers failing together do not
    all come back at the same instant.
    """
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling * rand()
