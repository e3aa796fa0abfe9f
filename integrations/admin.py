"""HQ's screens for the ERP/POS API (clients, keys, the call log) and for scheduled ERP sync (connections, jobs, runs).

A full key is shown once, on the page the "issue" or "rotate" action answers with; it is not put in
a message (messages travel in a cookie or the session) and the page is never cached. A webhook
endpoint's signing secret likewise: on the page that answers its creation or a rotation, masked after.
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from integrations import delivery as webhook_delivery
from integrations import services, sync, webhook_endpoints
from integrations.models import (
    ApiCall,
    ApiClient,
    ApiKey,
    ErpConnection,
    Scope,
    SyncJob,
    SyncRun,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)
from integrations.webhooks import render_body
from o2o.admin import ReadOnlyAdminMixin
from o2o.errors import ApplicationError


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=Scope.choices, widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = ApiClient
        fields = ["name", "is_active", "scopes", "stores", "rate_limit_per_minute", "may_fulfil_orders", "notes"]

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


# --- Webhooks ----------------------------------------------------------------------------------------


def mask_secret(secret: str) -> str:
    return f"whsec_…{secret[-4:]}" if secret else "—"


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        label=_("event types"), choices=WebhookEventType.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["client", "url", "description", "is_active", "event_types", "stores"]

    def clean_event_types(self) -> list[str]:
        chosen = set(self.cleaned_data["event_types"])
        return [kind for kind in WebhookEventType.values if kind in chosen]

    def clean(self):
        cleaned = super().clean()
        client = cleaned.get("client")
        if client is not None:
            try:
                webhook_endpoints.check_client_may_receive(client)
            except forms.ValidationError as error:
                self.add_error("client", error)
            try:
                webhook_endpoints.check_endpoint_stores(client, cleaned.get("stores") or [])
            except forms.ValidationError as error:
                self.add_error("stores", error)
        return cleaned


class RotateSecretForm(forms.Form):
    overlap_hours = forms.IntegerField(
        label=_("The old secret keeps signing for (hours)"),
        initial=24,
        min_value=0,
        max_value=int(webhook_endpoints.MAX_SECRET_OVERLAP.total_seconds() // 3600),
        help_text=_(
            "Messages carry a second signature with the old secret meanwhile. 0: the old secret stops at once."
        ),
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "client", "event_type_list", "masked_secret", "is_active"]
    list_filter = ["is_active", "client"]
    search_fields = ["url", "description", "client__name"]
    list_select_related = ["client"]
    autocomplete_fields = ["stores"]
    readonly_fields = ["masked_secret", "previous_secret_expires_at", "created_at"]
    actions = ["rotate_secret_action"]

    @admin.display(description=_("event types"))
    def event_type_list(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types)

    @admin.display(description=_("signing secret"))
    def masked_secret(self, endpoint: WebhookEndpoint) -> str:
        return mask_secret(endpoint.secret)

    def _secrets_page(self, request: HttpRequest, rows: list[dict], title: str) -> HttpResponse:
        response = render(
            request,
            "admin/integrations/webhookendpoint/secret_shown.html",
            {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, "rows": rows},
        )
        add_never_cache_headers(response)  # the page holds secrets: no copy in any cache
        return response

    def response_add(self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue=None) -> HttpResponse:
        rows = [{"endpoint": obj, "secret": obj.secret, "previous_until": None}]
        return self._secrets_page(request, rows, gettext("New webhook endpoint"))

    @admin.action(description=_("Rotate the signing secret (shown once)"), permissions=["change"])
    def rotate_secret_action(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> HttpResponse | None:
        form = RotateSecretForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            overlap = timedelta(hours=form.cleaned_data["overlap_hours"])
            rotated = [
                webhook_endpoints.rotate_webhook_secret(endpoint=endpoint, overlap=overlap) for endpoint in queryset
            ]
            rows = [
                {"endpoint": item.endpoint, "secret": item.secret, "previous_until": item.previous_until}
                for item in rotated
            ]
            return self._secrets_page(request, rows, gettext("Rotated signing secrets"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": gettext("Rotate signing secrets"),
            "form": form,
            "endpoints": queryset,
            "action": "rotate_secret_action",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return render(request, "admin/integrations/webhookendpoint/rotate_secret.html", context)


class RedeliverMixin:
    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("integrations.change_webhookdelivery")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(RedeliverMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The delivery log: each event to each endpoint, its attempts and the last answer."""

    list_display = [
        "created_at",
        "message_id",
        "event_type",
        "endpoint",
        "state",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "last_duration_ms",
    ]
    list_filter = ["state", "event__event_type", "endpoint"]
    search_fields = ["message_id", "endpoint__url"]
    list_select_related = ["event", "endpoint__client"]
    date_hierarchy = "created_at"
    actions = ["redeliver_action"]
    fields = readonly_fields = [
        "message_id",
        "event",
        "endpoint",
        "state",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "last_status_code",
        "last_error",
        "last_duration_ms",
        "total_duration_ms",
        "delivered_at",
        "redelivered_at",
        "created_at",
        "request_body",
        "response_excerpt",
    ]

    @admin.display(description=_("event type"), ordering="event__event_type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.event_type

    @admin.display(description=_("request body"))
    def request_body(self, delivery: WebhookDelivery) -> str:
        event = delivery.event
        return render_body(event_type=event.event_type, created_at=event.created_at, data=event.payload).decode()

    @admin.action(description=_("Redeliver (dead or succeeded deliveries)"), permissions=["redeliver"])
    def redeliver_action(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        done, skipped = 0, 0
        for item in queryset:
            try:
                webhook_delivery.redeliver(delivery=item)
                done += 1
            except ApplicationError:
                skipped += 1
        self.message_user(
            request,
            ngettext("{count} delivery will be sent again.", "{count} deliveries will be sent again.", done).format(
                count=done
            ),
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "{count} delivery is still being attempted and was left alone.",
                    "{count} deliveries are still being attempted and were left alone.",
                    skipped,
                ).format(count=skipped),
                messages.WARNING,
            )


class WebhookDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    fields = readonly_fields = ["message_id", "endpoint", "state", "attempts", "last_status_code", "next_attempt_at"]
    show_change_link = True


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The outbox: every event written for at least one subscribed endpoint."""

    list_display = ["created_at", "event_type", "delivery_count"]
    list_filter = ["event_type"]
    date_hierarchy = "created_at"
    fields = readonly_fields = ["event_type", "created_at", "payload"]
    inlines = [WebhookDeliveryInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEvent]:
        return super().get_queryset(request).annotate(delivery_total=Count("deliveries"))

    @admin.display(description=_("deliveries"), ordering="delivery_total")
    def delivery_count(self, event: WebhookEvent) -> int:
        return event.delivery_total


# --- scheduled ERP sync ---------------------------------------------------------------------------


class ErpConnectionForm(forms.ModelForm):
    base_url = forms.URLField(
        label=_("Base URL"), assume_scheme="https", help_text=_("e.g. https://erp.example.com/api/o2o")
    )
    # The token is written, never shown back: an empty field on an edit keeps the stored one.
    auth_token = forms.CharField(
        label=_("Token"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Sent as the header's value, e.g. 'Bearer abc…'. Leave empty to keep the current token."),
    )
    clear_token = forms.BooleanField(label=_("Remove the token"), required=False)

    class Meta:
        model = ErpConnection
        fields = [
            "name",
            "kind",
            "is_enabled",
            "base_url",
            "auth_header",
            "auth_token",
            "clear_token",
            "timeout_seconds",
            "stores",
            "mapping",
        ]

    def clean_auth_token(self) -> str:
        token = self.cleaned_data["auth_token"].strip()
        if not token and self.instance.pk:
            return self.instance.auth_token
        return token

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("clear_token"):
            cleaned["auth_token"] = ""
            self.instance.auth_token = ""
        return cleaned


def masked_token(connection: ErpConnection) -> str:
    return gettext("set") if connection.auth_token else "—"


@admin.register(ErpConnection)
class ErpConnectionAdmin(admin.ModelAdmin):
    form = ErpConnectionForm
    list_display = ["name", "kind", "base_url", "token", "timeout_seconds", "is_enabled"]
    list_filter = ["kind", "is_enabled"]
    search_fields = ["name", "base_url"]
    autocomplete_fields = ["stores"]

    @admin.display(description=_("token"))
    def token(self, connection: ErpConnection) -> str:
        return masked_token(connection)


COUNT_KEYS = ("fetched", "applied", "unchanged", "rejected", "pushed")


def run_progress(run: SyncRun) -> str:
    counts = run.counts or {}
    parts = [
        gettext("{pages} pages").format(pages=run.pages),
        *(
            f"{key} {counts[key]}"
            for key in ("fetched", "applied", "unchanged", "rejected", "pushed")
            if counts.get(key)
        ),
    ]
    return " · ".join(parts)


@admin.register(SyncJob)
class SyncJobAdmin(admin.ModelAdmin):
    list_display = ["__str__", "interval_minutes", "is_enabled", "last_run_at", "latest_run", "cursor_short"]
    list_filter = ["kind", "is_enabled", "connection"]
    list_select_related = ["connection"]
    readonly_fields = ["last_run_at"]
    fields = ["connection", "kind", "interval_minutes", "is_enabled", "cursor", "last_run_at"]
    actions = ["run_now_action"]
    change_form_template = "admin/integrations/syncjob/change_form.html"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "cursor":
            kwargs["widget"] = forms.TextInput(attrs={"class": "vLargeTextField", "size": 60})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_urls(self):
        return [
            path(
                "<int:job_id>/run-now/",
                self.admin_site.admin_view(self.run_now_view),
                name="integrations_syncjob_run_now",
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("cursor"))
    def cursor_short(self, job: SyncJob) -> str:
        return (job.cursor[:24] + "…") if len(job.cursor) > 24 else (job.cursor or "—")

    @admin.display(description=_("latest run"))
    def latest_run(self, job: SyncJob) -> str:
        run = job.runs.order_by("-started_at", "-pk").first()
        if run is None:
            return "—"
        url = reverse("admin:integrations_syncrun_change", args=[run.pk])
        return format_html('<a href="{}">{}</a> {}', url, run.get_status_display(), run_progress(run))

    def _queue(self, request: HttpRequest, jobs) -> int:
        for job in jobs:
            sync.queue_job(job_id=job.pk, trigger=SyncRun.Trigger.MANUAL)
        return len(jobs)

    @admin.action(description=_("Run now"), permissions=["change"])
    def run_now_action(self, request: HttpRequest, queryset: QuerySet[SyncJob]) -> None:
        count = self._queue(request, list(queryset))
        self.message_user(request, ngettext("{count} job started.", "{count} jobs started.", count).format(count=count))

    def run_now_view(self, request: HttpRequest, job_id: int) -> HttpResponse:
        if request.method != "POST":
            return redirect("admin:integrations_syncjob_change", job_id)
        if not self.has_change_permission(request):
            raise PermissionDenied
        job = get_object_or_404(SyncJob, pk=job_id)
        self._queue(request, [job])
        self.message_user(request, gettext("A run of the job is queued; its result shows below."), messages.SUCCESS)
        return redirect("admin:integrations_syncjob_change", job.pk)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        runs = SyncRun.objects.filter(job_id=object_id).order_by("-started_at", "-pk")[:10]
        busy = any(run.status == SyncRun.Status.RUNNING for run in runs)
        extra = {"recent_runs": [(run, run_progress(run)) for run in runs], "refresh_seconds": 5 if busy else 0}
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def changelist_view(self, request, extra_context=None):
        busy = SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exists()
        return super().changelist_view(request, {**(extra_context or {}), "refresh_seconds": 5 if busy else 0})


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every run of every job: counts, errors, duration, how far it got."""

    list_display = ["started_at", "job", "trigger", "status", "progress", "error_count", "duration"]
    list_filter = ["status", "trigger", "job__kind", "job__connection"]
    list_select_related = ["job__connection"]
    date_hierarchy = "started_at"
    fields = readonly_fields = [
        "job",
        "status",
        "trigger",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "duration",
        "progress",
        "counts",
        "error_list",
        "cursor_from",
        "cursor_to",
    ]
    change_form_template = "admin/integrations/syncrun/change_form.html"

    @admin.display(description=_("progress"))
    def progress(self, run: SyncRun) -> str:
        return run_progress(run)

    @admin.display(description=_("errors"))
    def error_count(self, run: SyncRun) -> int:
        return len(run.errors or [])

    @admin.display(description=_("errors"))
    def error_list(self, run: SyncRun) -> str:
        if not run.errors:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((error,) for error in run.errors)))

    @admin.display(description=_("duration"), ordering="duration_ms")
    def duration(self, run: SyncRun) -> str:
        if run.duration_ms is None:
            seconds = (timezone.now() - run.started_at).total_seconds()
            return gettext("{seconds} s so far").format(seconds=int(seconds))
        return gettext("{seconds} s").format(seconds=f"{run.duration_ms / 1000:.1f}")

    def changelist_view(self, request, extra_context=None):
        busy = SyncRun.objects.filter(status=SyncRun.Status.RUNNING).exists()
        return super().changelist_view(request, {**(extra_context or {}), "refresh_seconds": 5 if busy else 0})
