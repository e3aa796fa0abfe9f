"""The ERP/POS open API's clients: who may call it, with which keys and scopes, and every call made.

An ApiClient is one external system (an ERP, a store's POS, a CRM) registered by HQ. It calls
with an ApiKey: `<prefix>.<secret>`, where the prefix is visible (it names the key in the admin
and in the call log) and only a SHA-256 digest of the secret is stored. The rules live in
`integrations.services`; see docs/erp-api.md.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from inventory.models import SKU
from stores.models import Store


class Scope(models.TextChoices):
    """What a client may do; each endpoint of /api/v1/erp/ requires one."""

    CATALOG_WRITE = "catalog:write", _("Write the catalog")
    PRICES_WRITE = "prices:write", _("Write prices")
    STOCK_READ = "stock:read", _("Read stock")
    STOCK_WRITE = "stock:write", _("Write stock")
    ORDERS_READ = "orders:read", _("Read orders")
    ORDERS_WRITE = "orders:write", _("Write orders")
    MEMBERS_READ = "members:read", _("Read members")
    MEMBERS_WRITE = "members:write", _("Write members")
    SALES_WRITE = "sales:write", _("Record store sales")
    FOLLOWUPS_READ = "followups:read", _("Read follow-up calls")
    WEBHOOKS = "webhooks", _("Receive webhooks")


def validate_scopes(value) -> None:
    """A list of known scopes, each once."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(_("Scopes are a list of scope names."), code="invalid_scopes")
    unknown = sorted(set(value) - set(Scope.values))
    if unknown:
        raise ValidationError(_("Unknown scopes: {names}.").format(names=", ".join(unknown)), code="invalid_scopes")
    if len(set(value)) != len(value):
        raise ValidationError(_("Each scope once."), code="invalid_scopes")


