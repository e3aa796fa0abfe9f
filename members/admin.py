"""HQ's view of members: identity, home store, card, points and their ledger; the points rules."""

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members.models import CategoryPointsRate, FollowUp, LoyaltySettings, Member, PointsEntry, TierChange
from members.selectors import follow_up_completion, forget_loyalty_settings, member_timeline, points_liability
from o2o.admin import ReadOnlyAdminMixin
from o2o.money import format_yuan


class PointsEntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PointsEntry
    extra = 0
    ordering = ["-created_at", "-pk"]
    fields = readonly_fields = ["created_at", "kind", "points", "balance_after", "reference", "note", "expires_at"]


class TierChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = TierChange
    extra = 0
    fields = readonly_fields = ["changed_at", "from_tier", "to_tier", "reason"]


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ["id", "nickname", "phone", "home_store", "tier", "points_balance", "joined_at", "is_active"]
    list_filter = ["tier", "is_active", "home_store_source", "home_store"]
    search_fields = ["phone", "nickname", "openid", "unionid", "card_number"]
    list_select_related = ["home_store"]
    readonly_fields = [
        "timeline",
        "referrer",
        "guide",
        "bound_at",
        "openid",
        "unionid",
        "card_number",
        "points_balance",
        "tier",
        "tier_since",
        "joined_at",
        "home_store_set_at",
    ]
    autocomplete_fields = ["home_store"]
    date_hierarchy = "joined_at"
    inlines = [PointsEntryInline, TierChangeInline]

    @admin.display(description=_("timeline"))
    def timeline(self, member: Member) -> str:
        if member.pk is None:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(entry.at).strftime("%Y-%m-%d %H:%M"),
                    TIMELINE_KINDS.get(entry.kind, ""),
                    entry.text,
                )
                for entry in member_timeline(member)
            ),
        )
        orders = reverse("admin:orders_order_changelist") + f"?member__id__exact={member.pk}"
        return format_html(
            '<table class="member-timeline"><tbody>{}</tbody></table><p><a href="{}">{}</a></p>',
            rows,
            orders,
            gettext("This member's orders"),
        )


TIMELINE_KINDS = {
    "joined": _("membership"),
    "consent": _("privacy"),
    "closed": _("privacy"),
    "purchase": _("purchase"),
    "points": _("points"),
    "tier": _("tier"),
    "call": _("call"),
}


@admin.register(PointsEntry)
class PointsEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The points ledger of every member; the header states what the chain owes in points."""

    list_display = ["created_at", "member", "kind", "points", "balance_after", "reference", "expires_at"]
    list_filter = ["kind"]
    search_fields = ["member__phone", "member__nickname", "member__card_number", "reference"]
    list_select_related = ["member"]
    date_hierarchy = "created_at"

    def changelist_view(self, request, extra_context=None):
        liability = points_liability()
        extra_context = {
            **(extra_context or {}),
            "subtitle": _("Outstanding: %(points)s points, worth %(value)s")
            % {"points": f"{liability['points']:,}", "value": format_yuan(liability["value_fen"])},
        }
        return super().changelist_view(request, extra_context)


@admin.register(LoyaltySettings)
class LoyaltySettingsAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "points_per_yuan",
        "point_value_fen",
        "max_redeem_percent",
        "points_valid_months",
        "loyal_min_purchases",
        "loyal_min_amount_fen",
    ]

    def has_add_permission(self, request):
        return not LoyaltySettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_loyalty_settings()


@admin.register(CategoryPointsRate)
class CategoryPointsRateAdmin(admin.ModelAdmin):
    list_display = ["category", "points_per_yuan"]
    autocomplete_fields = ["category"]


class CompletionPeriodForm(forms.Form):
    since = forms.DateField(label=_("calls due from"), widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("to"), widget=forms.DateInput(attrs={"type": "date"}))
    by = forms.ChoiceField(label=_("per"), choices=[("store", _("store")), ("guide", _("guide"))])

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError(gettext("The period ends before it starts."))
        return data


@admin.register(FollowUp)
class FollowUpAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every opportunity-window call of every store, with its outcome; and how well stores and
    guides make their calls (the completion report)."""

    list_display = ["due_on", "member", "store", "guide", "product", "kind", "status", "outcome", "done_at"]
    list_filter = ["status", "kind", "outcome", "store"]
    search_fields = ["member__phone", "member__nickname", "product__name", "store__code", "guide__display_name"]
    list_select_related = ["member", "store", "product", "guide"]
    date_hierarchy = "due_on"
    change_list_template = "admin/members/followup/change_list.html"

    def get_urls(self):
        report = path(
            "completion/",
            self.admin_site.admin_view(self.completion_view),
            name="members_followup_completion",
        )
        return [report, *super().get_urls()]

    def completion_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        form = CompletionPeriodForm(request.GET or {"since": today - timedelta(days=30), "until": today, "by": "store"})
        rows = follow_up_completion(**form.cleaned_data) if form.is_valid() else []
        totals = {
            key: sum(row[key] for row in rows)
            for key in ("due", "made", "missed", "overdue", "upcoming", "reached", "ordered", "no_answer")
        }
        settled = totals["made"] + totals["missed"] + totals["overdue"]
        totals["rate"] = round(100 * totals["made"] / settled, 1) if settled else None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Follow-up completion"),
            "form": form,
            "rows": rows,
            "totals": totals,
            "by_guide": form.is_valid() and form.cleaned_data["by"] == "guide",
        }
        return render(request, "admin/members/followup/completion.html", context)
