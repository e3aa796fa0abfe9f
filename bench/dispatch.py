"""Dispatch (orders.dispatch) with 10,000 stores and 2,000 SKUs: ranking, dispatch_order, and the deadline sweeper.

Stores cluster in twelve large cities (GCJ-02), every one active and delivering within
its own radius of 3 to 5 km. Each holds most of the fifty best-selling SKUs and a random
fifty-five of the long tail (about a million stock rows). Shoppers live within a few
kilometres of a store, some of them on the outskirts where no store reaches; their
baskets have one to four lines, mostly best sellers, and some have an affinity store
(a till purchase at the store they live near).

Three things are timed on one thread: `rank_candidates` for random delivery points and
baskets (some with stores excluded), `dispatch_order` for paid delivery orders, and the
sweeper (`expire_overdue_assignments`) reassigning 10,000 offers whose hour has passed.
Each ranking and each dispatch is checked against a brute-force answer computed from the
benchmark's own copy of the stock; after the sweep every old offer must be expired, no
order may hold two open offers or be offered twice to one store, every reservation of an
expired offer must be released, and every stock row's reserved units must equal its
reservation moves. Any wrong answer exits 1; slow figures never do.

Run alone (from the project root): .venv/bin/python -m bench dispatch [--sqlite | --postgresql],
or .venv/bin/python bench/dispatch.py; with the others: .venv/bin/python -m bench (make bench).
"""

from __future__ import annotations

import gc
import io
import math
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if __name__ == "__main__" and __package__ in (None, ""):  # run as a file: python bench/dispatch.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import Latency, ms, table

if TYPE_CHECKING:
    from bench._database import ThrowawayDatabase
    from o2o.geo import Point

STORE_COUNT = 10_000
SKU_COUNT = 2_000
CORE_SKUS = 50  # the best sellers: nearly every store has them
CORE_HELD_SHARE = 0.92
TAIL_PER_STORE = 55  # long-tail SKUs per store, drawn at random
SOLD_OUT_SHARE = 0.05  # stock rows at zero on hand
RADII_KM = (Decimal("3.0"), Decimal("3.5"), Decimal("4.0"), Decimal("4.5"), Decimal("5.0"))
LIMIT = 5  # dispatch tries five ranked stores (orders.dispatch.CANDIDATES_TRIED)

RANK_QUERIES = 400
RANK_WARM_UP = 20
EXCLUDING_SHARE = 0.3  # ranking queries that leave out one or two of the best stores
DISPATCH_ORDERS = 200
DISPATCH_WARM_UP = 10
OVERDUE_ORDERS = 10_000
SWEEP_BATCH = 50  # as orders.tasks.SWEEP_BATCH_SIZE, the beat job's batch

# Baskets: number of lines, a best seller with CORE_LINE_SHARE per line, and units per line.
BASKET_LINES = {1: 0.45, 2: 0.30, 3: 0.15, 4: 0.10}
CORE_LINE_SHARE = 0.85
QUANTITIES = {1: 0.75, 2: 0.18, 3: 0.07}
AFFINITY_SHARE = 0.4  # members whose latest purchase was at the store they live near
OUTSKIRTS_SHARE = 0.05  # delivery points well outside the city, mostly beyond every store's reach
HOME_KM = (0.1, 4.0)
OUTSKIRTS_KM = (8.0, 30.0)
SEED = 20_250_603

# (name, WGS-84 centre lat, lng, urban population in millions, half-normal spread of the stores in km)
CITIES = [
    ("上海", 31.2304, 121.4737, 24.9, 12.0),
    ("北京", 39.9042, 116.4074, 21.9, 12.0),
    ("广州", 23.1291, 113.2644, 18.7, 10.0),
    ("深圳", 22.5431, 114.0579, 17.6, 10.0),
    ("重庆", 29.5630, 106.5516, 16.0, 9.0),
    ("成都", 30.5728, 104.0668, 15.0, 9.0),
    ("武汉", 30.5928, 114.3055, 13.6, 8.0),
    ("西安", 34.3416, 108.9398, 13.0, 8.0),
    ("苏州", 31.2990, 120.5853, 12.9, 8.0),
    ("杭州", 30.2741, 120.1551, 12.4, 8.0),
    ("南京", 32.0603, 118.7969, 9.4, 7.0),
    ("长沙", 28.2282, 112.9388, 10.4, 7.0),
]

_KM_PER_DEGREE = 111.32
_GRID_DEGREES = 0.02  # the brute-force answers look stores up in cells of about 2 km
_SPHERE_RADIUS_M = 6_371_008.8
_SPHERE_ERROR = 0.01  # a spherical distance is within ±0.6 % of the geodesic one
# nearest_stores' widest-radius aggregate, as PostgreSQL and SQLite (in a CAST) spell it.
_WIDEST_RADIUS = re.compile(r'MAX\("stores_store"\."delivery_radius_km"\)')


# -- the benchmark's copy of the world --------------------------------------------------------------------


@dataclass(slots=True)
class Place:
    """A store as the brute-force answers see it."""

    pk: int
    lat: float
    lng: float
    radius_m: float