class ApiClient(models.Model):
    """An external system allowed to call /api/v1/erp/, with its scopes, stores and rate."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    # A JSON list rather than a join table: a fixed, small set read on every call with the client row.
    scopes = models.JSONField(_("scopes"), default=list, blank=True, validators=[validate_scopes])
    stores = models.ManyToManyField(
        Store,
        blank=True,
        related_name="api_clients",
        verbose_name=_("stores"),
        help_text=_("The stores this client may touch; none selected means every store."),
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        _("calls per minute"),
        default=120,
        validators=[MinValueValidator(1), MaxValueValidator(100_000)],
        help_text=_("Calls beyond this within one clock minute are refused with 429."),
    )
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("An inactive client's keys are all refused.")
    )
    may_fulfil_orders = models.BooleanField(
        _("may report order fulfilment"),
        default=False,
        help_text=_(
            "Where the chain lets this system ship: it may move its stores' accepted orders on "
            "(preparing, out for delivery, delivered, ready, handed over). Needs the orders:write scope too."
        ),
    )
    notes = models.TextField(_("notes"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("API client")
        verbose_name_plural = _("API clients")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(rate_limit_per_minute__gte=1), name="api_client_rate_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or [])


class ApiKey(models.Model):
    """One key of a client. The secret is never stored: only its SHA-256 digest, compared in constant time.

    A key works while it is not revoked and not past `expires_at` (none: no expiry). Rotation
    gives the previous keys an `expires_at` so that both work during the overlap.
    """

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="keys", verbose_name=_("client"))
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    hashed = models.CharField(_("secret digest"), max_length=64, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.prefix

    def is_usable(self, at) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > at)


class ApiCall(models.Model):
    """One call to /api/v1/erp/, refused ones included (401, 403, 429): who, what, how it ended, how long.

    The query string is not kept: it may carry a member's phone number.
    """

    client = models.ForeignKey(
        ApiClient,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="calls",
        verbose_name=_("client"),
        help_text=_("Empty when the call named no known key."),
    )
    key_prefix = models.CharField(_("key prefix"), max_length=16, blank=True)
    method = models.CharField(_("method"), max_length=8)
    endpoint = models.CharField(_("endpoint"), max_length=200, help_text=_("The URL pattern that answered."))
    path = models.CharField(_("path"), max_length=255)
    status_code = models.PositiveSmallIntegerField(_("status"))
    duration_ms = models.PositiveIntegerField(_("duration (ms)"))
    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("API call")
        verbose_name_plural = _("API calls")
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["client", "-at"], name="api_call_client_latest")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status_code}"


# --- Webhooks: endpoints, the outbox of events, and their deliveries (docs/webhooks.md) -------------


class WebhookEventType(models.TextChoices):
    """What a webhook endpoint may subscribe to; the payload of each is documented in docs/webhooks.md."""

    ORDER_PAID = "order.paid", _("Order paid")
    ORDER_ASSIGNED = "order.assigned", _("Order assigned to a store")
    ORDER_ACCEPTED = "order.accepted", _("Order accepted by the store")
    ORDER_COMPLETED = "order.completed", _("Order completed")
    ORDER_REFUNDED = "order.refunded", _("Order refunded")
    STOCK_CHANGED = "stock.changed", _("Stock changed (batched per store)")
    STOCK_LOW = "stock.low", _("Stock fell to its low-stock threshold")
    MEMBER_CREATED = "member.created", _("Member registered")
    TRANSFER_REQUESTED = "transfer.requested", _("Stock transfer requested")


def validate_event_types(value) -> None:
    """A non-empty list of known event types, each once."""
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise ValidationError(_("Choose at least one event type."), code="invalid_event_types")
    unknown = sorted(set(value) - set(WebhookEventType.values))
    if unknown:
        raise ValidationError(
            _("Unknown event types: {names}.").format(names=", ".join(unknown)), code="invalid_event_types"
        )
    if len(set(value)) != len(value):
        raise ValidationError(_("Each event type once."), code="invalid_event_types")


def new_webhook_secret() -> str:
    from integrations.webhooks import generate_secret

    return generate_secret()


class WebhookEndpoint(models.Model):
    """A URL of an API client that receives the events it subscribed to, signed with its secret.

    The secret (Standard Webhooks `whsec_…`) is kept in the database because every delivery is
    signed with it; it is shown once, when made or rotated, and masked everywhere else. During a
    rotation's overlap the previous secret signs too, so the receiver can switch without a gap.
    """

    client = models.ForeignKey(
        ApiClient, on_delete=models.CASCADE, related_name="webhook_endpoints", verbose_name=_("client")
    )
    url = models.URLField(_("URL"), max_length=500)
    event_types = models.JSONField(_("event types"), default=list, validators=[validate_event_types])
    stores = models.ManyToManyField(
        Store,
        blank=True,
        related_name="+",
        verbose_name=_("stores"),
        help_text=_("Only events of these stores; none selected: every store the client may touch."),
    )
    secret = models.CharField(_("signing secret"), max_length=100, default=new_webhook_secret, editable=False)
    previous_secret = models.CharField(_("previous signing secret"), max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(
        _("previous secret signs until"), null=True, blank=True, editable=False
    )
    is_active = models.BooleanField(_("active"), default=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["client", "pk"]

    def __str__(self) -> str:
        return f"{self.client} → {self.url}"

    def clean(self) -> None:
        from integrations.webhook_endpoints import check_endpoint_url

        super().clean()
        if self.url:
            try:
                check_endpoint_url(self.url)
            except ValidationError as error:
                raise ValidationError({"url": error.error_list}) from error

    def signing_secrets(self, at) -> list[str]:
        """The secrets that sign a delivery made at `at`: the current one, and the previous during its overlap."""
        secrets = [self.secret]
        if self.previous_secret and self.previous_secret_expires_at and self.previous_secret_expires_at > at:
            secrets.append(self.previous_secret)
        return secrets


class WebhookEvent(models.Model):
    """One event in the outbox, written in the transaction of the change it tells of.

    Its payload is fixed when written: a redelivery sends the same data, however the order or
    the stock changed since.
    """

    event_type = models.CharField(_("event type"), max_length=40, choices=WebhookEventType.choices)
    payload = models.JSONField(_("payload"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk}"


class WebhookDelivery(models.Model):
    """One event to one endpoint: its message id, its attempts and how the last one ended.

    pending → succeeded, or → retrying (after a failed attempt, with `next_attempt_at` backed off)
    → … → dead after the last attempt. HQ may redeliver a dead or succeeded delivery: it is pending
    again, with the same message id so the receiver can tell it is the same message.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        RETRYING = "retrying", _("Failed, retrying")
        DEAD = "dead", _("Dead (no more attempts)")

    OPEN_STATES = (State.PENDING, State.RETRYING)

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("endpoint")
    )
    event = models.ForeignKey(
        WebhookEvent, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("event")
    )
    message_id = models.CharField(_("message id"), max_length=40, unique=True, editable=False)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(
        _("next attempt at"), null=True, blank=True, help_text=_("Empty once it succeeded or is dead.")
    )
    last_attempt_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(_("last status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=255, blank=True)
    response_excerpt = models.TextField(_("response excerpt"), blank=True)
    last_duration_ms = models.PositiveIntegerField(_("last duration (ms)"), null=True, blank=True)
    total_duration_ms = models.PositiveIntegerField(_("total duration (ms)"), default=0)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    redelivered_at = models.DateTimeField(_("redelivery asked at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_once_per_endpoint"),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "retrying"], next_attempt_at__isnull=False)
                | Q(state__in=["succeeded", "dead"], next_attempt_at__isnull=True),
                name="webhook_delivery_open_has_next_attempt",
            ),
        ]
        indexes = [
            # The sweeper's read: open deliveries by when they are due.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(state__in=["pending", "retrying"]),
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return self.message_id


class PendingStockChange(models.Model):
    """A (store, SKU) whose stock changed since the last `stock.changed` event of that store.

    Written in the stock change's transaction, at most one row per (store, SKU) however many moves
    there were; the webhook sweeper turns a store's rows into one event and deletes them.
    """

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="+", verbose_name=_("store"))
    sku = models.ForeignKey(SKU, on_delete=models.CASCADE, related_name="+", verbose_name=_("SKU"))
    since = models.DateTimeField(_("changed since"), default=timezone.now)

    class Meta:
        verbose_name = _("pending stock change")
        verbose_name_plural = _("pending stock changes")
        constraints = [models.UniqueConstraint(fields=["store", "sku"], name="pending_stock_change_once")]

    def __str__(self) -> str:
        return f"{self.store_id}/{self.sku_id}"


