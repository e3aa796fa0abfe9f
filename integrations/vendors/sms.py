"""Text messages (SMS) through a provider: one small interface, a backend per provider.

`sms_backend()` builds the backend named by the `SMS_BACKEND` setting (a dotted path; the
environment variable of the same name). The default, `LoggingSmsBackend`, sends nothing: it
writes each message to the log and keeps the latest in memory, for development and tests.
A provider's backend subclasses `SmsBackend`, returns the provider's message id and raises
`SmsError` when the provider refuses or cannot be reached. It imports no app of the project.

Length: a message of at most 70 characters (Chinese or not, UCS-2) is one SMS; a longer one is
sent as parts of 67 characters each, every part billed as one SMS.
"""

from __future__ import annotations

import logging
import threading
import uuid
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from o2o.errors import ApplicationError

__all__ = [
    "SINGLE_SMS_CHARS",
    "SMS_PART_CHARS",
    "LoggingSmsBackend",
    "SentSms",
    "SmsBackend",
    "SmsError",
    "sms_backend",
    "sms_parts",
]

logger = logging.getLogger(__name__)

SINGLE_SMS_CHARS = 70
SMS_PART_CHARS = 67  # a concatenated message loses three characters per part to its header


class SmsError(ApplicationError):
    """The provider refused the message or could not be reached; `details` say what it answered."""

    code = "sms_error"
    status = 502


def sms_parts(text: str) -> int:
    """How many SMS a text is sent (and billed) as: one up to 70 characters, else parts of 67."""
    length = len(text)
    if length <= SINGLE_SMS_CHARS:
        return 1 if length else 0
    return -(-length // SMS_PART_CHARS)


class SmsBackend(ABC):
    """A provider of text messages: a deployment names its class in SMS_BACKEND."""

    @abstractmethod
    def send(self, *, phone: str, text: str) -> str:
        """Send `text` to `phone` (E.164, e.g. +8613800138000); return the provider's message id.

        Raises SmsError when the provider refuses the message or cannot be reached.
        """


@dataclass(frozen=True)
class SentSms:
    message_id: str
    phone: str
    text: str
    at: datetime


class LoggingSmsBackend(SmsBackend):
    """Development: log the message instead of sending it, and keep the latest in `outbox`."""

    outbox: deque[SentSms] = deque(maxlen=1000)  # shared by every instance in the process
    _lock = threading.Lock()

    def send(self, *, phone: str, text: str) -> str:
        if not phone or not text:
            raise SmsError(_("A text message needs a number and a text."), details={"phone": [phone]})
        message_id = f"log-{uuid.uuid4().hex[:16]}"
        with self._lock:
            self.outbox.append(SentSms(message_id=message_id, phone=phone, text=text, at=timezone.now()))
        # The number's middle digits stay out of the log.
        logger.info("SMS %s to %s****%s (%d part(s)): %s", message_id, phone[:-8], phone[-4:], sms_parts(text), text)
        return message_id

    @classmethod
    def clear(cls) -> None:
        with cls._lock:
            cls.outbox.clear()


def sms_backend() -> SmsBackend:
    """The configured backend (`SMS_BACKEND`), built anew so a changed setting takes effect."""
    path = getattr(settings, "SMS_BACKEND", "") or "integrations.vendors.sms.LoggingSmsBackend"
    backend = import_string(path)()
    if not isinstance(backend, SmsBackend):
        raise TypeError(f"SMS_BACKEND {path!r} is not an SmsBackend")
    return backend
