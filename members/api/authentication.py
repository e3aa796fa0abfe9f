"""The shopper's API sign-in: the same Django session as the mall's pages, holding a member id.

Members are not Django users. `MemberSessionAuthentication` gives DRF a lightweight
principal (`MemberPrincipal`) as `request.user` and the member itself as `request.auth`;
views read it with `request_member(request)` behind the `IsMember` permission. As with
DRF's SessionAuthentication, a signed-in request with an unsafe method must carry the
CSRF token, and a request without a member answers 403 `not_authenticated`.
"""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, CSRFCheck
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from members.models import Member
from members.session import current_member
from o2o.api.principals import Principal


class MemberPrincipal(Principal):
    """`request.user` for a signed-in member."""

    def __init__(self, member: Member) -> None:
        self.member = member

    def __str__(self) -> str:
        return str(self.member)


class MemberSessionAuthentication(BaseAuthentication):
    """The member of the session cookie (members.session), CSRF-checked for unsafe methods."""

    def authenticate(self, request: Request) -> tuple[MemberPrincipal, Member] | None:
        member = current_member(request._request)
        if member is None:
            return None  # anonymous: no CSRF check needed, the permission refuses
        self.enforce_csrf(request)
        return MemberPrincipal(member), member

    def enforce_csrf(self, request: Request) -> None:
        """Django's CSRF check, as DRF's SessionAuthentication applies it (safe methods pass)."""

        def no_response(request):  # pragma: no cover - the check never calls it
            return None

        check = CSRFCheck(no_response)
        check.process_request(request)  # reads the CSRF cookie into request.META
        reason = check.process_view(request, None, (), {})
        if reason:
            raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")

    # No authenticate_header: a cookie session has no WWW-Authenticate scheme, so DRF
    # answers a missing member with 403 (code `not_authenticated`), like SessionAuthentication.


class IsMember(BasePermission):
    """Only a signed-in member (authenticated by MemberSessionAuthentication)."""

    def has_permission(self, request: Request, view) -> bool:
        return isinstance(request.auth, Member)


def request_member(request: Request) -> Member:
    """The member a view behind IsMember serves."""
    member = request.auth
    if not isinstance(member, Member):  # a view forgot IsMember: refuse rather than guess
        raise exceptions.NotAuthenticated()
    return member


class MemberSessionScheme(OpenApiAuthenticationExtension):
    """The schema's name for the member session: Django's session cookie (plus X-CSRFToken on writes)."""

    target_class = "members.api.authentication.MemberSessionAuthentication"
    name = "memberSession"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": (
                "The mall's session cookie of a signed-in member. POST, PUT and DELETE also need the "
                f"`X-CSRFToken` header carrying the `{settings.CSRF_COOKIE_NAME}` cookie's value."
            ),
        }
