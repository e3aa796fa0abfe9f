"""The promoter center in the mall (`/mall/me/promotion/`): the signed-in member's share link, QR
code, posters and WeChat sharing, their team by level, earnings, and withdrawals.

Every page works on the session's member only: no URL names another member, so a promoter sees
their own team and nobody else's.
"""

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from commissions import selectors, services
from commissions.forms import WithdrawalForm
from commissions.poster import PosterContent, draw_poster
from integrations.vendors.wechat import is_wechat_browser, official_account
from inventory.models import SKU, ProductImage
from inventory.selectors import prices_at, search_products
from members.models import Member
from members.services import ensure_referral_code
from members.session import current_member, member_required
from o2o.errors import ApplicationError
from o2o.money import format_yuan
from o2o.qr import qr_svg

logger = logging.getLogger(__name__)

LEDGER_SHOWN = 10
PAYOUTS_SHOWN = 10
TEAM_PAGE_SIZE = 20
PRODUCTS_FOUND = 10
SHARE_APIS = ["updateAppMessageShareData", "updateTimelineShareData", "onMenuShareAppMessage", "onMenuShareTimeline"]


# --- links -----------------------------------------------------------------------------------------


def _absolute(path: str) -> str:
    """An address on the mall's public host (the one its QR codes and WeChat's JS-SDK domain use)."""
    return settings.O2O_PUBLIC_URL + path


def share_link(member: Member, *, next_path: str = "") -> str:
    """The member's referral link, absolute; with `next_path`, it opens that page of the mall."""
    path = reverse("members:referral-entry", args=[ensure_referral_code(member=member)])
    if next_path:
        path += "?" + urlencode({"next": next_path})
    return _absolute(path)


def _product_path(sku: SKU) -> str:
    return f"{reverse('catalog:product', args=[sku.product_id])}?{urlencode({'sku': sku.code})}"


def _shared_sku(code: str) -> SKU | None:
    if not code:
        return None
    return (
        SKU.objects.select_related("product")
        .filter(code=code[:32], is_active=True, product__is_active=True, product__category__is_active=True)
        .first()
    )


def _first_picture(sku: SKU) -> ProductImage | None:
    return ProductImage.objects.filter(product_id=sku.product_id).order_by("sort_order", "pk").first()


def _wechat_share_config(request: HttpRequest) -> dict | None:
    """wx.config for this page inside WeChat, so its share menu sends the member's link; else None
    (outside WeChat, or WeChat not configured or unreachable: the page offers the link and poster)."""
    account = official_account()
    if account is None or not is_wechat_browser(request.headers.get("User-Agent", "")):
        return None
    try:
        return account.jssdk_config(url=request.build_absolute_uri(), js_api_list=SHARE_APIS)
    except ApplicationError as error:
        logger.warning("No JS-SDK signature for the promotion page: %s", error)
        return None


# --- pages -----------------------------------------------------------------------------------------


def _money(balances: selectors.Balances) -> dict[str, str]:
    return {
        "pending": format_yuan(balances.pending_fen),
        "settled": format_yuan(balances.settled_fen),
        "available": format_yuan(balances.available_fen),
        "requested": format_yuan(balances.requested_fen),
        "paid": format_yuan(balances.paid_fen),
    }


def _promotion_context(request: HttpRequest, member: Member, form: WithdrawalForm) -> dict:
    link = share_link(member)
    summary = selectors.promoter_summary(member)
    ledger = selectors.ledger_of(member=member)[:LEDGER_SHOWN]
    payouts = selectors.payouts_of(member=member)[:PAYOUTS_SHOWN]
    chain = settings.O2O_CHAIN_NAME
    return {
        "tab": "me",
        "code": member.referral_code,
        "link": link,
        "link_qr": qr_svg(link, box_size=6),
        "summary": summary,
        "amount_brought": format_yuan(summary.amount_fen),
        "levels": [(level, format_yuan(level.amount_fen)) for level in summary.levels],
        "money": _money(summary.balances),
        "min_payout": format_yuan(selectors.commission_settings().min_payout_fen),
        "ledger": [(entry, format_yuan(entry.amount_fen)) for entry in ledger],
        "payouts": [(payout, format_yuan(payout.amount_fen)) for payout in payouts],
        "form": form,
        "wx_config": _wechat_share_config(request),
        "share": {
            "title": _("%(chain)s: shop online, collect at a store near you") % {"chain": chain},
            "desc": _("Tap to visit %(chain)s's mall.") % {"chain": chain},
            "link": link,
            "imgUrl": _absolute(static("img/share-icon.png")),
        },
    }


