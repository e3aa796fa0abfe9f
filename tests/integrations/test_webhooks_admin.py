"""HQ's webhook screens: endpoints (secret shown once, rotation), the delivery log, redelivery, the events."""

import pytest
from django.urls import reverse

from integrations.models import WebhookDelivery, WebhookEndpoint
from integrations.outbox import record_webhook_event
from tests.factories import ApiClientFactory, StoreFactory

pytestmark = pytest.mark.django_db

ENDPOINTS = reverse("admin:integrations_webhookendpoint_changelist")
DELIVERIES = reverse("admin:integrations_webhookdelivery_changelist")


def _act(admin_client, url, action, objects, **extra):
    return admin_client.post(url, {"action": action, "_selected_action": [o.pk for o in objects], **extra})


def _shown_secret(response) -> str:
    html = response.content.decode()
    start = html.index('value="whsec_') + len('value="')
    return html[start : html.index('"', start)]


def _add(admin_client, **fields):
    data = {"url": "https://erp.example.com/hooks", "event_types": ["order.paid"], "is_active": "on", **fields}
    return admin_client.post(reverse("admin:integrations_webhookendpoint_add"), data)


def test_hq_adds_an_endpoint_and_sees_its_secret_once(admin_client):
    client = ApiClientFactory(scopes=["webhooks"])

    response = _add(admin_client, client=client.pk, event_types=["stock.low", "order.paid"])

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get()
    assert _shown_secret(response) == endpoint.secret
    assert endpoint.event_types == ["order.paid", "stock.low"]  # in the types' own order
    for page in (ENDPOINTS, reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk])):
        html = admin_client.get(page).content.decode()
        assert endpoint.secret not in html and f"whsec_…{endpoint.secret[-4:]}" in html


@pytest.mark.parametrize(
    "fields, error_field",
    [
        ({"url": "http://erp.example.com/hooks"}, "url"),
        ({"event_types": []}, "event_types"),
    ],
)
def test_a_bad_url_or_no_event_type_is_a_form_error(admin_client, fields, error_field):
    response = _add(admin_client, client=ApiClientFactory(scopes=["webhooks"]).pk, **fields)

    assert response.status_code == 200
    assert error_field in response.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.exists()


def test_a_client_without_the_scope_or_a_store_outside_its_own_is_a_form_error(admin_client):
    without = ApiClientFactory(scopes=["orders:read"])
    response = _add(admin_client, client=without.pk)
    assert "client" in response.context["adminform"].form.errors

    restricted = ApiClientFactory(scopes=["webhooks"])
    restricted.stores.set([StoreFactory()])
    response = _add(admin_client, client=restricted.pk, stores=[StoreFactory().pk])
    assert "stores" in response.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.exists()


def test_rotating_shows_the_new_secret_once_and_keeps_the_old_one_signing_for_the_overlap(
    admin_client, webhook_endpoint
):
    endpoint = webhook_endpoint("order.paid")
    old = endpoint.secret

    form = _act(admin_client, ENDPOINTS, "rotate_secret_action", [endpoint])
    assert form.status_code == 200 and form.context["form"]["overlap_hours"].value() == 24
    response = _act(admin_client, ENDPOINTS, "rotate_secret_action", [endpoint], apply="1", overlap_hours="2")

    assert "no-store" in response["Cache-Control"]
    endpoint.refresh_from_db()
    assert _shown_secret(response) == endpoint.secret != old
    assert endpoint.previous_secret == old and endpoint.previous_secret_expires_at is not None


def test_hq_redelivers_dead_deliveries_and_leaves_pending_ones(admin_client, webhook_endpoint):
    webhook_endpoint("member.created")
    dead = record_webhook_event(event_type="member.created", payload={"member_id": 1}, store_ids=None).deliveries.get()
    WebhookDelivery.objects.filter(pk=dead.pk).update(state="dead", next_attempt_at=None, attempts=8)
    pending = record_webhook_event(event_type="member.created", payload={"member_id": 2}, store_ids=None)
    pending = pending.deliveries.get()

    response = _act(admin_client, DELIVERIES, "redeliver_action", [dead, pending])

    assert response.status_code == 302
    dead.refresh_from_db()
    assert dead.state == WebhookDelivery.State.PENDING and dead.attempts == 0
    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages == [
        "1 delivery will be sent again.",
        "1 delivery is still being attempted and was left alone.",
    ]


def test_the_delivery_log_filters_and_shows_the_request_body_read_only(admin_client, webhook_endpoint):
    endpoint = webhook_endpoint("member.created")
    delivery = record_webhook_event(
        event_type="member.created", payload={"member_id": 41}, store_ids=None
    ).deliveries.get()

    listing = admin_client.get(DELIVERIES, {"state": "pending", "event__event_type": "member.created"})
    assert listing.status_code == 200 and delivery.message_id in listing.content.decode()
    assert admin_client.get(DELIVERIES, {"endpoint__id__exact": endpoint.pk}).status_code == 200
    page = admin_client.get(reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "&quot;member_id&quot;:41" in html
    assert '<input type="submit" value="Save"' not in html
    events = admin_client.get(reverse("admin:integrations_webhookevent_changelist"))
    assert events.status_code == 200 and "member.created" in events.content.decode()
