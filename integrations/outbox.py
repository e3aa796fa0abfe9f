"""The webhook outbox: events written in the transaction of the change they tell of, and their deliveries.

`record_webhook_event` runs inside the publishing transaction (subscribers with `when="transaction"`,
see `integrations.subscribers`), so an event exists exactly when its change committed: a rolled-back
payment leaves no `order.paid` behind, and a crash after the commit loses nothing, since the sweeper
(`integrations.delivery`) finds the delivery rows later. It makes one delivery per active endpoint
that subscribed to the type, whose client may receive webhooks and may see one of the event's stores;
with none, nothing is written.

Stock changes are coalesced: each change only marks its (store, SKU) pairs (`PendingStockChange`,
one row per pair however many moves), and `collect_stock_changes` turns a store's marks into one
`stock.changed` event listing the SKUs with their stock at that moment. A bulk sync of 5,000 rows
makes one event, not 5,000.
"""

from collections.abc import Iterable
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from integrations.models import (
    PendingStockChange,
    Scope,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)
from integrations.webhooks import new_message_id
from inventory.models import SKU, Stock, StockTransfer
from members.models import Member
from orders.models import Order
from stores.models import Store

CHAIN_WIDE = None  # an event about no store in particular (a member): every endpoint of the type gets it


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _subscribers(event_type: str) -> list[WebhookEndpoint]:
    """Active endpoints of active clients with the webhooks scope that subscribed to the type (one query)."""
    candidates = WebhookEndpoint.objects.filter(is_active=True, client__is_active=True).select_related("client")
    return [
        endpoint
        for endpoint in candidates
        if event_type in (endpoint.event_types or []) and endpoint.client.has_scope(Scope.WEBHOOKS)
    ]


def _sees_stores(endpoint: WebhookEndpoint, store_ids: set[int] | None) -> bool:
    """Whether the endpoint's filter and its client's stores let it see an event of these stores.

    No filter and an unrestricted client: every event. Otherwise only events of an allowed store;
    an event of no store (an order not yet dispatched) goes to unrestricted endpoints only.
    """
    if store_ids is CHAIN_WIDE:
        return True
    allowed: set[int] | None = None
    for restriction in (endpoint.client.stores.all(), endpoint.stores.all()):
        chosen = {store.pk for store in restriction}
        if chosen:
            allowed = chosen if allowed is None else allowed & chosen
    return allowed is None or bool(allowed & store_ids)


def record_webhook_event(
    *,
    event_type: str,
    payload: dict,
    store_ids: Iterable[int | None] | None,
    endpoints: list[WebhookEndpoint] | None = None,
    at: datetime | None = None,
) -> WebhookEvent | None:
    """Write the event and one pending delivery per endpoint that should get it; None if none should.

    Call it inside the transaction of the change. `store_ids`: the stores the event is about
    (`CHAIN_WIDE` for none in particular).
    """
    if event_type not in WebhookEventType.values:
        raise ValueError(f"Unknown webhook event type {event_type!r}")
    endpoints = _subscribers(event_type) if endpoints is None else endpoints
    if not endpoints:
        return None
    stores = None if store_ids is CHAIN_WIDE else {pk for pk in store_ids if pk}
    prefetch_related_objects(endpoints, "stores", "client__stores")
    receivers = [endpoint for endpoint in endpoints if _sees_stores(endpoint, stores)]
    if not receivers:
        return None
    now = at or timezone.now()
    event = WebhookEvent.objects.create(event_type=event_type, payload=payload, created_at=now)
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(endpoint=endpoint, event=event, message_id=new_message_id(), next_attempt_at=now)
            for endpoint in receivers
        ]
    )
    if settings.O2O_WEBHOOK_DELIVER_ON_COMMIT:
        ids = [delivery.pk for delivery in deliveries]
        transaction.on_commit(lambda: _send_soon(ids), robust=True)
    return event


def _send_soon(delivery_ids: list[int]) -> None:
    from integrations import tasks

    tasks.deliver_webhooks_now.delay(delivery_ids)


# --- Payloads (stable: documented in docs/webhooks.md; add keys, never rename or drop them) ----------


def _code(store: Store | None) -> str | None:
    return store.code if store else None


def order_payload(order: Order) -> dict:
    return {
        "order": order.number,
        "status": order.status,
        "fulfilment": order.fulfilment,
        "store": _code(order.fulfilling_store or order.pickup_store),
        "pickup_store": _code(order.pickup_store),
        "fulfilling_store": _code(order.fulfilling_store),
        "credited_store": _code(order.credited_store),
        "member_id": order.member_id,
        "items_fen": order.items_fen,
        "delivery_fee_fen": order.delivery_fee_fen,
        "points_discount_fen": order.points_discount_fen,
        "total_fen": order.total_fen,
        "created_at": _iso(order.created_at),
        "paid_at": _iso(order.paid_at),
        "accepted_at": _iso(order.accepted_at),
        "completed_at": _iso(order.completed_at),
    }


def record_order_event(
    *, event_type: str, order_id: int, store_id: int | None = None, refund_fen: int | None = None
) -> WebhookEvent | None:
    """An order.* event: the order as it stands in this transaction, for the stores it concerns."""
    endpoints = _subscribers(event_type)
    if not endpoints:
        return None  # the common case costs one query, and the order is not read
    order = Order.objects.select_related("pickup_store", "fulfilling_store", "credited_store").get(pk=order_id)
    payload = order_payload(order)
    store_ids = [order.pickup_store_id, order.fulfilling_store_id, order.credited_store_id]
    if store_id is not None:
        payload["assigned_store"] = _code(Store.objects.filter(pk=store_id).first())
        store_ids.append(store_id)
    if refund_fen is not None:
        payload["refund_fen"] = refund_fen
    return record_webhook_event(event_type=event_type, payload=payload, store_ids=store_ids, endpoints=endpoints)


