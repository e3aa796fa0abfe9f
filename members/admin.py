"""HQ's view of members: identity, home store, card, points and their ledger; the points rules;
segments and campaigns with their progress and send log, and the frequency cap."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from members import campaigns
from members.forms import CampaignAdminForm, ReferralChangeForm, SegmentAdminForm, add_service_errors
from members.models import (
    Campaign,
    CampaignEvent,
    CampaignMessage,
    CampaignSettings,
    CategoryPointsRate,
    FollowUp,
    LoyaltySettings,
    Member,
    PointsEntry,
    ReferralChange,
    Segment,
    TierChange,
)
from members.segments import describe_segment, segment_members, segment_reach
from members.selectors import (
    campaign_progress,
    follow_up_completion,
    forget_campaign_settings,
    forget_loyalty_settings,
    member_timeline,
    points_liability,
)
from members.services import rebind_referral
from o2o.admin import ReadOnlyAdminMixin
from o2o.errors import ApplicationError
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


class ReferralChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Every move of the member to another referrer or guide, by HQ, with the reason."""

    model = ReferralChange
    fk_name = "member"
    extra = 0
    verbose_name_plural = _("referrer and guide changes")
    fields = readonly_fields = [
        "changed_at",
        "referrer_before",
        "referrer_after",
        "guide_before",
        "guide_after",
        "reason",
        "changed_by",
    ]

    @admin.display(description=_("referrer before"))
    def referrer_before(self, change: ReferralChange) -> str:
        return str(change.from_referrer or "—")

    @admin.display(description=_("referrer after"))
    def referrer_after(self, change: ReferralChange) -> str:
        return str(change.to_referrer or "—")

    @admin.display(description=_("guide before"))
    def guide_before(self, change: ReferralChange) -> str:
        return str(change.from_guide or "—")

    @admin.display(description=_("guide after"))
    def guide_after(self, change: ReferralChange) -> str:
        return str(change.to_guide or "—")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("from_referrer", "to_referrer", "from_guide", "to_guide", "changed_by")
        )


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
        "merged_into",
        "merged_at",
    ]
    autocomplete_fields = ["home_store"]
    date_hierarchy = "joined_at"
    inlines = [PointsEntryInline, TierChangeInline, ReferralChangeInline]
    change_form_template = "admin/members/member/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.merged_into_id:
            fields.append("is_active")  # a sign-up merged into a store membership stays retired
        return fields

    def get_urls(self):
        rebind = path(
            "<int:member_id>/referral/",
            self.admin_site.admin_view(self.rebind_view),
            name="members_member_rebind",
        )
        return [rebind, *super().get_urls()]

    def rebind_view(self, request: HttpRequest, member_id: int) -> HttpResponse:
        """HQ moves the member to another referrer or guide (`members.services.rebind_referral`):
        a reason is required, and every refusal is a form error that changes nothing."""
        member = get_object_or_404(Member.objects.select_related("referrer", "guide__store"), pk=member_id)
        if not self.has_change_permission(request, member):
            raise PermissionDenied
        form = ReferralChangeForm(request.POST if request.method == "POST" else None, member=member)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                rebind_referral(
                    member=member,
                    referrer=data["referrer"],
                    guide=data["guide"],
                    reason=data["reason"],
                    user=request.user,
                )
            except ApplicationError as error:
                add_service_errors(form, error)
            else:
                self.message_user(request, gettext("The member's referrer and guide are changed."), messages.SUCCESS)
                return redirect("admin:members_member_change", member.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": member,
            "title": gettext("Change referrer or guide"),
            "form": form,
            "member": member,
        }
        return render(request, "admin/members/member/rebind.html", context)

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


# --- segments and campaigns -----------------------------------------------------------------------

