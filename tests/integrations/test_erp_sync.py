"""Scheduled ERP sync against a small ERP served over real HTTP on loopback.

The ERP (`ScriptedErp`) serves numbered pages (`cursor` = the page's index), can fail a
given page once (HTTP 500, a dropped connection, an answer slower than the timeout), and
records every request and every batch of orders it receives.
"""

import json
import socket
import threading
import time
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import sync
from integrations.models import ErpConnection, SyncJob, SyncRun
from integrations.tasks import run_due_sync_jobs
from inventory.models import SKU, Stock, StockMove
from inventory.selectors import prices_at
from inventory.services import receive_stock
from orders.dispatch import accept_assignment, dispatch_order
from orders.fulfilment import hand_over, mark_ready
from orders.models import Assignment, Order
from orders.services import confirm_payment, place_order, set_cart_quantity
from tests.factories import MemberFactory, SkuFactory, StaffFactory, StoreFactory

TOKEN = "Bearer erp-secret-123"


class ScriptedErp:
    def __init__(self):
        self.pages: dict[str, list[dict]] = {"/prices": [], "/stock": []}
        self.failures: dict[tuple[str, int], str] = {}  # (path, page) → "500" | "drop" | "slow", once
        self.rejected_orders: set[str] = set()
        self.requests: list[tuple[str, str, str, str]] = []  # method, path, cursor, auth header
        self.batches: list[list[dict]] = []
        self.entered = threading.Event()  # a page-0 request arrived
        self.gate: threading.Event | None = None  # when set: page 0 waits for it
        self.lock = threading.Lock()
        erp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                cursor = parse_qs(url.query).get("cursor", [""])[0]
                with erp.lock:
                    erp.requests.append(("GET", url.path, cursor, self.headers.get("Authorization", "")))
                pages = erp.pages.get(url.path)
                if pages is None:
                    return self._answer(404, {"error": "unknown"})
                index = int(cursor or 0)
                if index == 0:
                    erp.entered.set()
                    if erp.gate is not None:
                        erp.gate.wait(10)
                failure = erp.failures.pop((url.path, index), None)
                if failure == "500":
                    return self._answer(500, {"error": "boom"})
                if failure == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if failure == "slow":
                    time.sleep(1.0)
                page = dict(pages[index]) if index < len(pages) else {"items": []}
                last = index >= len(pages) - 1
                page.update(next_cursor=str(min(index + 1, len(pages))), done=last)
                return self._answer(200, page)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with erp.lock:
                    erp.requests.append(("POST", self.path, "", self.headers.get("Authorization", "")))
                    erp.batches.append(body["orders"])
                results = [
                    {"order_number": o["order_number"], "accepted": o["order_number"] not in erp.rejected_orders}
                    | ({"error": "unknown customer"} if o["order_number"] in erp.rejected_orders else {})
                    for o in body["orders"]
                ]
                return self._answer(200, {"results": results})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def cursors(self, path):
        return [cursor for method, p, cursor, _auth in self.requests if p == path]


@pytest.fixture
def erp():
    server = ScriptedErp()
    server.thread.start()
    yield server
    if server.gate is not None:
        server.gate.set()
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def connection(db, erp):
    return ErpConnection.objects.create(name="总部 ERP", base_url=erp.url, auth_token=TOKEN, timeout_seconds=0.3)


def job_of(connection, kind, **fields):
    return SyncJob.objects.create(connection=connection, kind=kind, **fields)


# --- prices --------------------------------------------------------------------------------------


