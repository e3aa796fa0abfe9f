"""ERP stock sync: 100,000 stock rows (200 stores × 500 SKUs) through the snapshot API, next to PostgreSQL's COPY.

The ERP pushes each store's counts to `POST /api/v1/erp/stores/{code}/stock/snapshot/` (one
request per store and up to the cap of rows, here a store's 500 SKUs), signed with an API key,
through Django's whole request path in-process: the key check, the rate count, the call log,
the view reading rows, `inventory.sync.apply_stock_snapshot` (rows created or locked in SKU
order, the unseen-moves sum, one UPDATE … FROM VALUES, the ledger's moves). No HTTP server:
the figures leave out the socket and gunicorn, which are the same for any endpoint.

Three passes over the same 100,000 rows: the first creates every stock row; the second, a
later snapshot, changes nine counts in ten (the steady state: rows exist, moves are written);
the third sends the second again and must be answered `stale` row by row. The floor is
PostgreSQL's own COPY of the same 100,000 rows into a scratch table with the stock table's
columns, indexes and checks (psycopg2 copy_expert), committed: no API can write them faster.
Every stock row is checked afterwards: the right count, the snapshot time, and the ledger's
sum equal to on-hand. A wrong answer exits 1; slow figures never do.

Run alone (from the project root): .venv/bin/python -m bench erp_stock_sync [--sqlite | --postgresql];
with the others: .venv/bin/python -m bench (make bench).
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import uuid4

if __name__ == "__main__" and __package__ in (None, ""):  # run as a file: python bench/erp_stock_sync.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import Latency, ms, table

if TYPE_CHECKING:
    from bench._database import ThrowawayDatabase

STORE_COUNT = 200
SKU_COUNT = 500
SEED = 20_250_612
TAKEN_AT = datetime(2025, 6, 12, 0, 0, tzinfo=UTC)  # 08:00 in Beijing
CHANGED_SHARE = 0.9  # counts that differ in the second snapshot


def build(rng: random.Random) -> tuple[list, list[str], str]:
    """Stores, SKUs and an API client with stock:write; returns (stores, SKU codes, key)."""
    from decimal import Decimal

    from integrations.models import ApiClient, Scope
    from integrations.services import issue_api_key
    from inventory.models import SKU, Category, Product
    from stores.models import Store

    stores = Store.objects.bulk_create(
        [
            Store(
                code=f"B{i:04d}",
                name=f"门店{i}",
                address="杭州市西湖区文三路1号",
                city="杭州",
                district="西湖区",
                latitude=Decimal("30.274000") + Decimal(i) / 10_000,
                longitude=Decimal("120.155000"),
                delivery_radius_km=Decimal("3.00"),
            )
            for i in range(STORE_COUNT)
        ]
    )
    category = Category.objects.create(code="bench", name="基准")
    products = Product.objects.bulk_create(
        [Product(code=f"BP{i:05d}", name=f"商品{i}", category=category) for i in range(SKU_COUNT)]
    )
    skus = SKU.objects.bulk_create(
        [
            SKU(product=product, code=f"BS{i:05d}", barcode=f"69{i:011d}", price_fen=rng.randrange(500, 50_000))
            for i, product in enumerate(products)
        ]
    )
    client = ApiClient.objects.create(name="bench ERP", scopes=[Scope.STOCK_WRITE], rate_limit_per_minute=100_000)
    return stores, [sku.code for sku in skus], issue_api_key(client=client).raw


def counts(rng: random.Random, keys: list[tuple[str, str]], before: dict | None) -> dict[tuple[str, str], int]:
    """Each (store, SKU)'s count: fresh, or the previous one changed in CHANGED_SHARE of rows."""
    if before is None:
        return {key: rng.randrange(0, 120) for key in keys}
    changed = {}
    for key in keys:
        value = before[key]
        if rng.random() < CHANGED_SHARE:
            value = max(0, value + rng.choice((-3, -2, -1, 1, 2, 5)))
        changed[key] = value
    return changed


