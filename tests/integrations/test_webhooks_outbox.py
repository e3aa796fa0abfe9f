"""The outbox: events written in the change's own transaction, for the endpoints that should get them."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from integrations.models import PendingStockChange, WebhookDelivery, WebhookEvent
from integrations.outbox import collect_stock_changes
from integrations.webhook_endpoints import create_webhook_endpoint
from inventory.services import StockLine, adjust_stock_count, receive_stock, request_transfer, reserve_stock
from members.services import sign_in_with_wechat
from o2o.errors import ApplicationError
from orders.services import confirm_payment, place_order, set_cart_quantity
from tests.factories import ApiClientFactory, MemberFactory, SkuFactory, StoreFactory


@pytest.fixture(autouse=True)
def _development_payments(settings):
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""


@pytest.fixture
def store(db):
    return StoreFactory(code="WS", name="文三路店", latitude=Decimal("30.280000"), longitude=Decimal("120.150000"))


@pytest.fixture
def formula(store):
    sku = SkuFactory(code="FEIHE-3", price_fen=19900)
    receive_stock(store=store, sku=sku, quantity=50)
    return sku


def pay_for_pickup(store, sku, quantity=1):
    member = MemberFactory()
    set_cart_quantity(member=member, sku=sku, quantity=quantity)
    order = place_order(member=member, fulfilment="pickup", pickup_store=store)
    confirm_payment(
        out_trade_no=order.number,
        transaction_id=f"wx-{order.number}",
        amount_fen=order.total_fen,
        paid_at=timezone.now(),
    )
    order.refresh_from_db()
    return order


def test_a_paid_order_writes_one_event_with_its_documented_payload_and_a_pending_delivery(
    webhook_endpoint, store, formula
):
    endpoint = webhook_endpoint("order.paid")

    order = pay_for_pickup(store, formula, quantity=2)

    event = WebhookEvent.objects.get(event_type="order.paid")
    assert event.payload == {
        "order": order.number,
        "status": "paid",
        "fulfilment": "pickup",
        "store": "WS",
        "pickup_store": "WS",
        "fulfilling_store": None,
        "credited_store": order.credited_store.code if order.credited_store else None,
        "member_id": order.member_id,
        "items_fen": 39800,
        "delivery_fee_fen": 0,
        "points_discount_fen": 0,
        "total_fen": 39800,
        "created_at": order.created_at.isoformat(),
        "paid_at": order.paid_at.isoformat(),
        "accepted_at": None,
        "completed_at": None,
    }
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.endpoint == endpoint
    assert delivery.state == WebhookDelivery.State.PENDING
    assert delivery.message_id.startswith("msg_") and delivery.attempts == 0
    assert delivery.next_attempt_at <= timezone.now()


def test_a_rolled_back_change_leaves_no_event_and_no_stock_mark(webhook_endpoint, store, formula):
    webhook_endpoint("order.paid", "stock.changed", "stock.low")
    PendingStockChange.objects.all().delete()

    with pytest.raises(RuntimeError), transaction.atomic():
        pay_for_pickup(store, formula)
        receive_stock(store=store, sku=SkuFactory(), quantity=3)
        raise RuntimeError("the request fails after the payment was recorded")

    assert not WebhookEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert not PendingStockChange.objects.exists()


def test_only_active_subscribed_endpoints_of_active_clients_with_the_webhooks_scope_get_a_delivery(
    webhook_endpoint, store, formula
):
    subscribed = webhook_endpoint("order.paid", "order.completed")
    webhook_endpoint("order.completed")  # another event type
    inactive = webhook_endpoint("order.paid")
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    lost_scope = webhook_endpoint("order.paid")
    lost_scope.client.scopes = ["orders:read"]
    lost_scope.client.save(update_fields=["scopes"])
    disabled_client = webhook_endpoint("order.paid")
    disabled_client.client.is_active = False
    disabled_client.client.save(update_fields=["is_active"])

    pay_for_pickup(store, formula)

    assert list(WebhookDelivery.objects.values_list("endpoint", flat=True)) == [subscribed.pk]


def test_no_subscriber_means_no_outbox_row_and_no_order_read(
    webhook_endpoint, store, formula, django_assert_num_queries
):
    webhook_endpoint("member.created")
    from integrations.outbox import record_order_event

    order = pay_for_pickup(store, formula)
    with django_assert_num_queries(1):  # the endpoints, nothing else
        assert record_order_event(event_type="order.completed", order_id=order.pk) is None
    assert not WebhookEvent.objects.filter(event_type__startswith="order.").exists()


def test_store_filters_and_store_restricted_clients_get_only_their_stores_events(webhook_endpoint, store, formula):
    other = StoreFactory(code="HZ2")
    everywhere = webhook_endpoint("order.paid")
    own_store = webhook_endpoint("order.paid", stores=[store])
    other_store = webhook_endpoint("order.paid", stores=[other])
    restricted_client = ApiClientFactory(scopes=["webhooks"])
    restricted_client.stores.set([other])
    restricted = webhook_endpoint("order.paid", client=restricted_client)

    pay_for_pickup(store, formula)

    receivers = set(WebhookDelivery.objects.values_list("endpoint", flat=True))
    assert receivers == {everywhere.pk, own_store.pk}
    assert other_store.pk not in receivers and restricted.pk not in receivers


def test_a_new_member_is_told_to_every_subscribed_endpoint_whatever_its_stores(webhook_endpoint, store):
    restricted_client = ApiClientFactory(scopes=["webhooks"])
    restricted_client.stores.set([store])
    endpoint = webhook_endpoint("member.created", client=restricted_client)

    member = sign_in_with_wechat(openid="o-new-member")

    event = WebhookEvent.objects.get(event_type="member.created")
    assert event.payload == {
        "member_id": member.pk,
        "card_number": member.card_number,
        "home_store": None,
        "joined_at": member.joined_at.isoformat(),
    }
    assert event.deliveries.get().endpoint == endpoint


def test_a_requested_transfer_is_told_to_both_stores_endpoints(webhook_endpoint, store, formula):
    destination = StoreFactory(code="BJ1")
    at_destination = webhook_endpoint("transfer.requested", stores=[destination])

    transfer = request_transfer(
        from_store=store, to_store=destination, lines=[StockLine(sku=formula, quantity=4)], reference="ERP-77"
    )

    event = WebhookEvent.objects.get(event_type="transfer.requested")
    assert event.payload["transfer_id"] == transfer.pk
    assert event.payload["from_store"] == "WS" and event.payload["to_store"] == "BJ1"
    assert event.payload["lines"] == [{"sku": "FEIHE-3", "quantity": 4}]
    assert event.payload["reference"] == "ERP-77" and event.payload["for_order"] is None
    assert event.deliveries.get().endpoint == at_destination


def test_stock_low_is_told_once_when_available_falls_to_the_threshold_not_while_it_stays_low(
    webhook_endpoint, store, formula
):
    webhook_endpoint("stock.low")
    # 50 on hand, threshold 5: reserving 44 leaves 6, above it.
    reserve_stock(store=store, lines=[StockLine(sku=formula, quantity=44)], reference="order:A")
    assert not WebhookEvent.objects.exists()

    reserve_stock(store=store, lines=[StockLine(sku=formula, quantity=1)], reference="order:B")
    reserve_stock(store=store, lines=[StockLine(sku=formula, quantity=1)], reference="order:C")

    event = WebhookEvent.objects.get(event_type="stock.low")
    assert event.payload["store"] == "WS" and event.payload["sku"] == "FEIHE-3"
    assert event.payload["available"] == 5 and event.payload["threshold"] == 5

    adjust_stock_count(store=store, sku=formula, counted=100)
    adjust_stock_count(store=store, sku=formula, counted=48)  # 46 reserved: 2 available, low again
    assert WebhookEvent.objects.filter(event_type="stock.low").count() == 2


def test_many_stock_moves_make_one_stock_changed_event_per_store(webhook_endpoint, store):
    endpoint = webhook_endpoint("stock.changed")
    other = StoreFactory(code="HZ2")
    skus = [SkuFactory(code=f"BULK-{n:04d}") for n in range(300)]
    PendingStockChange.objects.all().delete()

    with transaction.atomic():  # a bulk sync of 300 rows in one request
        for sku in skus:
            receive_stock(store=store, sku=sku, quantity=10)
    for sku in skus[:5]:  # and more moves of the same SKUs later, in their own transactions
        reserve_stock(store=store, lines=[StockLine(sku=sku, quantity=2)], reference="order:X")
    receive_stock(store=other, sku=skus[0], quantity=1)
    assert PendingStockChange.objects.count() == 301  # one mark per (store, SKU), however many moves

    assert collect_stock_changes() == 2

    events = {event.payload["store"]: event for event in WebhookEvent.objects.filter(event_type="stock.changed")}
    assert set(events) == {"WS", "HZ2"}
    lines = events["WS"].payload["skus"]
    assert len(lines) == 300
    assert lines[0] == {"sku": "BULK-0000", "on_hand": 10, "reserved": 2, "available": 8}
    assert lines[299] == {"sku": "BULK-0299", "on_hand": 10, "reserved": 0, "available": 10}
    assert events["HZ2"].payload["skus"] == [{"sku": "BULK-0000", "on_hand": 1, "reserved": 0, "available": 1}]
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 2
    assert not PendingStockChange.objects.exists()
    assert collect_stock_changes() == 0


def test_a_store_with_more_changed_skus_than_one_event_holds_gets_several(webhook_endpoint, store, settings):
    settings.O2O_WEBHOOK_STOCK_MAX_SKUS = 4
    webhook_endpoint("stock.changed")
    PendingStockChange.objects.all().delete()
    for n in range(10):
        receive_stock(store=store, sku=SkuFactory(), quantity=1)

    assert collect_stock_changes() == 3
    sizes = sorted(len(e.payload["skus"]) for e in WebhookEvent.objects.filter(event_type="stock.changed"))
    assert sizes == [2, 4, 4]


def test_stock_marks_without_a_subscriber_are_cleared_and_make_no_event(store, formula):
    assert PendingStockChange.objects.exists()
    assert collect_stock_changes() == 0
    assert not PendingStockChange.objects.exists() and not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "url, allow_loopback, code",
    [
        ("http://erp.example.com/hooks", True, "insecure_url"),
        ("http://127.0.0.1:8000/hooks", False, "insecure_url"),
        ("ftp://erp.example.com/hooks", True, "invalid_url"),
        ("https://user:pw@erp.example.com/hooks", True, "invalid_url"),
    ],
)
def test_an_endpoint_url_must_be_https_save_loopback_when_allowed(db, settings, url, allow_loopback, code):
    settings.O2O_WEBHOOK_ALLOW_HTTP_LOOPBACK = allow_loopback
    with pytest.raises(ApplicationError) as refused:
        create_webhook_endpoint(client=ApiClientFactory(scopes=["webhooks"]), url=url, event_types=["order.paid"])
    assert refused.value.code == code


def test_an_endpoint_needs_the_webhooks_scope_known_event_types_and_the_clients_stores(db, store):
    with pytest.raises(ApplicationError) as no_scope:
        create_webhook_endpoint(
            client=ApiClientFactory(scopes=["orders:read"]), url="https://a.example/h", event_types=["order.paid"]
        )
    assert no_scope.value.code == "missing_webhooks_scope"
    client = ApiClientFactory(scopes=["webhooks"])
    with pytest.raises(ApplicationError) as unknown:
        create_webhook_endpoint(client=client, url="https://a.example/h", event_types=["order.shipped"])
    assert unknown.value.code == "invalid_event_types"
    client.stores.set([StoreFactory()])
    with pytest.raises(ApplicationError) as outside:
        create_webhook_endpoint(client=client, url="https://a.example/h", event_types=["order.paid"], stores=[store])
    assert outside.value.code == "store_not_allowed"


def test_a_till_sale_marks_its_stock_changed_and_can_make_it_low(webhook_endpoint, store, formula):
    from inventory.services import sell_at_pos

    webhook_endpoint("stock.low", "stock.changed")
    PendingStockChange.objects.all().delete()

    sell_at_pos(store=store, lines=[StockLine(sku=formula, quantity=46)], reference="POS:R-9")

    assert PendingStockChange.objects.filter(store=store, sku=formula).exists()
    assert WebhookEvent.objects.get(event_type="stock.low").payload["available"] == 4
