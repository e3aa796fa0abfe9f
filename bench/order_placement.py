"""Order placement (POST /mall/checkout/ for store pickup) through gunicorn, in-process, and a raw-SQL floor.

PostgreSQL only (skipped with a printed reason on SQLite). A few stores hold plenty of
stock of twenty SKUs; a few thousand members each have a cart of one to three lines and
half of them a home store, all made through the project's services. The real web server
(gunicorn, sync workers, DJANGO_DEBUG=0, persistent database connections as in
docker-compose.yml) runs in a subprocess on 127.0.0.1 against the throwaway database;
simulated shoppers (threads, no browser) are signed in by a session row made directly
with SessionStore and a known CSRF cookie and header, and each places one order. N = 1, 4
and 16 concurrent clients give orders per second and latency percentiles.

The same order written by a minimal raw-SQL transaction (psycopg2: the cart read and
deleted, the Order, its lines, its event, one conditional UPDATE per stock row and their
StockMoves; it does not set the member's home store) is the floor that the service and
the whole request are compared with. In-process, django.test.Client and place_order alone
are timed on one thread, and CaptureQueriesContext counts the SQL statements of one
checkout request and of one place_order call; the issue's target is at most 20 statements
per order. Afterwards the orders must equal the placements that answered, no stock row may
reserve more than it holds, and every row's moves must add up to it; otherwise exit 1.

Run alone (from the project root): .venv/bin/python -m bench order_placement,
or .venv/bin/python bench/order_placement.py; with the others: .venv/bin/python -m bench (make bench).
BENCH_ORDER_WORKERS sets the number of gunicorn workers (default 4: two per core on the
2-core machine the figures were first taken on).
"""

from __future__ import annotations

import gc
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

if __name__ == "__main__" and __package__ in (None, ""):  # run as a file: python bench/order_placement.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import Latency, ms, table

if TYPE_CHECKING:
    from bench._database import ThrowawayDatabase

BASE_DIR = Path(__file__).resolve().parent.parent
STORE_COUNT = 4
SKU_COUNT = 20
ON_HAND = 100_000  # per store and SKU: no order can run short
STORE_PRICED_SKUS = 5  # per store, SKUs sold at the store's own price
HOME_STORE_SHARE = 0.5  # members who already have a home store (the others' first order sets it)
CONCURRENCY = (1, 4, 16)
WORKERS = int(os.environ.get("BENCH_ORDER_WORKERS", "4"))
TARGET_STATEMENTS = 20
SEED = 20_250_602
CHECKOUT_PATH = "/mall/checkout/"
PLACED = re.compile(r"^(?:https?://[^/]+)?/mall/orders/(?P<number>[^/]+)/$")

# Each timed run stops when its members are used up or its time is over, whichever comes first.
HTTP_ORDERS = {1: 300, 4: 500, 16: 600}
HTTP_SECONDS = 8.0
FLOOR_ORDERS = 1_000  # per N
FLOOR_SECONDS = 4.0
IN_PROCESS_ORDERS = 250  # django.test.Client, and place_order alone
IN_PROCESS_SECONDS = 5.0
STEP_ORDERS = 150  # place_order with its steps wrapped and timed
WARM_UP_HTTP = 4 * WORKERS
WARM_UP_OTHER = 5


@dataclass(frozen=True)
class Shopper:
    """A member with a filled cart, the store they pick up from, and (for web requests) their session."""

    member_id: int
    store_id: int
    lines: int
    units: int
    has_home_store: bool
    session_key: str = ""


@dataclass
class Run:
    """One timed run: N threads placing orders for a pool of shoppers."""

    label: str
    threads: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # successful placements only
    placed: dict[int, str] = field(default_factory=dict)  # member id -> order number
    errors: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few errors in full
    statements: int = 0  # SQL statements, when counted (in-process runs)
    sql_seconds: float = 0.0  # time inside cursor.execute, when counted
    commit_seconds: float = 0.0  # time in COMMIT, when counted
    client_cpu: float | None = None  # CPU seconds of this process over the run (clients, or the in-process code)
    web_cpu: float | None = None  # of gunicorn's master and workers
    database_cpu: float | None = None  # of the PostgreSQL backends serving the benchmark's database

    @property
    def count(self) -> int:
        return len(self.placed)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


# -- data -------------------------------------------------------------------------------------------------


def _pools() -> list[tuple[str, int]]:
    pools = [("http warm-up", WARM_UP_HTTP)]
    pools += [(f"http {n}", HTTP_ORDERS[n]) for n in CONCURRENCY]
    pools += [("client warm-up", WARM_UP_OTHER), ("client", IN_PROCESS_ORDERS)]
    pools += [("service warm-up", WARM_UP_OTHER), ("service", IN_PROCESS_ORDERS), ("steps", STEP_ORDERS)]
    pools += [("floor warm-up", WARM_UP_OTHER)] + [(f"floor {n}", FLOOR_ORDERS) for n in CONCURRENCY]
    return pools


# The statement counts: every cart size, with and without a home store, once through the request and
# once through the service alone.
COUNTED = [(lines, home) for lines in (1, 2, 3) for home in (True, False)]