def push(http, key: str, stores: list[str], skus: list[str], values: dict, taken_at: datetime, cap: int):
    """Every store's snapshot through the API; returns (seconds, per-request seconds, results by kind)."""
    latencies: list[float] = []
    results: dict[str, int] = {}
    header = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    started = time.perf_counter()
    for store in stores:
        url = f"/api/v1/erp/stores/{store}/stock/snapshot/"
        for first in range(0, len(skus), cap):
            rows = [{"sku_code": sku, "on_hand": values[(store, sku)]} for sku in skus[first : first + cap]]
            body = json.dumps({"taken_at": taken_at.isoformat(), "rows": rows})
            sent = time.perf_counter()
            response = http.post(
                url, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid4()), **header
            )
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.content[:300]!r}")
            for kind, number in response.json()["summary"].items():
                results[kind] = results.get(kind, 0) + number
    return time.perf_counter() - started, latencies, results


def copy_floor(store_ids: list[int], sku_ids: list[int], values: list[int], taken_at: datetime) -> float:
    """PostgreSQL's COPY of the same rows into a scratch copy of the stock table; seconds, committed."""
    from django.db import connection

    from inventory.models import Stock

    table = Stock._meta.db_table
    buffer = io.StringIO()
    now = datetime.now(UTC).isoformat()
    for (store_id, sku_id), on_hand in zip(((s, k) for s in store_ids for k in sku_ids), values, strict=True):
        buffer.write(f"{store_id}\t{sku_id}\t{on_hand}\t0\t5\t{now}\t{taken_at.isoformat()}\t1\n")
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cursor:
        cursor.execute(
            f"DROP TABLE IF EXISTS bench_copy_floor; CREATE TABLE bench_copy_floor (LIKE {table} INCLUDING ALL)"
        )
    raw.commit()
    buffer.seek(0)
    started = time.perf_counter()
    with raw.cursor() as cursor:
        cursor.copy_expert(
            "COPY bench_copy_floor (store_id, sku_id, on_hand, reserved, low_stock_threshold, updated_at, synced_at, "
            "change_txid) FROM STDIN",
            buffer,
        )
    raw.commit()
    seconds = time.perf_counter() - started
    with raw.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_copy_floor")
        copied = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_copy_floor")
    raw.commit()
    if copied != len(values):
        raise RuntimeError(f"COPY wrote {copied} rows, not {len(values)}")
    return seconds


def check(values: dict, taken_at: datetime) -> list[str]:
    """What is wrong with the stock after the passes (nothing, if the API did its job)."""
    from django.db import connection

    from inventory.models import Stock, StockMove

    problems = []
    rows = {
        (s, k): (on_hand, synced)
        for s, k, on_hand, synced in Stock.objects.values_list("store__code", "sku__code", "on_hand", "synced_at")
    }
    if len(rows) != len(values):
        problems.append(f"{len(rows)} stock rows, not {len(values)}")
    wrong = [key for key, want in values.items() if rows.get(key, (None, None))[0] != want]
    if wrong:
        problems.append(f"{len(wrong)} rows hold another count, e.g. {wrong[0]}")
    late = sum(1 for _on_hand, synced in rows.values() if synced != taken_at)
    if late:
        problems.append(f"{late} rows do not carry the last snapshot's time")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {Stock._meta.db_table} s LEFT JOIN ("
            f"  SELECT store_id, sku_id, sum(on_hand_delta) AS on_hand FROM {StockMove._meta.db_table} "
            "   GROUP BY store_id, sku_id) m ON m.store_id = s.store_id AND m.sku_id = s.sku_id "
            "WHERE coalesce(m.on_hand, 0) <> s.on_hand"
        )
        unexplained = cursor.fetchone()[0]
    if unexplained:
        problems.append(f"{unexplained} rows whose moves do not sum to on-hand")
    return problems


