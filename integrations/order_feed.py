"""The ERP's feed of online orders: what changed since a cursor, each order once per page, as it is now.

The feed walks the order events (`orders.OrderEvent`), every status change and note of every paid
order. Ids alone cannot be the position: an id is drawn when a row is inserted, not when its
transaction commits, so a reader could see event 11 committed while event 10 is still in flight,
move its cursor past 10 and never see it. A time lag only helps when every transaction is shorter
than the lag, and a sweeper's batch may not be.

So each event records the id of the transaction that wrote it (`xact_id`, PostgreSQL's
`pg_current_xact_id()`), and the feed hands out only events whose transaction has ended: those
below the **horizon**: the id of the oldest transaction still running in this database, or else
one past the latest transaction to end (a snapshot's `xmax`), whichever is lower. Every
transaction below the horizon has committed or rolled back, and every one still running or yet to
start has a larger id, so the set of events below it never changes again.
Within it the feed goes in (xact_id, id) order, and the cursor is the last position handed out.
The price: a long writing transaction holds the feed back until it ends (never loses anything).

Only the app's own client sessions count (others' show no transaction id without the
`pg_read_all_stats` role, and background workers such as autovacuum's write no order events);
only the app writes order events. The reader's own transaction counts too: a transaction does not
see its own events in the feed before it commits (tests that read the feed commit their writes).
On SQLite (the demo) one writer at a time commits rows in id order, `xact_id` is 0 and there is no
horizon.
"""

import base64
import binascii
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from integrations.models import ApiClient
from integrations.selectors import stores_visible_to
from o2o.errors import ApplicationError
from orders.models import Order, OrderEvent, OrderLine, Refund

FEED_DEFAULT_LIMIT = 100
FEED_MAX_LIMIT = 500
_CURSOR_VERSION = "1"


@dataclass(frozen=True, order=True)
class Position:
    """A place in the feed: after the event `event_id` of the transaction `xact_id`."""

    xact_id: int = 0
    event_id: int = 0


START = Position()


class InvalidCursor(ApplicationError):
    code = "invalid_cursor"


def encode_cursor(position: Position) -> str:
    raw = f"{_CURSOR_VERSION}:{position.xact_id}:{position.event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> Position:
    """The position a cursor names; none or empty: the start of the feed. A cursor we did not issue is 400."""
    if not text:
        return START
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        version, xact_id, event_id = raw.split(":")
        position = Position(int(xact_id), int(event_id))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        position = None
    if position is None or version != _CURSOR_VERSION or position.xact_id < 0 or position.event_id < 0:
        raise InvalidCursor(
            _("This cursor was not issued by this feed; start again without one."),
            details={"cursor": [str(text)[:40]]},
        )
    return position


# The oldest transaction running in this database, as a full (64-bit) id from pg_stat_activity's
# 32-bit `backend_xid`: counted up from the snapshot's `xmin` (every running transaction is at or
# above it, and less than 2^31 beyond it), so the widening is exact.
_OLDEST_RUNNING = """
SELECT min(%s + ((backend_xid::text::bigint - %s %% 4294967296 + 4294967296) %% 4294967296))
FROM pg_stat_activity
WHERE datname = current_database() AND backend_xid IS NOT NULL AND backend_type = 'client backend'
"""


def feed_horizon() -> int | None:
    """Every event with a smaller `xact_id` is final: its transaction has ended. None: no limit (SQLite).

    A snapshot's `xmax` (one past the latest transaction to end) bounds what may have ended; below
    it, a transaction still running shows in pg_stat_activity. The snapshot is read first: a
    transaction that starts in between gets an id at or above its `xmax`. The reader's own
    transaction counts like any other: one that wrote events does not see them until it commits.
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint FROM pg_current_snapshot() s"
        )
        xmin, xmax = cursor.fetchone()
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # read the sessions afresh, not as cached
        cursor.execute(_OLDEST_RUNNING, [xmin, xmin])
        (oldest,) = cursor.fetchone()
    return min(oldest, xmax) if oldest is not None else xmax


def client_orders(client: ApiClient) -> QuerySet[Order]:
    """Paid orders the client may see: every one, or for a client restricted to stores, those its
    stores fulfil (accepted) or where the shopper picks up."""
    orders = Order.objects.filter(paid_at__isnull=False)
    if client.stores.exists():
        visible = stores_visible_to(client)
        orders = orders.filter(Q(fulfilling_store__in=visible) | Q(pickup_store__in=visible))
    return orders


@dataclass(frozen=True)
class FeedPage:
    orders: list[Order]  # each with `page_events`, its events of this page in feed order
    cursor: Position  # where the next call starts
    has_more: bool


def order_changes(*, client: ApiClient, after: Position, limit: int) -> FeedPage:
    """Up to `limit` changes after `after`, grouped by order (each order once, as it is now).

    Events of unpaid orders (awaiting payment, expired or cancelled unpaid) are never in the feed,
    nor the creation of an order before it is paid. A page shorter than `limit` has read everything
    final, so its cursor moves to the horizon: the next call starts there, not at the last event.
    """
    horizon = feed_horizon()
    events = (
        OrderEvent.objects.filter(Q(xact_id__gt=after.xact_id) | Q(xact_id=after.xact_id, pk__gt=after.event_id))
        .filter(order__in=client_orders(client))
        .exclude(to_status=Order.Status.PENDING_PAYMENT)
        .order_by("xact_id", "pk")
    )
    if horizon is not None:
        events = events.filter(xact_id__lt=horizon)
    rows = list(events[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    cursor = Position(rows[-1].xact_id, rows[-1].pk) if rows else after
    if not has_more and horizon is not None:
        cursor = max(cursor, Position(horizon, 0))
    by_order: dict[int, list[OrderEvent]] = {}
    for event in rows:
        by_order.setdefault(event.order_id, []).append(event)
    orders = {order.pk: order for order in _orders_for_feed(list(by_order))}
    page = []
    for order_id, order_events in by_order.items():
        order = orders[order_id]
        order.page_events = order_events
        page.append(order)
    return FeedPage(orders=page, cursor=cursor, has_more=has_more)


def _orders_for_feed(ids: list[int]) -> QuerySet[Order]:
    """The orders of a page with everything the feed shows, in a fixed number of queries."""
    refunded = (
        Refund.objects.filter(payment__order=OuterRef("pk"))
        .exclude(status=Refund.Status.FAILED)
        .values("payment__order")
        .annotate(total=Sum("amount_fen"))
        .values("total")
    )
    return (
        Order.objects.filter(pk__in=ids)
        .select_related("member", "fulfilling_store", "pickup_store", "credited_store")
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.select_related("sku").order_by("pk")))
        .annotate(
            refunded_fen=Coalesce(Subquery(refunded, output_field=IntegerField()), Value(0)),
            store_code=Coalesce(F("fulfilling_store__code"), F("pickup_store__code")),
        )
    )