@member_required
@require_GET
def promotion(request: HttpRequest) -> HttpResponse:
    """The member's promotion results and tools."""
    member: Member = current_member(request)
    return render(request, "commissions/promotion.html", _promotion_context(request, member, WithdrawalForm()))


@member_required
@require_POST
def withdraw(request: HttpRequest) -> HttpResponse:
    """Ask for a withdrawal of settled commission; HQ pays it. A refusal is a form error and changes nothing."""
    member: Member = current_member(request)
    form = WithdrawalForm(request.POST)
    if form.is_valid():
        try:
            services.request_payout(member=member, amount_fen=form.amount_fen())
        except ApplicationError as error:
            form.add_error("amount", error.message)
        else:
            messages.success(request, _("Withdrawal requested. HQ checks it and pays it to your WeChat wallet."))
            return redirect(reverse("commissions:promotion") + "#payouts")
    context = _promotion_context(request, member, form)
    return render(request, "commissions/promotion.html", context, status=400)


@member_required
@require_GET
def team(request: HttpRequest) -> HttpResponse:
    """One level of the member's own team, masked, a page at a time."""
    member: Member = current_member(request)
    depth = selectors.team_depth()
    try:
        level = int(request.GET.get("level", "1"))
    except ValueError:
        level = 1
    if not 1 <= level <= depth:
        raise Http404
    page = Paginator(selectors.team_of(member, level=level), TEAM_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(row, format_yuan(row.amount_fen)) for row in map(selectors.team_member_row, page.object_list)]
    context = {"tab": "me", "level": level, "levels": range(1, depth + 1), "page": page, "rows": rows}
    return render(request, "commissions/team.html", context)


@member_required
@require_GET
def share_product(request: HttpRequest) -> HttpResponse:
    """Share one product: its link carrying the member's referral, its poster; or find the product."""
    member: Member = current_member(request)
    sku = _shared_sku(request.GET.get("sku", "").strip())
    text = request.GET.get("q", "").strip()[:100]
    context: dict = {"tab": "me", "q": text, "sku": sku}
    if sku is not None:
        link = share_link(member, next_path=_product_path(sku))
        picture = _first_picture(sku)
        price = format_yuan(prices_at(None, [sku])[sku.pk])
        context.update(
            link=link,
            price=price,
            wx_config=_wechat_share_config(request),
            share={
                "title": f"{sku.product.name} {price}",
                "desc": settings.O2O_CHAIN_NAME,
                "link": link,
                "imgUrl": _absolute(picture.image.url if picture else static("img/share-icon.png")),
            },
        )
    elif text:
        context["found"] = [
            (product, sku)
            for product in search_products(text=text)[:PRODUCTS_FOUND]
            for sku in [next((s for s in product.skus.all() if s.is_active), None)]
            if sku is not None
        ]
    return render(request, "commissions/share_product.html", context)


@member_required
@require_GET
@cache_control(private=True, max_age=600)
def poster(request: HttpRequest) -> HttpResponse:
    """The member's poster as a PNG: a product's (`?sku=`) or the mall's, with their QR code."""
    member: Member = current_member(request)
    code = request.GET.get("sku", "").strip()
    sku = _shared_sku(code)
    if code and sku is None:
        raise Http404
    caption = _("Long-press the QR code to shop at %(chain)s") % {"chain": settings.O2O_CHAIN_NAME}
    if sku is None:
        content = PosterContent(
            heading=settings.O2O_CHAIN_NAME,
            title=_("Come and shop with me"),
            subtitle=_("Buy online, collect at a store near you or have it delivered."),
            price="",
            caption=caption,
            link=share_link(member),
        )
        png = draw_poster(content)
    else:
        content = PosterContent(
            heading=settings.O2O_CHAIN_NAME,
            title=sku.product.name,
            subtitle=sku.spec,
            price=format_yuan(prices_at(None, [sku])[sku.pk]),
            caption=caption,
            link=share_link(member, next_path=_product_path(sku)),
        )
        png = _poster_with_picture(content, _first_picture(sku))
    response = HttpResponse(png, content_type="image/png")
    response["Content-Disposition"] = f'inline; filename="poster-{sku.code if sku else "mall"}.png"'
    return response


def _poster_with_picture(content: PosterContent, picture: ProductImage | None) -> bytes:
    if picture is None:
        return draw_poster(content)
    try:
        with picture.image.open("rb") as source:
            return draw_poster(content, picture=source)
    except OSError:  # the file is gone from storage: the poster goes without it
        logger.warning("Product image %s is missing", picture.pk)
        return draw_poster(content)
