"""Signatures the Standard Webhooks way: they verify, and a tampered, stale or future message does not."""

import base64
import hashlib
import hmac
import time

import pytest

from integrations.webhooks import (
    WebhookVerificationError,
    backoff_delay,
    generate_secret,
    secret_key,
    signature_headers,
    verify_webhook,
)

BODY = b'{"data":{"order":"O20250101000001"},"timestamp":"2025-01-01T08:00:00+08:00","type":"order.paid"}'


def independent_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The scheme written out from the specification, sharing no code with integrations.webhooks."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


@pytest.fixture
def secret():
    return generate_secret()


@pytest.fixture
def signed(secret):
    now = int(time.time())
    return signature_headers([secret], "msg_0123456789abcdef", now, BODY)


def test_a_secret_is_whsec_and_base64_of_random_bytes_and_each_is_new():
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and first != second
    assert 24 <= len(secret_key(first)) <= 64


def test_a_signed_message_verifies_and_matches_an_independent_implementation(secret, signed):
    verify_webhook(secret, signed, BODY)
    expected = independent_signature(secret, signed["webhook-id"], signed["webhook-timestamp"], BODY)
    assert signed["webhook-signature"] == expected


def test_header_names_are_matched_in_any_case_and_a_text_body_verifies(secret, signed):
    verify_webhook(secret, {name.title(): value for name, value in signed.items()}, BODY.decode())


def test_an_independently_signed_message_verifies(secret):
    timestamp = str(int(time.time()))
    headers = {
        "webhook-id": "msg_x",
        "webhook-timestamp": timestamp,
        "webhook-signature": independent_signature(secret, "msg_x", timestamp, BODY),
    }
    verify_webhook(secret, headers, BODY)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b.replace(b"0001", b"0002")), id="body"),
        pytest.param(lambda h, b: ({**h, "webhook-id": "msg_other"}, b), id="message id"),
        pytest.param(
            lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 1)}, b), id="timestamp"
        ),
        pytest.param(lambda h, b: ({**h, "webhook-signature": "v1," + "A" * 44}, b), id="signature"),
        pytest.param(
            lambda h, b: ({**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b), id="version"
        ),
    ],
)
def test_a_tampered_message_fails(secret, signed, tamper):
    headers, body = tamper(dict(signed), BODY)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, headers, body)


def test_another_secret_fails(signed):
    with pytest.raises(WebhookVerificationError, match="No signature matches"):
        verify_webhook(generate_secret(), signed, BODY)


@pytest.mark.parametrize("offset, message", [(-301, "too old"), (301, "future")])
def test_a_stale_or_future_timestamp_fails_even_with_a_good_signature(secret, offset, message):
    at = int(time.time()) + offset
    headers = signature_headers([secret], "msg_1", at, BODY)
    with pytest.raises(WebhookVerificationError, match=message):
        verify_webhook(secret, headers, BODY)


def test_a_timestamp_within_the_tolerance_verifies(secret):
    now = 1_700_000_000
    headers = signature_headers([secret], "msg_1", now - 300, BODY)
    verify_webhook(secret, headers, BODY, now=now)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(secret, headers, BODY, tolerance=299, now=now)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_fails(secret, signed, missing):
    headers = {name: value for name, value in signed.items() if name != missing}
    with pytest.raises(WebhookVerificationError, match="Missing"):
        verify_webhook(secret, headers, BODY)


def test_a_timestamp_that_is_not_a_number_fails(secret, signed):
    with pytest.raises(WebhookVerificationError, match="unix seconds"):
        verify_webhook(secret, {**signed, "webhook-timestamp": "yesterday"}, BODY)


def test_during_a_rotation_either_secret_verifies_the_doubly_signed_message():
    old, new = generate_secret(), generate_secret()
    headers = signature_headers([new, old], "msg_1", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify_webhook(new, headers, BODY)
    verify_webhook(old, headers, BODY)


def test_the_backoff_is_exponential_with_full_jitter_and_capped():
    assert [backoff_delay(n, base=5, cap=3600, rand=lambda: 0.999999) for n in range(1, 5)] == pytest.approx(
        [5, 10, 20, 40], rel=1e-5
    )
    assert backoff_delay(20, base=5, cap=3600, rand=lambda: 0.5) == 1800
    assert backoff_delay(3, base=5, cap=3600, rand=lambda: 0.0) == 0
