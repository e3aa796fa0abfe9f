"""Input fields that take JSON as typed: a number is not a string, nor "yes" a boolean.

DRF's own fields coerce (`CharField` takes 123, `BooleanField` takes "yes"); an ERP sending the
wrong type has a bug we should report, not paper over, and the OpenAPI schema promises the type.
"""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": _("Not a valid string.")}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data
