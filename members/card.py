"""The member card without plastic: a card number plus a code that changes every minute.

The code is an RFC 6238 time-based one-time password (HMAC-SHA1, 60-second steps, 6 digits)
from a secret only the server knows, so a screenshot stops working within a minute or two.
The mall shows `<card number><code>` as a QR code and as digits; the POS sends it back to
look the member up. The code of the current minute and of the one before are accepted (a
clerk may take a few seconds to scan); anything older is refused as stale.
"""

import base64
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime

STEP_SECONDS = 60
DIGITS = 6
CARD_NUMBER_DIGITS = 12
ACCEPTED_STEPS_BACK = 1


def new_card_secret() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode()


def new_card_number() -> str:
    # Leading 8 marks a member card at a till that also reads product barcodes.
    return "8" + "".join(secrets.choice("0123456789") for _ in range(CARD_NUMBER_DIGITS - 1))


def _step(at: datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


def code_at(secret: str, at: datetime) -> str:
    """The 6-digit code of a secret for the minute containing `at` (RFC 4226 truncation)."""
    return _code(secret, _step(at))


def _code(secret: str, step: int) -> str:
    digest = hmac.new(base64.b32decode(secret), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**DIGITS:0{DIGITS}d}"


def is_current(secret: str, code: str, at: datetime) -> bool:
    """Whether `code` is this minute's or the last minute's, compared in constant time."""
    now = _step(at)
    return any(hmac.compare_digest(_code(secret, now - back), code) for back in range(ACCEPTED_STEPS_BACK + 1))


@dataclass(frozen=True)
class CardCode:
    card_number: str
    code: str

    @property
    def text(self) -> str:
        return f"{self.card_number}{self.code}"


def parse_card_code(text: str) -> CardCode | None:
    """Split what a scanner read into card number and code; None if it cannot be a card code."""
    text = "".join((text or "").split())
    if len(text) != CARD_NUMBER_DIGITS + DIGITS or not text.isdigit():
        return None
    return CardCode(card_number=text[:CARD_NUMBER_DIGITS], code=text[CARD_NUMBER_DIGITS:])


def seconds_left(at: datetime) -> int:
    return STEP_SECONDS - int(at.timestamp()) % STEP_SECONDS
