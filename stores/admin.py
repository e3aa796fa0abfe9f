"""HQ's admin for stores, their hours and staff. Thin: validation lives in the models and services."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from o2o.qr import qr_svg
from stores.models import OpeningHours, Staff, Store
from stores.selectors import guide_entry_url


class OpeningHoursInline(admin.TabularInline):
    model = OpeningHours
    extra = 0


class StaffInline(admin.TabularInline):
    model = Staff
    extra = 0
    fields = ["staff_code", "display_name", "role", "user", "phone", "is_active"]
    autocomplete_fields = ["user"]
    show_change_link = True


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "kind",
        "operation",
        "city",
        "district",
        "offers_pickup",
        "delivers",
        "delivery_radius_km",
        "is_active",
    ]
    list_filter = ["kind", "operation", "city", "is_active", "offers_pickup", "delivers"]
    search_fields = ["code", "name", "address", "phone", "district"]
    list_editable = []
    inlines = [OpeningHoursInline, StaffInline]
    readonly_fields = ["entry_qr"]
    fieldsets = [
        (None, {"fields": ["code", "name", "kind", "operation", "is_active"]}),
        (_("Address and contact"), {"fields": ["city", "district", "address", "phone", "email"]}),
        (
            _("Location and service"),
            {
                "fields": ["latitude", "longitude", "offers_pickup", "delivers", "delivery_radius_km"],
                "description": _("Coordinates are GCJ-02, as shown by Amap or Tencent Maps (not GPS/WGS-84)."),
            },
        ),
        (_("Store QR code"), {"fields": ["entry_qr"]}),
    ]

    @admin.display(description=_("store QR code"))
    def entry_qr(self, store: Store) -> str:
        """The poster code for the store's door and counter: it opens the mall with this store chosen."""
        if not store.pk:
            return "—"
        url = settings.O2O_PUBLIC_URL + reverse("members:store-entry", args=[store.code])
        return format_html('<div style="width:160px">{}</div><div>{}</div>', qr_svg(url, box_size=4), url)


@admin.register(Staff)
class StaffAdmin(admin.ModelAdmin):
    list_display = ["staff_code", "display_name", "store", "role", "user", "phone", "is_active"]
    list_filter = ["role", "is_active", "store"]
    search_fields = ["staff_code", "display_name", "phone", "user__username", "store__name", "store__code"]
    autocomplete_fields = ["user", "store"]
    list_select_related = ["store", "user"]
    actions = ["print_qr_cards"]

    def get_urls(self):
        card = path(
            "<int:staff_id>/qr-card/", self.admin_site.admin_view(self.qr_card_view), name="stores_staff_qr_card"
        )
        return [card, *super().get_urls()]

    def qr_card_view(self, request: HttpRequest, staff_id: int) -> HttpResponse:
        """The object tool of a staff member's page: their card alone."""
        staff = self.get_queryset(request).select_related("store").filter(pk=staff_id).first()
        if staff is None or not self.has_view_permission(request, staff):
            raise Http404
        return self._qr_cards(request, [staff] if staff.is_active and staff.store.is_active else [])

    @admin.action(description=_("Print QR cards"), permissions=["view"])
    def print_qr_cards(self, request: HttpRequest, queryset: QuerySet[Staff]) -> HttpResponse:
        """One printable card per selected staff member, for the counter or their badge. Inactive
        staff, and staff of closed stores, are left out: their code opens nothing."""
        chosen = (
            queryset.filter(is_active=True, store__is_active=True)
            .select_related("store")
            .order_by("store__code", "staff_code")
        )
        return self._qr_cards(request, chosen)

    def _qr_cards(self, request: HttpRequest, staff: "QuerySet[Staff] | list[Staff]") -> HttpResponse:
        cards = []
        for person in staff:
            url = guide_entry_url(person)
            cards.append({"staff": person, "url": url, "qr": qr_svg(url)})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Guides' QR cards"),
            "cards": cards,
        }
        return render(request, "admin/stores/staff/qr_cards.html", context)


class StaffOfUserInline(admin.StackedInline):
    model = Staff
    can_delete = False
    fk_name = "user"
    autocomplete_fields = ["store"]
    extra = 0


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class StoreAwareUserAdmin(UserAdmin):
    inlines = [StaffOfUserInline]
    list_display = ["username", "first_name", "last_name", "is_staff", "staff__store", "staff__role"]
    list_select_related = ["staff__store"]
    list_filter = [*UserAdmin.list_filter, "staff__role", "staff__store"]
