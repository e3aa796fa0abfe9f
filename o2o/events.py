"""Domain events: how an app tells the apps to its right that something happened.

An app's service calls `publish("order.completed", order_id=…)` inside its transaction.
Subscribers register in their AppConfig.ready() with `subscribe(name, handler)`:

- `when="commit"` (the default) runs the handler after the transaction commits, so a
  rolled-back change tells nobody. Handlers typically enqueue a Celery task by id.
- `when="transaction"` runs it at once, inside the publishing transaction, for work that
  must commit or fail with the change (an outbox row).

Payloads are plain ids and values (JSON-able), never model instances. This is the only
event mechanism of the project: no Django signals between apps.
"""

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Literal

from django.db import transaction

Handler = Callable[..., Any]

_subscribers: dict[str, list[tuple[Handler, str]]] = defaultdict(list)

EVENTS = frozenset(
    {
        "order.paid",
        "order.assigned",
        "order.accepted",
        "order.completed",
        "order.cancelled",
        "order.refunded",
        "order.returned",
        "order.exception",
        "member.registered",
        # A WeChat sign-up proved the number of a membership opened in a store and was merged into
        # it (members.verification.claim_membership): subscribers move or refuse what is theirs.
        "member.claimed",
        # Inventory: stock rows changed at one store (one event per change, listing its SKUs),
        # a row's available stock fell to its low-stock threshold, a transfer was requested.
        "stock.moved",
        "stock.low",
        "transfer.requested",
    }
)


def subscribe(name: str, handler: Handler, *, when: Literal["commit", "transaction"] = "commit") -> None:
    if name not in EVENTS:
        raise ValueError(f"Unknown domain event {name!r}")
    if (handler, when) not in _subscribers[name]:
        _subscribers[name].append((handler, when))


def unsubscribe(name: str, handler: Handler) -> None:
    _subscribers[name] = [(h, w) for h, w in _subscribers[name] if h is not handler]


def publish(name: str, **payload: Any) -> None:
    """Announce an event of the current transaction to its subscribers."""
    if name not in EVENTS:
        raise ValueError(f"Unknown domain event {name!r}")
    for handler, when in list(_subscribers[name]):
        if when == "transaction":
            handler(**payload)
        else:
            transaction.on_commit(lambda handler=handler: handler(**payload), robust=True)