def run(database: ThrowawayDatabase) -> int:
    from django.db import connection
    from django.test import Client

    from integrations.api.stock import SNAPSHOT_ROWS_CAP
    from inventory.models import SKU
    from stores.models import Store

    rng = random.Random(SEED)
    started = time.perf_counter()
    stores, sku_codes, key = build(rng)
    store_codes = [store.code for store in stores]
    keys = [(store, sku) for store in store_codes for sku in sku_codes]
    first_values = counts(rng, keys, None)
    second_values = counts(rng, keys, first_values)
    built_s = time.perf_counter() - started
    total = len(first_values)
    cap = min(SNAPSHOT_ROWS_CAP, SKU_COUNT)
    print(
        f"backend: {_database_facts(database.vendor)}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
        "before the run; Django's query log off, as in production"
    )
    print(
        f"data: {STORE_COUNT} stores × {SKU_COUNT} SKUs = {total:,} stock rows; one request per store of {cap} rows "
        f"(the cap is {SNAPSHOT_ROWS_CAP:,}); in-process Django test client, no HTTP server; seed {SEED}; "
        f"built in {built_s:.1f} s",
        flush=True,
    )

    from django.conf import settings

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns of a missing one
    http = Client()
    passes = []
    for name, values, taken_at in (
        ("1st snapshot: rows created", first_values, TAKEN_AT),
        (f"2nd snapshot: {CHANGED_SHARE:.0%} of counts changed", second_values, TAKEN_AT + timedelta(hours=12)),
        ("2nd sent again: every row stale", second_values, TAKEN_AT + timedelta(hours=12)),
    ):
        seconds, latencies, results = push(http, key, store_codes, sku_codes, values, taken_at, cap)
        passes.append((name, seconds, latencies, results))
        print(f"  {name}: {total / seconds:,.0f} rows/s ({seconds:.1f} s); answers {results}", flush=True)

    problems = check(second_values, TAKEN_AT + timedelta(hours=12))
    expected = [
        {"applied": total - _unchanged(first_values, None)},
        {"applied": total - _unchanged(second_values, first_values)},
        {"stale": total},
    ]
    for (name, _s, _l, results), want in zip(passes, expected, strict=True):
        got = {k: v for k, v in results.items() if v}
        got_applied = got.get("applied", 0) + got.get("unchanged", 0)
        if "applied" in want and (got_applied != total or got.get("applied") != want["applied"]):
            problems.append(f"{name}: answers {got}, expected {want['applied']} applied of {total}")
        if "stale" in want and got != want:
            problems.append(f"{name}: answers {got}, expected all stale")

    floor_s = None
    if database.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        store_ids = list(Store.objects.order_by("code").values_list("pk", flat=True))
        sku_ids = list(SKU.objects.order_by("code").values_list("pk", flat=True))
        ordered = [second_values[(s, k)] for s in store_codes for k in sku_codes]
        floor_s = copy_floor(store_ids, sku_ids, ordered, TAKEN_AT)

    rows = []
    for name, seconds, latencies, _results in passes:
        latency = Latency.of(latencies)
        ratio = f"{(total / seconds) / (total / floor_s):.3f}" if floor_s else "-"
        rows.append([name, f"{total / seconds:,.0f}", f"{seconds:.1f}", ms(latency.p50_ms), ms(latency.p95_ms), ratio])
    if floor_s:
        rows.append(["PostgreSQL COPY (the floor)", f"{total / floor_s:,.0f}", f"{floor_s:.2f}", "-", "-", "1.000"])
    print()
    print(table(["", "rows/s", "seconds", "p50 ms/request", "p95 ms/request", "of COPY's rate"], rows))
    if floor_s is None:
        print("(no COPY floor on SQLite: run with --postgresql for it)")
    if problems:
        for problem in problems:
            print(f"WRONG: {problem}", file=sys.stderr)
        return 1
    print("checked: every row holds the last snapshot's count and time; every row's moves sum to its on-hand")
    return 0


def _unchanged(values: dict, before: dict | None) -> int:
    if before is None:
        return sum(1 for value in values.values() if value == 0)
    return sum(1 for key, value in values.items() if value == before[key])


def _database_facts(vendor: str) -> str:
    from django.db import connection

    if vendor != "postgresql":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    with connection.cursor() as cursor:
        facts = []
        for name in ("server_version", "synchronous_commit", "shared_buffers"):
            cursor.execute(f"SHOW {name}")
            facts.append(cursor.fetchone()[0])
    return f"PostgreSQL {facts[0]}, synchronous_commit={facts[1]}, shared_buffers={facts[2]}"


if __name__ == "__main__":
    from bench.__main__ import main

    sys.exit(main(["erp_stock_sync", *sys.argv[1:]]))
