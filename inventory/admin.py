"""HQ's admin for the catalog, stock and transfers.

Stock is never edited here directly: the receive / count form and the transfer
screens call inventory.services, which write the StockMove ledger.
"""

import csv

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from inventory import services
from inventory.forms import StockChangeForm, TransferLineFormSet, TransferRequestForm
from inventory.models import (
    SKU,
    Category,
    Product,
    ProductImage,
    Stock,
    StockMove,
    StockTransfer,
    StockTransferEvent,
    StockTransferLine,
    StorePrice,
)
from inventory.selectors import prices_at, stock_of_sku
from o2o.errors import ApplicationError
from o2o.money import format_yuan
from o2o.qr import qr_svg
from stores.models import Store


class ReadOnlyAdminMixin:
    """For ledgers and histories: visible to HQ, never changed by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "parent", "sort_order", "is_active"]
    list_filter = ["is_active", "parent"]
    search_fields = ["code", "name"]


class SkuInline(admin.TabularInline):
    model = SKU
    extra = 0
    fields = ["code", "spec", "barcode", "price_fen", "is_active"]
    show_change_link = True


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    extra = 0


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "brand", "category", "sku_count", "is_active"]
    list_filter = ["is_active", "category", "brand"]
    search_fields = ["code", "name", "brand", "skus__code", "skus__barcode"]
    inlines = [SkuInline, ProductImageInline]
    list_select_related = ["category"]

    @admin.display(description=_("SKUs"))
    def sku_count(self, product: Product) -> int:
        return product.skus.count()


class StorePriceInline(admin.TabularInline):
    model = StorePrice
    extra = 0
    autocomplete_fields = ["store"]


@admin.register(SKU)
class SkuAdmin(admin.ModelAdmin):
    list_display = ["code", "product", "spec", "price", "barcode", "is_active"]
    list_filter = ["is_active", "product__category"]
    search_fields = ["code", "barcode", "spec", "product__name", "product__code"]
    list_select_related = ["product"]
    autocomplete_fields = ["product"]
    readonly_fields = ["stock_in_every_store"]
    fields = ["product", "code", "spec", "barcode", "price_fen", "is_active", "stock_in_every_store"]
    inlines = [StorePriceInline]

    @admin.display(description=_("price"), ordering="price_fen")
    def price(self, sku: SKU) -> str:
        return format_yuan(sku.price_fen)

    def get_urls(self):
        sheet = path("qr-sheet/", self.admin_site.admin_view(self.qr_sheet_view), name="inventory_sku_qr_sheet")
        return [sheet, *super().get_urls()]

    def qr_sheet_view(self, request: HttpRequest) -> HttpResponse:
        """A printable sheet of every active SKU's QR code for one store's shelves.

        Scanning one opens the product with that store chosen, so paying gives a pickup order there.
        """
        stores = Store.objects.filter(is_active=True).order_by("code")
        store = stores.filter(pk=request.GET.get("store") or 0).first()
        labels = []
        if store is not None:
            skus = SKU.objects.filter(is_active=True, product__is_active=True).select_related("product")
            prices = prices_at(store, skus)
            for sku in skus.order_by("product__category__sort_order", "code"):
                url = settings.O2O_PUBLIC_URL + reverse("members:product-entry", args=[sku.code, store.code])
                labels.append({"sku": sku, "price": format_yuan(prices[sku.pk]), "qr": qr_svg(url, box_size=4)})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Product QR codes for a store"),
            "stores": stores,
            "store": store,
            "labels": labels,
        }
        return render(request, "admin/inventory/sku/qr_sheet.html", context)

    @admin.display(description=_("stock in every store"))
    def stock_in_every_store(self, sku: SKU) -> str:
        if sku.pk is None:
            return "—"
        rows = stock_of_sku(sku=sku)
        header = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            gettext("store"),
            gettext("on hand"),
            gettext("reserved"),
            gettext("available"),
        )
        body = format_html_join(
            "",
            "<tr{}><td>{}</td><td>{}</td><td>{}</td><td><strong>{}</strong></td></tr>",
            (
                (
                    ' style="color:#b45309"' if row.pk and row.is_low else "",
                    row.store.name,
                    row.on_hand,
                    row.reserved,
                    row.available,
                )
                for row in rows
            ),
        )
        total = sum(row.available for row in rows)
        footer = format_html("<tr><th>{}</th><td></td><td></td><th>{}</th></tr>", gettext("Total"), total)
        return format_html('<table class="stock-by-store">{}{}{}</table>', header, body, footer)


class LowStockFilter(admin.SimpleListFilter):
    title = _("stock level")
    parameter_name = "level"

    def lookups(self, request, model_admin):
        return [("low", _("At or under threshold")), ("out", _("None available"))]

    def queryset(self, request, queryset):
        if self.value() == "low":
            return queryset.filter(on_hand__lte=F("reserved") + F("low_stock_threshold"))
        if self.value() == "out":
            return queryset.filter(on_hand__lte=F("reserved"))
        return queryset


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = [
        "store",
        "sku",
        "product_name",
        "on_hand",
        "reserved",
        "available_units",
        "low_stock_threshold",
        "updated_at",
    ]
    list_filter = [LowStockFilter, "store", "sku__product__category"]
    search_fields = ["sku__code", "sku__barcode", "sku__product__name", "store__code", "store__name"]
    list_select_related = ["store", "sku__product"]
    readonly_fields = ["store", "sku", "on_hand", "reserved", "updated_at", "synced_at"]
    fields = ["store", "sku", "on_hand", "reserved", "low_stock_threshold", "updated_at", "synced_at"]
    actions = ["export_csv"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("product"), ordering="sku__product__name")
    def product_name(self, stock: Stock) -> str:
        return stock.sku.product.name

    @admin.display(description=_("available"))
    def available_units(self, stock: Stock) -> int:
        return stock.available

    @admin.action(description=_("Export selected stock as CSV"))
    def export_csv(self, request: HttpRequest, queryset) -> HttpResponse:
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="stock-{stamp}.csv"'
        response.write("\ufeff")  # a BOM, so Excel opens the Chinese text as UTF-8
        writer = csv.writer(response)
        writer.writerow(
            [
                gettext(h)
                for h in (
                    "store code",
                    "store",
                    "SKU code",
                    "barcode",
                    "product",
                    "specification",
                    "on hand",
                    "reserved",
                    "available",
                    "low-stock threshold",
                    "updated at",
                )
            ]
        )
        for row in queryset.select_related("store", "sku__product").order_by("store__code", "sku__code"):
            writer.writerow(
                [
                    row.store.code,
                    row.store.name,
                    row.sku.code,
                    row.sku.barcode or "",
                    row.sku.product.name,
                    row.sku.spec,
                    row.on_hand,
                    row.reserved,
                    row.available,
                    row.low_stock_threshold,
                    timezone.localtime(row.updated_at).isoformat(timespec="seconds"),
                ]
            )
        return response

    def get_urls(self):
        custom = [
            path("change/", self.admin_site.admin_view(self.change_stock_view), name="inventory_stock_change_stock"),
        ]
        return custom + super().get_urls()

    def change_stock_view(self, request: HttpRequest) -> HttpResponse:
        """Receive goods or record a count: one form, one service call, one stock move."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = StockChangeForm(request.POST or None, initial=request.GET.dict())
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                if data["action"] == "receive":
                    move = services.receive_stock(
                        store=data["store"],
                        sku=data["sku"],
                        quantity=data["quantity"],
                        actor=request.user,
                        reason=data["reason"],
                    )
                else:
                    move = services.adjust_stock_count(
                        store=data["store"],
                        sku=data["sku"],
                        counted=data["quantity"],
                        actor=request.user,
                        reason=data["reason"],
                    )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(
                    request,
                    gettext("%(store)s · %(sku)s: on hand %(on_hand)d, reserved %(reserved)d.")
                    % {
                        "store": move.store.name,
                        "sku": move.sku.code,
                        "on_hand": move.on_hand_after,
                        "reserved": move.reserved_after,
                    },
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:inventory_stock_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Receive or count stock"),
            "form": form,
        }
        return render(request, "admin/inventory/stock/change_stock.html", context)