class IdempotentRequest(models.Model):
    """One write to /api/v1/erp/ under a client's `Idempotency-Key`: claimed before it runs, its answer kept.

    The unique (client, key) row is inserted and committed before the write runs, so a duplicate
    sent at the same moment finds it and never runs. `attempt` names the request holding the
    claim: the answer is stored only under it, in the write's own transaction. Rows older than
    24 hours count as gone and are pruned nightly. See docs/erp-api.md, "Idempotency".
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In progress")
        DONE = "done", _("Done")

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+", verbose_name=_("client"))
    key = models.CharField(_("idempotency key"), max_length=255)
    method = models.CharField(_("method"), max_length=8)
    path = models.CharField(_("path"), max_length=255)
    body_digest = models.CharField(_("body digest"), max_length=64, help_text=_("SHA-256 of the canonical body."))
    state = models.CharField(_("state"), max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    attempt = models.UUIDField(_("attempt"), help_text=_("The request that holds the claim."))
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_body = models.TextField(_("response body"), blank=True, help_text=_("The JSON answered, as sent."))
    created_at = models.DateTimeField(_("first seen at"), default=timezone.now, db_index=True)
    claimed_at = models.DateTimeField(_("claimed at"), default=timezone.now)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("idempotent request")
        verbose_name_plural = _("idempotent requests")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotent_request_once_per_client_key"),
            models.CheckConstraint(
                condition=Q(state="in_progress") | Q(response_status__isnull=False),
                name="idempotent_request_done_has_answer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


# --- scheduled ERP sync ---------------------------------------------------------------------------

# What a connection's mapping holds when HQ leaves a key out: the ERP-side contract of docs/erp-sync.md.
DEFAULT_MAPPING: dict[str, str] = {
    # paths under the base URL, and the query parameter carrying the cursor
    "prices_path": "/prices",
    "stock_path": "/stock",
    "orders_path": "/orders",
    "cursor_param": "cursor",
    # a page
    "items": "items",
    "next_cursor": "next_cursor",
    "done": "done",
    # a price item
    "sku_code": "sku_code",
    "store_code": "store_code",
    "price_fen": "price_fen",
    # "fen": whole fen; "yuan": a decimal with at most two places, in and out
    "price_unit": "fen",
    # a stock page: one store's count
    "taken_at": "taken_at",
    "rows": "rows",
    "on_hand": "on_hand",
    # the answer to a batch of orders
    "results": "results",
    "order_number": "order_number",
    "accepted": "accepted",
    "error": "error",
}
PRICE_UNITS = ("fen", "yuan")


def validate_mapping(value) -> None:
    """An object of known keys, each a non-empty string; price_unit is fen or yuan; paths start with '/'."""
    if not isinstance(value, dict):
        raise ValidationError(_("The mapping is a JSON object."), code="invalid_mapping")
    unknown = sorted(set(value) - set(DEFAULT_MAPPING))
    if unknown:
        raise ValidationError(
            _("Unknown mapping keys: {names}.").format(names=", ".join(unknown)), code="invalid_mapping"
        )
    for key, item in value.items():
        if not isinstance(item, str) or not item.strip():
            raise ValidationError(_("{key} must be a non-empty text.").format(key=key), code="invalid_mapping")
    if value.get("price_unit", "fen") not in PRICE_UNITS:
        raise ValidationError(_("price_unit is fen or yuan."), code="invalid_mapping")
    for key in ("prices_path", "stock_path", "orders_path"):
        if key in value and not value[key].startswith("/"):
            raise ValidationError(_("{key} starts with /.").format(key=key), code="invalid_mapping")


class ErpConnection(models.Model):
    """An ERP that cannot call us: where we call it, with which credential, and how its fields are named.

    The token is sent as the value of `auth_header` on every call. It has to be stored as it is (we
    present it, we do not check it), so it is never shown back in the admin and never logged.
    """

    class Kind(models.TextChoices):
        REST_JSON = "rest_json", _("REST/JSON")

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.REST_JSON)
    base_url = models.URLField(_("base URL"), help_text=_("e.g. https://erp.example.com/api/o2o"))
    auth_header = models.CharField(
        _("auth header"), max_length=64, default="Authorization", help_text=_("The header carrying the token.")
    )
    auth_token = models.CharField(
        _("token"), max_length=500, blank=True, help_text=_("Sent as the header's value, e.g. 'Bearer abc…'.")
    )
    mapping = models.JSONField(
        _("field mapping"),
        default=dict,
        blank=True,
        validators=[validate_mapping],
        help_text=_("Our field → the ERP's field; keys left out take the defaults of docs/erp-sync.md."),
    )
    stores = models.ManyToManyField(
        Store,
        blank=True,
        related_name="erp_connections",
        verbose_name=_("stores"),
        help_text=_("The stores this ERP covers; none selected means every store (and HQ's prices)."),
    )
    timeout_seconds = models.FloatField(
        _("timeout (s)"),
        default=10.0,
        # Within the worker's time limit (60 s soft): a run must be able to record its own failure.
        validators=[MinValueValidator(0.1), MaxValueValidator(30)],
        help_text=_("For connecting and for each read; a call slower than this fails the run."),
    )
    is_enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("ERP connection")
        verbose_name_plural = _("ERP connections")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # never the token
        return f"<ErpConnection {self.pk} {self.name}>"

    @property
    def field_mapping(self) -> dict[str, str]:
        return {**DEFAULT_MAPPING, **(self.mapping or {})}


class SyncJob(models.Model):
    """One kind of sync with one ERP on a schedule, and the position it has reached (its cursor)."""

    class Kind(models.TextChoices):
        PULL_PRICES = "pull_prices", _("Pull prices")
        PULL_STOCK = "pull_stock", _("Pull stock snapshots")
        PUSH_ORDERS = "push_orders", _("Push paid and completed orders")

    connection = models.ForeignKey(
        ErpConnection, on_delete=models.CASCADE, related_name="jobs", verbose_name=_("connection")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    interval_minutes = models.PositiveIntegerField(
        _("every (minutes)"), default=15, validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)]
    )
    is_enabled = models.BooleanField(_("enabled"), default=True)
    cursor = models.TextField(
        _("cursor"),
        blank=True,
        help_text=_("Where the next run starts: the last position committed. Empty: from the beginning."),
    )
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sync job")
        verbose_name_plural = _("sync jobs")
        ordering = ["connection__name", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "kind"], name="sync_job_one_per_kind"),
            models.CheckConstraint(condition=Q(interval_minutes__gte=1), name="sync_job_interval_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.connection} · {self.get_kind_display()}"


def empty_counts() -> dict[str, int]:
    return {"fetched": 0, "applied": 0, "unchanged": 0, "rejected": 0, "pushed": 0}


class SyncRun(models.Model):
    """One run of a job: when, why, how far it got (pages, cursor), what it did and what went wrong."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped: already running")

    class Trigger(models.TextChoices):
        BEAT = "beat", _("Schedule")
        MANUAL = "manual", _("By hand")

    job = models.ForeignKey(SyncJob, on_delete=models.CASCADE, related_name="runs", verbose_name=_("job"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(_("trigger"), max_length=10, choices=Trigger.choices, default=Trigger.BEAT)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    heartbeat_at = models.DateTimeField(_("last progress at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    counts = models.JSONField(_("counts"), default=empty_counts)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    pages = models.PositiveIntegerField(_("pages done"), default=0)
    cursor_from = models.TextField(_("cursor at start"), blank=True)
    cursor_to = models.TextField(_("cursor at end"), blank=True)

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering = ["-started_at", "-pk"]
        constraints = [
            # The last line behind the job's row lock: never two runs of one job at once.
            models.UniqueConstraint(fields=["job"], condition=Q(status="running"), name="sync_run_one_running"),
        ]
        indexes = [models.Index(fields=["job", "-started_at"], name="sync_run_job_latest")]

    def __str__(self) -> str:
        return f"{self.job} {self.started_at:%Y-%m-%d %H:%M} {self.status}"