def record_member_created(*, member_id: int) -> WebhookEvent | None:
    endpoints = _subscribers(WebhookEventType.MEMBER_CREATED)
    if not endpoints:
        return None
    member = Member.objects.select_related("home_store").get(pk=member_id)
    payload = {
        "member_id": member.pk,
        "card_number": member.card_number,
        "home_store": _code(member.home_store),
        "joined_at": _iso(member.joined_at),
    }
    # Membership is chain-wide: a till serves any member, so every subscribed endpoint hears of one.
    return record_webhook_event(
        event_type=WebhookEventType.MEMBER_CREATED, payload=payload, store_ids=CHAIN_WIDE, endpoints=endpoints
    )


def record_transfer_requested(*, transfer_id: int) -> WebhookEvent | None:
    endpoints = _subscribers(WebhookEventType.TRANSFER_REQUESTED)
    if not endpoints:
        return None
    transfer = StockTransfer.objects.select_related("from_store", "to_store").get(pk=transfer_id)
    payload = {
        "transfer_id": transfer.pk,
        "status": transfer.status,
        "from_store": transfer.from_store.code,
        "to_store": transfer.to_store.code,
        "reference": transfer.reference,
        "note": transfer.note,
        "for_order": transfer.hold_reference.removeprefix("order:") or None,
        "lines": [{"sku": line.sku.code, "quantity": line.quantity} for line in transfer.lines.select_related("sku")],
        "requested_at": _iso(transfer.created_at),
    }
    return record_webhook_event(
        event_type=WebhookEventType.TRANSFER_REQUESTED,
        payload=payload,
        store_ids=[transfer.from_store_id, transfer.to_store_id],
        endpoints=endpoints,
    )


def record_stock_low(*, store_id: int, sku_id: int, available: int, threshold: int) -> WebhookEvent | None:
    endpoints = _subscribers(WebhookEventType.STOCK_LOW)
    if not endpoints:
        return None
    payload = {
        "store": Store.objects.values_list("code", flat=True).get(pk=store_id),
        "sku": SKU.objects.values_list("code", flat=True).get(pk=sku_id),
        "available": available,
        "threshold": threshold,
        "at": _iso(timezone.now()),
    }
    return record_webhook_event(
        event_type=WebhookEventType.STOCK_LOW, payload=payload, store_ids=[store_id], endpoints=endpoints
    )


_MARK_TABLE = PendingStockChange._meta.db_table
# The no-op DO UPDATE (not DO NOTHING) locks an existing mark until this transaction ends, so a
# collector cannot take it and read the stock before this change is committed; it skips it
# (SKIP LOCKED) and reports it at its next turn. Table name from the model: no input in the text.
_MARK_SQL = (
    f"INSERT INTO {_MARK_TABLE} (store_id, sku_id, since) VALUES {{rows}} "  # noqa: S608
    f"ON CONFLICT (store_id, sku_id) DO UPDATE SET since = {_MARK_TABLE}.since"
)


def mark_stock_changed(*, store_id: int, sku_ids: list[int]) -> None:
    """Note that these SKUs' stock changed at the store: one statement, at most one mark per (store, SKU).

    The writer already holds these stock rows' locks, so the marks add no waiting between writers.
    """
    if not sku_ids:
        return
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [value for sku_id in sku_ids for value in (store_id, sku_id, now)]
    with connection.cursor() as cursor:
        cursor.execute(_MARK_SQL.format(rows=", ".join(["(%s, %s, %s)"] * len(sku_ids))), params)


def collect_stock_changes(*, at: datetime | None = None) -> int:
    """Turn each store's pending stock marks into one `stock.changed` event; returns how many were made.

    Each store is taken in its own short transaction, its marks locked with SKIP LOCKED so two
    sweepers never report the same marks; the stock is read as it is now, after the changes.
    """
    made = 0
    limit = settings.O2O_WEBHOOK_STOCK_MAX_SKUS
    store_ids = list(PendingStockChange.objects.order_by().values_list("store_id", flat=True).distinct())
    for store_id in sorted(store_ids):
        while True:
            with transaction.atomic():
                marks = list(
                    PendingStockChange.objects.select_for_update(skip_locked=True)
                    .filter(store_id=store_id)
                    .order_by("sku_id")
                    .values_list("pk", "sku_id", "since")[:limit]
                )
                if not marks:
                    break
                PendingStockChange.objects.filter(pk__in=[pk for pk, _sku, _since in marks]).delete()
                if _record_stock_changed(store_id, marks, at=at) is not None:
                    made += 1
            if len(marks) < limit:
                break
    return made


def _record_stock_changed(store_id: int, marks: list[tuple[int, int, datetime]], *, at) -> WebhookEvent | None:
    endpoints = _subscribers(WebhookEventType.STOCK_CHANGED)
    if not endpoints:
        return None
    rows = (
        Stock.objects.filter(store_id=store_id, sku_id__in=[sku_id for _pk, sku_id, _since in marks])
        .order_by("sku__code")
        .values_list("sku__code", "on_hand", "reserved")
    )
    payload = {
        "store": Store.objects.values_list("code", flat=True).get(pk=store_id),
        "skus": [
            {"sku": code, "on_hand": on_hand, "reserved": reserved, "available": on_hand - reserved}
            for code, on_hand, reserved in rows
        ],
        "changed_since": _iso(min(since for _pk, _sku, since in marks)),
    }
    return record_webhook_event(
        event_type=WebhookEventType.STOCK_CHANGED, payload=payload, store_ids=[store_id], endpoints=endpoints, at=at
    )