@admin.register(StockMove)
class StockMoveAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "store",
        "sku",
        "kind",
        "on_hand_delta",
        "reserved_delta",
        "on_hand_after",
        "reserved_after",
        "reference",
        "actor",
        "reason",
    ]
    list_filter = ["kind", "store"]
    search_fields = ["reference", "sku__code", "sku__product__name", "reason"]
    date_hierarchy = "created_at"
    list_select_related = ["store", "sku__product", "actor"]


class TransferLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = StockTransferLine
    fields = ["sku", "quantity"]
    readonly_fields = fields


class TransferEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = StockTransferEvent
    fields = ["created_at", "from_status", "to_status", "actor", "reason"]
    readonly_fields = fields


def _transfer_action(service, verb: str, past: str):
    def action(modeladmin, request, queryset):
        done = 0
        for transfer in queryset.order_by("pk"):
            try:
                service(transfer=transfer, actor=request.user)
                done += 1
            except ApplicationError as error:
                modeladmin.message_user(request, f"#{transfer.pk}: {error.message}", messages.ERROR)
        if done:
            modeladmin.message_user(
                request, gettext("%(n)d transfer(s) %(past)s.") % {"n": done, "past": past}, messages.SUCCESS
            )

    action.short_description = verb
    action.allowed_permissions = ("change",)
    action.__name__ = f"{service.__name__}_action"
    return action