def test_pulled_prices_in_yuan_are_converted_exactly_and_shown_in_the_mall(db, erp, connection):
    store = StoreFactory(code="WS")
    a, b, c = SkuFactory(price_fen=100), SkuFactory(price_fen=100), SkuFactory(price_fen=100)
    connection.mapping = {"sku_code": "itemNo", "price_fen": "price", "price_unit": "yuan", "store_code": "shopCode"}
    connection.save()
    erp.pages["/prices"] = [
        {"items": [{"itemNo": a.code, "price": "199.90"}, {"itemNo": b.code, "price": 19.9}]},
        {"items": [{"itemNo": a.code, "shopCode": "WS", "price": "0.07"}, {"itemNo": c.code, "price": "1.005"}]},
    ]
    job = job_of(connection, SyncJob.Kind.PULL_PRICES)

    run = sync.run_job(job_id=job.pk).run

    assert run.status == SyncRun.Status.SUCCEEDED
    a, b, c = (SKU.objects.get(pk=sku.pk) for sku in (a, b, c))
    assert prices_at(None, [a, b, c]) == {a.pk: 19990, b.pk: 1990, c.pk: 100}
    assert prices_at(store, [a])[a.pk] == 7
    assert run.counts == {"fetched": 4, "applied": 3, "unchanged": 0, "rejected": 1, "pushed": 0}
    assert len(run.errors) == 1 and c.code in run.errors[0]
    assert run.pages == 2 and run.duration_ms is not None
    job.refresh_from_db()
    assert job.cursor == "2" and job.last_run_at is not None
    assert {auth for *_rest, auth in erp.requests} == {TOKEN}


def prices(skus) -> list[int]:
    by_id = dict(SKU.objects.filter(pk__in=[s.pk for s in skus]).values_list("pk", "price_fen"))
    return [by_id[s.pk] for s in skus]


def test_the_run_fails_on_page_3_and_the_next_resumes_there_applying_each_item_once(db, erp, connection):
    skus = [SkuFactory(price_fen=100) for _ in range(8)]
    erp.pages["/prices"] = [
        {"items": [{"sku_code": sku.code, "price_fen": 1000 + i} for i, sku in enumerate(skus[n : n + 2], start=n)]}
        for n in range(0, 8, 2)
    ]
    erp.failures[("/prices", 2)] = "500"
    job = job_of(connection, SyncJob.Kind.PULL_PRICES)

    failed = sync.run_job(job_id=job.pk).run

    assert failed.status == SyncRun.Status.FAILED
    assert "HTTP 500" in failed.errors[0]
    assert failed.pages == 2 and failed.cursor_to == "2" and failed.counts["applied"] == 4
    job.refresh_from_db()
    assert job.cursor == "2"
    assert prices(skus) == [1000, 1001, 1002, 1003, 100, 100, 100, 100]

    resumed = sync.run_job(job_id=job.pk).run

    assert resumed.status == SyncRun.Status.SUCCEEDED
    assert resumed.cursor_from == "2" and resumed.pages == 2 and resumed.counts["applied"] == 4
    assert erp.cursors("/prices") == ["", "1", "2", "2", "3"]  # pages 1 and 2 were never fetched again
    assert prices(skus) == list(range(1000, 1008))


# --- stock ---------------------------------------------------------------------------------------


def count_page(store, taken_at, rows):
    return {"store_code": store.code, "taken_at": taken_at.isoformat(), "rows": rows}


def test_stock_pages_are_applied_and_a_dropped_connection_resumes_without_applying_twice(db, erp, connection):
    ws, xh = StoreFactory(code="WS"), StoreFactory(code="XH")
    sku = SkuFactory()
    taken = timezone.now() - timedelta(minutes=1)
    erp.pages["/stock"] = [
        count_page(ws, taken, [{"sku_code": sku.code, "on_hand": 10}]),
        count_page(xh, taken, [{"sku_code": sku.code, "on_hand": 4}]),
        count_page(ws, taken + timedelta(seconds=30), [{"sku_code": sku.code, "on_hand": 8}]),
        count_page(
            xh,
            taken + timedelta(seconds=30),
            [{"sku_code": sku.code, "on_hand": 5}, {"sku_code": "NOPE", "on_hand": 1}],
        ),
    ]
    erp.failures[("/stock", 2)] = "drop"
    job = job_of(connection, SyncJob.Kind.PULL_STOCK)

    failed = sync.run_job(job_id=job.pk).run
    assert failed.status == SyncRun.Status.FAILED and failed.pages == 2
    assert Stock.objects.get(store=ws, sku=sku).on_hand == 10

    resumed = sync.run_job(job_id=job.pk).run

    assert resumed.status == SyncRun.Status.SUCCEEDED and resumed.cursor_from == "2"
    assert Stock.objects.get(store=ws, sku=sku).on_hand == 8
    assert Stock.objects.get(store=xh, sku=sku).on_hand == 5
    assert StockMove.objects.filter(kind=StockMove.Kind.ERP_SNAPSHOT).count() == 4  # each count once
    assert resumed.counts["rejected"] == 1 and "NOPE" in resumed.errors[0]


