"""HQ's view of members: identity, home store, card, points and their ledger; the points rules."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from members.models import CategoryPointsRate, FollowUp, LoyaltySettings, Member, PointsEntry, TierChange
from members.selectors import forget_loyalty_settings, points_liability
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


@admin.register(FollowUp)
class FollowUpAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every opportunity-window call of every store, with its outcome."""

    list_display = ["due_on", "member", "store", "product", "kind", "status", "outcome", "done_at"]
    list_filter = ["status", "kind", "outcome", "store"]
    search_fields = ["member__phone", "member__nickname", "product__name", "store__code"]
    list_select_related = ["member", "store", "product"]
    date_hierarchy = "due_on"