@dataclass
class World:
    places: list[Place]
    by_pk: dict[int, Place]
    grid: dict[tuple[int, int], list[Place]]
    skus: list  # inventory.models.SKU, index = catalog rank (best sellers first)
    on_hand: dict[int, dict[int, int]]  # store pk -> SKU pk -> units on hand
    available: dict[int, dict[int, int]]  # store pk -> SKU pk -> on hand minus reserved, kept up to date

    def near(self, lat: float, lng: float) -> Iterator[Place]:
        """Stores close enough that the widest radius could reach the point."""
        reach_km = float(max(RADII_KM)) * 1.05
        rows = math.ceil(reach_km / (_KM_PER_DEGREE * _GRID_DEGREES))
        cols = math.ceil(reach_km / (_KM_PER_DEGREE * _GRID_DEGREES * math.cos(math.radians(abs(lat) + 1))))
        row, col = int(lat // _GRID_DEGREES), int(lng // _GRID_DEGREES)
        for d_row in range(-rows, rows + 1):
            for d_col in range(-cols, cols + 1):
                yield from self.grid.get((row + d_row, col + d_col), ())

    def holds(self, store_pk: int, lines: Sequence[tuple[int, int]]) -> bool:
        stock = self.available[store_pk]
        return all(stock.get(sku_pk, 0) >= quantity for sku_pk, quantity in lines)


@dataclass(frozen=True)
class Basket:
    lat: Decimal
    lng: Decimal
    lines: tuple[tuple[int, int], ...]  # (SKU index in World.skus, quantity), distinct SKUs
    home_pk: int  # the store the shopper lives near
    affinity_pk: int | None
    outskirts: bool

    def sku_lines(self, world: World) -> list[tuple[int, int]]:
        return [(world.skus[index].pk, quantity) for index, quantity in self.lines]


def _sphere_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2 * _SPHERE_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _offset(rng: random.Random, lat: float, lng: float, min_km: float, max_km: float) -> tuple[float, float]:
    distance = rng.uniform(min_km, max_km)
    bearing = rng.uniform(0.0, 2 * math.pi)
    d_lat = distance * math.cos(bearing) / _KM_PER_DEGREE
    d_lng = distance * math.sin(bearing) / (_KM_PER_DEGREE * math.cos(math.radians(lat)))
    return lat + d_lat, lng + d_lng


def _decimal6(value: float) -> Decimal:
    return Decimal(f"{value:.6f}")


def _weighted(rng: random.Random, weights: dict[int, float]) -> int:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def create_stores(rng: random.Random) -> list[Place]:
    from o2o.geo import Point, wgs84_to_gcj02
    from stores.models import Store

    weights = [city[3] for city in CITIES]
    stores = []
    per_city: Counter = Counter()
    for number in range(1, STORE_COUNT + 1):
        name, c_lat, c_lng, _population, spread = rng.choices(CITIES, weights=weights)[0]
        while True:
            distance = abs(rng.gauss(0.0, spread))
            if distance <= 3 * spread:
                break
        lat, lng = _offset(rng, c_lat, c_lng, distance, distance)
        gcj = wgs84_to_gcj02(Point(lat, lng))  # centres are WGS-84; stores are kept in GCJ-02
        per_city[name] += 1
        stores.append(
            Store(
                code=f"D{number:05d}",
                name=f"{name}{per_city[name]}号店",
                address=f"{name}中山路{rng.randint(1, 999)}号",
                city=name,
                latitude=_decimal6(gcj.lat),
                longitude=_decimal6(gcj.lng),
                delivery_radius_km=rng.choice(RADII_KM),
                offers_pickup=True,
                delivers=True,
                is_active=True,
            )
        )
    Store.objects.bulk_create(stores, batch_size=2_000)
    return [Place(s.pk, float(s.latitude), float(s.longitude), float(s.delivery_radius_km) * 1000.0) for s in stores]


def create_catalog() -> list:
    from inventory.models import SKU, Category, Product

    category = Category.objects.create(code="bench-dispatch", name="母婴")
    products = Product.objects.bulk_create(
        [Product(code=f"DP{n:05d}", name=f"压测商品{n}", category=category) for n in range(SKU_COUNT)],
        batch_size=2_000,
    )
    rng = random.Random(SEED + 1)
    return SKU.objects.bulk_create(
        [
            SKU(product=product, code=f"DS{n:05d}", spec=f"规格{n % 7 + 1}", price_fen=rng.randint(10, 400) * 100)
            for n, product in enumerate(products)
        ],
        batch_size=2_000,
    )


def draw_stock(rng: random.Random, places: list[Place], skus: list) -> dict[int, dict[int, int]]:
    core = [sku.pk for sku in skus[:CORE_SKUS]]
    tail = [sku.pk for sku in skus[CORE_SKUS:]]
    on_hand: dict[int, dict[int, int]] = {}
    for place in places:
        held = [pk for pk in core if rng.random() < CORE_HELD_SHARE] + rng.sample(tail, TAIL_PER_STORE)
        on_hand[place.pk] = {pk: 0 if rng.random() < SOLD_OUT_SHARE else rng.randint(1, 40) for pk in held}
    return on_hand


def insert_stock(vendor: str, on_hand: dict[int, dict[int, int]], available: dict[int, dict[int, int]]) -> int:
    """Every stock row at once (COPY on PostgreSQL), reserved = what the planned offers hold.

    The rows are written directly, not through receive_stock: StockMove is the audit trail,
    and a million opening "receive" moves would only slow the setup. The reservations of the
    overdue offers do get their moves (see plan_overdue), since the sweeper releases by them.
    """
    from django.db import connection
    from django.utils import timezone

    from inventory.models import Stock

    names = ("store", "sku", "on_hand", "reserved", "low_stock_threshold", "updated_at")
    columns = [Stock._meta.get_field(name).column for name in names]
    threshold = Stock._meta.get_field("low_stock_threshold").default
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    count = 0

    def rows() -> Iterator[tuple]:
        for store_pk, stock in on_hand.items():
            free = available[store_pk]
            for sku_pk, units in stock.items():
                yield store_pk, sku_pk, units, units - free[sku_pk], threshold, stamp

    with connection.cursor() as cursor:
        if vendor == "postgresql" and hasattr(cursor.cursor, "copy_expert"):
            sql = f"COPY {Stock._meta.db_table} ({', '.join(columns)}) FROM STDIN"
            buffer = io.StringIO()
            for row in rows():
                buffer.write("\t".join(map(str, row)) + "\n")
                count += 1
            buffer.seek(0)
            cursor.cursor.copy_expert(sql, buffer)
        else:
            sql = (
                f"INSERT INTO {Stock._meta.db_table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            )
            batch = []
            for row in rows():
                batch.append(row)
                if len(batch) == 50_000:
                    cursor.executemany(sql, batch)
                    count += len(batch)
                    batch = []
            cursor.executemany(sql, batch)
            count += len(batch)
    return count


def build_world(rng: random.Random) -> World:
    places = create_stores(rng)
    skus = create_catalog()
    on_hand = draw_stock(rng, places, skus)
    grid: dict[tuple[int, int], list[Place]] = defaultdict(list)
    for place in places:
        grid[(int(place.lat // _GRID_DEGREES), int(place.lng // _GRID_DEGREES))].append(place)
    available = {store_pk: dict(stock) for store_pk, stock in on_hand.items()}
    return World(places, {p.pk: p for p in places}, dict(grid), skus, on_hand, available)


def draw_basket(rng: random.Random, world: World) -> Basket:
    home = rng.choice(world.places)
    outskirts = rng.random() < OUTSKIRTS_SHARE
    lat, lng = _offset(rng, home.lat, home.lng, *(OUTSKIRTS_KM if outskirts else HOME_KM))
    chosen: dict[int, int] = {}
    for _n in range(_weighted(rng, BASKET_LINES)):
        while True:
            if rng.random() < CORE_LINE_SHARE:
                index = rng.randrange(CORE_SKUS)
            else:
                index = rng.randrange(CORE_SKUS, len(world.skus))
            if index not in chosen:
                break
        chosen[index] = _weighted(rng, QUANTITIES)
    affinity = home.pk if rng.random() < AFFINITY_SHARE else None
    return Basket(_decimal6(lat), _decimal6(lng), tuple(chosen.items()), home.pk, affinity, outskirts)


# -- brute-force answers ----------------------------------------------------------------------------------


def expected_ranking(
    world: World, basket: Basket, *, excluded: set[int], limit: int = LIMIT, exact: bool = True
) -> list[tuple[int, float]]:
    """The stores dispatch must rank, best first, as (pk, distance): the rule of docs/dispatch.md.

    exact=False ranks by spherical distance and counts only stores surely in reach (for the
    setup, where a plausible store is enough); exact=True uses the geodesic like the app.
    """
    from o2o.geo import Point, distance_m

    lat, lng = float(basket.lat), float(basket.lng)
    lines = basket.sku_lines(world)
    point = Point(lat, lng)

    ranked = []
    for place in world.near(lat, lng):
        rough = _sphere_m(lat, lng, place.lat, place.lng)
        if rough * (1 - _SPHERE_ERROR) - 1.0 > place.radius_m:
            continue  # surely out of reach
        if place.pk in excluded or not world.holds(place.pk, lines):
            continue
        if not exact:
            if rough * (1 + _SPHERE_ERROR) + 1.0 <= place.radius_m:
                ranked.append((rough, place.pk))
            continue
        d = distance_m(point, Point(place.lat, place.lng))
        if d <= place.radius_m:
            ranked.append((d, place.pk))
    ranked.sort()
    answer = [(pk, d) for d, pk in ranked]
    if basket.affinity_pk is not None:
        for index, (pk, d) in enumerate(answer):
            if pk == basket.affinity_pk:
                answer = [(pk, d), *answer[:index], *answer[index + 1 :]]
                break
    return answer[:limit]


def covered_at_all(world: World, basket: Basket) -> bool:
    """Whether any store reaches the point, whatever it holds (exact distances)."""
    from o2o.geo import Point, distance_m

    lat, lng = float(basket.lat), float(basket.lng)
    return any(
        _sphere_m(lat, lng, place.lat, place.lng) * (1 - _SPHERE_ERROR) - 1.0 <= place.radius_m
        and distance_m(Point(lat, lng), Point(place.lat, place.lng)) <= place.radius_m
        for place in world.near(lat, lng)
    )


# -- orders -----------------------------------------------------------------------------------------------


@dataclass
class Planned:
    """An order the benchmark writes: its basket, and for an overdue offer the store that holds it."""

    number: str
    basket: Basket
    store_pk: int | None = None
    distance_m: float = 0.0
    order_pk: int = 0
    member_pk: int = 0


def plan_overdue(rng: random.Random, world: World, count: int) -> tuple[list[Planned], list[tuple]]:
    """Orders as dispatch would have offered them an hour ago: the affinity store or the nearest holder.

    The reservation is taken from the benchmark's stock copy here and written with the stock
    rows and as StockMoves under `order:<number>`, as reserve_stock does, so the sweeper's
    release_everything_held finds and gives back exactly those units.
    Returns the orders and the reserve moves (store pk, SKU pk, units, on hand, reserved after, reference).
    """
    planned, moves = [], []
    while len(planned) < count:
        basket = draw_basket(rng, world)
        ranking = expected_ranking(world, basket, excluded=set(), limit=1, exact=False)
        if not ranking:
            continue  # dispatch would not have offered it: not an overdue offer
        store_pk, distance = ranking[0]
        number = f"BS{len(planned) + 1:06d}"
        stock = world.available[store_pk]
        for sku_pk, quantity in sorted(basket.sku_lines(world)):
            stock[sku_pk] -= quantity
            on_hand = world.on_hand[store_pk][sku_pk]
            moves.append((store_pk, sku_pk, quantity, on_hand, on_hand - stock[sku_pk], f"order:{number}"))
        planned.append(Planned(number, basket, store_pk, distance))
    return planned, moves


def create_orders(
    world: World, overdue: list[Planned], fresh: list[Planned], moves: list[tuple], offered_at: datetime
) -> None:
    """Members, affinity purchases, orders with their lines, the overdue offers and their reserve moves."""
    from inventory.models import StockMove
    from members.models import Member, Purchase
    from orders.models import Assignment, Order, OrderLine

    everyone = overdue + fresh
    members = Member.objects.bulk_create(
        [Member(nickname=f"压测买家{n}") for n in range(len(everyone))], batch_size=5_000
    )
    purchases = []
    for plan, member in zip(everyone, members, strict=True):
        plan.member_pk = member.pk
        if plan.basket.affinity_pk is not None:
            purchases.append(
                Purchase(
                    member=member,
                    store_id=plan.basket.affinity_pk,
                    channel=Purchase.Channel.POS,
                    reference=f"POS-{plan.number}",
                    amount_fen=9_900,
                    purchased_at=offered_at - timedelta(days=3),
                )
            )
    Purchase.objects.bulk_create(purchases, batch_size=5_000)

    orders, lines = [], []
    for plan in everyone:
        items = 0
        for index, quantity in plan.basket.lines:
            sku = world.skus[index]
            items += sku.price_fen * quantity
            lines.append(
                OrderLine(
                    sku=sku,
                    product_name=f"压测商品{index}",
                    spec=sku.spec,
                    unit_price_fen=sku.price_fen,
                    quantity=quantity,
                    line_total_fen=sku.price_fen * quantity,
                )
            )
        fee = 0 if items >= 9_900 else 800
        paid_at = offered_at - timedelta(minutes=1) if plan.store_pk else offered_at + timedelta(minutes=55)
        orders.append(
            Order(
                number=plan.number,
                member_id=plan.member_pk,
                fulfilment=Order.Fulfilment.DELIVERY,
                status=Order.Status.ASSIGNED if plan.store_pk else Order.Status.AWAITING_DISPATCH,
                recipient_name="压测",
                recipient_phone="13800000000",
                delivery_address="压测地址",
                delivery_latitude=plan.basket.lat,
                delivery_longitude=plan.basket.lng,
                items_fen=items,
                delivery_fee_fen=fee,
                total_fen=items + fee,
                expires_at=paid_at + timedelta(minutes=14),
                paid_at=paid_at,
            )
        )
    Order.objects.bulk_create(orders, batch_size=5_000)
    by_number = {order.number: order for order in orders}
    position = 0
    for plan in everyone:
        plan.order_pk = by_number[plan.number].pk
        for _line in plan.basket.lines:
            lines[position].order_id = plan.order_pk
            position += 1
    OrderLine.objects.bulk_create(lines, batch_size=5_000)

    Assignment.objects.bulk_create(
        [
            Assignment(
                order_id=plan.order_pk,
                store_id=plan.store_pk,
                status=Assignment.Status.OFFERED,
                basis=Assignment.Basis.AFFINITY
                if plan.store_pk == plan.basket.affinity_pk
                else Assignment.Basis.NEAREST,
                distance_m=round(plan.distance_m),
                offered_at=offered_at,
                deadline=offered_at + timedelta(minutes=60),
            )
            for plan in overdue
        ],
        batch_size=5_000,
    )
    StockMove.objects.bulk_create(
        [
            StockMove(
                store_id=store_pk,
                sku_id=sku_pk,
                kind=StockMove.Kind.RESERVE,
                on_hand_delta=0,
                reserved_delta=quantity,
                on_hand_after=on_hand,
                reserved_after=reserved_after,
                reason="online order",
                reference=reference,
            )
            for store_pk, sku_pk, quantity, on_hand, reserved_after, reference in moves
        ],
        batch_size=5_000,
    )


# -- measuring --------------------------------------------------------------------------------------------


@dataclass
class Timed:
    label: str
    seconds: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)


def _stock_lines(world: World, basket: Basket) -> list:
    from inventory.services import StockLine

    return [StockLine(sku=world.skus[index], quantity=quantity) for index, quantity in basket.lines]


def _point(basket: Basket) -> Point:
    from o2o.geo import Point

    return Point(float(basket.lat), float(basket.lng))


@dataclass(frozen=True)
class RankQuery:
    basket: Basket
    excluded: frozenset[int]


def rank_queries(rng: random.Random, world: World, count: int) -> list[RankQuery]:
    queries = []
    for _n in range(count):
        basket = draw_basket(rng, world)
        excluded: set[int] = set()
        if rng.random() < EXCLUDING_SHARE:
            best = [pk for pk, _d in expected_ranking(world, basket, excluded=set(), limit=3)]
            excluded = set(rng.sample(best, min(len(best), rng.randint(1, 2))))
            excluded.add(rng.choice(world.places).pk)  # a store far away that once declined: no effect
        queries.append(RankQuery(basket, frozenset(excluded)))
    return queries


def measure_ranking(
    world: World, queries: list[RankQuery], warm_up: list[RankQuery]
) -> tuple[Timed, Split, list[int], list[tuple]]:
    """Time rank_candidates, then run it again counting its statements and checking each answer."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orders.dispatch import rank_candidates
    from stores.models import Store

    affinity = Store.objects.in_bulk({q.basket.affinity_pk for q in queries + warm_up} - {None})
    prepared = [
        (
            _point(q.basket),
            _stock_lines(world, q.basket),
            affinity.get(q.basket.affinity_pk) if q.basket.affinity_pk else None,
            q.excluded,
        )
        for q in queries + warm_up
    ]
    timed, warm = prepared[: len(queries)], prepared[len(queries) :]

    def rank(point, lines, store, excluded):
        return rank_candidates(point=point, lines=lines, affinity=store, excluded=excluded, limit=LIMIT)

    for args in warm:
        rank(*args)
    result = Timed("rank_candidates")
    gc.collect()
    for args in timed:
        started = time.perf_counter()
        rank(*args)
        result.seconds.append(time.perf_counter() - started)

    found, wrong = [], []
    split = Split()
    with metering() as meter:
        for query, args in zip(queries, timed, strict=True):
            before = meter.snapshot()
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                answer = rank(*args)
                split.add(time.perf_counter() - started, before, meter.snapshot())
            result.statements.append(len(captured))
            got = [(choice.store.pk, choice.basis) for choice in answer]
            want = expected_ranking(world, query.basket, excluded=set(query.excluded))
            want_ids = [pk for pk, _d in want]
            found.append(len(got))
            bases_ok = all(
                basis == ("affinity" if pk == query.basket.affinity_pk and index == 0 else "nearest")
                for index, (pk, basis) in enumerate(got)
            )
            if [pk for pk, _b in got] != want_ids or not bases_ok:
                wrong.append((query, got, want_ids))
    return result, split, found, wrong


@dataclass
class Dispatched:
    plan: Planned
    seconds: float
    statements: int
    outcome: str  # the assignment's basis, or "exception"
    store_pk: int | None


def measure_dispatch(world: World, fresh: list[Planned]) -> tuple[list[Dispatched], Split, list[str]]:
    """dispatch_order for each fresh order, each checked against the brute-force choice at that moment."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from inventory.models import StockMove
    from orders.dispatch import dispatch_order
    from orders.models import Assignment, Order

    last_move = StockMove.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    done, wrong = [], []
    split = Split()
    gc.collect()
    for index, plan in enumerate(fresh):
        want = expected_ranking(world, plan.basket, excluded=set(), limit=1)
        with metering() as meter, CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            dispatch_order(order_id=plan.order_pk)
            seconds = time.perf_counter() - started
        if index >= DISPATCH_WARM_UP:
            split.add(seconds, (0, 0.0, 0.0), meter.snapshot())
        # Everything the dispatch reserved (its own store, transfer sources) leaves the copy of the stock.
        for move_pk, store_pk, sku_pk, delta in StockMove.objects.filter(pk__gt=last_move).values_list(
            "pk", "store_id", "sku_id", "reserved_delta"
        ):
            world.available[store_pk][sku_pk] -= delta
            last_move = max(last_move, move_pk)
        order = Order.objects.get(pk=plan.order_pk)
        offer = Assignment.objects.filter(order_id=plan.order_pk, status=Assignment.Status.OFFERED).first()
        outcome = offer.basis if offer else order.status
        done.append(Dispatched(plan, seconds, len(captured), outcome, offer.store_id if offer else None))
        if want:
            pk, _d = want[0]
            basis = "affinity" if pk == plan.basket.affinity_pk else "nearest"
            if (order.status, outcome, done[-1].store_pk) != (Order.Status.ASSIGNED, basis, pk):
                wrong.append(
                    f"{plan.number}: expected {basis} store {pk}, got {order.status} {outcome} {done[-1].store_pk}"
                )
        elif outcome not in (Assignment.Basis.TRANSFER, Order.Status.EXCEPTION):
            wrong.append(f"{plan.number}: no store holds the basket, yet it went {outcome} to {done[-1].store_pk}")
        elif outcome == Assignment.Basis.TRANSFER and not covered_at_all(world, plan.basket):
            wrong.append(f"{plan.number}: no store reaches the address, yet a transfer went to {done[-1].store_pk}")
    return done, split, wrong


@dataclass
class SqlMeter:
    """Statements run and the time spent inside them, from Django's execute wrapper (no query log)."""

    statements: int = 0
    seconds: float = 0.0
    widest_seconds: float = 0.0  # nearest_stores' widest-radius query (MAX(delivery_radius_km))

    def snapshot(self) -> tuple[int, float, float]:
        return self.statements, self.seconds, self.widest_seconds


@contextmanager
def metering() -> Iterator[SqlMeter]:
    from django.db import connection

    meter = SqlMeter()

    def measure(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent = time.perf_counter() - started
            meter.statements += 1
            meter.seconds += spent
            if _WIDEST_RADIUS.search(sql):
                meter.widest_seconds += spent

    with connection.execute_wrapper(measure):
        yield meter


@dataclass
class Split:
    """Where the time of some calls went: (calls, total seconds, in SQL, of which the widest-radius query)."""

    calls: int = 0
    seconds: float = 0.0
    sql: float = 0.0
    widest: float = 0.0

    def add(self, seconds: float, before: tuple[int, float, float], after: tuple[int, float, float]) -> None:
        self.calls += 1
        self.seconds += seconds
        self.sql += after[1] - before[1]
        self.widest += after[2] - before[2]


def sweep(now: datetime) -> tuple[list[float], list[int], SqlMeter]:
    """expire_overdue_assignments until a batch comes back short: seconds and size of each batch, the SQL."""
    from orders.dispatch import expire_overdue_assignments

    batches, sizes = [], []
    gc.collect()
    with metering() as meter:
        while True:
            began = time.perf_counter()
            expired = expire_overdue_assignments(now=now, batch_size=SWEEP_BATCH)
            batches.append(time.perf_counter() - began)
            sizes.append(expired)
            if expired < SWEEP_BATCH:
                break
    return batches, sizes, meter


def check_sweep(world: World, overdue: list[Planned], offered_at: datetime, now: datetime) -> tuple[list[str], dict]:
    """Every old offer expired, one open offer per order at most, no store offered an order twice,
    the old reservations released and the new ones whole, and stock rows equal to their moves."""
    from django.db.models import Count, Sum

    from inventory.models import Stock, StockMove, StockTransfer, StockTransferLine
    from orders.models import Assignment, Order

    problems: list[str] = []
    old = Assignment.objects.filter(offered_at=offered_at)
    old_total = old.count()
    not_expired = dict(old.exclude(status=Assignment.Status.EXPIRED).values_list("status").annotate(n=Count("pk")))
    if old_total != len(overdue):
        problems.append(f"{old_total} overdue offers in the database, {len(overdue)} made")
    if not_expired:
        problems.append(f"overdue offers not expired after the sweep: {not_expired}")
    wrong_stamp = old.filter(status=Assignment.Status.EXPIRED).exclude(decided_at=now).count()
    if wrong_stamp:
        problems.append(f"{wrong_stamp} expired offers without the sweep's time as decided_at")

    doubly_open = (
        Assignment.objects.filter(status__in=Assignment.OPEN)
        .values("order")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )
    if doubly_open:
        problems.append(f"{doubly_open} orders with more than one open offer")
    twice = Assignment.objects.values("order", "store").annotate(n=Count("pk")).filter(n__gt=1).count()
    if twice:
        problems.append(f"{twice} (order, store) pairs offered more than once: an excluded store was offered again")

    order_pks = {plan.order_pk: plan for plan in overdue}
    statuses = Counter()
    reasons = Counter()
    for status, reason in Order.objects.filter(number__startswith="BS").values_list("status", "exception_reason"):
        statuses[status] += 1
        if status == Order.Status.EXCEPTION:
            reasons[reason] += 1
    unexpected = {s: n for s, n in statuses.items() if s not in (Order.Status.ASSIGNED, Order.Status.EXCEPTION)}
    if unexpected:
        problems.append(f"overdue orders left neither assigned again nor with HQ: {unexpected}")

    new_offers = {
        order_pk: (store_pk, basis)
        for order_pk, store_pk, basis in Assignment.objects.filter(
            status=Assignment.Status.OFFERED, offered_at=now
        ).values_list("order_id", "store_id", "basis")
    }
    outcomes = Counter(basis for pk, (_s, basis) in new_offers.items() if pk in order_pks)
    assigned_without_offer = statuses[Order.Status.ASSIGNED] - sum(outcomes.values())
    if assigned_without_offer:
        problems.append(f"{assigned_without_offer} overdue orders assigned again without a new offer")

    # What each order's reference still holds, by store, from the ledger.
    held: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)
    for reference, store_pk, sku_pk, units in (
        StockMove.objects.filter(reference__startswith="order:BS")
        .values("reference", "store_id", "sku_id")
        .annotate(units=Sum("reserved_delta"))
        .values_list("reference", "store_id", "sku_id", "units")
    ):
        if units:
            held[(reference, store_pk)][sku_pk] = units
    in_transfer: dict[str, Counter] = defaultdict(Counter)
    for reference, sku_pk, quantity in StockTransferLine.objects.filter(
        transfer__hold_reference__startswith="order:BS",
        transfer__status__in=[StockTransfer.Status.REQUESTED, StockTransfer.Status.SHIPPED],
    ).values_list("transfer__hold_reference", "sku_id", "quantity"):
        in_transfer[reference][sku_pk] += quantity

    held_by_reference: dict[str, dict[int, dict[int, int]]] = defaultdict(dict)
    for (reference, store_pk), units in held.items():
        held_by_reference[reference][store_pk] = units

    leaks, broken = 0, 0
    for plan in overdue:
        reference = f"order:{plan.number}"
        if held.get((reference, plan.store_pk)):
            leaks += 1
        wanted = Counter(dict(plan.basket.sku_lines(world)))
        offer = new_offers.get(plan.order_pk)
        others = held_by_reference.get(reference, {})
        if offer is None:
            if any(others.values()) or in_transfer.get(reference):
                broken += 1  # an order with HQ holds nothing
            continue
        store_pk, basis = offer
        here = Counter(others.get(store_pk, {}))
        if basis == Assignment.Basis.TRANSFER:
            here.update(in_transfer.get(reference, Counter()))
        if here != wanted or set(others) - {store_pk}:
            broken += 1
    if leaks:
        problems.append(f"{leaks} expired offers whose store still holds units for the order")
    if broken:
        problems.append(f"{broken} overdue orders whose new reservation (own stock plus transfers) is not the basket")

    # Every reserved unit in the chain was reserved by a move; nothing else ever reserved (rows start at 0).
    by_moves = {
        (store_pk, sku_pk): units
        for store_pk, sku_pk, units in StockMove.objects.values("store_id", "sku_id")
        .annotate(units=Sum("reserved_delta"))
        .values_list("store_id", "sku_id", "units")
    }
    by_rows = {
        (store_pk, sku_pk): reserved
        for store_pk, sku_pk, reserved in Stock.objects.filter(reserved__gt=0).values_list(
            "store_id", "sku_id", "reserved"
        )
    }
    mismatched = sum(1 for key in set(by_moves) | set(by_rows) if by_moves.get(key, 0) != by_rows.get(key, 0))
    if mismatched:
        problems.append(f"{mismatched} stock rows whose reserved units differ from their reservation moves")

    figures = {"outcomes": outcomes, "exceptions": statuses[Order.Status.EXCEPTION], "reasons": reasons}
    return problems, figures


# -- the benchmark ----------------------------------------------------------------------------------------


def _database_version(vendor: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]}"


def _cells(seconds: list[float], statements: list[int]) -> list[object]:
    latency = Latency.of(seconds)
    figures = (latency.p50_ms, latency.p95_ms, latency.p99_ms, latency.mean_ms, latency.max_ms)
    sql = f"{sum(statements) / len(statements):.1f}" if statements else "-"
    return [latency.count, *map(ms, figures), sql, max(statements) if statements else "-"]


def _print_beat_budget(batch: Latency) -> None:
    """What the batch time means for the beat job, which starts batches for SWEEP_SECONDS each run."""
    from orders import tasks

    if not batch.p50_ms:
        return
    fit = max(int(tasks.SWEEP_SECONDS / (batch.p50_ms / 1000)), 1)
    print(
        f"the beat job orders.sweep_dispatch starts batches of {tasks.SWEEP_BATCH_SIZE} for {tasks.SWEEP_SECONDS} s "
        f"every 30 s: at the p50 batch time about {fit} batches ({fit * tasks.SWEEP_BATCH_SIZE:,} offers) a run"
    )


HEADERS = ["call", "calls", "p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms", "SQL mean", "SQL max"]


def run(database: ThrowawayDatabase) -> int:
    from django.db import connection, transaction
    from django.utils import timezone

    from orders.selectors import mall_settings

    rng = random.Random(SEED)
    started = time.perf_counter()
    with transaction.atomic():
        world = build_world(rng)
        offered_at = (timezone.now() - timedelta(hours=2)).replace(microsecond=0)
        overdue, moves = plan_overdue(random.Random(SEED + 2), world, OVERDUE_ORDERS)
        stock_rows = insert_stock(database.vendor, world.on_hand, world.available)
        fresh_rng = random.Random(SEED + 3)
        fresh = [
            Planned(f"BD{n:05d}", draw_basket(fresh_rng, world)) for n in range(DISPATCH_ORDERS + DISPATCH_WARM_UP)
        ]
        create_orders(world, overdue, fresh, moves, offered_at)
        settings = mall_settings()  # HQ's rules saved once, as on a running site
    if database.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    built_s = time.perf_counter() - started
    queries = rank_queries(random.Random(SEED + 4), world, RANK_QUERIES)
    warm_up = rank_queries(random.Random(SEED + 5), world, RANK_WARM_UP)

    lines = Counter(len(q.basket.lines) for q in queries)
    print(f"backend: {_database_version(database.vendor)}; Django's query log off, as in production")
    print(
        f"data: {len(world.places):,} active delivering stores in {len(CITIES)} cities (GCJ-02, radius 3–5 km), "
        f"{len(world.skus):,} SKUs, {stock_rows:,} stock rows ({CORE_SKUS} best sellers at ~{CORE_HELD_SHARE:.0%} of "
        f"stores, {TAIL_PER_STORE} long-tail SKUs each), {len(overdue) + len(fresh):,} members and paid delivery "
        f"orders, {len(overdue):,} of them offered an hour ago and overdue; bulk inserts, built in {built_s:.1f} s; "
        f"shortage policy {settings.shortage_policy}, {settings.acceptance_minutes} min to accept; seed {SEED}",
        flush=True,
    )

    # -- 1. the decision
    ranked, rank_split, found, rank_wrong = measure_ranking(world, queries, warm_up)
    print(
        f"\nrank_candidates: {len(queries)} delivery points and baskets "
        f"({', '.join(f'{lines[n]} with {n} line' + ('s' if n > 1 else '') for n in sorted(lines))}; "
        f"{sum(q.basket.affinity_pk is not None for q in queries)} with an affinity store, "
        f"{sum(bool(q.excluded) for q in queries)} excluding stores, "
        f"{sum(q.basket.outskirts for q in queries)} on the outskirts), limit={LIMIT}, {RANK_WARM_UP} warm-up calls; "
        "statements counted in a second pass (CaptureQueriesContext)",
        flush=True,
    )
    dispatched, dispatch_split, dispatch_wrong = measure_dispatch(world, fresh)
    warm, counted = dispatched[:DISPATCH_WARM_UP], dispatched[DISPATCH_WARM_UP:]
    print(
        f"dispatch_order: {len(counted)} paid delivery orders one after another ({len(warm)} more first as warm-up), "
        "each timed inside CaptureQueriesContext (its query log costs a few µs a statement)"
    )

    rows = [["rank_candidates, all", *_cells(ranked.seconds, ranked.statements)]]
    for n in sorted(lines):
        of = [i for i, q in enumerate(queries) if len(q.basket.lines) == n]
        rows.append(
            [
                f"  {n} line{'s' if n > 1 else ''}",
                *_cells([ranked.seconds[i] for i in of], [ranked.statements[i] for i in of]),
            ]
        )
    for label, of in (
        ("  with an affinity store", [i for i, q in enumerate(queries) if q.basket.affinity_pk]),
        ("  no candidate at all", [i for i, n in enumerate(found) if n == 0]),
    ):
        if of:
            rows.append([label, *_cells([ranked.seconds[i] for i in of], [ranked.statements[i] for i in of])])
    rows.append(["dispatch_order, all", *_cells([d.seconds for d in counted], [d.statements for d in counted])])
    by_outcome: dict[str, list[Dispatched]] = defaultdict(list)
    for d in counted:
        by_outcome[d.outcome].append(d)
    for outcome in ("affinity", "nearest", "transfer", "exception"):
        if by_outcome.get(outcome):
            group = by_outcome[outcome]
            rows.append([f"  {outcome}", *_cells([d.seconds for d in group], [d.statements for d in group])])
    print()
    print(table(HEADERS, rows))
    print(
        f"candidates returned per ranking: mean {sum(found) / len(found):.2f} of {LIMIT}, "
        f"{sum(n == 0 for n in found)} with none; SQL: statements per call (SAVEPOINTs included; "
        "Django logs neither BEGIN nor COMMIT)"
    )

    # -- 2. the sweeper
    now = timezone.now()
    batches, sizes, meter = sweep(now)
    total_s = sum(batches)
    expired = sum(sizes)
    sweep_problems, figures = check_sweep(world, overdue, offered_at, now)
    batch = Latency.of(batches)
    print(
        f"\nsweeper: expire_overdue_assignments(now=…, batch_size={SWEEP_BATCH}) in a loop until a batch came back "
        f"short: {expired:,} offers expired in {len(batches)} calls, {total_s:.1f} s, "
        f"{expired / total_s:.1f} assignments/s, {total_s / max(expired, 1) * 1000:.2f} ms and "
        f"{meter.statements / max(expired, 1):.1f} SQL statements per assignment"
    )
    print(
        f"per batch of {SWEEP_BATCH} (one transaction, holding its orders' row locks throughout): "
        f"p50 {ms(batch.p50_ms)} ms, p95 {ms(batch.p95_ms)} ms, max {ms(batch.max_ms)} ms"
    )
    _print_beat_budget(batch)
    outcomes = figures["outcomes"]
    rows = [[f"offered to a new store ({basis})", n] for basis, n in sorted(outcomes.items())]
    rows.append(["to HQ's exception queue", figures["exceptions"]])
    for reason, n in figures["reasons"].most_common():
        rows.append([f"  {reason}", n])
    print(table(["where the overdue orders went", "orders"], rows))

    sweep_split = Split(expired, total_s, meter.seconds, meter.widest_seconds)
    print("\nwhere the time goes (ms per call; in SQL: inside cursor.execute, statement and round trip):")
    rows = []
    for label, split in (
        ("rank_candidates (second pass)", rank_split),
        ("dispatch_order", dispatch_split),
        ("sweeper, per expired offer", sweep_split),
    ):
        per = 1000 / max(split.calls, 1)
        rows.append(
            [
                label,
                ms(split.seconds * per),
                ms(split.sql * per),
                ms(split.widest * per),
                f"{split.widest / split.seconds:.0%}" if split.seconds else "-",
                ms((split.seconds - split.sql) * per),
            ]
        )
    headers = ["call", "total", "in SQL", "widest-radius query", "its share", "Python (ORM, services)"]
    print(table(headers, rows))
    print(
        "widest-radius query: nearest_stores(delivers_here=True) reads MAX(delivery_radius_km) of the chain's "
        "delivering stores to bound its search box"
    )

    problems = []
    if rank_wrong:
        problems.append(f"{len(rank_wrong)} of {len(queries)} rankings differ from the brute-force answer")
        for query, got, want in rank_wrong[:5]:
            problems.append(
                f"  at {query.basket.lat},{query.basket.lng} lines {query.basket.lines} affinity "
                f"{query.basket.affinity_pk} excluded {sorted(query.excluded)}: got {got}, expected {want}"
            )
    if dispatch_wrong:
        problems.append(f"{len(dispatch_wrong)} of {len(dispatched)} dispatches chose another store than the rule")
        problems.extend(f"  {w}" for w in dispatch_wrong[:5])
    if expired != len(overdue):
        problems.append(f"the sweeper expired {expired:,} offers, {len(overdue):,} were overdue")
    problems.extend(sweep_problems)
    if problems:
        print(f"\nERROR: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(
        f"\nanswers: all {len(queries)} rankings and {len(dispatched)} dispatches equal the brute-force rule; after "
        f"the sweep all {len(overdue):,} old offers are expired, no order holds two open offers or was offered "
        "twice to one store, every expired offer's reservation is released and every new one holds the basket "
        "(own stock plus transfers), and every stock row's reserved units equal its reservation moves"
    )
    return 0


if __name__ == "__main__":
    from bench.__main__ import main

    sys.exit(main(["dispatch", *sys.argv[1:]]))
