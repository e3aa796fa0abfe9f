"""Delivering webhooks: signed POSTs to a real receiver on loopback, retries with backoff, dead-letter, redelivery."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from integrations import delivery as delivery_module
from integrations.delivery import deliver_due_webhooks, redeliver
from integrations.models import WebhookDelivery, WebhookEvent
from integrations.outbox import record_webhook_event
from integrations.webhook_endpoints import rotate_webhook_secret
from integrations.webhooks import WebhookVerificationError, verify_webhook
from o2o.errors import ApplicationError
from tests.integrations.webhook_receiver import Receiver

PAYLOAD = {"member_id": 7, "card_number": "880000000007", "home_store": "WS", "joined_at": "2025-01-01T08:00:00+08:00"}


@pytest.fixture
def settings_for_retries(settings):
    settings.O2O_WEBHOOK_BACKOFF_BASE_SECONDS = 5
    settings.O2O_WEBHOOK_BACKOFF_CAP_SECONDS = 3600
    settings.O2O_WEBHOOK_MAX_ATTEMPTS = 4
    settings.O2O_WEBHOOK_TIMEOUT_SECONDS = 5
    return settings


def member_created() -> WebhookEvent:
    return record_webhook_event(event_type="member.created", payload=PAYLOAD, store_ids=None)


def test_a_delivery_reaches_the_receiver_signed_and_verifiable(webhook_endpoint, receiver):
    endpoint = webhook_endpoint("member.created", url=receiver.url)
    event = member_created()

    assert deliver_due_webhooks() == 1

    [message] = receiver.received
    verify_webhook(endpoint.secret, message.headers, message.body)
    delivery = WebhookDelivery.objects.get(event=event)
    assert message.headers["webhook-id"] == delivery.message_id
    assert message.headers["Content-Type"] == "application/json"
    assert json.loads(message.body) == {
        "type": "member.created",
        "timestamp": event.created_at.isoformat(),
        "data": PAYLOAD,
    }
    assert delivery.state == WebhookDelivery.State.SUCCEEDED
    assert delivery.attempts == 1 and delivery.last_status_code == 204
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert delivery.last_duration_ms is not None
    assert deliver_due_webhooks() == 0  # nothing is sent twice


def test_a_receiver_can_tell_a_tampered_delivery(webhook_endpoint, receiver):
    endpoint = webhook_endpoint("member.created", url=receiver.url)
    member_created()
    deliver_due_webhooks()
    [message] = receiver.received

    with pytest.raises(WebhookVerificationError):
        verify_webhook(endpoint.secret, message.headers, message.body.replace(b"WS", b"XX"))


def test_failed_attempts_back_off_with_jitter_within_bounds_then_the_delivery_is_dead(
    webhook_endpoint, settings_for_retries, monkeypatch
):
    with Receiver(default_status=503) as failing:
        webhook_endpoint("member.created", url=failing.url)
        event = member_created()
        delivery = WebhookDelivery.objects.get(event=event)
        draws = iter([1.0, 0.5, 0.0])  # the jitter's random source: top, middle and bottom of its range
        monkeypatch.setattr(delivery_module, "jitter", lambda: next(draws))
        start = timezone.now()
        waits = []
        with time_machine.travel(start, tick=False) as clock:
            for attempt in (1, 2, 3):
                assert deliver_due_webhooks() == 1
                delivery.refresh_from_db()
                assert delivery.state == WebhookDelivery.State.RETRYING
                assert delivery.attempts == attempt and delivery.last_status_code == 503
                assert delivery.last_error == "HTTP 503" and "not today" in delivery.response_excerpt
                wait = delivery.next_attempt_at - timezone.now()
                waits.append(wait)
                # Not due before its time: a sweep a moment too early sends nothing.
                clock.shift(wait - timedelta(milliseconds=1))
                assert deliver_due_webhooks() == 0
                clock.shift(timedelta(milliseconds=1))
            assert deliver_due_webhooks() == 1  # the fourth and last attempt

        # Attempt n waits jitter × min(cap, base × 2^(n−1)): 1.0 × 5 s, 0.5 × 10 s, 0.0 × 20 s (but 1 s at least).
        assert waits == [timedelta(seconds=5), timedelta(seconds=5), timedelta(seconds=1)]
        delivery.refresh_from_db()
        assert delivery.state == WebhookDelivery.State.DEAD
        assert delivery.attempts == 4 and delivery.next_attempt_at is None
        assert len(failing.received) == 4
        assert len({m.headers["webhook-id"] for m in failing.received}) == 1  # one message id throughout


def test_the_backoff_never_exceeds_its_cap(webhook_endpoint, settings_for_retries, monkeypatch):
    settings_for_retries.O2O_WEBHOOK_BACKOFF_CAP_SECONDS = 7
    settings_for_retries.O2O_WEBHOOK_MAX_ATTEMPTS = 10
    monkeypatch.setattr(delivery_module, "jitter", lambda: 0.999)
    with Receiver(default_status=500) as failing:
        webhook_endpoint("member.created", url=failing.url)
        delivery = WebhookDelivery.objects.get(event=member_created())
        with time_machine.travel(timezone.now(), tick=False) as clock:
            for _attempt in range(5):
                deliver_due_webhooks()
                delivery.refresh_from_db()
                assert delivery.next_attempt_at - timezone.now() <= timedelta(seconds=7)
                clock.shift(timedelta(seconds=8))
    assert delivery.attempts == 5


def test_an_unreachable_receiver_is_a_failed_attempt_not_an_error(webhook_endpoint, settings_for_retries):
    with Receiver() as gone:
        url = gone.url
    webhook_endpoint("member.created", url=url)  # nothing listens there any more
    delivery = WebhookDelivery.objects.get(event=member_created())

    assert deliver_due_webhooks() == 1

    delivery.refresh_from_db()
    assert delivery.state == WebhookDelivery.State.RETRYING
    assert delivery.last_status_code is None and "ConnectionError" in delivery.last_error


def test_a_redirect_is_not_followed_and_counts_as_a_failure(webhook_endpoint, settings_for_retries):
    with Receiver(default_status=307) as moved:
        webhook_endpoint("member.created", url=moved.url)
        delivery = WebhookDelivery.objects.get(event=member_created())
        deliver_due_webhooks()
    delivery.refresh_from_db()
    assert delivery.state == WebhookDelivery.State.RETRYING and delivery.last_status_code == 307
    assert len(moved.received) == 1


def test_redelivering_a_dead_delivery_sends_the_same_message_again(webhook_endpoint, settings_for_retries):
    settings_for_retries.O2O_WEBHOOK_MAX_ATTEMPTS = 1
    with Receiver(statuses=[500], default_status=200) as flaky:
        webhook_endpoint("member.created", url=flaky.url)
        delivery = WebhookDelivery.objects.get(event=member_created())
        deliver_due_webhooks()
        delivery.refresh_from_db()
        assert delivery.state == WebhookDelivery.State.DEAD

        redeliver(delivery=delivery)
        delivery.refresh_from_db()
        assert delivery.state == WebhookDelivery.State.PENDING and delivery.attempts == 0
        assert delivery.redelivered_at is not None
        assert deliver_due_webhooks() == 1

    delivery.refresh_from_db()
    assert delivery.state == WebhookDelivery.State.SUCCEEDED
    first, second = flaky.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.message_id
    assert first.body == second.body


def test_a_succeeded_delivery_can_be_redelivered_but_not_one_still_being_attempted(webhook_endpoint, receiver):
    webhook_endpoint("member.created", url=receiver.url)
    delivery = WebhookDelivery.objects.get(event=member_created())
    with pytest.raises(ApplicationError) as refused:
        redeliver(delivery=delivery)
    assert refused.value.code == "delivery_in_progress"

    deliver_due_webhooks()
    redeliver(delivery=delivery)
    deliver_due_webhooks()
    assert len(receiver.received) == 2


def test_a_disabled_endpoint_gets_nothing_and_its_delivery_is_dead(webhook_endpoint, receiver):
    endpoint = webhook_endpoint("member.created", url=receiver.url)
    delivery = WebhookDelivery.objects.get(event=member_created())
    endpoint.is_active = False
    endpoint.save(update_fields=["is_active"])

    deliver_due_webhooks()

    delivery.refresh_from_db()
    assert delivery.state == WebhookDelivery.State.DEAD and "disabled" in delivery.last_error
    assert receiver.received == []


def test_after_a_rotation_both_secrets_verify_until_the_overlap_ends(webhook_endpoint, receiver):
    endpoint = webhook_endpoint("member.created", url=receiver.url)
    old_secret = endpoint.secret
    rotated = rotate_webhook_secret(endpoint=endpoint, overlap=timedelta(hours=1))
    member_created()
    deliver_due_webhooks()
    [message] = receiver.received
    verify_webhook(rotated.secret, message.headers, message.body)
    verify_webhook(old_secret, message.headers, message.body)

    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        member_created()
        deliver_due_webhooks()
        latest = receiver.received[-1]
        verify_webhook(rotated.secret, latest.headers, latest.body)
        with pytest.raises(WebhookVerificationError):
            verify_webhook(old_secret, latest.headers, latest.body)


def test_the_beat_task_coalesces_stock_then_delivers(webhook_endpoint, receiver, db):
    from integrations.tasks import deliver_webhooks
    from inventory.services import receive_stock
    from tests.factories import SkuFactory, StoreFactory

    webhook_endpoint("stock.changed", url=receiver.url)
    store = StoreFactory(code="WS")
    for _n in range(3):
        receive_stock(store=store, sku=SkuFactory(), quantity=2)

    assert deliver_webhooks.delay().get() == 1

    [message] = receiver.received
    assert json.loads(message.body)["type"] == "stock.changed"
    assert len(json.loads(message.body)["data"]["skus"]) == 3
