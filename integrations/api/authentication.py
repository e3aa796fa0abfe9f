"""How an ERP/POS system signs its calls: an API key in `Authorization: Bearer <key>` (or `X-Api-Key`).

`ApiKeyAuthentication` gives DRF a lightweight principal (`ApiClientPrincipal`) as `request.user`
and the ApiClient itself as `request.auth`; `HasScope` (integrations.api.permissions) then checks
the scope the view requires. A bad key is 401 `invalid_api_key`, a missing one 401 `missing_api_key`,
both with a `WWW-Authenticate: Bearer` header.
"""

from django.http import HttpRequest
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from integrations.models import ApiClient, ApiKey
from integrations.services import InvalidApiKey, authenticate_api_key, split_key
from o2o.api.principals import Principal


class ApiClientPrincipal(Principal):
    """`request.user` for an API client."""

    def __init__(self, client: ApiClient, key: ApiKey) -> None:
        self.client = client
        self.key = key

    def __str__(self) -> str:
        return str(self.client)


def presented_key(request: HttpRequest) -> str | None:
    """The key a request carries, from `Authorization: Bearer …` or else `X-Api-Key`; None without one."""
    scheme, _sep, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    key = request.headers.get("X-Api-Key", "").strip()
    return key or None


def presented_prefix(request: HttpRequest) -> str:
    """The visible prefix of the key a request carries, for the call log ("" if it carries none)."""
    parts = split_key(presented_key(request) or "")
    return parts[0] if parts else ""


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiClientPrincipal, ApiClient] | None:
        raw = presented_key(request._request)
        if raw is None:
            return None  # the view's permission answers 401 `missing_api_key`
        try:
            key = authenticate_api_key(raw=raw)
        except InvalidApiKey as exc:
            raise exceptions.AuthenticationFailed(detail=exc.message, code=exc.code) from None
        return ApiClientPrincipal(key.client, key), key.client

    def authenticate_header(self, request: Request) -> str:
        # A 401 names the scheme to use (RFC 9110); without this DRF would answer 403.
        return 'Bearer realm="api"'


def missing_key() -> exceptions.NotAuthenticated:
    return exceptions.NotAuthenticated(
        detail=_("Send your API key as 'Authorization: Bearer <key>'."), code="missing_api_key"
    )


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """The schema's name for an ERP key: a bearer token (the X-Api-Key header is accepted too)."""

    target_class = "integrations.api.authentication.ApiKeyAuthentication"
    name = "erpApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "o2o_xxxxxxxx.secret",
            "description": (
                "An API key issued by HQ in the admin (API clients), sent as `Authorization: Bearer <key>` "
                "or as the `X-Api-Key` header. Each operation names the scope it needs."
            ),
        }