SEGMENT_PREVIEW = 10


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """HQ's segments and the stores' own; the change page counts the members and shows a few."""

    form = SegmentAdminForm
    list_display = ["name", "store", "filters", "created_by", "created_at"]
    list_filter = [("store", admin.EmptyFieldListFilter), "store"]
    search_fields = ["name"]
    list_select_related = ["store", "home_store", "product", "category", "created_by"]
    autocomplete_fields = ["home_store", "product", "category"]
    readonly_fields = ["store", "member_count", "preview", "created_by", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "store"]}),
        (
            _("filters"),
            {
                "fields": [
                    "tiers",
                    "home_store",
                    ("bought_within_days", "not_bought_for_days"),
                    ("product", "category"),
                    ("min_points", "max_points"),
                ]
            },
        ),
        (_("members now"), {"fields": ["member_count", "preview"]}),
        (None, {"fields": ["created_by", "created_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.store_id is not None:
            fields.append("home_store")  # a store's segment reaches that store's members only
        return fields

    def has_delete_permission(self, request, obj=None):
        return False  # campaigns keep pointing at their segment

    @admin.display(description=_("filters"))
    def filters(self, segment: Segment) -> str:
        return "; ".join(describe_segment(segment))

    @admin.display(description=_("members"))
    def member_count(self, segment: Segment) -> str:
        if segment.pk is None:
            return "—"
        reach = segment_reach(segment)
        return gettext("%(members)d · agreed to marketing messages: %(consenting)d · reachable: %(reachable)d") % reach

    @admin.display(description=_("a few of them"))
    def preview(self, segment: Segment) -> str:
        if segment.pk is None:
            return "—"
        members = segment_members(segment).select_related("home_store").order_by("pk")[:SEGMENT_PREVIEW]
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> · {} · {}</li>',
                (
                    (
                        reverse("admin:members_member_change", args=[member.pk]),
                        str(member),
                        member.get_tier_display(),
                        member.home_store.name if member.home_store_id else "—",
                    )
                    for member in members
                ),
            ),
        )

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data.get(name) for name in form.fields}
        try:
            if change:
                saved = campaigns.update_segment(segment=obj, **fields)
            else:
                saved = campaigns.create_segment(user=request.user, **fields)
        except ApplicationError as error:
            # The form ran the same checks; only a campaign queued in between gets here.
            raise PermissionDenied(error.message) from None
        obj.pk, obj.store_id, obj.created_by_id = saved.pk, saved.store_id, saved.created_by_id
        obj._state.adding = False


def _progress_bar(campaign: Campaign) -> str:
    progress = campaign_progress(campaign)
    return format_html(
        '<div style="display:flex;width:220px;height:10px;background:#eee;border-radius:5px;overflow:hidden">'
        '<span style="width:{}%;background:#1f9d55"></span><span style="width:{}%;background:#b8b8b8"></span>'
        '<span style="width:{}%;background:#c62828"></span></div>'
        "<small>{} {} · {} {} · {} {} · {}/{}</small>",
        progress["widths"]["sent"],
        progress["widths"]["skipped"],
        progress["widths"]["failed"],
        gettext("sent"),
        progress["sent"],
        gettext("skipped"),
        progress["skipped"],
        gettext("failed"),
        progress["failed"],
        progress["handled"],
        progress["total"],
    )


class CampaignEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CampaignEvent
    extra = 0
    fields = readonly_fields = ["created_at", "from_status", "to_status", "actor", "reason"]


