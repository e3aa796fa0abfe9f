"""The single exception handler of the API: every error is JSON of one shape.

    {"code": "invalid_coordinates", "message": "…", "details": {"near": ["…"]}}

`code` is stable for clients to branch on; `message` is for people; `details`
appears for field errors. Unknown URLs under /api/ get the same shape (see o2o.urls).
"""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from o2o.errors import ApplicationError

_DRF_CODES = {
    exceptions.ValidationError: "invalid",
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return body


def _own_code(exc: Exception) -> str | None:
    """The code a DRF exception was raised with (`NotAuthenticated(code="missing_api_key")`), if not its default."""
    code = getattr(getattr(exc, "detail", None), "code", None)
    return code if isinstance(code, str) and code != getattr(exc, "default_code", None) else None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: a 500, logged by Django

    code = _own_code(exc) or next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body(code, _("The request has invalid fields."), details)
    else:
        detail = getattr(exc, "detail", "")
        response.data = error_body(code, str(detail))
    return response


def api_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", _("No such API endpoint.")), status=status.HTTP_404_NOT_FOUND)
