"""HQ's commission rules and the commission ledger; the results per promoter and per guide, what
the chain owes, and the anomaly list; payouts."""

import csv

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from commissions import services
from commissions.forms import AnomaliesForm, ResultsForm
from commissions.models import CategoryCommissionRate, CommissionEntry, CommissionSettings, Payout, PayoutEvent
from commissions.selectors import (
    anomalies,
    balances,
    forget_commission_settings,
    guide_results,
    payable,
    promoter_results,
)
from o2o.admin import ReadOnlyAdminMixin
from o2o.errors import ApplicationError
from o2o.money import fen_to_yuan, format_yuan

RESULTS_SHOWN = 500  # rows on the page, largest first; the CSV has them all


@admin.register(CommissionSettings)
class CommissionSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "depth", "level_1_rate_bp", "level_2_rate_bp", "guide_rate_bp", "order_cap_bp"]

    def has_add_permission(self, request):
        return not CommissionSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_commission_settings()
        if obj.depth > 1:
            messages.warning(
                request,
                gettext(
                    "Member commission now reaches %(depth)s levels. Chinese law treats pay over three levels as "
                    "pyramid selling, and WeChat may suspend payments for multi-level distribution: one level is "
                    "the safe choice."
                )
                % {"depth": obj.depth},
            )


@admin.register(CategoryCommissionRate)
class CategoryCommissionRateAdmin(admin.ModelAdmin):
    list_display = ["category", "level", "rate_bp"]
    list_filter = ["level"]
    autocomplete_fields = ["category"]


@admin.register(CommissionEntry)
class CommissionEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every promoter's and guide's commission, with what the chain owes in the subtitle."""

    list_display = ["created_at", "member", "staff", "kind", "level", "status", "amount_fen", "order", "customer"]
    list_filter = ["status", "kind", "level"]
    search_fields = ["member__phone", "member__nickname", "staff__display_name", "staff__staff_code", "reference"]
    list_select_related = ["member", "staff", "order", "customer"]
    date_hierarchy = "created_at"

    change_list_template = "admin/commissions/commissionentry/change_list.html"

    def changelist_view(self, request, extra_context=None):
        owed = payable()
        extra_context = {
            **(extra_context or {}),
            "payable": owed,
            "subtitle": gettext("Payable: %(settled)s settled, %(pending)s pending")
            % {"settled": format_yuan(owed.settled_fen), "pending": format_yuan(owed.pending_fen)},
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        return [
            path("results/", self.admin_site.admin_view(self.results_view), name="commissions_commissionentry_results"),
            path(
                "anomalies/",
                self.admin_site.admin_view(self.anomalies_view),
                name="commissions_commissionentry_anomalies",
            ),
            *super().get_urls(),
        ]

    def _report_context(self, request: HttpRequest, title: str) -> dict:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, "payable": payable()}

    def results_view(self, request: HttpRequest) -> HttpResponse:
        """Per promoter or per guide, in a period: visits, sign-ups, orders brought, commission."""
        context = self._report_context(request, gettext("Commission results"))
        form = ResultsForm.from_query(request.GET)
        rows, guides = [], False
        if form.is_valid():
            data = form.cleaned_data
            guides = data["who"] == "guides"
            if guides:
                rows = guide_results(data["since"], data["until"], data["store"], sort=data["sort"])
            else:
                rows = promoter_results(data["since"], data["until"], sort=data["sort"])
            if request.GET.get("format") == "csv":
                return _results_csv(rows, guides=guides, since=data["since"], until=data["until"])
        context.update(
            form=form,
            rows=rows[:RESULTS_SHOWN],
            row_count=len(rows),
            cut=len(rows) > RESULTS_SHOWN,
            guides=guides,
            totals=_totals(rows),
        )
        return render(request, "admin/commissions/commissionentry/results.html", context)

    def anomalies_view(self, request: HttpRequest) -> HttpResponse:
        """Sign-ups from one device, clusters of phone prefixes, refunds after settlement."""
        context = self._report_context(request, gettext("Commission anomalies"))
        form = AnomaliesForm.from_query(request.GET)
        found = None
        if form.is_valid():
            data = form.cleaned_data
            found = anomalies(data["since"], data["until"], min_members=data["min_members"])
        context.update(form=form, found=found)
        return render(request, "admin/commissions/commissionentry/anomalies.html", context)


class PayoutEventInline(admin.TabularInline):
    model = PayoutEvent
    fields = ["at", "from_status", "to_status", "actor_label", "note"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    """Withdrawals of promoters and guides: HQ approves (out by WeChat Pay transfer when possible,
    else paid by hand with a reference) or rejects with a reason. Every move goes through
    `commissions.services`, so the ledger and the balances follow."""

    list_display = ["pk", "requested_at", "member", "staff", "amount", "status", "method", "reference", "paid_at"]
    list_filter = ["status", "method"]
    search_fields = ["member__phone", "member__nickname", "staff__display_name", "staff__staff_code", "reference"]
    list_select_related = ["member", "staff"]
    date_hierarchy = "requested_at"
    readonly_fields = [
        "member",
        "staff",
        "amount",
        "balance",
        "status",
        "method",
        "attempts",
        "reference",
        "reason",
        "requested_at",
        "decided_by",
        "decided_at",
        "paid_at",
    ]
    fields = readonly_fields
    inlines = [PayoutEventInline]
    actions = ["approve_selected"]

    def has_add_permission(self, request):
        return False  # promoters and guides ask; HQ decides

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("amount"), ordering="amount_fen")
    def amount(self, payout: Payout) -> str:
        return format_yuan(payout.amount_fen)

    @admin.display(description=_("their balances now"))
    def balance(self, payout: Payout) -> str:
        mine = balances(member=payout.member, staff=payout.staff)
        return gettext("settled %(settled)s, pending %(pending)s, in open payouts %(requested)s, paid %(paid)s") % {
            "settled": format_yuan(mine.settled_fen),
            "pending": format_yuan(mine.pending_fen),
            "requested": format_yuan(mine.requested_fen),
            "paid": format_yuan(mine.paid_fen),
        }

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra = {**(extra_context or {})}
        if object_id:
            payout = get_object_or_404(Payout, pk=object_id)
            extra["wechat_possible"] = services.wechat_transfer_possible(payout)
        return super().changeform_view(request, object_id, form_url, extra)

    def get_urls(self):
        return [
            path(
                "<int:payout_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="commissions_payout_decide",
            ),
            *super().get_urls(),
        ]

    def decide_view(self, request: HttpRequest, payout_id: int) -> HttpResponse:
        """The buttons of the payout page: approve (by WeChat Pay or by hand), reject, mark paid."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        payout = get_object_or_404(Payout, pk=payout_id)
        decision = request.POST.get("decision", "")
        moves = {
            "approve": lambda: services.approve_payout(payout_id=payout.pk, by=request.user),
            "approve_manual": lambda: services.approve_payout(
                payout_id=payout.pk, by=request.user, method=Payout.Method.MANUAL
            ),
            "reject": lambda: services.reject_payout(
                payout_id=payout.pk, by=request.user, reason=request.POST.get("reason", "")
            ),
            "paid": lambda: services.mark_payout_paid(
                payout_id=payout.pk, by=request.user, reference=request.POST.get("reference", "")
            ),
        }
        if decision not in moves:
            self.message_user(request, gettext("Choose what to do with the payout."), messages.ERROR)
            return redirect("admin:commissions_payout_change", payout.pk)
        try:
            moved = moves[decision]()
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            self.message_user(
                request,
                gettext("Payout #%(pk)s: %(status)s.") % {"pk": moved.pk, "status": moved.get_status_display()},
                messages.SUCCESS,
            )
        return redirect("admin:commissions_payout_change", payout.pk)

    @admin.action(description=_("Approve the selected payouts"))
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Payout]) -> None:
        approved, refused = 0, []
        for payout in queryset.order_by("pk"):
            try:
                services.approve_payout(payout_id=payout.pk, by=request.user)
            except ApplicationError as error:
                refused.append(f"#{payout.pk}: {error.message}")
            else:
                approved += 1
        if approved:
            self.message_user(request, gettext("%(count)s payouts approved.") % {"count": approved}, messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.ERROR)


