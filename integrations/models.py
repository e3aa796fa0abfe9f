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
