"""Writes of webhook endpoints: making one, rotating its secret, and the rules of a URL and a store filter.

A URL must be https. Plain http is accepted only for a loopback host (127.0.0.1, ::1, localhost)
and only when `O2O_WEBHOOK_ALLOW_HTTP_LOOPBACK` is on (DEBUG by default): a signed message
carries order and member data and must not cross a network in clear, and in production a
loopback URL would let the workers post to services of their own machine.
"""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from integrations.models import ApiClient, Scope, WebhookEndpoint, validate_event_types
from integrations.webhooks import generate_secret
from o2o.errors import ApplicationError
from stores.models import Store

DEFAULT_SECRET_OVERLAP = timedelta(hours=24)
MAX_SECRET_OVERLAP = timedelta(days=7)
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str) -> None:
    """Raise ValidationError unless `url` may receive webhooks (see the module's rule)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or parts.scheme not in ("https", "http"):
        raise ValidationError(_("Enter a full https:// URL."), code="invalid_url")
    if parts.username or parts.password:
        raise ValidationError(_("Put no user name or password in the URL."), code="invalid_url")
    if parts.scheme == "http" and not (settings.O2O_WEBHOOK_ALLOW_HTTP_LOOPBACK and _is_loopback(host)):
        raise ValidationError(_("Webhooks are sent only to https:// URLs."), code="insecure_url")


def check_endpoint_stores(client: ApiClient, stores: Iterable[Store]) -> None:
    """A store filter may only narrow what the client may see: a restricted client's stores only."""
    allowed = {store.pk for store in client.stores.all()}
    outside = sorted(store.code for store in stores if allowed and store.pk not in allowed)
    if outside:
        raise ValidationError(
            _("This client may not touch these stores: {codes}.").format(codes=", ".join(outside)),
            code="store_not_allowed",
        )


def check_client_may_receive(client: ApiClient) -> None:
    if not client.has_scope(Scope.WEBHOOKS):
        raise ValidationError(
            _("The client needs the “webhooks” scope to receive webhooks."), code="missing_webhooks_scope"
        )


@transaction.atomic
def create_webhook_endpoint(
    *,
    client: ApiClient,
    url: str,
    event_types: list[str],
    stores: Iterable[Store] = (),
    description: str = "",
    is_active: bool = True,
) -> WebhookEndpoint:
    """Register a receiver of the client; its secret is made here and shown once to HQ by the caller."""
    stores = list(stores)
    try:
        check_client_may_receive(client)
        check_endpoint_url(url)
        validate_event_types(event_types)
        check_endpoint_stores(client, stores)
    except ValidationError as error:
        raise ApplicationError(error.messages[0], code=error.code or "invalid") from error
    endpoint = WebhookEndpoint.objects.create(
        client=client,
        url=url,
        event_types=list(event_types),
        description=description[:200],
        is_active=is_active,
    )
    endpoint.stores.set(stores)
    return endpoint


@dataclass(frozen=True)
class RotatedSecret:
    endpoint: WebhookEndpoint
    secret: str
    previous_until: datetime | None


@transaction.atomic
def rotate_webhook_secret(
    *, endpoint: WebhookEndpoint, overlap: timedelta = DEFAULT_SECRET_OVERLAP, at: datetime | None = None
) -> RotatedSecret:
    """Give the endpoint a new secret; the old one keeps signing too (a second signature) for `overlap`.

    So a receiver that verifies with either secret keeps accepting messages while it switches.
    """
    if overlap < timedelta(0) or overlap > MAX_SECRET_OVERLAP:
        raise ApplicationError(_("The overlap must be between 0 and 7 days."), code="invalid_overlap")
    now = at or timezone.now()
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    until = now + overlap if overlap else None
    locked.previous_secret = locked.secret if until else ""
    locked.previous_secret_expires_at = until
    locked.secret = generate_secret()
    locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
    return RotatedSecret(endpoint=locked, secret=locked.secret, previous_until=until)
