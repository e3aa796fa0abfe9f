"""The guide's page in the store console: their QR code, their customers, their commission and
withdrawals.

Any signed-in staff member may open it (managers and clerks bring in customers too), and it shows
only the signed-in staff member's own data: every read takes the staff record of the user, never an
id from the request.
"""

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from commissions import selectors, services
from commissions.forms import WithdrawalForm
from members.models import Member
from o2o.errors import ApplicationError
from o2o.money import fen_to_yuan, format_yuan
from o2o.phone import mask_phone
from o2o.qr import qr_svg
from stores.models import Staff
from stores.selectors import guide_entry_url, staff_for_user

CUSTOMERS_PER_PAGE = 20
RECENT_ENTRIES = 20
RECENT_PAYOUTS = 10


def _staff_or_403(request: HttpRequest) -> tuple[Staff | None, HttpResponse | None]:
    staff = staff_for_user(request.user)
    if staff is None:
        return None, render(request, "console/not_store_staff.html", status=403)
    return staff, None


def _customer_label(member: Member) -> str:
    if member.closed_at is not None:
        return _("Closed account")
    phone = mask_phone(member.phone) if member.phone else ""
    # The development sign-in names a member after their masked number: show it once.
    if not member.nickname or member.nickname == phone:
        return phone or f"#{member.pk}"
    return f"{selectors.mask_nickname(member.nickname)} {phone}".strip()


def _percent(rate_bp: int) -> str:
    """300 basis points → "3%", 250 → "2.5%"."""
    return f"{Decimal(rate_bp) / 100:.2f}".rstrip("0").rstrip(".") + "%"


def _page_context(request: HttpRequest, staff: Staff, form: WithdrawalForm | None = None) -> dict:
    balances = selectors.balances(staff=staff)
    page = Paginator(selectors.guide_customers(staff), CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    url = guide_entry_url(staff)
    rules = selectors.commission_settings()
    return {
        "staff": staff,
        "tab": "promotion",
        "entry_url": url,
        "entry_qr": qr_svg(url, box_size=8),
        "summary": selectors.guide_summary(staff),
        "customers": page,
        "customer_rows": [
            {
                "member": member,
                "label": _customer_label(member),
                "bought": format_yuan(member.bought_fen),
                "earned": format_yuan(member.earned_fen),
            }
            for member in page
        ],
        "balances": balances,
        "figures": [
            ("pending", _("Pending"), format_yuan(balances.pending_fen)),
            ("settled", _("Settled"), format_yuan(balances.settled_fen)),
            ("available", _("Can withdraw"), format_yuan(balances.available_fen)),
            ("requested", _("Requested"), format_yuan(balances.requested_fen)),
            ("paid", _("Paid out"), format_yuan(balances.paid_fen)),
        ],
        "entries": [
            (entry, format_yuan(entry.amount_fen))
            for entry in selectors.ledger_of(staff=staff).order_by("-created_at", "-pk")[:RECENT_ENTRIES]
        ],
        "payouts": [
            (payout, format_yuan(payout.amount_fen)) for payout in selectors.payouts_of(staff=staff)[:RECENT_PAYOUTS]
        ],
        "available": format_yuan(balances.available_fen),
        "min_payout": format_yuan(rules.min_payout_fen),
        # The service decides; the button only saves a pointless tap (one open payout at a time).
        "can_withdraw": balances.available_fen >= rules.min_payout_fen and not balances.requested_fen,
        "guide_rate": _percent(rules.guide_rate_bp),
        "signup_reward": format_yuan(rules.guide_signup_reward_fen),
        "form": form or WithdrawalForm(initial={"amount": fen_to_yuan(balances.available_fen)}),
    }


@login_required
@require_GET
def promotion(request: HttpRequest) -> HttpResponse:
    staff, refused = _staff_or_403(request)
    if refused:
        return refused
    return render(request, "commissions/console/promotion.html", _page_context(request, staff))


@login_required
@require_POST
def withdraw(request: HttpRequest) -> HttpResponse:
    """Ask HQ to pay out part of the available balance; a refusal shows at the form, changing nothing."""
    staff, refused = _staff_or_403(request)
    if refused:
        return refused
    form = WithdrawalForm(request.POST)
    if form.is_valid():
        try:
            payout = services.request_payout(staff=staff, amount_fen=form.amount_fen())
        except ApplicationError as error:
            form.add_error("amount", error.message)
        else:
            messages.success(
                request,
                _("Withdrawal of %(amount)s requested: HQ pays it after checking.")
                % {"amount": format_yuan(payout.amount_fen)},
            )
            return redirect("console-promotion:page")
    return render(request, "commissions/console/promotion.html", _page_context(request, staff, form), status=400)
