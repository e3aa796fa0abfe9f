"""Two sweepers at once, on real connections: each delivery is sent once, each stock mark reported once."""

from collections import Counter

import pytest

from integrations.delivery import deliver_due_webhooks
from integrations.models import PendingStockChange, WebhookDelivery, WebhookEvent
from integrations.outbox import collect_stock_changes, record_webhook_event
from integrations.webhook_endpoints import create_webhook_endpoint
from inventory.services import receive_stock
from tests.concurrency import run_at_once
from tests.factories import ApiClientFactory, SkuFactory, StoreFactory
from tests.integrations.webhook_receiver import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_sweepers_at_once_send_each_delivery_exactly_once(settings):
    settings.O2O_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    with Receiver() as receiver:
        client = ApiClientFactory(scopes=["webhooks"])
        create_webhook_endpoint(client=client, url=receiver.url, event_types=["member.created"])
        create_webhook_endpoint(client=client, url=receiver.url + "/second", event_types=["member.created"])
        for member_id in range(30):
            record_webhook_event(event_type="member.created", payload={"member_id": member_id}, store_ids=None)

        # Small batches, so the two sweepers take turns claiming while the other is sending.
        results, raised = run_at_once([lambda: deliver_due_webhooks(batch_size=3)] * 2)

    assert raised == []
    assert sum(results) == 60
    sent = Counter(message.headers["webhook-id"] for message in receiver.received)
    assert len(sent) == 60 and set(sent.values()) == {1}
    assert set(WebhookDelivery.objects.values_list("state", "attempts")) == {(WebhookDelivery.State.SUCCEEDED, 1)}


def test_two_collectors_at_once_report_each_stock_change_once(settings):
    client = ApiClientFactory(scopes=["webhooks"])
    create_webhook_endpoint(client=client, url="https://erp.example.com/h", event_types=["stock.changed"])
    stores = [StoreFactory() for _n in range(4)]
    skus = [SkuFactory() for _n in range(20)]
    for store in stores:
        for sku in skus:
            receive_stock(store=store, sku=sku, quantity=1)

    results, raised = run_at_once([collect_stock_changes] * 2)

    assert raised == []
    assert sum(results) == 4
    events = WebhookEvent.objects.filter(event_type="stock.changed")
    reported = Counter((event.payload["store"], line["sku"]) for event in events for line in event.payload["skus"])
    assert len(reported) == 80 and set(reported.values()) == {1}
    assert not PendingStockChange.objects.exists()


def test_debug_states(settings):
    test_two_sweepers_at_once_send_each_delivery_exactly_once.__wrapped__ if False else None


def test_a_stock_change_still_uncommitted_when_the_collector_runs_is_reported_after_it_commits():
    import threading

    from django.db import connections, transaction

    client = ApiClientFactory(scopes=["webhooks"])
    create_webhook_endpoint(client=client, url="https://erp.example.com/h", event_types=["stock.changed"])
    store, sku = StoreFactory(code="WS"), SkuFactory(code="MILK")
    receive_stock(store=store, sku=sku, quantity=5)
    collect_stock_changes()
    receive_stock(store=store, sku=sku, quantity=1)  # a mark waits for the next collection: 6 on hand
    changed, go = threading.Event(), threading.Event()

    def writer():
        try:
            with transaction.atomic():
                receive_stock(store=store, sku=sku, quantity=10)  # 16 on hand, not committed yet
                changed.set()
                go.wait(timeout=30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    assert changed.wait(timeout=30)
    during = collect_stock_changes()  # the writer holds the mark: it is left for later
    go.set()
    thread.join()
    after = collect_stock_changes()

    reported = [e.payload["skus"][0]["on_hand"] for e in WebhookEvent.objects.order_by("pk")]
    assert (during, after) == (0, 1)
    assert reported == [5, 16]