def test_a_timeout_ends_the_run_failed_with_the_error_and_keeps_the_cursor(db, erp, connection):
    erp.pages["/stock"] = [{"items": []}]
    erp.failures[("/stock", 0)] = "slow"
    job = job_of(connection, SyncJob.Kind.PULL_STOCK, cursor="")

    run = sync.run_job(job_id=job.pk).run

    assert run.status == SyncRun.Status.FAILED
    assert "no answer within 0.3 s" in run.errors[0]
    assert TOKEN not in " ".join(run.errors)
    job.refresh_from_db()
    assert job.cursor == ""


def test_a_payload_out_of_contract_fails_the_run(db, erp, connection):
    erp.pages["/stock"] = [{"store_code": "WS", "taken_at": "yesterday", "rows": []}]
    job = job_of(connection, SyncJob.Kind.PULL_STOCK)

    run = sync.run_job(job_id=job.pk).run

    assert run.status == SyncRun.Status.FAILED and "taken_at" in run.errors[0] and run.pages == 0


# --- orders --------------------------------------------------------------------------------------


@pytest.fixture
def shop(db, settings):
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""
    store = StoreFactory(code="WS", latitude=Decimal("30.280000"), longitude=Decimal("120.150000"))
    sku = SkuFactory(price_fen=19900)
    receive_stock(store=store, sku=sku, quantity=50)
    return store, sku, StaffFactory(store=store)


def buy(shop, *, complete=False) -> Order:
    store, sku, clerk = shop
    member = MemberFactory()
    set_cart_quantity(member=member, sku=sku, quantity=1)
    order = place_order(member=member, fulfilment="pickup", pickup_store=store)
    confirm_payment(
        out_trade_no=order.number,
        transaction_id=f"wx-{order.number}",
        amount_fen=order.total_fen,
        paid_at=timezone.now(),
    )
    if complete:
        dispatch_order(order_id=order.pk)
        offer = Assignment.objects.get(order=order, status=Assignment.Status.OFFERED)
        accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user)
        mark_ready(staff=clerk, order=order.number)
        hand_over(staff=clerk, order=order.number)
    return Order.objects.get(pk=order.pk)


def test_paid_and_completed_orders_are_pushed_in_batches_and_a_refused_one_is_recorded_and_passed(
    db, erp, connection, shop, monkeypatch
):
    monkeypatch.setattr(sync, "EVENT_SETTLE", timedelta(0))
    first, second = buy(shop), buy(shop, complete=True)
    refused = buy(shop)
    erp.rejected_orders.add(refused.number)
    job = job_of(connection, SyncJob.Kind.PUSH_ORDERS)

    run = sync.run_job(job_id=job.pk, batch_size=2).run

    assert run.status == SyncRun.Status.SUCCEEDED
    sent = [(o["order_number"], o["event"]) for batch in erp.batches for o in batch]
    assert sorted(sent) == sorted(
        [(first.number, "paid"), (second.number, "paid"), (second.number, "completed"), (refused.number, "paid")]
    )
    assert [len(batch) for batch in erp.batches] == [2, 2]
    assert run.counts["pushed"] == 3 and run.counts["rejected"] == 1 and run.pages == 2
    assert refused.number in run.errors[0] and "unknown customer" in run.errors[0]
    line = erp.batches[0][0]["lines"][0]
    assert line["unit_price"] == 19900 and erp.batches[0][0]["total"] == first.total_fen

    again = sync.run_job(job_id=job.pk, batch_size=2).run

    assert again.status == SyncRun.Status.SUCCEEDED and again.counts["fetched"] == 0
    assert len(erp.batches) == 2  # nothing is sent twice, the refused order is not retried


def test_events_younger_than_the_settle_time_wait_for_the_next_run(db, erp, connection, shop):
    buy(shop)
    job = job_of(connection, SyncJob.Kind.PUSH_ORDERS)

    run = sync.run_job(job_id=job.pk).run

    assert run.counts["fetched"] == 0 and erp.batches == []


