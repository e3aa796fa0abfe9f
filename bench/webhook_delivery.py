"""Webhook deliveries per second to a local receiver, through the real outbox and sweeper code.

2,000 `member.created` events are written to the outbox one transaction each
(`integrations.outbox.record_webhook_event`, as a registration's subscriber does), each with a
delivery to one endpoint. The sweeper (`integrations.delivery.deliver_due_webhooks`: claim with
SKIP LOCKED, sign, POST with `requests`, record the answer) then sends them to a receiver on
loopback: a threaded `http.server` in its own process that verifies every signature with
`integrations.webhooks.verify_webhook` and answers 204. Timed: one sweeper, then (PostgreSQL
only) two sweepers at once on their own connections over a second 2,000. Then a bulk stock sync
of 5,000 rows in one transaction and the collector that turns it into `stock.changed` events.

Checked: the receiver got every message once, every signature verified, every delivery is
`succeeded` after one attempt, and the 5,000-row sync made one event. Any wrong answer exits 1.

Run alone (from the project root): .venv/bin/python -m bench webhook_delivery [--sqlite | --postgresql],
or .venv/bin/python bench/webhook_delivery.py; with the others: .venv/bin/python -m bench (make bench).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import threading
import time
import urllib.request
from collections import Counter
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

if __name__ == "__main__" and __package__ in (None, ""):  # run as a file: python bench/webhook_delivery.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import table

if TYPE_CHECKING:
    from bench._database import ThrowawayDatabase

DELIVERIES = 2_000
STOCK_ROWS = 5_000
BATCH = 20  # the sweeper's default batch


# --- The receiver, in its own process so that its work does not share our interpreter lock ------------


def _serve(secret: str, port_out) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from integrations.webhooks import WebhookVerificationError, verify_webhook

    seen: Counter[str] = Counter()
    bad = [0]
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                verify_webhook(secret, self.headers, body)
                ok = True
            except WebhookVerificationError:
                ok = False
            with lock:
                seen[self.headers.get("webhook-id", "")] += 1
                bad[0] += not ok
            self.send_response(204)
            self.end_headers()

        def do_GET(self):
            with lock:
                answer = json.dumps(
                    {
                        "received": sum(seen.values()),
                        "distinct": len(seen),
                        "repeated": sum(c > 1 for c in seen.values()),
                        "bad_signatures": bad[0],
                    }
                ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.send(server.server_address[1])
    server.serve_forever()


def _stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as answer:
        return json.loads(answer.read())


# --- The benchmark -------------------------------------------------------------------------------------


def _write_events(count: int, first_id: int) -> float:
    from django.db import transaction

    from integrations.outbox import record_webhook_event

    started = time.perf_counter()
    for member_id in range(first_id, first_id + count):
        with transaction.atomic():
            record_webhook_event(
                event_type="member.created",
                payload={"member_id": member_id, "card_number": f"88{member_id:010d}", "home_store": "WS"},
                store_ids=None,
            )
    return time.perf_counter() - started


def _sweep(workers: int) -> float:
    from django.db import connections

    from integrations.delivery import deliver_due_webhooks

    def sweeper():
        try:
            deliver_due_webhooks(batch_size=BATCH, time_budget=3600)
        finally:
            connections.close_all()

    started = time.perf_counter()
    if workers == 1:
        deliver_due_webhooks(batch_size=BATCH, time_budget=3600)
    else:
        threads = [threading.Thread(target=sweeper) for _n in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return time.perf_counter() - started


def _bulk_sync(rows: int) -> tuple[float, float, int]:
    from django.db import transaction

    from integrations.models import WebhookEvent
    from integrations.outbox import collect_stock_changes
    from inventory.models import SKU, Category, Product
    from inventory.services import receive_stock
    from stores.models import Store

    store = Store.objects.get(code="WS")
    category = Category.objects.create(code="bench", name="bench")
    products = Product.objects.bulk_create(
        [Product(code=f"BP{n:05d}", name=f"bench {n}", category=category) for n in range(rows)]
    )
    skus = SKU.objects.bulk_create(
        [SKU(product=p, code=f"BS{n:05d}", barcode=f"69{n:011d}", price_fen=100) for n, p in enumerate(products)]
    )
    before = WebhookEvent.objects.filter(event_type="stock.changed").count()
    started = time.perf_counter()
    with transaction.atomic():
        for sku in skus:
            receive_stock(store=store, sku=sku, quantity=10, reason="ERP sync")
    synced = time.perf_counter() - started
    started = time.perf_counter()
    collect_stock_changes()
    collected = time.perf_counter() - started
    return synced, collected, WebhookEvent.objects.filter(event_type="stock.changed").count() - before


def run(database: ThrowawayDatabase) -> int:
    from django.conf import settings

    from integrations.models import ApiClient, WebhookDelivery
    from integrations.webhook_endpoints import create_webhook_endpoint
    from integrations.webhooks import generate_secret
    from stores.models import Store

    settings.O2O_WEBHOOK_DELIVER_ON_COMMIT = False  # only the sweeper sends here
    settings.O2O_WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    Store.objects.create(
        code="WS",
        name="文三路店",
        address="文三路1号",
        city="杭州",
        district="西湖区",
        latitude=Decimal("30.28"),
        longitude=Decimal("120.15"),
    )
    client = ApiClient.objects.create(name="bench ERP", scopes=["webhooks"])

    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    secret = generate_secret()
    receiver = context.Process(target=_serve, args=(secret, child_end), daemon=True)
    receiver.start()
    try:
        port = parent_end.recv()
        endpoint = create_webhook_endpoint(
            client=client,
            url=f"http://127.0.0.1:{port}/hooks",
            event_types=["member.created", "stock.changed"],
        )
        endpoint.secret = secret
        endpoint.save(update_fields=["secret"])

        rows = []
        written_s = _write_events(DELIVERIES, 1)
        rows.append(
            [
                "outbox writes (1 event + 1 delivery per transaction)",
                f"{DELIVERIES:,}",
                f"{written_s:.2f}",
                f"{DELIVERIES / written_s:,.0f}",
            ]
        )
        sent_s = _sweep(1)
        rows.append(["deliveries, 1 sweeper", f"{DELIVERIES:,}", f"{sent_s:.2f}", f"{DELIVERIES / sent_s:,.0f}"])
        total = DELIVERIES
        if database.vendor == "postgresql":
            _write_events(DELIVERIES, DELIVERIES + 1)
            sent_s = _sweep(2)
            rows.append(
                ["deliveries, 2 sweepers at once", f"{DELIVERIES:,}", f"{sent_s:.2f}", f"{DELIVERIES / sent_s:,.0f}"]
            )
            total += DELIVERIES
        synced_s, collected_s, stock_events = _bulk_sync(STOCK_ROWS)
        rows.append(
            [
                f"bulk stock sync, {STOCK_ROWS:,} rows in one transaction",
                f"{STOCK_ROWS:,}",
                f"{synced_s:.2f}",
                f"{STOCK_ROWS / synced_s:,.0f}",
            ]
        )
        rows.append(["collect stock marks → stock.changed events", f"{stock_events}", f"{collected_s:.2f}", ""])
        stats = _stats(port)
    finally:
        receiver.terminate()
        receiver.join()

    print(
        f"receiver: threaded http.server on 127.0.0.1 in its own process; batch {BATCH}; "
        f"timeout {settings.O2O_WEBHOOK_TIMEOUT_SECONDS:g} s"
    )
    print(table(["step", "count", "seconds", "per second"], rows))

    problems = []
    states = Counter(
        WebhookDelivery.objects.filter(event__event_type="member.created").values_list("state", "attempts")
    )
    if states != Counter({("succeeded", 1): total}):
        problems.append(f"delivery states and attempts: {dict(states)}, expected {total} succeeded after 1 attempt")
    if stats["received"] != total or stats["distinct"] != total or stats["repeated"]:
        problems.append(f"the receiver got {stats}, expected {total} distinct messages once each")
    if stats["bad_signatures"]:
        problems.append(f"{stats['bad_signatures']} signatures did not verify")
    if stock_events != 1:
        problems.append(f"the {STOCK_ROWS:,}-row sync made {stock_events} stock.changed events, expected 1")
    if problems:
        print(f"\nERROR: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(
        f"\nanswers: {total:,} messages received once each, every signature verified, every delivery succeeded "
        f"after one attempt; the {STOCK_ROWS:,}-row sync made one stock.changed event"
    )
    return 0


if __name__ == "__main__":
    from bench.__main__ import main

    sys.exit(main(["webhook_delivery", *sys.argv[1:]]))
