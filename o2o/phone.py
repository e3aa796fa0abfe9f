"""Mainland China mobile numbers, stored one way: +86 and 11 digits."""

import re

from django.utils.translation import gettext as _

from o2o.errors import ApplicationError

_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class InvalidPhone(ApplicationError):
    code = "invalid_phone"


def normalize_cn_mobile(text: str, *, field: str = "phone") -> str:
    """ "138 0013 8000", "+86-13800138000", "8613800138000" → "+8613800138000"; anything else is refused."""
    digits = re.sub(r"[\s\-()]", "", str(text or ""))
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not _MOBILE.match(digits):
        raise InvalidPhone(
            _("Enter a mainland China mobile number: 11 digits starting with 1."), details={field: [str(text)[:32]]}
        )
    return f"+86{digits}"


def mask_phone(phone: str) -> str:
    """ "+8613800138000" → "138****8000", for screens that must not show the whole number."""
    local = phone[3:] if phone.startswith("+86") else phone
    return f"{local[:3]}****{local[-4:]}" if len(local) >= 7 else "****"
