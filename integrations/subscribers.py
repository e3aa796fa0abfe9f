"""What the webhook outbox writes when the apps tell of events (see `o2o.events` and `integrations.outbox`).

All run in the publishing transaction (`when="transaction"`): the outbox row commits or rolls back
with the change it tells of.
"""

from o2o.events import subscribe

ORDER_EVENTS = ("order.paid", "order.assigned", "order.accepted", "order.completed", "order.refunded")


def _order_event(event_type: str):
    def record(*, order_id: int, store_id: int | None = None, amount_fen: int | None = None, **_payload) -> None:
        from integrations.outbox import record_order_event

        refund = amount_fen if event_type == "order.refunded" else None
        assigned = store_id if event_type == "order.assigned" else None
        record_order_event(event_type=event_type, order_id=order_id, store_id=assigned, refund_fen=refund)

    record.__name__ = f"_webhook_{event_type.replace('.', '_')}"
    return record


_ORDER_HANDLERS = {event_type: _order_event(event_type) for event_type in ORDER_EVENTS}


def _member_registered(*, member_id: int, **_payload) -> None:
    from integrations.outbox import record_member_created

    record_member_created(member_id=member_id)


def _transfer_requested(*, transfer_id: int, **_payload) -> None:
    from integrations.outbox import record_transfer_requested

    record_transfer_requested(transfer_id=transfer_id)


def _stock_moved(*, store_id: int, sku_ids: list[int], **_payload) -> None:
    from integrations.outbox import mark_stock_changed

    mark_stock_changed(store_id=store_id, sku_ids=sku_ids)


def _stock_low(*, store_id: int, sku_id: int, available: int, threshold: int, **_payload) -> None:
    from integrations.outbox import record_stock_low

    record_stock_low(store_id=store_id, sku_id=sku_id, available=available, threshold=threshold)


def connect() -> None:
    for event_type, handler in _ORDER_HANDLERS.items():
        subscribe(event_type, handler, when="transaction")
    subscribe("member.registered", _member_registered, when="transaction")
    subscribe("transfer.requested", _transfer_requested, when="transaction")
    subscribe("stock.moved", _stock_moved, when="transaction")
    subscribe("stock.low", _stock_low, when="transaction")