def build(rng: random.Random, server_secret_key: str) -> tuple[dict[str, list[Shopper]], dict]:
    """Stores, catalog, stock, members and carts, through the services; sessions for the web shoppers."""
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection, transaction
    from django.test.utils import override_settings

    from inventory.models import SKU, Category, Product
    from inventory.services import receive_stock, set_store_price
    from members.models import Member
    from members.services import set_home_store_once, sign_in_with_wechat
    from members.session import MEMBER_SESSION_KEY
    from orders.selectors import mall_settings
    from orders.services import set_cart_quantity
    from stores.services import create_store

    with transaction.atomic():
        stores = [
            create_store(
                code=f"OB{n:02d}",
                name=f"杭州压测{n}号店",
                address=f"杭州市西湖区文三路{n}号",
                city="杭州",
                district="西湖区",
                latitude=f"{30.27 + n / 100:.6f}",
                longitude=f"{120.15 + n / 100:.6f}",
                offers_pickup=True,
                delivers=True,
            )
            for n in range(1, STORE_COUNT + 1)
        ]
        category = Category.objects.create(code="bench-formula", name="奶粉")
        skus = []
        for n in range(1, SKU_COUNT + 1):
            product = Product.objects.create(code=f"BP{n:03d}", name=f"压测奶粉{n}", category=category)
            skus.append(
                SKU.objects.create(
                    product=product, code=f"BS{n:03d}", spec=f"800g {n % 3 + 1}段", price_fen=rng.randint(50, 400) * 100
                )
            )
        for store in stores:
            for sku in skus:
                receive_stock(store=store, sku=sku, quantity=ON_HAND, reason="bench opening stock")
            for sku in rng.sample(skus, STORE_PRICED_SKUS):
                set_store_price(store=store, sku=sku, price_fen=max(sku.price_fen - 500, 0))
        mall_settings()  # HQ's rules saved once, as on a running site

    def member_with_cart(index: int, lines: int, home: bool, pickup) -> Shopper:
        member = sign_in_with_wechat(openid=f"bench-{index:06d}", nickname=f"压测买家{index}")
        if home:
            set_home_store_once(member=member, store=rng.choice(stores), source=Member.HomeStoreSource.STORE_QR)
        units = 0
        for sku in rng.sample(skus, lines):
            quantity = rng.randint(1, 3)
            set_cart_quantity(member=member, sku=sku, quantity=quantity)
            units += quantity
        return Shopper(member.pk, pickup.pk, lines, units, home)

    pools: dict[str, list[Shopper]] = {}
    index = 0
    with transaction.atomic():
        for role in ("client", "service"):
            pools[f"count {role}"] = []
            for lines, home in COUNTED:
                index += 1
                pools[f"count {role}"].append(member_with_cart(index, lines, home, rng.choice(stores)))
    for name, size in _pools():
        pool = []
        with transaction.atomic():
            for _n in range(size):
                index += 1
                pool.append(
                    member_with_cart(index, rng.randint(1, 3), rng.random() < HOME_STORE_SHARE, rng.choice(stores))
                )
        pools[name] = pool

    def with_session(shopper: Shopper) -> Shopper:
        session = SessionStore()
        session[MEMBER_SESSION_KEY] = shopper.member_id
        session.save()
        return Shopper(**{**shopper.__dict__, "session_key": session.session_key})

    with transaction.atomic():
        # The server signs sessions with its own secret key; the in-process client with this process's.
        with override_settings(SECRET_KEY=server_secret_key):
            for name in pools:
                if name.startswith("http"):
                    pools[name] = [with_session(s) for s in pools[name]]
        for name in ("count client", "client warm-up", "client"):
            pools[name] = [with_session(s) for s in pools[name]]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return pools, {"stores": len(stores), "skus": len(skus), "members": index}


# -- the web server ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_url() -> str:
    """A Redis database of its own for the server's cache (the tests use 15), or none if Redis is not there."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0):
            return "redis://127.0.0.1:6379/14"
    except OSError:
        return ""


def server_environment(var_dir: Path, secret_key: str) -> dict[str, str]:
    """Production settings (DJANGO_DEBUG=0) on plain HTTP at 127.0.0.1, against the throwaway database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="o2o.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secret_key,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_CSRF_TRUSTED_ORIGINS="",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SESSION_COOKIE_SECURE="0",
        DJANGO_CSRF_COOKIE_SECURE="0",
        DJANGO_SECURE_HSTS_SECONDS="0",
        DATABASE_URL=os.environ["DATABASE_URL"],  # the throwaway database, set by bench/_database.py
        DATABASE_CONN_MAX_AGE="60",  # as docker-compose.yml
        REDIS_URL=_redis_url(),
        CELERY_BROKER_URL="memory://",
        O2O_VAR_DIR=str(var_dir),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DJANGO_BEHIND_TLS_PROXY", None)
    return env