# --- one run at a time, the beat, the admin -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_second_start_while_a_run_is_going_is_skipped_and_recorded(erp):
    connection = ErpConnection.objects.create(name="ERP", base_url=erp.url, timeout_seconds=5)
    job = job_of(connection, SyncJob.Kind.PULL_PRICES)
    erp.pages["/prices"] = [{"items": []}]
    erp.gate = threading.Event()
    outcome = {}

    def first_run():
        try:
            outcome["first"] = sync.run_job(job_id=job.pk).run
        finally:
            from django.db import connections

            connections.close_all()

    thread = threading.Thread(target=first_run)
    thread.start()
    assert erp.entered.wait(10)  # the first run is inside its HTTP call now

    second = sync.run_job(job_id=job.pk).run
    erp.gate.set()
    thread.join(10)

    assert second.status == SyncRun.Status.SKIPPED and "still running" in second.errors[0]
    assert outcome["first"].status == SyncRun.Status.SUCCEEDED
    assert erp.cursors("/prices") == [""]
    assert SyncRun.objects.filter(job=job).count() == 2


def test_a_run_lost_with_its_worker_is_closed_by_the_next_start(db, erp, connection):
    erp.pages["/prices"] = [{"items": []}]
    job = job_of(connection, SyncJob.Kind.PULL_PRICES)
    lost = SyncRun.objects.create(job=job, heartbeat_at=timezone.now() - timedelta(hours=1))

    run = sync.run_job(job_id=job.pk).run

    lost.refresh_from_db()
    assert lost.status == SyncRun.Status.FAILED and run.status == SyncRun.Status.SUCCEEDED


def test_the_beat_starts_only_due_jobs(db, erp, connection, django_capture_on_commit_callbacks):
    erp.pages["/prices"] = [{"items": []}]
    erp.pages["/stock"] = [{"items": []}]
    due = job_of(
        connection, SyncJob.Kind.PULL_PRICES, interval_minutes=5, last_run_at=timezone.now() - timedelta(minutes=6)
    )
    job_of(connection, SyncJob.Kind.PULL_STOCK, interval_minutes=5, last_run_at=timezone.now() - timedelta(minutes=2))

    assert run_due_sync_jobs() == [due.pk]

    assert list(SyncRun.objects.values_list("job_id", "trigger", "status")) == [(due.pk, "beat", "succeeded")]
    assert run_due_sync_jobs() == []  # its last run is now


def test_run_now_in_the_admin_runs_the_job_and_the_token_is_never_shown(
    admin_client, erp, connection, django_capture_on_commit_callbacks
):
    erp.pages["/prices"] = [{"items": []}]
    job = job_of(connection, SyncJob.Kind.PULL_PRICES)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:integrations_syncjob_run_now", args=[job.pk]))

    assert response.status_code == 302
    run = SyncRun.objects.get(job=job)
    assert run.trigger == SyncRun.Trigger.MANUAL and run.status == SyncRun.Status.SUCCEEDED
    page = admin_client.get(reverse("admin:integrations_syncjob_change", args=[job.pk])).content.decode()
    assert "run-now" in page and "1 pages" in page
    runs = admin_client.get(reverse("admin:integrations_syncrun_changelist")).content.decode()
    assert "Succeeded" in runs
    for url in (
        reverse("admin:integrations_erpconnection_change", args=[connection.pk]),
        reverse("admin:integrations_erpconnection_changelist"),
    ):
        assert "erp-secret-123" not in admin_client.get(url).content.decode()


def test_saving_the_connection_with_an_empty_token_keeps_the_token(admin_client, connection):
    data = {
        "name": connection.name,
        "kind": "rest_json",
        "is_enabled": "on",
        "base_url": connection.base_url,
        "auth_header": "Authorization",
        "auth_token": "",
        "timeout_seconds": "5",
        "mapping": json.dumps({"price_unit": "cents"}),
    }
    url = reverse("admin:integrations_erpconnection_change", args=[connection.pk])

    refused = admin_client.post(url, data)
    assert refused.status_code == 200 and "price_unit is fen or yuan" in refused.content.decode()

    saved = admin_client.post(url, {**data, "mapping": json.dumps({"price_unit": "yuan"})})
    assert saved.status_code == 302
    connection.refresh_from_db()
    assert connection.auth_token == TOKEN and connection.timeout_seconds == 5
