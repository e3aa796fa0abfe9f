"""Who the shopper is in this browser. The session holds only the member id."""

from functools import wraps
from urllib.parse import urlencode, urlsplit

from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from members.models import Member
from members.services import set_home_store_once
from stores.models import Store

MEMBER_SESSION_KEY = "member_id"
ENTRY_STORE_SESSION_KEY = "entry_store"


def current_member(request: HttpRequest) -> Member | None:
    """The signed-in member, read once per request."""
    if not hasattr(request, "_member"):
        member_id = request.session.get(MEMBER_SESSION_KEY)
        request._member = Member.objects.filter(pk=member_id, is_active=True).first() if member_id else None
    return request._member


def sign_in(request: HttpRequest, member: Member) -> None:
    """Start the member's session (a new session key against fixation) and apply a pending entry store."""
    entry = request.session.get(ENTRY_STORE_SESSION_KEY)
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