def collect_static(env: dict[str, str], log: Path) -> subprocess.Popen:
    """Whitenoise's manifest storage (DEBUG off) needs collected files for any page that renders."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def web_server(env: dict[str, str], workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """gunicorn on a free port of 127.0.0.1: yields its URL and process id; stopped on the way out, even on Ctrl-C."""
    import requests

    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "o2o.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--timeout",
        "30",
        "--chdir",
        str(BASE_DIR),
        "--log-level",
        "warning",
        "--error-logfile",
        str(log),
    ]
    # Its own session: the terminal's Ctrl-C reaches only us, and we stop the server below.
    server = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        probe = requests.Session()
        probe.trust_env = False
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {server.returncode}:\n{_tail(log)}")
            try:
                if probe.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /healthz within 30 s:\n{_tail(log)}")
            time.sleep(0.1)
        probe.close()
        yield base, server.pid
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- running shoppers on threads --------------------------------------------------------------------------

Attempt = Callable[[Shopper], tuple[bool, str]]  # (placed?, order number or what went wrong)


def drive(run: Run, shoppers: Sequence[Shopper], limit_s: float, open_worker, meter: Meter | None = None) -> Run:
    """Place orders for `shoppers` on `run.threads` threads until they are used up or `limit_s` is over.

    open_worker() runs on each thread before the clock starts and returns (attempt, close): the
    thread's client (HTTP session, database connection) is ready when timing begins. The meter,
    if any, reads the CPU time of the processes involved once every client is ready and again
    when all are done, before they close their connections.
    """
    label, threads = run.label, run.threads
    pending = iter(shoppers)
    lock = threading.Lock()
    ready, go, finished = (threading.Barrier(threads + 1) for _ in range(3))
    measured = threading.Event()
    ended: list[float] = []

    def work() -> None:
        try:
            attempt, close = open_worker()
        except Exception as exc:  # noqa: BLE001 - reported, and the run is called off
            with lock:
                run.errors[f"worker setup: {type(exc).__name__}"] += 1
                run.examples.append(f"worker setup: {exc!r}")
            for barrier in (ready, go, finished):
                barrier.abort()
            return
        try:
            ready.wait()
            go.wait()
            deadline = time.perf_counter() + limit_s
            while not measured.is_set() and time.perf_counter() < deadline:
                with lock:
                    shopper = next(pending, None)
                if shopper is None:
                    break
                began = time.perf_counter()
                try:
                    placed, detail = attempt(shopper)
                except Exception as exc:  # noqa: BLE001 - an error is counted, not fatal
                    placed, detail = False, f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - began
                with lock:
                    if placed:
                        run.placed[shopper.member_id] = detail
                        run.latencies.append(elapsed)
                    else:
                        run.errors[detail.split(":")[0][:60]] += 1
                        if len(run.examples) < 5:
                            run.examples.append(f"member {shopper.member_id}: {detail[:300]}")
            with lock:
                ended.append(time.perf_counter())
            finished.wait()
            measured.wait(timeout=120)
        except threading.BrokenBarrierError:
            pass
        finally:
            close()

    workers = [threading.Thread(target=work, name=f"{label} #{n}", daemon=True) for n in range(threads)]
    gc.collect()
    for worker in workers:
        worker.start()
    try:
        try:
            ready.wait(timeout=60)
            if meter is not None:
                meter.start()
            go.wait(timeout=60)
            started = time.perf_counter()
            finished.wait(timeout=limit_s + 120)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"{label}: the clients failed: {run.examples}") from None
        run.seconds = max(ended) - started if ended else 0.0
        if meter is not None:
            meter.stop(run)
    finally:
        measured.set()  # also stops the clients early on Ctrl-C
        for barrier in (ready, go, finished):
            barrier.abort()
        for worker in workers:
            worker.join(timeout=30)
    return run


# -- CPU time of the processes involved (Linux /proc; figures are left out where it cannot be read) --------


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu_of(pids: Iterator[int] | list[int]) -> dict[int, float]:
    """Seconds of CPU (user + system) used so far by each process that can be read."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        fields = _proc_stat(pid)
        if fields is not None:
            found[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime: the line's 14th and 15th
    return found


def _children(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and fields[1] == str(parent):
                pids.append(int(entry.name))
    return pids


def _database_backends() -> list[int]:
    """The PostgreSQL server processes of every connection to the benchmark's database but this thread's."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


class Meter:
    """CPU seconds of this process (the clients, or the in-process code), the web server, and PostgreSQL."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self.usable = Path("/proc/self/stat").exists()

    def _web(self) -> dict[int, float]:
        if self.server_pid is None:
            return {}
        return _cpu_of([self.server_pid, *_children(self.server_pid)])

    def start(self) -> None:
        if self.usable:
            self.process = time.process_time()
            self.web = self._web()
            self.database = _cpu_of(_database_backends())

    def stop(self, run: Run) -> None:
        if not self.usable:
            return
        run.client_cpu = time.process_time() - self.process
        web = self._web()
        run.web_cpu = sum(seconds - self.web.get(pid, 0.0) for pid, seconds in web.items()) if web else None
        # Backends that appeared during the run count from zero; one that ended meanwhile is lost (none should).
        database = _cpu_of([*self.database, *_database_backends()])
        run.database_cpu = sum(seconds - self.database.get(pid, 0.0) for pid, seconds in database.items())


def http_worker(base: str, csrf: str) -> Callable[[], tuple[Attempt, Callable[[], None]]]:
    """A requests.Session per thread; each POST carries the shopper's session cookie and the CSRF cookie and header."""
    import requests
    from django.conf import settings

    def open_worker():
        session = requests.Session()
        session.trust_env = False  # no proxy from the environment for 127.0.0.1

        def attempt(shopper: Shopper) -> tuple[bool, str]:
            session.cookies.clear()
            response = session.post(
                base + CHECKOUT_PATH,
                data={"fulfilment": "pickup", "pickup_store": shopper.store_id},
                cookies={settings.SESSION_COOKIE_NAME: shopper.session_key, settings.CSRF_COOKIE_NAME: csrf},
                headers={"X-CSRFToken": csrf},
                allow_redirects=False,
                timeout=60,
            )
            location = response.headers.get("Location", "")
            match = PLACED.match(location) if response.status_code == 302 else None
            if match:
                return True, match["number"]
            if response.status_code == 302:
                return False, f"HTTP 302 to {location}"
            return False, f"HTTP {response.status_code}: {response.text[:200]!r}"

        return attempt, session.close

    return open_worker


@contextmanager
def _sql_timing(run: Run, lock: threading.Lock) -> Iterator[None]:
    """Count statements and time them (and COMMIT) on this thread's connection, into `run`."""
    from django.db import connection, connections

    wrapper = connections["default"]
    commit = wrapper._commit

    def timed_statement(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            with lock:
                run.statements += 1
                run.sql_seconds += time.perf_counter() - began

    def timed_commit():
        began = time.perf_counter()
        try:
            return commit()
        finally:
            with lock:
                run.commit_seconds += time.perf_counter() - began

    wrapper._commit = timed_commit
    try:
        with connection.execute_wrapper(timed_statement):
            yield
    finally:
        wrapper.__dict__.pop("_commit", None)


def in_process_worker(run: Run, kind: str, shoppers: Sequence[Shopper]):
    """kind "client": the checkout view through django.test.Client; "service": orders.services.place_order alone.

    One thread (the process's own Python): statements, their time and COMMIT's are added to `run`.
    """
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from members.models import Member
    from orders.services import place_order
    from stores.models import Store

    lock = threading.Lock()

    def open_worker():
        stores = Store.objects.in_bulk()
        # The view reads the member itself (current_member); the service is handed it, as the view does.
        members = Member.objects.in_bulk([s.member_id for s in shoppers]) if kind == "service" else {}
        client = Client()
        stack = ExitStack()
        stack.enter_context(_sql_timing(run, lock))

        def attempt(shopper: Shopper) -> tuple[bool, str]:
            if kind == "service":
                store = stores[shopper.store_id]
                order = place_order(member=members[shopper.member_id], fulfilment="pickup", pickup_store=store)
                return True, order.number
            client.cookies[settings.SESSION_COOKIE_NAME] = shopper.session_key
            response = client.post(CHECKOUT_PATH, {"fulfilment": "pickup", "pickup_store": shopper.store_id})
            match = PLACED.match(response.get("Location", "")) if response.status_code == 302 else None
            if match:
                return True, match["number"]
            return False, f"HTTP {response.status_code}: {response.content[:200]!r}"

        def close() -> None:
            stack.close()
            connection.close()

        return attempt, close

    return open_worker


# -- the floor: the same order in a minimal raw-SQL transaction -------------------------------------------


def floor_statements() -> dict[str, str]:
    """The floor's statements, on the project's tables. One conditional UPDATE per stock row, in SKU order."""
    from inventory.models import SKU, Product, Stock, StockMove, StorePrice
    from members.models import Member
    from orders.models import CartLine, Order, OrderEvent, OrderLine

    t = {
        model.__name__: model._meta.db_table
        for model in (SKU, Product, Stock, StockMove, StorePrice, Member, CartLine, Order, OrderEvent, OrderLine)
    }
    return {
        # The cart, priced at the pickup store (its own price, else HQ's), read and emptied in one statement.
        "cart": f"""
            DELETE FROM {t["CartLine"]} AS c USING {t["SKU"]} AS s, {t["Product"]} AS p
            WHERE c.member_id = %(member)s AND s.id = c.sku_id AND p.id = s.product_id AND s.is_active
            RETURNING c.sku_id, c.quantity,
                COALESCE((SELECT sp.price_fen FROM {t["StorePrice"]} AS sp
                          WHERE sp.store_id = %(store)s AND sp.sku_id = c.sku_id), s.price_fen),
                p.name, s.spec""",
        "order": f"""
            INSERT INTO {t["Order"]} (number, member_id, fulfilment, status, pickup_store_id, credited_store_id,
                recipient_name, recipient_phone, delivery_address, items_fen, delivery_fee_fen, total_fen,
                pickup_code, expires_at, created_at)
            VALUES (%(number)s, %(member)s, 'pickup', 'pending_payment', %(store)s,
                COALESCE((SELECT home_store_id FROM {t["Member"]} WHERE id = %(member)s), %(store)s),
                '', '', '', %(items)s, 0, %(items)s, %(code)s, now() + interval '15 minutes', now())
            RETURNING id""",
        "lines": f"""
            INSERT INTO {t["OrderLine"]} (order_id, sku_id, product_name, spec, unit_price_fen, quantity,
                line_total_fen) VALUES %s""",
        "event": f"""
            INSERT INTO {t["OrderEvent"]} (order_id, from_status, to_status, actor_type, actor_label, reason,
                created_at) VALUES (%s, '', 'pending_payment', 'member', %s, '', now())""",
        "reserve": f"""
            UPDATE {t["Stock"]} SET reserved = reserved + %(quantity)s, updated_at = now()
            WHERE store_id = %(store)s AND sku_id = %(sku)s AND on_hand >= reserved + %(quantity)s
            RETURNING on_hand, reserved""",
        "moves": f"""
            INSERT INTO {t["StockMove"]} (store_id, sku_id, kind, on_hand_delta, reserved_delta, on_hand_after,
                reserved_after, reason, reference, actor_id, created_at) VALUES %s""",
    }


class _Shortage(Exception):
    pass


def floor_worker(run: Run) -> Callable[[], tuple[Attempt, Callable[[], None]]]:
    """A psycopg2 connection per thread; each order is one transaction of 5 + (lines) statements."""
    import psycopg2
    from django.conf import settings
    from psycopg2.extras import execute_values

    config = settings.DATABASES["default"]
    sql = floor_statements()
    lock = threading.Lock()

    def open_worker():
        connection = psycopg2.connect(
            dbname=config["NAME"],
            user=config.get("USER") or None,
            password=config.get("PASSWORD") or None,
            host=config.get("HOST") or "localhost",
            port=config.get("PORT") or 5432,
        )

        def attempt(shopper: Shopper) -> tuple[bool, str]:
            number = f"F{shopper.member_id:013d}"
            statements = 0
            try:
                with connection.cursor() as cursor:
                    cursor.execute(sql["cart"], {"member": shopper.member_id, "store": shopper.store_id})
                    lines = sorted(cursor.fetchall())  # SKU order: the project's lock order
                    if not lines:
                        raise _Shortage("empty cart")
                    items = sum(quantity * price for _sku, quantity, price, _name, _spec in lines)
                    cursor.execute(
                        sql["order"],
                        {
                            "number": number,
                            "member": shopper.member_id,
                            "store": shopper.store_id,
                            "items": items,
                            "code": f"{secrets.randbelow(10**6):06d}",
                        },
                    )
                    order_id = cursor.fetchone()[0]
                    rows = [
                        (order_id, sku, name, spec, price, qty, price * qty) for sku, qty, price, name, spec in lines
                    ]
                    execute_values(cursor, sql["lines"], rows)
                    cursor.execute(sql["event"], (order_id, f"#{shopper.member_id}"))
                    statements += 4
                    # The stock rows last, so their locks are held for as short a time as possible.
                    moves = []
                    for sku, quantity, _price, _name, _spec in lines:
                        cursor.execute(sql["reserve"], {"quantity": quantity, "store": shopper.store_id, "sku": sku})
                        after = cursor.fetchone()
                        if after is None:
                            raise _Shortage(f"sku {sku}")
                        moves.append(
                            (shopper.store_id, sku, "reserve", 0, quantity, *after, "online order", f"order:{number}")
                        )
                    execute_values(
                        cursor, sql["moves"], moves, template="(%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, now())"
                    )
                    statements += len(lines) + 1
                connection.commit()
            except Exception as exc:  # noqa: BLE001 - an error is counted, not fatal
                connection.rollback()
                return False, f"{type(exc).__name__}: {exc}"
            with lock:
                run.statements += statements
            return True, number

        return attempt, connection.close

    return open_worker


# -- SQL statements per order -----------------------------------------------------------------------------


def _describe(sql: str) -> str:
    """ "VERB table" of a statement (savepoints by name only)."""
    verb = sql.split(None, 1)[0].upper()
    if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
        return f"{verb} SAVEPOINT" if verb != "SAVEPOINT" else "SAVEPOINT"
    pattern = {"INSERT": r"INSERT INTO\s+\"?(\w+)", "UPDATE": r"UPDATE\s+\"?(\w+)", "DELETE": r"DELETE FROM\s+\"?(\w+)"}
    match = re.search(pattern.get(verb, r"\bFROM\s+\"?(\w+)"), sql, re.IGNORECASE)
    return f"{verb} {match[1] if match else '?'}"


def _origin() -> str:
    """The innermost frame of the project's own code (not Django, not bench/) that ran the statement."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        # The caller of a model's own save() is where the statement comes from.
        skipped = {".venv", "site-packages", "bench", "models.py"} & set(path.parts)
        if path.is_relative_to(BASE_DIR) and not skipped:
            return f"{path.relative_to(BASE_DIR).as_posix()}:{frame.f_code.co_name}"
        frame = frame.f_back
    return "(Django)"


@contextmanager
def _statement_origins() -> Iterator[list[tuple[str, str, str]]]:
    """(statement, the project code that ran it, "place_order" or "view") of every statement in the block."""
    from django.db import connection

    from orders import services

    found: list[tuple[str, str, str]] = []
    inside = [False]
    place_order = services.place_order

    def flagged(**kwargs):
        inside[0] = True
        try:
            return place_order(**kwargs)
        finally:
            inside[0] = False

    def record(execute, sql, params, many, context):
        found.append((_describe(sql), _origin(), "place_order" if inside[0] else "view"))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record), mock.patch.object(services, "place_order", flagged):
        yield found


@dataclass
class Counted:
    role: str  # "service" (place_order alone) or "request" (the checkout POST through django.test.Client)
    shopper: Shopper
    statements: int  # as CaptureQueriesContext counted them
    origins: list[tuple[str, str, str]]  # (statement, where, part), as the execute wrapper saw them


def count_statements(pools: dict[str, list[Shopper]], run: Run) -> list[Counted]:
    """One checkout request and one place_order call per cart size, with and without a home store."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from members.models import Member
    from orders.services import place_order
    from stores.models import Store

    counted = []
    client = Client()
    for role, pool in (("request", pools["count client"]), ("service", pools["count service"])):
        for shopper in pool:
            member = Member.objects.get(pk=shopper.member_id)
            store = Store.objects.get(pk=shopper.store_id)
            client.cookies[settings.SESSION_COOKIE_NAME] = shopper.session_key
            with CaptureQueriesContext(connection) as captured, _statement_origins() as origins:
                if role == "service":
                    number = place_order(member=member, fulfilment="pickup", pickup_store=store).number
                else:
                    response = client.post(CHECKOUT_PATH, {"fulfilment": "pickup", "pickup_store": store.pk})
                    match = PLACED.match(response.get("Location", ""))
                    number = match["number"] if response.status_code == 302 and match else ""
            if number:
                run.placed[shopper.member_id] = number
            else:
                run.errors[f"HTTP {response.status_code}"] += 1
            counted.append(Counted(role, shopper, len(captured), list(origins)))
    return counted


# The steps of place_order timed by wrapping the names it calls (a name that is gone is skipped); the
# rest is deleting the cart, the transaction's BEGIN and COMMIT, and the glue in between.
STEPS = [
    ("orders.services", "quote", "quote: the cart read and priced (cart_lines, prices_at)"),
    ("orders.services", "mall_settings", "mall_settings"),
    ("orders.services", "set_home_store_once", "set_home_store_once (first orders only)"),
    ("orders.services", "_create_with_unique_number", "the Order row, in a savepoint"),
    ("orders.models", "OrderLine.objects.bulk_create", "the order lines (bulk_create)"),
    ("orders.services", "reserve_stock", "reserve_stock, in a savepoint"),
    ("inventory.services", "_apply_change", "  of which _apply_change, per line: UPDATE, SELECT, INSERT move"),
    ("orders.models", "OrderEvent.objects.create", "the order event"),
]


def step_times(pool: Sequence[Shopper]) -> tuple[float, dict[int, str], list[tuple[str, float, int]]]:
    """place_order for each shopper with its steps wrapped: (seconds, {member: order}, [(step, seconds, calls)])."""
    import importlib
    from functools import reduce

    from members.models import Member
    from orders.services import place_order
    from stores.models import Store

    spent: dict[str, list] = {}

    def timing(label: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label][0] += time.perf_counter() - began
                spent[label][1] += 1

        return timed

    patches = []
    for module_name, dotted, label in STEPS:
        *path, name = dotted.split(".")
        try:
            owner = reduce(getattr, path, importlib.import_module(module_name))
            function = getattr(owner, name)
        except AttributeError:
            continue
        spent[label] = [0.0, 0]
        patches.append(mock.patch.object(owner, name, timing(label, function)))
    members = Member.objects.in_bulk([s.member_id for s in pool])
    stores = Store.objects.in_bulk()
    numbers = {}
    with ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        gc.collect()
        started = time.perf_counter()
        for shopper in pool:
            order = place_order(
                member=members[shopper.member_id], fulfilment="pickup", pickup_store=stores[shopper.store_id]
            )
            numbers[shopper.member_id] = order.number
        total = time.perf_counter() - started
    return total, numbers, [(label, seconds, calls) for label, (seconds, calls) in spent.items()]


# -- checking the outcome ---------------------------------------------------------------------------------


def verify(runs: list[Run], shoppers: dict[int, Shopper]) -> list[str]:
    """What must hold after every run: one order per answered placement, stock and its moves consistent."""
    from django.db.models import Count, Sum

    from inventory.models import Stock, StockMove
    from orders.models import CartLine, Order, OrderLine

    problems = []
    placed: dict[int, str] = {}
    for run in runs:
        placed.update(run.placed)
    orders = list(
        Order.objects.annotate(line_count=Count("lines", distinct=True)).values_list(
            "member_id", "number", "line_count", "items_fen", "status", "fulfilment"
        )
    )
    by_member = defaultdict(list)
    for member_id, number, line_count, _items, _status, _fulfilment in orders:
        by_member[member_id].append((number, line_count))
    if len(orders) != len(placed):
        problems.append(f"{len(orders)} orders in the database, {len(placed)} placements answered")
    for member_id, number in placed.items():
        found = by_member.get(member_id, [])
        if [n for n, _lines in found] != [number]:
            problems.append(f"member {member_id}: answered order {number}, database has {found}")
        elif found[0][1] != shoppers[member_id].lines:
            problems.append(f"order {number}: {found[0][1]} lines, the cart had {shoppers[member_id].lines}")
    for member_id in set(by_member) - set(placed):
        problems.append(f"member {member_id}: order(s) {by_member[member_id]} that no placement answered")
    events = Order.objects.annotate(n=Count("events")).exclude(n=1).count()
    if events:
        problems.append(f"{events} orders without exactly one event")
    line_totals = dict(OrderLine.objects.values_list("order__number").annotate(total=Sum("line_total_fen")))
    wrong_totals = [number for _m, number, _l, items, _s, _f in orders if line_totals.get(number) != items]
    if wrong_totals:
        problems.append(f"{len(wrong_totals)} orders whose items total is not the sum of their lines")
    left = CartLine.objects.filter(member_id__in=list(placed)).count()
    if left:
        problems.append(f"{left} cart lines left in the carts of members whose order was placed")

    stock = {(row.store_id, row.sku_id): row for row in Stock.objects.all()}
    over = [key for key, row in stock.items() if row.reserved > row.on_hand or row.reserved < 0]
    if over:
        problems.append(f"{len(over)} stock rows reserve more than they hold (or less than nothing): {over[:5]}")
    moves = {
        (m["store_id"], m["sku_id"]): (m["on_hand"], m["reserved"])
        for m in StockMove.objects.values("store_id", "sku_id").annotate(
            on_hand=Sum("on_hand_delta"), reserved=Sum("reserved_delta")
        )
    }
    for key, row in stock.items():
        if moves.get(key, (0, 0)) != (row.on_hand, row.reserved):
            problems.append(
                f"stock {key}: on hand/reserved {row.on_hand}/{row.reserved}, moves add up to {moves.get(key)}"
            )
    reserved_moves = StockMove.objects.filter(kind=StockMove.Kind.RESERVE).aggregate(n=Sum("reserved_delta"))["n"] or 0
    reserved_rows = sum(row.reserved for row in stock.values())
    ordered = (
        OrderLine.objects.filter(
            order__fulfilment=Order.Fulfilment.PICKUP, order__status=Order.Status.PENDING_PAYMENT
        ).aggregate(n=Sum("quantity"))["n"]
        or 0
    )
    if not reserved_moves == reserved_rows == ordered:
        problems.append(
            f"reservation moves add up to {reserved_moves}, stock rows reserve {reserved_rows}, "
            f"pending pickup orders hold {ordered}"
        )
    return problems


# -- the benchmark ----------------------------------------------------------------------------------------


def _database_facts() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        facts = []
        for name in ("server_version", "synchronous_commit", "max_connections"):
            cursor.execute(f"SHOW {name}")
            facts.append(cursor.fetchone()[0])
    return f"PostgreSQL {facts[0]}, synchronous_commit={facts[1]}, max_connections={facts[2]}"


def _latency_cells(run: Run) -> list[str]:
    if not run.latencies:
        return ["-"] * 5
    latency = Latency.of(run.latencies)
    return [ms(v) for v in (latency.p50_ms, latency.p95_ms, latency.p99_ms, latency.mean_ms, latency.max_ms)]


def _run_rows(runs: Sequence[Run]) -> list[list[object]]:
    return [
        [
            run.label,
            run.threads,
            run.count,
            sum(run.errors.values()),
            f"{run.seconds:.1f}",
            f"{run.rate:.1f}",
            *_latency_cells(run),
        ]
        for run in runs
    ]


RUN_HEADERS = ["run", "N", "orders", "errors", "s", "orders/s", "p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms"]


def _print_errors(runs: Sequence[Run], log: Path | None = None) -> None:
    for run in runs:
        if run.errors:
            kinds = ", ".join(f"{count} {kind}" for kind, count in run.errors.most_common())
            print(f"  errors, {run.label}: {kinds}")
            for example in run.examples:
                print(f"    {example}")
    if log is not None and any(run.errors for run in runs):
        print(f"  gunicorn's log (last lines):\n{_tail(log, 15)}")


def run(database: ThrowawayDatabase) -> int:
    if database.vendor != "postgresql":
        print(
            "skipped: order placement is measured on PostgreSQL only (the issue asks for it: row locks, "
            "concurrent transactions and the server's commit cost are what is measured); this run has "
            f"{database.vendor}. Start PostgreSQL on localhost or run with --postgresql."
        )
        return 0
    var_dir = Path(tempfile.mkdtemp(prefix="o2o-bench-web-"))
    try:
        return _measure(database, var_dir)
    finally:
        import shutil

        shutil.rmtree(var_dir, ignore_errors=True)


def _measure(database: ThrowawayDatabase, var_dir: Path) -> int:
    import gunicorn
    from django.test.utils import override_settings
    from django.utils.crypto import get_random_string

    load_before = os.getloadavg()[0]
    server_key = secrets.token_urlsafe(50)
    env = server_environment(var_dir, server_key)
    log = var_dir / "server.log"
    collecting = collect_static(env, log)  # alongside the data: it takes a few seconds
    try:
        started = time.perf_counter()
        pools, made = build(random.Random(SEED), server_key)
        built_s = time.perf_counter() - started
    except BaseException:
        collecting.kill()
        collecting.wait()
        raise
    if collecting.wait(timeout=120) != 0:
        print(f"ERROR: collectstatic failed:\n{_tail(log)}", file=sys.stderr)
        return 1
    shoppers = {s.member_id: s for pool in pools.values() for s in pool}
    carts = [s for name, pool in pools.items() if not name.startswith("count") for s in pool]
    mean_lines = sum(s.lines for s in carts) / len(carts)
    mean_units = sum(s.units for s in carts) / len(carts)

    print(
        f"backend: {_database_facts()}; {os.cpu_count()} CPUs, load average {load_before:.2f} before the run; "
        "Django's query log off in-process, as in production"
    )
    print(
        f"data: {made['stores']} stores × {made['skus']} SKUs ({ON_HAND:,} on hand each, {STORE_PRICED_SKUS} SKUs "
        f"at each store's own price), {made['members']:,} members with carts of 1–3 lines (mean {mean_lines:.2f} "
        f"lines, {mean_units:.2f} units), {HOME_STORE_SHARE:.0%} with a home store (the others' first order sets "
        f"it); made through the services in {built_s:.1f} s; seed {SEED}"
    )
    runs: list[Run] = []

    # -- statements per order, in-process
    from django.conf import settings

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns of a missing one
    counting = Run("statement counts", 1)
    runs.append(counting)
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        counted = count_statements(pools, counting)

    # -- through the web server
    csrf = get_random_string(32)  # a CSRF secret of the cookie's form, sent as cookie and header alike
    started = time.perf_counter()
    with web_server(env, WORKERS, log) as (base, server_pid):
        ready_s = time.perf_counter() - started
        print(
            f"server: gunicorn {gunicorn.__version__}, {WORKERS} sync workers on {base.removeprefix('http://')}, "
            f"DJANGO_DEBUG=0, DATABASE_CONN_MAX_AGE=60, cache {env['REDIS_URL'] or 'local memory'}, no access log; "
            f"answered /healthz {ready_s:.1f} s after start"
        )
        print(
            f"clients: N threads in this process (requests), each POSTing {CHECKOUT_PATH} fulfilment=pickup for "
            "its own member (a session row made with SessionStore, a known CSRF cookie and header); a placement "
            f"is a 302 to /mall/orders/<number>/; each N stops when its {'/'.join(map(str, HTTP_ORDERS.values()))} "
            f"members are used up or after {HTTP_SECONDS:g} s; {WARM_UP_HTTP} warm-up orders first",
            flush=True,
        )
        worker = http_worker(base, csrf)
        runs.append(drive(Run("HTTP warm-up", WORKERS), pools["http warm-up"], 60, worker))
        http = {}
        for n in CONCURRENCY:
            http[n] = Run("POST /mall/checkout/ via gunicorn", n)
            drive(http[n], pools[f"http {n}"], HTTP_SECONDS, worker, Meter(server_pid))
        runs.extend(http.values())

    # -- in-process, one thread (the server is stopped)
    def in_process(label: str, kind: str, pool: str) -> Run:
        warm = Run(f"{label} warm-up", 1)
        drive(warm, pools[f"{pool} warm-up"], 60, in_process_worker(warm, kind, pools[f"{pool} warm-up"]))
        timed = Run(label, 1)
        drive(timed, pools[pool], IN_PROCESS_SECONDS, in_process_worker(timed, kind, pools[pool]), Meter())
        runs.extend([warm, timed])
        return timed

    with override_settings(ALLOWED_HOSTS=["testserver"]):
        client = in_process("checkout via django.test.Client", "client", "client")
    service = in_process("place_order in-process", "service", "service")
    stepped = Run("place_order, steps timed", 1)
    steps_total, stepped.placed, steps = step_times(pools["steps"])
    runs.append(stepped)

    # -- the floor
    floor_warm = Run("floor warm-up", 1)
    runs.append(drive(floor_warm, pools["floor warm-up"], 60, floor_worker(floor_warm)))
    floor = {}
    for n in CONCURRENCY:
        floor[n] = Run("raw-SQL floor (psycopg2)", n)
        drive(floor[n], pools[f"floor {n}"], FLOOR_SECONDS, floor_worker(floor[n]), Meter())
    runs.extend(floor.values())

    problems = verify(runs, shoppers)
    _report(http, floor, client, service, counted)
    _report_steps(steps_total, len(stepped.placed), steps)
    _print_errors(runs, log)
    if problems:
        print(f"\nERROR: {len(problems)} problem(s) after the runs:", file=sys.stderr)
        for problem in problems[:20]:
            print(f"  {problem}", file=sys.stderr)
        return 1
    placed = sum(run.count for run in runs)
    print(
        f"\nanswers: {placed:,} orders in the database, one per answered placement, each with its cart's lines and "
        "one event; no stock row reserves more than it holds; every row's moves add up to it, and the "
        "reservation moves to what the pending pickup orders hold"
    )
    return 0


def _mean_ms(run: Run) -> float:
    return Latency.of(run.latencies).mean_ms if run.latencies else float("nan")


def _p50_ms(run: Run) -> float:
    return Latency.of(run.latencies).p50_ms if run.latencies else float("nan")


def _per_order(seconds: float | None, run: Run) -> str:
    return ms(seconds / run.count * 1000) if seconds is not None and run.count else "-"


def _report_steps(total: float, orders: int, steps: list[tuple[str, float, int]]) -> None:
    print(f"\nwhere place_order's time goes ({orders} orders on one thread, its steps wrapped and timed):")
    rows = []
    for label, seconds, calls in steps:
        rows.append([label, ms(seconds / orders * 1000), f"{seconds / total:.0%}", f"{calls / orders:.2f}"])
    known = sum(seconds for label, seconds, _calls in steps if not label.startswith(" "))
    rest = total - known
    rest_label = "the rest: deleting the cart, BEGIN and COMMIT, glue"
    rows.append([rest_label, ms(rest / orders * 1000), f"{rest / total:.0%}", ""])
    rows.append(["total", ms(total / orders * 1000), "100%", ""])
    print(table(["step", "ms/order", "share", "calls/order"], rows))


def _report(http: dict[int, Run], floor: dict[int, Run], client: Run, service: Run, counted: list[Counted]) -> None:
    print()
    print(table(RUN_HEADERS, _run_rows([*http.values(), *floor.values()])))
    floor_statements = sum(r.statements for r in floor.values()) / max(sum(r.count for r in floor.values()), 1)
    print(
        "orders/s: orders placed over the run's wall time; latencies of the placed orders; the floor runs "
        f"{floor_statements:.1f} statements an order (5 + its lines) plus BEGIN and COMMIT"
    )

    print()
    rows = []
    for n in CONCURRENCY:
        h, f = http[n], floor[n]
        rows.append(
            [
                n,
                f"{h.rate:.1f}",
                f"{f.rate:.1f}",
                f"{f.rate / h.rate:.1f}x" if h.rate else "-",
                ms(_p50_ms(h)),
                ms(_p50_ms(f)),
                f"{_p50_ms(h) / _p50_ms(f):.1f}x",
            ]
        )
    print(
        table(
            ["N", "HTTP orders/s", "floor orders/s", "floor/HTTP", "HTTP p50 ms", "floor p50 ms", "HTTP/floor p50"],
            rows,
        )
    )

    print("\none thread, per order (mean):")
    layers = []
    for r in (floor[1], service, client, http[1]):
        sql_ms = r.sql_seconds / r.count * 1000 if r.count and r.sql_seconds else None
        commit_ms = r.commit_seconds / r.count * 1000 if r.count and r.commit_seconds else None
        rest = _mean_ms(r) - (sql_ms or 0) - (commit_ms or 0) if sql_ms is not None else None
        layers.append(
            [
                r.label,
                r.count,
                f"{r.rate:.1f}",
                ms(_mean_ms(r)),
                f"{r.statements / r.count:.1f}" if r.count and r.statements else "-",
                ms(sql_ms) if sql_ms is not None else "-",
                ms(commit_ms) if commit_ms is not None else "-",
                ms(rest) if rest is not None else "-",
            ]
        )
    headers = ["layer", "orders", "orders/s", "mean ms", "statements", "in SQL ms", "COMMIT ms", "the rest ms"]
    print(table(headers, layers))
    means = {"floor": floor[1], "service": service, "client": client, "http": http[1]}
    means = {key: _mean_ms(r) for key, r in means.items()}
    print(
        f"place_order takes {means['service'] / means['floor']:.1f}x the floor's time on one thread "
        f"({means['service'] - means['floor']:+.2f} ms); the view and middleware add "
        f"{means['client'] - means['service']:+.2f} ms, HTTP and gunicorn {means['http'] - means['client']:+.2f} ms. "
        "in SQL: inside cursor.execute (statement, round trip, rows); the rest: Python (ORM, service, view)"
    )

    print("\nwhere the CPU goes, per order placed (ms; /proc of this process, gunicorn's and PostgreSQL's):")
    cpu_rows = []
    for r in (*http.values(), client, service, *floor.values()):
        if r.client_cpu is None:
            continue
        used = [x for x in (r.client_cpu, r.web_cpu, r.database_cpu) if x is not None]
        busy = sum(used) / (r.seconds * (os.cpu_count() or 1)) if r.seconds else 0.0
        cpu_rows.append(
            [
                r.label,
                r.threads,
                _per_order(r.client_cpu, r),
                _per_order(r.web_cpu, r),
                _per_order(r.database_cpu, r),
                f"{busy:.0%}",
            ]
        )
    print(
        table(["run", "N", "this process", "gunicorn", "PostgreSQL", "CPUs busy"], cpu_rows)
        + "\nthis process: the HTTP clients, the in-process Django code, or the floor's psycopg2 threads"
    )

    print("\nSQL statements per order (in-process, CaptureQueriesContext; Django logs neither BEGIN nor COMMIT):")
    by_key = {(c.role, c.shopper.lines, c.shopper.has_home_store): c for c in counted}
    rows = [
        [
            f"{lines} line{'s' if lines > 1 else ''}",
            "yes" if home else "no (the order sets it)",
            by_key[("service", lines, home)].statements,
            by_key[("request", lines, home)].statements,
        ]
        for lines, home in COUNTED
    ]
    print(table(["cart", "home store", "place_order (the service)", "POST /mall/checkout/ (the request)"], rows))
    for role, what in (
        ("service", "orders.services.place_order, the service call alone"),
        ("request", "POST /mall/checkout/, the whole request"),
    ):
        worst = max((c for c in counted if c.role == role), key=lambda c: c.statements)
        typical = by_key[(role, 2, True)].statements
        verdict = "met" if worst.statements <= TARGET_STATEMENTS else "not met"
        print(
            f"target at most {TARGET_STATEMENTS} SQL statements per order, {what}: {verdict} "
            f"(at most {worst.statements}, with {worst.shopper.lines} lines and "
            f"{'a' if worst.shopper.has_home_store else 'no'} home store; {typical} with 2 lines and a home store)"
        )
    worst = max((c for c in counted if c.role == "request"), key=lambda c: c.statements)
    if worst.statements > TARGET_STATEMENTS:
        print(
            f"\nthe {worst.statements} statements of the request with {worst.shopper.lines} lines and "
            f"{'a' if worst.shopper.has_home_store else 'no'} home store, in order (part: inside place_order or not):"
        )
        groups: dict[tuple[str, str, str], int] = {}
        for statement, origin, part in worst.origins:
            groups[(part, statement, origin)] = groups.get((part, statement, origin), 0) + 1
        print(table(["part", "statement", "run by", "count"], [[*key, n] for key, n in groups.items()], left=3))
        for part in ("view", "place_order"):
            tally = Counter(statement for statement, _origin, p in worst.origins if p == part)
            print(f"{part}, by verb and table: " + ", ".join(f"{n} {s}" for s, n in tally.most_common()))


if __name__ == "__main__":
    from bench.__main__ import main

    sys.exit(main(["order_placement", *sys.argv[1:]]))
