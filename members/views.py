"""The shopper's sign-in (WeChat OAuth, or a marked development sign-in in the demo) and QR entry points."""

import secrets
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations.vendors.wechat import WeChatError, make_oauth_state, official_account, read_oauth_state
from inventory.models import SKU
from members import services, verification
from members.card import seconds_left
from members.forms import PhoneCodeForm, PhoneForm, add_service_errors
from members.models import Member, Tier
from members.selectors import loyalty_settings, points_history
from members.session import (
    current_member,
    device_hash,
    keep_device_cookie,
    member_required,
    pending_referral,
    remember_entry_store,
    remember_referral,
    sign_in,
    sign_out,
)
from o2o.errors import ApplicationError
from o2o.money import format_yuan
from o2o.qr import qr_svg
from stores.models import Staff, Store
from stores.session import choose_store

OAUTH_BINDING_SESSION_KEY = "wechat_oauth_binding"
# WeChat's "invalid code" and "code already used": the shopper refreshed or went back.
_CODE_USED_OR_INVALID = {40029, 40163}


def _safe_next(request: HttpRequest, default: str = "/mall/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or default
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def development_sign_in_enabled() -> bool:
    """Only in DEBUG, and only while WeChat is not configured."""
    return settings.DEBUG and official_account() is None


@require_GET
def sign_in_start(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request)
    account = official_account()
    if account is not None:
        # The state is bound to this browser's session, so nobody can finish a sign-in started elsewhere.
        binding = secrets.token_hex(8)
        request.session[OAUTH_BINDING_SESSION_KEY] = binding
        callback = request.build_absolute_uri(reverse("members:wechat-callback"))
        state = make_oauth_state(next_url=next_url, binding=binding)
        return redirect(account.authorize_url(redirect_uri=callback, scope="snsapi_userinfo", state=state))
    if development_sign_in_enabled():
        return render(request, "members/sign_in_dev.html", {"form": PhoneForm(), "next": next_url})
    return render(request, "members/sign_in_unavailable.html", status=503)


@require_GET
def wechat_callback(request: HttpRequest) -> HttpResponse:
    account = official_account()
    if account is None:
        raise Http404
    binding = request.session.pop(OAUTH_BINDING_SESSION_KEY, "")
    try:
        next_url = read_oauth_state(request.GET.get("state", ""), binding=binding)
        identity = account.identity_from_code(code=request.GET.get("code", ""), scope="snsapi_userinfo")
    except WeChatError as error:
        if error.details.get("errcode") in _CODE_USED_OR_INVALID:
            return redirect("members:sign-in")  # a refreshed callback page: start again
        return render(request, "members/sign_in_failed.html", {"error": error}, status=error.status)
    except ApplicationError as error:
        return render(request, "members/sign_in_failed.html", {"error": error}, status=error.status)
    if identity.is_snapshot_user:
        # WeChat's preview mode gives a virtual openid: nobody must be registered from it.
        return render(request, "members/sign_in_snapshot.html", status=403)
    member = services.sign_in_with_wechat(
        openid=identity.openid,
        unionid=identity.unionid,
        nickname=identity.nickname,
        avatar_url=identity.avatar_url,
        referral=pending_referral(request),
    )
    sign_in(request, member)
    if not member.phone:
        return redirect(f"{reverse('members:bind-phone')}?next={next_url}")
    return redirect(next_url)


@require_POST
def development_sign_in(request: HttpRequest) -> HttpResponse:
    if not development_sign_in_enabled():
        raise Http404
    form = PhoneForm(request.POST)
    next_url = _safe_next(request)
    if not form.is_valid():
        return render(request, "members/sign_in_dev.html", {"form": form, "next": next_url}, status=400)
    member = services.sign_in_for_development(phone=form.cleaned_data["phone"], referral=pending_referral(request))
    sign_in(request, member)
    return redirect(next_url)


@require_POST
def sign_out_view(request: HttpRequest) -> HttpResponse:
    sign_out(request)
    return redirect("mall:home")


@member_required
@require_http_methods(["GET", "POST"])
def bind_phone(request: HttpRequest) -> HttpResponse:
    """The member's mobile number, proven by a texted code. A number that belongs to a membership
    opened in a store takes that membership over (members.verification)."""
    member: Member = current_member(request)
    form = PhoneCodeForm(request.POST or None, initial={"phone": member.phone or ""})
    next_url = _safe_next(request)
    context = {"form": form, "next": next_url, "code_sent": False, "development_code": None}
    status = 200
    if request.method == "POST":
        context["code_sent"] = request.POST.get("action") == "confirm"
        if form.is_valid():
            phone = form.cleaned_data["phone"]
            try:
                if request.POST.get("action") == "confirm":
                    now_member = verification.confirm_phone_code(
                        member=member, phone=phone, code=form.cleaned_data["code"]
                    )
                    if now_member.pk != member.pk:
                        sign_in(request, now_member)
                        messages.success(
                            request,
                            _("Welcome back: your store membership, card and points are now in this WeChat account."),
                        )
                    else:
                        messages.success(request, _("Your mobile number is saved."))
                    return redirect(next_url)
                sent = verification.send_phone_code(member=member, phone=phone)
                context["code_sent"] = True
                context["development_code"] = sent.code if _shows_code_on_page() else None
            except ApplicationError as error:
                add_service_errors(form, error)
                if error.code == "code_sent_recently":
                    context["code_sent"] = True  # the code sent a moment ago is still good
                elif error.code in {"phone_taken", "phone_unchanged", "claim_has_history"}:
                    context["code_sent"] = False  # no code will help
        if form.errors:
            status = 400
    return render(request, "members/bind_phone.html", context, status=status)


def _shows_code_on_page() -> bool:
    """In development, where texts are only written to the log, the page shows the code it sent."""
    from integrations.vendors.sms import LoggingSmsBackend, sms_backend

    return settings.DEBUG and isinstance(sms_backend(), LoggingSmsBackend)


@require_GET
def store_entry(request: HttpRequest, store_code: str) -> HttpResponse:
    """A store's own QR code: choose that store and make it the shopper's home store if they have none."""
    store = get_object_or_404(Store, code=store_code, is_active=True)
    choose_store(request, store)
    remember_entry_store(request, store, Member.HomeStoreSource.STORE_QR)
    return redirect("mall:home")


@require_GET
def referral_entry(request: HttpRequest, code: str) -> HttpResponse:
    """A promoter's share link: the visitor, once registered, has the promoter as referrer. Opens
    the shared page (`next`, a path of this site) or the mall's home."""
    sharer = Member.objects.filter(referral_code=code.upper(), is_active=True, closed_at__isnull=True).first()
    if sharer is None:
        return render(request, "members/referral_unknown.html", status=404)
    response = redirect(_safe_next(request, default=reverse("mall:home")))
    keep_device_cookie(request, response)
    visitor = current_member(request)
    if visitor is None:
        remember_referral(request, referrer_id=sharer.pk)
    if visitor != sharer:
        services.record_referral_visit(sharer=sharer, visitor=visitor, device=device_hash(request))
    return response


@require_GET
def guide_entry(request: HttpRequest, staff_code: str) -> HttpResponse:
    """A guide's personal QR code: the visitor, once registered, is the guide's customer, with the
    guide's store as home store; the store is chosen for this visit."""
    guide = Staff.objects.select_related("store").filter(staff_code=staff_code, is_active=True).first()
    if guide is None or not guide.store.is_active:
        return render(request, "members/referral_unknown.html", status=404)
    response = redirect(_safe_next(request, default=reverse("mall:home")))
    keep_device_cookie(request, response)
    choose_store(request, guide.store)
    visitor = current_member(request)
    if visitor is None:
        remember_referral(request, guide_id=guide.pk)
        remember_entry_store(request, guide.store, Member.HomeStoreSource.GUIDE_QR)
    services.record_referral_visit(guide=guide, visitor=visitor, device=device_hash(request))
    return response


@require_GET
def product_entry(request: HttpRequest, sku_code: str, store_code: str) -> HttpResponse:
    """A product's QR code on a store's shelf: open the product with that store chosen.

    Paying then gives a pickup order at that store; a new shopper gets it as home store.
    """
    store = get_object_or_404(Store, code=store_code, is_active=True)
    sku = get_object_or_404(SKU.objects.select_related("product"), code=sku_code, is_active=True)
    choose_store(request, store)
    remember_entry_store(request, store, Member.HomeStoreSource.PRODUCT_QR)
    return redirect(f"{reverse('catalog:product', args=[sku.product_id])}?{urlencode({'sku': sku.code})}")


POINTS_HISTORY_SHOWN = 30


def _next_tier(member: Member) -> dict | None:
    needs = services.next_tier_needs(member=member)
    if needs is None:
        return None
    return {**needs, "label": Tier(needs["tier"]).label, "amount": format_yuan(needs.get("amount_fen", 0))}


def _card_context(member: Member) -> dict:
    now = timezone.now()
    code = services.card_code(member=member, at=now)
    number = code.card_number
    return {
        "card_qr": qr_svg(code.text, box_size=6),
        "card_number": " ".join(number[i : i + 4] for i in range(0, len(number), 4)),
        "card_code": code.code,
        "seconds_left": seconds_left(now),
    }


@member_required
@require_GET
def member_center(request: HttpRequest) -> HttpResponse:
    """The member's own page: the card for the till, points and their history, orders."""
    member: Member = current_member(request)
    context = {
        **_card_context(member),
        "points": member.points_balance,
        "point_value_fen": loyalty_settings().point_value_fen,
        "history": points_history(member)[:POINTS_HISTORY_SHOWN],
        "next_tier": _next_tier(member),
        "tab": "me",
    }
    return render(request, "members/center.html", context)


@member_required
@require_GET
def member_card(request: HttpRequest) -> HttpResponse:
    """The card alone, refreshed by the page before its code changes."""
    return render(request, "members/_card.html", _card_context(current_member(request)))


@member_required
@require_POST
def marketing_consent(request: HttpRequest) -> HttpResponse:
    """The member's own yes or no to marketing messages, apart from the service terms."""
    services.set_marketing_consent(member=current_member(request), consent=request.POST.get("consent") == "1")
    return redirect("members:center")
