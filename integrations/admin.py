"""HQ's screens for the ERP/POS API: clients with their scopes, stores and rate; their keys; the call log.

A full key is shown once, on the page the "issue" or "rotate" action answers with; it is not put in
a message (messages travel in a cookie or the session) and the page is never cached.
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from integrations import services
from integrations.models import ApiCall, ApiClient, ApiKey, Scope
from o2o.admin import ReadOnlyAdminMixin
from o2o.errors import ApplicationError


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=Scope.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = ApiClient
        fields = ["name", "is_active", "scopes", "stores", "rate_limit_per_minute", "notes"]

    def clean_scopes(self) -> list[str]:
        chosen = set(self.cleaned_data["scopes"])
        return [scope for scope in Scope.values if scope in chosen]  # stored in one order, whatever the form sent


class RotateKeysForm(forms.Form):
    overlap_hours = forms.IntegerField(
        label=_("Old keys keep working for (hours)"),
        initial=24,
        min_value=0,
        max_value=int(services.MAX_OVERLAP.total_seconds() // 3600),
        help_text=_("Long enough for the client to switch to the new key. 0: the old keys stop at once."),
    )


def key_state(key: ApiKey) -> str:
    now = timezone.now()
    if key.revoked_at is not None:
        return gettext("revoked")
    if key.expires_at is not None and key.expires_at <= now:
        return gettext("expired")
    if key.expires_at is not None:
        return gettext("expiring")
    return gettext("working")


class ApiKeyInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = readonly_fields = [
        "prefix",
        "state",
        "created_at",
        "created_by",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    ordering = ["-created_at", "-pk"]

    @admin.display(description=_("state"))
    def state(self, key: ApiKey) -> str:
        return key_state(key)


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ["name", "scope_list", "store_list", "rate_limit_per_minute", "working_keys", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "notes", "keys__prefix"]
    autocomplete_fields = ["stores"]
    readonly_fields = ["created_at"]
    inlines = [ApiKeyInline]
    actions = ["issue_key_action", "rotate_keys_action"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiClient]:
        now = timezone.now()
        working = Q(keys__revoked_at__isnull=True) & (Q(keys__expires_at__isnull=True) | Q(keys__expires_at__gt=now))
        return (
            super()
            .get_queryset(request)
            .annotate(
                store_count=Count("stores", distinct=True), working_key_count=Count("keys", working, distinct=True)
            )
        )

    @admin.display(description=_("scopes"))
    def scope_list(self, client: ApiClient) -> str:
        return ", ".join(client.scopes) or "—"

    @admin.display(description=_("stores"))
    def store_list(self, client: ApiClient) -> str:
        return str(client.store_count) if client.store_count else gettext("all")

    @admin.display(description=_("working keys"), ordering="working_key_count")
    def working_keys(self, client: ApiClient) -> int:
        return client.working_key_count

    def _keys_page(self, request: HttpRequest, issued: list[tuple[ApiClient, services.IssuedKey]], title: str):
        now = timezone.now()
        rows = [
            {
                "client": client,
                "raw": new.raw,
                "others": [k for k in client.keys.exclude(pk=new.key.pk) if k.is_usable(now)],
            }
            for client, new in issued
        ]
        response = render(
            request,
            "admin/integrations/apiclient/keys_issued.html",
            {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, "rows": rows},
        )
        add_never_cache_headers(response)  # the page holds secrets: no copy in any cache
        return response

    @admin.action(description=_("Issue a new key (shown once)"), permissions=["change"])
    def issue_key_action(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> HttpResponse:
        issued = [(client, services.issue_api_key(client=client, created_by=request.user)) for client in queryset]
        return self._keys_page(request, issued, gettext("New API keys"))

    @admin.action(description=_("Rotate keys: a new key, the old ones expire after an overlap"), permissions=["change"])
    def rotate_keys_action(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> HttpResponse | None:
        form = RotateKeysForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            overlap = timedelta(hours=form.cleaned_data["overlap_hours"])
            try:
                issued = [
                    (client, services.rotate_api_key(client=client, overlap=overlap, created_by=request.user))
                    for client in queryset
                ]
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
                return None
            return self._keys_page(request, issued, gettext("Rotated API keys"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Rotate API keys"),
            "form": form,
            "clients": queryset,
            "action": "rotate_keys_action",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return render(request, "admin/integrations/apiclient/rotate_keys.html", context)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every key by its visible prefix; keys are made from the clients' page and only revoked here."""

    list_display = ["prefix", "client", "state", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["client"]
    search_fields = ["prefix", "client__name"]
    list_select_related = ["client"]
    actions = ["revoke_keys_action"]

    @admin.display(description=_("state"))
    def state(self, key: ApiKey) -> str:
        return key_state(key)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_apikey")

    @admin.action(description=_("Revoke the selected keys now"), permissions=["revoke"])
    def revoke_keys_action(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            services.revoke_api_key(key=key)
        count = len(queryset)
        self.message_user(request, ngettext("{count} key revoked.", "{count} keys revoked.", count).format(count=count))


@admin.register(ApiCall)
class ApiCallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The call log of /api/v1/erp/, refused calls included."""

    list_display = ["at", "client", "key_prefix", "method", "path", "status_code", "duration_ms"]
    list_filter = ["client", "status_code", "method"]
    search_fields = ["key_prefix", "path", "endpoint"]
    list_select_related = ["client"]
    date_hierarchy = "at"
