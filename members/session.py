"""Who the shopper is in this browser. The session holds only the member id."""

import hashlib
import secrets
from functools import wraps
from urllib.parse import urlencode, urlsplit

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from members.models import Member
from members.services import Referral, set_home_store_once
from stores.models import Store

MEMBER_SESSION_KEY = "member_id"
ENTRY_STORE_SESSION_KEY = "entry_store"
REFERRAL_SESSION_KEY = "referral"
DEVICE_COOKIE = "o2o_device"
DEVICE_COOKIE_AGE = 2 * 365 * 24 * 3600


def device_hash(request: HttpRequest) -> str:
    """A hash of this browser's device cookie ("" without one): links sign-ups from one phone."""
    token = request.COOKIES.get(DEVICE_COOKIE, "")
    return hashlib.sha256(token.encode()).hexdigest()[:32] if token else ""


def keep_device_cookie(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Give the browser a long-lived random device id if it has none (first-party, no personal data)."""
    if not request.COOKIES.get(DEVICE_COOKIE):
        token = secrets.token_urlsafe(16)
        request.COOKIES[DEVICE_COOKIE] = token
        response.set_cookie(DEVICE_COOKIE, token, max_age=DEVICE_COOKIE_AGE, httponly=True, samesite="Lax")
    return response


def remember_referral(request: HttpRequest, *, referrer_id: int | None = None, guide_id: int | None = None) -> None:
    """A share link or a guide's QR code brought a visitor: remembered until they register. The
    first link of each kind wins; a member already registered is never rebound by a link."""
    pending = dict(request.session.get(REFERRAL_SESSION_KEY) or {})
    if referrer_id and not pending.get("referrer_id"):
        pending["referrer_id"] = referrer_id
    if guide_id and not pending.get("guide_id"):
        pending["guide_id"] = guide_id
    request.session[REFERRAL_SESSION_KEY] = pending


def pending_referral(request: HttpRequest) -> Referral:
    pending = request.session.get(REFERRAL_SESSION_KEY) or {}
    return Referral(
        referrer_id=pending.get("referrer_id"), guide_id=pending.get("guide_id"), device=device_hash(request)
    )


def current_member(request: HttpRequest) -> Member | None:
    """The signed-in member, read once per request."""
    if not hasattr(request, "_member"):
        member_id = request.session.get(MEMBER_SESSION_KEY)
        request._member = Member.objects.filter(pk=member_id, is_active=True).first() if member_id else None
    return request._member


def sign_in(request: HttpRequest, member: Member) -> None:
    """Start the member's session (a new session key against fixation) and apply a pending entry store."""
    entry = request.session.get(ENTRY_STORE_SESSION_KEY)
    request.session.pop(REFERRAL_SESSION_KEY, None)
    request.session.cycle_key()
    request.session[MEMBER_SESSION_KEY] = member.pk
    request._member = member
    if entry:
        store = Store.objects.filter(pk=entry["store_id"], is_active=True).first()
        if store is not None:
            set_home_store_once(member=member, store=store, source=entry["source"])
        request.session.pop(ENTRY_STORE_SESSION_KEY, None)


def sign_out(request: HttpRequest) -> None:
    request.session.pop(MEMBER_SESSION_KEY, None)
    request._member = None


def remember_entry_store(request: HttpRequest, store: Store, source: str) -> None:
    """A store or product QR code brought the shopper in: it becomes their home store if they have none."""
    member = current_member(request)
    if member is not None:
        set_home_store_once(member=member, store=store, source=source)
    elif ENTRY_STORE_SESSION_KEY not in request.session:
        request.session[ENTRY_STORE_SESSION_KEY] = {"store_id": store.pk, "source": source}


def _return_to(request: HttpRequest) -> str:
    """Where to come back after signing in: this page, or for a form post the page that sent it."""
    if request.method == "GET":
        return request.get_full_path()
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()}):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return reverse("mall:home")


def member_required(view):
    """Send a shopper who is not signed in to sign-in, then back here."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if current_member(request) is None:
            return redirect(f"{reverse('members:sign-in')}?{urlencode({'next': _return_to(request)})}")
        return view(request, *args, **kwargs)

    return wrapper
