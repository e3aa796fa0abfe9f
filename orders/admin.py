"""HQ's view of orders: every order with its lines, payments and status timeline; checkout rules."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from o2o.money import format_yuan
from orders.models import MallSettings, Order, OrderEvent, OrderLine, Payment, Refund
from orders.selectors import forget_mall_settings


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = readonly_fields = ["product_name", "spec", "unit_price_fen", "quantity", "line_total_fen"]


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = readonly_fields = ["created_at", "from_status", "to_status", "actor_type", "actor_label", "reason"]


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = readonly_fields = ["transaction_id", "amount_fen", "paid_at", "is_development"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "created_at", "member", "fulfilment", "status", "total", "pickup_store", "credited_store"]
    list_filter = ["status", "fulfilment", "credited_store", "pickup_store"]
    search_fields = ["number", "member__phone", "member__nickname", "recipient_phone", "pickup_code"]
    list_select_related = ["member", "pickup_store", "credited_store"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline, PaymentInline, OrderEventInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # status moves only through the services (dispatch, fulfilment, refunds)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("total"), ordering="total_fen")
    def total(self, order: Order) -> str:
        return format_yuan(order.total_fen)


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ["out_refund_no", "payment", "amount_fen", "status", "refund_id", "created_at"]
    list_filter = ["status"]
    search_fields = ["out_refund_no", "payment__order__number", "refund_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(MallSettings)
class MallSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "unpaid_order_minutes", "delivery_fee_fen", "free_delivery_from_fen"]

    def has_add_permission(self, request):
        return not MallSettings.objects.exists()

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_mall_settings()

    def has_delete_permission(self, request, obj=None):
        return False
