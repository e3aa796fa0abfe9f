"""HQ's view of orders: every order with its lines, payments and status timeline; checkout rules."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from o2o.admin import ReadOnlyAdminMixin
from o2o.errors import ApplicationError
from o2o.money import format_yuan
from orders import dispatch, fulfilment
from orders.models import (
    Assignment,
    DispatchException,
    MallSettings,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    PosReturn,
    PosReturnLine,
    PosSale,
    PosSaleLine,
    Refund,
    Return,
)
from orders.selectors import exception_queue, forget_mall_settings
from stores.models import Store


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = readonly_fields = ["product_name", "spec", "unit_price_fen", "quantity", "line_total_fen"]


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = readonly_fields = ["created_at", "from_status", "to_status", "actor_type", "actor_label", "reason"]


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = readonly_fields = ["transaction_id", "amount_fen", "paid_at", "is_development"]


class AssignmentInline(ReadOnlyInline):
    model = Assignment
    fields = readonly_fields = [
        "store",
        "basis",
        "distance_m",
        "status",
        "offered_at",
        "deadline",
        "decided_at",
        "decided_by",
        "reason",
    ]


class ReturnInline(ReadOnlyInline):
    model = Return
    fields = readonly_fields = ["created_at", "store", "amount_fen", "reason", "refund", "received_by"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "created_at",
        "member",
        "fulfilment",
        "status",
        "total",
        "credited_store",
        "fulfilling_store",
    ]
    list_filter = ["status", "fulfilment", "credited_store", "fulfilling_store", "pickup_store"]
    search_fields = ["number", "member__phone", "member__nickname", "recipient_phone", "pickup_code"]
    list_select_related = ["member", "pickup_store", "credited_store", "fulfilling_store"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline, PaymentInline, AssignmentInline, ReturnInline, OrderEventInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # status moves only through the services (dispatch, fulfilment, refunds)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("total"), ordering="total_fen")
    def total(self, order: Order) -> str:
        return format_yuan(order.total_fen)


class AssignForm(forms.Form):
    store = forms.ModelChoiceField(
        label=_("Store"), queryset=Store.objects.filter(is_active=True).order_by("code"), required=False
    )
    reason = forms.CharField(label=_("Note or reason"), max_length=255, required=False)


@admin.register(DispatchException)
class DispatchExceptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Paid orders waiting for HQ: assign one to a store by hand, or cancel it with a full refund."""

    list_display = ["number", "paid_at", "fulfilment", "total", "exception_reason", "credited_store", "decide"]
    list_select_related = ["credited_store"]
    search_fields = ["number", "member__phone", "recipient_phone"]

    def get_queryset(self, request):
        return exception_queue().select_related("credited_store")

    @admin.display(description=_("total"), ordering="total_fen")
    def total(self, order: Order) -> str:
        return format_yuan(order.total_fen)

    @admin.display(description=_("decide"))
    def decide(self, order: Order) -> str:
        url = reverse("admin:orders_dispatchexception_decide", args=[order.pk])
        return format_html('<a class="button" href="{}">{}</a>', url, gettext("Assign or cancel…"))

    def get_urls(self):
        decide = path(
            "<int:order_id>/decide/",
            self.admin_site.admin_view(self.decide_view),
            name="orders_dispatchexception_decide",
        )
        return [decide, *super().get_urls()]

    def decide_view(self, request: HttpRequest, order_id: int) -> HttpResponse:
        if not request.user.has_perm("orders.change_order"):
            raise PermissionDenied
        order = get_object_or_404(Order.objects.select_related("pickup_store", "member"), pk=order_id)
        form = AssignForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                if "cancel" in request.POST:
                    fulfilment.cancel_by_hq(order=order, user=request.user, reason=data["reason"])
                    done = gettext("Order %(number)s cancelled; the shopper is refunded in full.")
                elif data["store"] is None:
                    raise ApplicationError(gettext("Choose a store to assign the order to."), code="store_required")
                else:
                    dispatch.assign_by_hand(order=order, store=data["store"], user=request.user, reason=data["reason"])
                    done = gettext("Order %(number)s offered to the store; it must accept in time.")
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, done % {"number": order.number}, messages.SUCCESS)
                return redirect("admin:orders_dispatchexception_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Order %(number)s: assign or cancel") % {"number": order.number},
            "order": order,
            "lines": order.lines.all(),
            "events": order.events.all(),
            "form": form,
        }
        return render(request, "admin/orders/decide.html", context)


@admin.register(Assignment)
class AssignmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every offer of an order to a store, with its deadline and outcome."""

    list_display = ["order", "store", "basis", "status", "offered_at", "deadline", "decided_at", "reason"]
    list_filter = ["status", "basis", "store"]
    search_fields = ["order__number", "store__code", "store__name"]
    list_select_related = ["order", "store"]
    date_hierarchy = "offered_at"


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["out_refund_no", "payment", "amount_fen", "status", "refund_id", "created_at"]
    list_filter = ["status"]
    search_fields = ["out_refund_no", "payment__order__number", "refund_id"]


@admin.register(MallSettings)
class MallSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "unpaid_order_minutes",
        "delivery_fee_fen",
        "free_delivery_from_fen",
        "acceptance_minutes",
        "shortage_policy",
    ]

    def has_add_permission(self, request):
        return not MallSettings.objects.exists()

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        forget_mall_settings()

    def has_delete_permission(self, request, obj=None):
        return False


# --- sales at the tills -----------------------------------------------------------------------------


class PosSaleLineInline(ReadOnlyInline):
    model = PosSaleLine
    fields = readonly_fields = ["sku", "quantity", "unit_price_fen", "amount_fen", "shortfall"]


class ShortfallFilter(admin.SimpleListFilter):
    """Sales that sold more than the store's stock showed as available: the stock team counts these."""

    title = _("stock")
    parameter_name = "shortfall"

    def lookups(self, request, model_admin):
        return [("yes", _("Sold beyond the available stock"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(lines__shortfall__gt=0).distinct()
        return queryset


@admin.register(PosSale)
class PosSaleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Sales the stores' tills reported through the ERP API."""

    list_display = ["reference", "store", "sold_at", "total_fen", "paid_fen", "member", "guide", "points_earned"]
    list_filter = [ShortfallFilter, "store"]
    search_fields = ["receipt_id", "reference", "member__phone"]
    list_select_related = ["store", "member", "guide"]
    date_hierarchy = "sold_at"
    inlines = [PosSaleLineInline]


class PosReturnLineInline(ReadOnlyInline):
    model = PosReturnLine
    fields = readonly_fields = ["sku", "quantity", "amount_fen"]


@admin.register(PosReturn)
class PosReturnAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["return_id", "sale", "store", "returned_at", "amount_fen", "points_reversed"]
    list_filter = ["store"]
    search_fields = ["return_id", "sale__receipt_id"]
    list_select_related = ["sale", "store"]
    inlines = [PosReturnLineInline]
