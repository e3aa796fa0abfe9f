"""HQ's commission rules and the commission ledger."""

from django.contrib import admin, messages
from django.db.models import Q, Sum
from django.utils.translation import gettext

from commissions.models import CategoryCommissionRate, CommissionEntry, CommissionSettings
from commissions.selectors import forget_commission_settings
from o2o.admin import ReadOnlyAdminMixin
from o2o.money import format_yuan


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

    def changelist_view(self, request, extra_context=None):
        owed = CommissionEntry.objects.aggregate(
            pending=Sum("amount_fen", filter=Q(status="pending")), settled=Sum("amount_fen", filter=Q(status="settled"))
        )
        extra_context = {
            **(extra_context or {}),
            "subtitle": gettext("Payable: %(settled)s settled, %(pending)s pending")
            % {"settled": format_yuan(owed["settled"] or 0), "pending": format_yuan(owed["pending"] or 0)},
        }
        return super().changelist_view(request, extra_context)