_TOTALLED = (
    "visits",
    "signups",
    "orders",
    "sales_fen",
    "earned_fen",
    "reversed_fen",
    "adjusted_fen",
    "settled_fen",
    "pending_fen",
    "paid_out_fen",
)


def _totals(rows) -> dict[str, int]:
    return {name: sum(getattr(row, name) for row in rows) for name in _TOTALLED}


def _text_cell(text: str) -> str:
    """A name as a spreadsheet shows it: never read as a formula (a nickname may start with "=")."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def _results_csv(rows, *, guides: bool, since, until) -> HttpResponse:
    who = "guides" if guides else "promoters"
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="commission-{who}-{since:%Y%m%d}-{until:%Y%m%d}.csv"'
    response.write("\ufeff")  # a BOM, so Excel opens the Chinese text as UTF-8
    writer = csv.writer(response)
    if guides:
        head = [gettext("staff code"), gettext("guide"), gettext("store code"), gettext("store")]
    else:
        head = ["ID", gettext("promoter"), gettext("mobile"), gettext("referral code")]
    writer.writerow(
        [
            *head,
            gettext("visits"),
            gettext("customers bound") if guides else gettext("sign-ups"),
            gettext("orders"),
            gettext("sales (yuan)"),
            gettext("earned (yuan)"),
            gettext("reversed (yuan)"),
            gettext("adjusted (yuan)"),
            gettext("settled (yuan)"),
            gettext("pending (yuan)"),
            gettext("paid out (yuan)"),
        ]
    )
    for row in rows:
        if guides:
            staff = row.staff
            who_cells = [staff.staff_code, _text_cell(staff.display_name), staff.store.code, staff.store.name]
        else:
            member = row.member
            who_cells = [member.pk, _text_cell(str(member)), member.phone or "", member.referral_code or ""]
        writer.writerow(
            [
                *who_cells,
                row.visits,
                row.signups,
                row.orders,
                *(fen_to_yuan(getattr(row, name)) for name in _TOTALLED if name.endswith("_fen")),
            ]
        )
    return response