@admin.register(StockTransfer)
class StockTransferAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "from_store",
        "to_store",
        "status",
        "reference",
        "line_summary",
        "created_at",
        "shipped_at",
        "received_at",
    ]
    list_filter = ["status", "from_store", "to_store"]
    search_fields = ["reference", "note", "lines__sku__code"]
    list_select_related = ["from_store", "to_store"]
    readonly_fields = [
        "from_store",
        "to_store",
        "status",
        "reference",
        "note",
        "requested_by",
        "created_at",
        "shipped_at",
        "received_at",
        "cancelled_at",
    ]
    inlines = [TransferLineInline, TransferEventInline]
    actions = [
        _transfer_action(services.ship_transfer, _("Ship selected transfers"), _("shipped")),
        _transfer_action(services.receive_transfer, _("Receive selected transfers"), _("received")),
        _transfer_action(services.cancel_transfer, _("Cancel selected transfers"), _("cancelled")),
    ]

    def has_change_permission(self, request, obj=None):
        # The page is read-only; state moves through the actions, which check this permission.
        return super().has_change_permission(request, obj) if obj is None else False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("lines"))
    def line_summary(self, transfer: StockTransfer) -> str:
        return ", ".join(f"{line.sku.code}×{line.quantity}" for line in transfer.lines.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("lines__sku")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        """Request a transfer: the source's goods are reserved at once by the service."""
        form = TransferRequestForm(request.POST or None)
        lines = TransferLineFormSet(request.POST or None, prefix="lines")
        if request.method == "POST" and form.is_valid() and lines.is_valid():
            stock_lines = [
                services.StockLine(sku=line["sku"], quantity=line["quantity"])
                for line in lines.cleaned_data
                if line and not line.get("DELETE")
            ]
            try:
                transfer = services.request_transfer(actor=request.user, lines=stock_lines, **form.cleaned_data)
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(
                    request,
                    gettext("Transfer #%(id)d requested; the goods are reserved at the source.") % {"id": transfer.pk},
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:inventory_stocktransfer_change", args=[transfer.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Request a stock transfer"),
            "form": form,
            "lines": lines,
        }
        return render(request, "admin/inventory/stocktransfer/request.html", context)