def _campaign_action(service, verb, past: str):
    def action(modeladmin, request, queryset):
        done = 0
        for campaign in queryset.order_by("pk"):
            try:
                service(campaign_id=campaign.pk, user=request.user)
                done += 1
            except ApplicationError as error:
                modeladmin.message_user(request, f"{campaign}: {error.message}", messages.ERROR)
        if done:
            modeladmin.message_user(
                request, gettext("%(n)d campaign(s) %(past)s.") % {"n": done, "past": past}, messages.SUCCESS
            )

    action.short_description = verb
    action.allowed_permissions = ("change",)
    action.__name__ = f"{service.__name__}_action"
    return action


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Campaigns of HQ and of the stores: made from a segment, sent and cancelled here, with their progress.

    A campaign's message is fixed once created; its page shows the progress and refreshes while it sends.
    """

    form = CampaignAdminForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["name", "store", "channel", "status", "progress", "created_at", "finished_at"]
    list_filter = ["status", "channel", ("store", admin.EmptyFieldListFilter), "store"]
    search_fields = ["name", "segment__name", "body"]
    list_select_related = ["store", "segment"]
    autocomplete_fields = ["segment"]
    date_hierarchy = "created_at"
    inlines = [CampaignEventInline]
    actions = [
        _campaign_action(campaigns.queue_campaign, _("Send selected campaigns"), _("queued for sending")),
        _campaign_action(campaigns.cancel_campaign, _("Cancel selected campaigns"), _("cancelled")),
    ]
    change_form_template = "admin/members/campaign/change_form.html"
    change_list_template = "admin/members/campaign/change_list.html"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["segment", "name", "channel", "title", "body", "link"]
        return [
            "name",
            "store",
            "segment",
            "segment_filters",
            "channel",
            "title",
            "body",
            "link",
            "status",
            "progress",
            "skip_reasons",
            "messages_log",
            "created_by",
            "created_at",
            "queued_at",
            "started_at",
            "finished_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return list(self.get_fields(request, obj))

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("channel", Campaign.Channel.SMS)
        return initial

    def has_change_permission(self, request, obj=None):
        # The page is read-only; sending and cancelling are the actions and buttons, which check this.
        return super().has_change_permission(request, obj) if obj is None else False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("progress"))
    def progress(self, campaign: Campaign) -> str:
        return _progress_bar(campaign)

    @admin.display(description=_("who it goes to"))
    def segment_filters(self, campaign: Campaign) -> str:
        return "; ".join(describe_segment(campaign.segment))

    @admin.display(description=_("skipped because"))
    def skip_reasons(self, campaign: Campaign) -> str:
        return format_html_join(
            ", ",
            "{}: {}",
            (
                (Campaign._meta.get_field(name).verbose_name, getattr(campaign, name))
                for name in ("skipped_no_consent", "skipped_capped", "skipped_no_address", "skipped_closed")
            ),
        )

    @admin.display(description=_("send log"))
    def messages_log(self, campaign: Campaign) -> str:
        url = reverse("admin:members_campaignmessage_changelist") + f"?campaign__id__exact={campaign.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("Every message of this campaign"))

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        created = campaigns.create_campaign(
            segment=data["segment"],
            user=request.user,
            **{name: data.get(name) or "" for name in ("name", "channel", "title", "body", "link")},
        )
        obj.pk, obj.store_id, obj.status = created.pk, created.store_id, created.status
        obj._state.adding = False

    def get_urls(self):
        return [
            path(
                "<int:campaign_id>/send/",
                self.admin_site.admin_view(self.send_view),
                name="members_campaign_send",
            ),
            path(
                "<int:campaign_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="members_campaign_cancel",
            ),
            *super().get_urls(),
        ]

    def _move_view(self, request: HttpRequest, campaign_id: int, service, done: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        campaign = get_object_or_404(Campaign, pk=campaign_id)
        try:
            service(campaign_id=campaign.pk, user=request.user)
        except ApplicationError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return redirect("admin:members_campaign_change", campaign.pk)

    def send_view(self, request: HttpRequest, campaign_id: int) -> HttpResponse:
        return self._move_view(request, campaign_id, campaigns.queue_campaign, gettext("Sending has started."))

    def cancel_view(self, request: HttpRequest, campaign_id: int) -> HttpResponse:
        return self._move_view(request, campaign_id, campaigns.cancel_campaign, gettext("The campaign is cancelled."))

    def changelist_view(self, request, extra_context=None):
        busy = Campaign.objects.filter(status__in=[Campaign.Status.QUEUED, Campaign.Status.SENDING]).exists()
        return super().changelist_view(request, {**(extra_context or {}), "refresh_seconds": 5 if busy else 0})


@admin.register(CampaignMessage)
class CampaignMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The send log: every member a campaign reached or skipped, with the provider's answer."""

    list_display = ["at", "campaign", "member", "channel", "status", "provider_message_id", "error"]
    list_filter = ["status", "channel", "campaign__store"]
    search_fields = ["campaign__name", "member__phone", "member__nickname", "provider_message_id"]
    list_select_related = ["campaign", "member"]
    date_hierarchy = "at"


@admin.register(CampaignSettings)
class CampaignSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "max_messages", "per_days"]

    def has_add_permission(self, request):
        return not CampaignSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_campaign_settings()
