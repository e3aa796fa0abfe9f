"""Nightly member jobs over 1,000,000 members and 5,000,000 orders: recompute_all_tiers and refresh_follow_ups.

What is generated (seed SEED; PostgreSQL is the target: COPY FROM STDIN into the Django tables):
2,000 stores (2 % closed); 10,000 shopping guides (stores.Staff with their users, spread over
the stores, 8 % of them gone); 1,000,000 members in join order over three years, 30 % of them
never bought (potential), 85 % with a home store, 20 % referred by an earlier member (most of
them by a few heavy buyers who share their link, the rest by anyone) and 10 % with a guide
(mostly one of their home store's); 5,000,000 purchases (members.Purchase, one row per
completed online order or till sale, 40 % online, unique channel/store/reference, amounts in
fen from a log-normal around ¥150) over the last two years, a skewed number per buyer (a
log-normal weight: many light buyers, a few heavy ones), within each buyer's active months
(some stopped buying), written in time order as a live table fills; 300 products with a
consumption rate (and as many without); 1,000,000 open follow-up calls on purchases of those
products, 8 % of them overdue beyond HQ's `follow_up_missed_after_days`, routed as they were
when opened: some to a guide the member no longer has, some to a guide who left or whose store
closed, some to the store where the member bought instead of the home store. HQ's rules are
the defaults. The load (timed apart) sets the tables' plain indexes aside and makes them again
from their own definitions afterwards, and, as a superuser, skips the foreign-key triggers
(session_replication_role) and then checks every foreign key with one anti-join each; then
VACUUM ANALYZE (autovacuum's work on a live table, whether or not the server runs autovacuum).

What is timed, each call in a child forked (os.fork) for it from a lean process forked before
the data existed (Django only), whose peak RSS is ru_maxrss from os.wait4: the nightly tier pass
cold (every member still potential) at T − 1 day, which also leaves the tiers as last night's
pass found them; after VACUUM ANALYZE of the members (the day in between), the pass at T (today
03:30, the beat job's time), which writes the day's changes; then refresh_follow_ups at 03:50.
Each: wall seconds, members (or open calls) per second, changes written, SQL statements
(a connection execute wrapper) and the peak RSS.

What is checked (any difference exits 1; slow figures never do): after each tier pass, every
member's stored tier (all of them, not a sample) equals the tier the benchmark computes in plain
Python from its own copy of the purchases and referrals (window, loyal thresholds, advocate rule);
each pass returns the number of TierChange rows it wrote at its time, which equals the number of
members whose tier differs from before the pass, one row per such member with the before and
after tiers, and the number of differences between the benchmark's own tiers at T − 1 and T.
After refresh_follow_ups: no open call is overdue beyond the threshold, every open call of a
member with an active guide (at an open store) is that guide's at the guide's store, every other
open call of a member with an open home store is the home store's without a guide, no call of
the rest keeps a guide (SQL counts), and the counts it returns (missed, moved, unguided) equal
the benchmark's own count from the generated calls.

On SQLite the scale is divided by 20 (executemany instead of COPY), as printed. BENCH_LOYALTY_DIVISOR
divides it on PostgreSQL too (for a quick try; the figures are then not the million-member ones).

Run alone (from the project root): .venv/bin/python -m bench loyalty_nightly [--sqlite | --postgresql],
or .venv/bin/python bench/loyalty_nightly.py; with the others: .venv/bin/python -m bench (make bench).
"""

from __future__ import annotations

import gc
import inspect
import io
import math
import os
import random
import signal
import sys
import time
import traceback
from array import array
from bisect import bisect
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import accumulate
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import TYPE_CHECKING

if __name__ == "__main__" and __package__ in (None, ""):  # run as a file: python bench/loyalty_nightly.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import table

if TYPE_CHECKING:
    from bench._database import ThrowawayDatabase


@dataclass(frozen=True)
class Scale:
    members: int
    purchases: int
    follow_ups: int
    stores: int
    guides: int
    tracked_products: int  # with days_per_unit; as many again without

    def divided(self, divisor: int) -> Scale:
        return Scale(
            self.members // divisor,
            self.purchases // divisor,
            self.follow_ups // divisor,
            max(self.stores // divisor, 50),
            max(self.guides // divisor, 250),
            self.tracked_products,
        )


FULL = Scale(
    members=1_000_000, purchases=5_000_000, follow_ups=1_000_000, stores=2_000, guides=10_000, tracked_products=300
)
SQLITE_DIVISOR = 20
SEED = 20_251_124

HISTORY_DAYS = 730  # purchases over the last two years
JOIN_DAYS = 1_095  # members joined over the last three
NEVER_BOUGHT = 0.30
CHURNED = 0.30  # buyers who stopped buying at some point of their active months
HOME_STORE_SHARE = 0.85
REFERRED_SHARE = 0.20
BY_SHARER = 0.70  # of the referred: brought in by one of the heavy buyers who share their link
SHARER_Z = 1.88  # heavy buyers (top ~3 % by weight) share their link
GUIDED_SHARE = 0.10
GUIDE_AT_HOME = 0.80  # a member's guide works at their home store
CLOSED_STORES = 0.02
GONE_GUIDES = 0.08
WEIGHT_SIGMA = 1.1  # log-normal purchase weight of a buyer
AT_HOME = 0.80  # purchases at the home store (the rest anywhere)
ONLINE = 0.40
AMOUNT_MEDIAN_FEN = 15_000
AMOUNT_SIGMA = 0.7
SPEND_SIGMA = 0.35  # some members spend more per purchase than others

MISSED_SHARE = 0.08  # open calls due beyond the missed threshold (15 to 60 days ago)
DUE_DAYS = (-14, 90)  # the others are due from 14 days ago to 90 days ahead
OLD_GUIDE = 0.15  # calls of a guided member opened under a guide they had before
AT_PURCHASE_STORE = 0.10  # calls of an unguided member opened at the store of the purchase

BATCH_ROWS = 250_000  # rows per COPY statement / executemany
TIER_CODES = ("potential", "ordinary", "loyal", "advocate")  # members.models.Tier values, in order
_DAY = 86_400


# -- the benchmark's copy of the world --------------------------------------------------------------------


@dataclass
class World:
    scale: Scale
    night: datetime  # T: today 03:30 local, the beat job's time
    t: int  # T as a Unix time
    store_pks: list[int] = field(default_factory=list)
    store_open: dict[int, bool] = field(default_factory=dict)
    guide_pks: list[int] = field(default_factory=list)
    guide_store: dict[int, int] = field(default_factory=dict)
    guide_active: dict[int, bool] = field(default_factory=dict)
    tracked: list[int] = field(default_factory=list)  # products with days_per_unit
    # Members: index = pk (1 .. members); 0 = none.
    home: array = field(default_factory=lambda: array("i"))
    referrer: array = field(default_factory=lambda: array("i"))
    guide: array = field(default_factory=lambda: array("i"))
    joined: array = field(default_factory=lambda: array("q"))
    # Purchases in member order: member pk's are start[pk] .. start[pk + 1] - 1.
    start: array = field(default_factory=lambda: array("q"))
    age: array = field(default_factory=lambda: array("i"))  # seconds before T
    amount: array = field(default_factory=lambda: array("i"))
    store: array = field(default_factory=lambda: array("i"))
    online: bytearray = field(default_factory=bytearray)
    member: array = field(default_factory=lambda: array("i"))  # the purchase's member pk
    position: array = field(default_factory=lambda: array("i"))  # index in the COPY (time) order

    def reference(self, index: int) -> str:
        return f"{'N' if self.online[index] else 'P'}{self.position[index] + 1:09d}"


@dataclass
class CallsExpected:
    written: int = 0
    missed: int = 0
    moved: int = 0
    unguided: int = 0
    by_route: Counter = field(default_factory=Counter)


class Stamps:
    """Unix times as the database's datetime text (UTC), fast: one date string per day."""

    def __init__(self, vendor: str) -> None:
        self.suffix = "+00" if vendor == "postgresql" else ""  # SQLite: Django's naive UTC text
        self.days: dict[int, str] = {}

    def __call__(self, epoch: int) -> str:
        day, second = divmod(epoch, _DAY)
        prefix = self.days.get(day)
        if prefix is None:
            prefix = self.days[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        hour, rest = divmod(second, 3600)
        minute, second = divmod(rest, 60)
        return f"{prefix} {hour:02d}:{minute:02d}:{second:02d}{self.suffix}"


def _night() -> datetime:
    from django.utils import timezone

    now = timezone.localtime()
    night = now.replace(hour=3, minute=30, second=0, microsecond=0)
    return night if night <= now else night - timedelta(days=1)


# -- loading ----------------------------------------------------------------------------------------------


def _copy_cell(value: object) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value)


def load_rows(vendor: str, model, names: list[str], rows: Iterable[tuple], *, plain: bool = False) -> int:
    """Rows into the model's table: COPY FROM STDIN on PostgreSQL, executemany on SQLite.

    plain: no None or bool among the values (a faster text conversion for COPY).
    """
    from django.db import connection

    table_name = model._meta.db_table
    columns = ", ".join(model._meta.get_field(name).column for name in names)
    count = 0
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            sql = f"COPY {table_name} ({columns}) FROM STDIN"
            buffer = io.StringIO()
            pending = 0
            for row in rows:
                buffer.write("\t".join(map(str, row) if plain else map(_copy_cell, row)))
                buffer.write("\n")
                pending += 1
                if pending == BATCH_ROWS:
                    buffer.seek(0)
                    cursor.cursor.copy_expert(sql, buffer)
                    count += pending
                    buffer, pending = io.StringIO(), 0
            if pending:
                buffer.seek(0)
                cursor.cursor.copy_expert(sql, buffer)
                count += pending
        else:
            sql = f"INSERT INTO {table_name} ({columns}) VALUES ({', '.join(['%s'] * len(names))})"
            batch = []
            for row in rows:
                batch.append(row)
                if len(batch) == BATCH_ROWS:
                    cursor.executemany(sql, batch)
                    count += len(batch)
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
                count += len(batch)
    return count


def create_stores_and_guides(rng: random.Random, world: World) -> None:
    from django.contrib.auth import get_user_model

    from inventory.models import Category, Product
    from stores.models import Staff, Store

    scale = world.scale
    stores = Store.objects.bulk_create(
        [
            Store(
                code=f"L{n:05d}",
                name=f"压测门店{n}",
                address=f"压测路{n}号",
                city=f"城市{n % 40}",
                latitude=f"{rng.uniform(22.0, 40.0):.6f}",
                longitude=f"{rng.uniform(104.0, 122.0):.6f}",
                is_active=rng.random() >= CLOSED_STORES,
            )
            for n in range(scale.stores)
        ],
        batch_size=2_000,
    )
    world.store_pks = [store.pk for store in stores]
    world.store_open = {store.pk: store.is_active for store in stores}

    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"lguide{n:05d}", password="!") for n in range(scale.guides)], batch_size=2_000
    )
    guides = Staff.objects.bulk_create(
        [
            Staff(
                user=user,
                store_id=rng.choice(world.store_pks),
                role=Staff.Role.GUIDE,
                staff_code=f"LG{n:05d}",
                display_name=f"导购{n}",
                is_active=rng.random() >= GONE_GUIDES,
            )
            for n, user in enumerate(users)
        ],
        batch_size=2_000,
    )
    world.guide_pks = [guide.pk for guide in guides]
    world.guide_store = {guide.pk: guide.store_id for guide in guides}
    world.guide_active = {guide.pk: guide.is_active for guide in guides}

    category = Category.objects.create(code="bench-loyalty", name="奶粉")
    products = Product.objects.bulk_create(
        [
            Product(
                code=f"LP{n:05d}",
                name=f"压测商品{n}",
                category=category,
                days_per_unit=rng.randint(7, 60) if n < scale.tracked_products else None,
            )
            for n in range(2 * scale.tracked_products)
        ],
        batch_size=2_000,
    )
    world.tracked = [product.pk for product in products if product.days_per_unit]


def draw_members(rng: random.Random, world: World) -> tuple[array, array, array, array]:
    """Who the members are: join time, home store, guide, referrer; each buyer's weight and active months.

    Returns the buyers' weights (0: never bought), the ages (seconds before T) between which they
    bought, and their spending factor.
    """
    scale, t = world.scale, world.t
    n = scale.members
    rnd, gauss = rng.random, rng.gauss
    store_pks = world.store_pks
    # Some stores draw many more members than others.
    cumulative = list(accumulate(math.exp(gauss(0.0, 0.6)) for _ in store_pks))
    total_weight = cumulative[-1]
    guides_at: dict[int, list[int]] = {}
    for guide_pk, store_pk in world.guide_store.items():
        guides_at.setdefault(store_pk, []).append(guide_pk)
    guide_pks = world.guide_pks

    home, referrer, guide = array("i", [0]) * (n + 1), array("i", [0]) * (n + 1), array("i", [0]) * (n + 1)
    joined = array("q", [0]) * (n + 1)
    weight, first_age, last_age = array("d", [0.0]) * (n + 1), array("i", [0]) * (n + 1), array("i", [0]) * (n + 1)
    spend = array("d", [1.0]) * (n + 1)
    sharers: list[int] = []
    sharer_weight = math.exp(WEIGHT_SIGMA * SHARER_Z)
    first_join = t - JOIN_DAYS * _DAY
    history = HISTORY_DAYS * _DAY
    for pk in range(1, n + 1):
        joined_at = first_join + int((pk - 1 + rnd()) * (JOIN_DAYS * _DAY - 3_600) / n)
        joined[pk] = joined_at
        if rnd() < HOME_STORE_SHARE:
            home[pk] = store_pks[bisect(cumulative, rnd() * total_weight)]
        if pk > 1 and rnd() < REFERRED_SHARE:
            if sharers and rnd() < BY_SHARER:
                referrer[pk] = sharers[int(rnd() * len(sharers))]
            else:
                referrer[pk] = 1 + int(rnd() * (pk - 1))
        if rnd() < GUIDED_SHARE:
            local = guides_at.get(home[pk])
            guide[pk] = local[int(rnd() * len(local))] if local and rnd() < GUIDE_AT_HOME else rng.choice(guide_pks)
        if rnd() < NEVER_BOUGHT:
            continue
        w = math.exp(gauss(0.0, WEIGHT_SIGMA))
        weight[pk] = w
        if w > sharer_weight:
            sharers.append(pk)
        oldest = min(t - joined_at, history)
        first_age[pk] = oldest
        last_age[pk] = int(rnd() * oldest) if rnd() < CHURNED else 0
        spend[pk] = math.exp(gauss(0.0, SPEND_SIGMA))
    world.home, world.referrer, world.guide, world.joined = home, referrer, guide, joined
    return weight, first_age, last_age, spend


def draw_purchases(
    rng: random.Random, world: World, weight: array, first_age: array, last_age: array, spend: array
) -> None:
    """Exactly scale.purchases purchases: 1 + the buyer's weight share of the rest, in member order."""
    n, total = world.scale.members, world.scale.purchases
    rnd, gauss = rng.random, rng.gauss
    buyers = [pk for pk in range(1, n + 1) if weight[pk] > 0]
    factor = (total - len(buyers)) / sum(weight[pk] for pk in buyers)
    counts = array("i", [0]) * (n + 1)
    made = 0
    for pk in buyers:
        counts[pk] = 1 + int(weight[pk] * factor + rnd())
        made += counts[pk]
    while made != total:  # the rounding's few hundred too many or too few
        pk = buyers[int(rnd() * len(buyers))]
        if made > total and counts[pk] > 1:
            counts[pk] -= 1
            made -= 1
        elif made < total:
            counts[pk] += 1
            made += 1

    store_pks, home = world.store_pks, world.home
    stores = len(store_pks)
    start, age, amount, store, member = array("q", [0]) * (n + 2), array("i"), array("i"), array("i"), array("i")
    online = bytearray()
    mu = math.log(AMOUNT_MEDIAN_FEN)
    index = 0
    for pk in range(1, n + 1):
        start[pk] = index
        count = counts[pk]
        if not count:
            continue
        oldest, newest, factor = first_age[pk], last_age[pk], spend[pk]
        span = oldest - newest
        usual = home[pk] or store_pks[int(rnd() * stores)]
        for _n in range(count):
            age.append(newest + int(rnd() * span))
            amount.append(max(100, int(math.exp(mu + AMOUNT_SIGMA * gauss(0.0, 1.0)) * factor)))
            store.append(usual if rnd() < AT_HOME else store_pks[int(rnd() * stores)])
            online.append(rnd() < ONLINE)
        member.extend(array("i", [pk]) * count)
        index += count
    start[n + 1] = index
    world.start, world.age, world.amount, world.store, world.online = start, age, amount, store, online
    world.member = member

    # The order the rows are written in: oldest day first (a counting sort by day), as a live table fills.
    days = HISTORY_DAYS + 2
    per_day = [0] * days
    for a in age:
        per_day[a // _DAY] += 1
    first = [0] * days
    position = 0
    for day in range(days - 1, -1, -1):
        first[day] = position
        position += per_day[day]
    positions = array("i", [0]) * index
    for i, a in enumerate(age):
        day = a // _DAY
        positions[i] = first[day]
        first[day] += 1
    world.position = positions


def load_members(vendor: str, world: World) -> int:
    from members.models import Member

    stamp = Stamps(vendor)
    names = [
        "id",
        "openid",
        "nickname",
        "avatar_url",
        "phone",
        "home_store",
        "home_store_source",
        "home_store_set_at",
        "card_secret",
        "points_balance",
        "do_not_call",
        "marketing_consent",
        "referrer",
        "guide",
        "bound_at",
        "tier",
        "joined_at",
        "is_active",
    ]
    sources = [choice for choice, _label in Member.HomeStoreSource.choices]

    def rows() -> Iterator[tuple]:
        home, referrer, guide, joined = world.home, world.referrer, world.guide, world.joined
        for pk in range(1, world.scale.members + 1):
            joined_at = stamp(joined[pk])
            has_home = home[pk] or None
            yield (
                pk,
                f"oBench{pk:022d}",
                f"会员{pk}",
                f"https://thirdwx.qlogo.cn/mmopen/vi_32/bench{pk:09d}/132",
                f"1{3 + pk % 7}{pk:09d}" if pk % 5 < 3 else None,
                has_home,
                sources[pk % len(sources)] if has_home else "",
                joined_at if has_home else None,
                "",
                0,
                False,
                pk % 3 == 0,
                referrer[pk] or None,
                guide[pk] or None,
                joined_at if referrer[pk] else None,
                "potential",
                joined_at,
                True,
            )

    count = load_rows(vendor, Member, names, rows())
    _reset_sequence(Member)
    return count


def load_purchases(vendor: str, world: World) -> int:
    from members.models import Purchase

    stamp = Stamps(vendor)
    t, members = world.t, world.member
    by_position = array("i", [0]) * len(world.age)
    for index, position in enumerate(world.position):
        by_position[position] = index

    def rows() -> Iterator[tuple]:
        age, amount, store, online = world.age, world.amount, world.store, world.online
        for position, index in enumerate(by_position):
            at = stamp(t - age[index])
            channel = "online" if online[index] else "pos"
            reference = f"{'N' if online[index] else 'P'}{position + 1:09d}"
            yield members[index], store[index], channel, reference, amount[index], at, at

    names = ["member", "store", "channel", "reference", "amount_fen", "purchased_at", "recorded_at"]
    return load_rows(vendor, Purchase, names, rows(), plain=True)


def draw_and_load_follow_ups(rng: random.Random, vendor: str, world: World, missed_before: date) -> CallsExpected:
    """Open calls on purchases of tracked products, routed as when they were opened; what the pass must do."""
    from members.models import FollowUp

    stamp = Stamps(vendor)
    expected = CallsExpected()
    rnd = rng.random
    purchases = len(world.age)
    tracked, guide_pks = world.tracked, world.guide_pks
    home, guide = world.home, world.guide
    guide_store, guide_active, store_open = world.guide_store, world.guide_active, world.store_open
    owner = world.member
    seen: set[int] = set()

    def rows() -> Iterator[tuple]:
        made = 0
        while made < world.scale.follow_ups:
            index = int(rnd() * purchases)
            product_index = int(rnd() * len(tracked))
            replenish = rnd() < 0.6
            key = (index * len(tracked) + product_index) * 2 + replenish
            if key in seen:
                continue
            seen.add(key)
            made += 1
            pk = owner[index]
            if rnd() < MISSED_SHARE:
                due = missed_before - timedelta(days=1 + int(rnd() * 46))  # 15 to 60 days late
                missed = True
            else:
                due = missed_before + timedelta(days=int(rnd() * (DUE_DAYS[1] - DUE_DAYS[0] + 1)))  # from 14 days late
                missed = False
            # Where the call went when it was opened.
            guide_pk = guide[pk]
            if guide_pk:
                if rnd() < OLD_GUIDE:
                    while True:
                        old = guide_pks[int(rnd() * len(guide_pks))]
                        if old != guide_pk:
                            break
                    route, call_guide = "an earlier guide of the member", old
                else:
                    route, call_guide = "the member's guide", guide_pk
                call_store = guide_store[call_guide]
            elif home[pk] and rnd() >= AT_PURCHASE_STORE:
                route, call_store, call_guide = "the home store", home[pk], None
            else:
                route, call_store, call_guide = "the store of the purchase", world.store[index], None
            # Where it must be after the pass: the rule of docs/loyalty.md, from the benchmark's copy.
            if missed:
                expected.missed += 1
                route = "overdue beyond the threshold → missed"
            elif guide_pk and guide_active[guide_pk] and store_open[guide_store[guide_pk]]:
                if (call_store, call_guide) != (guide_store[guide_pk], guide_pk):
                    expected.moved += 1
                    route += " → moved to the member's guide"
            elif home[pk] and store_open[home[pk]]:
                if (call_store, call_guide) != (home[pk], None):
                    expected.moved += 1
                    route += (
                        " (guide gone or store closed) → moved to the home store"
                        if guide_pk
                        else (" → moved to the home store")
                    )
            elif call_guide is not None:
                expected.unguided += 1
                route += " (guide gone or store closed), no open home store → unguided"
            expected.by_route[route] += 1
            opened = stamp(world.t - world.age[index])
            yield (
                pk,
                call_store,
                call_guide,
                tracked[product_index],
                "replenish" if replenish else "first_use",
                due.isoformat(),
                (due + timedelta(days=5)).isoformat() if replenish else None,
                "open",
                "",
                "",
                world.reference(index),
                opened,
            )

    names = [
        "member",
        "store",
        "guide",
        "product",
        "kind",
        "due_on",
        "runs_out_on",
        "status",
        "outcome",
        "note",
        "source_reference",
        "created_at",
    ]
    expected.written = load_rows(vendor, FollowUp, names, rows())
    return expected


@contextmanager
def _without_foreign_key_checks(vendor: str) -> Iterator[bool]:
    """PostgreSQL: the loading session skips the foreign-key triggers (session_replication_role = replica,
    a superuser's setting); the rows are consistent by construction and checked after the load."""
    from django.db import connection

    skipped = False
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            skipped = bool(cursor.fetchone()[0])
            if skipped:
                cursor.execute("SET session_replication_role = replica")
    try:
        yield skipped
    finally:
        if skipped:
            with connection.cursor() as cursor:
                cursor.execute("RESET session_replication_role")


@contextmanager
def _indexes_set_aside(vendor: str, models: list, seconds: dict[str, float]) -> Iterator[None]:
    """PostgreSQL: the tables' plain indexes (those behind no constraint) are dropped for the load and made
    again afterwards from their own definitions (pg_get_indexdef): one sort each instead of millions of
    insertions. The primary keys and unique constraints stay."""
    from django.db import connection

    definitions: list[tuple[str, str]] = []
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in models:
                cursor.execute(
                    "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                    "WHERE x.indrelid = %s::regclass "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
                    [model._meta.db_table],
                )
                definitions += cursor.fetchall()
            for name, _definition in definitions:
                cursor.execute(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        if definitions:
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("SET maintenance_work_mem = '256MB'")
                for _name, definition in definitions:
                    cursor.execute(definition)
                cursor.execute("RESET maintenance_work_mem")
            seconds[f"{len(definitions)} indexes made after the load"] = time.perf_counter() - started


def _check_foreign_keys(models: list) -> None:
    """Every foreign key of the rows loaded without the triggers points at a row (else the loader is wrong)."""
    from django.db import connection
    from django.db.models import ForeignKey

    with connection.cursor() as cursor:
        for model in models:
            for key in model._meta.concrete_fields:
                if not isinstance(key, ForeignKey):
                    continue
                target = key.remote_field.model._meta
                cursor.execute(
                    f"SELECT COUNT(*) FROM {model._meta.db_table} t LEFT JOIN {target.db_table} r "
                    f"ON r.{target.pk.column} = t.{key.column} "
                    f"WHERE t.{key.column} IS NOT NULL AND r.{target.pk.column} IS NULL"
                )
                orphans = cursor.fetchone()[0]
                if orphans:
                    raise RuntimeError(f"the loader wrote {orphans} {model.__name__}.{key.name} pointing at no row")


def _reset_sequence(model) -> None:
    from django.core.management.color import no_style
    from django.db import connection

    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [model]):
            cursor.execute(sql)


def build(database: ThrowawayDatabase, world: World, missed_before: date) -> tuple[CallsExpected, dict[str, float]]:
    from django.db import connection, transaction

    from members.models import FollowUp, Member, Purchase
    from members.selectors import loyalty_settings

    if Member.objects.exists():
        raise RuntimeError("the benchmark needs an empty members table (it writes members with their own pks)")
    vendor = database.vendor
    rng = random.Random(SEED)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with transaction.atomic():
        create_stores_and_guides(rng, world)
        loyalty_settings()  # HQ's rules saved once (the defaults), as on a running site
    weight, first_age, last_age, spend = draw_members(random.Random(SEED + 1), world)
    draw_purchases(random.Random(SEED + 2), world, weight, first_age, last_age, spend)
    del weight, first_age, last_age, spend
    seconds["stores, guides and the draw in Python"] = time.perf_counter() - started
    loaded = [Member, Purchase, FollowUp]
    with (
        transaction.atomic() if vendor == "sqlite" else _without_foreign_key_checks(vendor) as skipped,
        _indexes_set_aside(vendor, loaded, seconds),
    ):
        started = time.perf_counter()
        load_members(vendor, world)
        seconds["members"] = time.perf_counter() - started
        started = time.perf_counter()
        load_purchases(vendor, world)
        seconds["purchases"] = time.perf_counter() - started
        started = time.perf_counter()
        expected = draw_and_load_follow_ups(random.Random(SEED + 3), vendor, world, missed_before)
        seconds["follow-ups (drawn and written)"] = time.perf_counter() - started
    if vendor == "postgresql" and skipped:
        started = time.perf_counter()
        _check_foreign_keys(loaded)
        seconds["foreign keys checked (COPY skipped their triggers)"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if vendor == "postgresql" else "ANALYZE")
    seconds["VACUUM ANALYZE" if vendor == "postgresql" else "ANALYZE"] = time.perf_counter() - started
    return expected, seconds


# -- the passes, each in a forked child -------------------------------------------------------------------


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _timed_pass(job: str, kwargs: dict) -> dict:
    """In the child: one call of the service, its wall time and its SQL statements."""
    from django.db import connection

    from members import services

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    gc.collect()
    rss_mb = _status_mb("VmRSS")
    with connection.execute_wrapper(count):
        started = time.perf_counter()
        result = getattr(services, job)(**kwargs)
        seconds = time.perf_counter() - started
    connection.close()
    return {"seconds": seconds, "statements": statements, "result": result, "rss_mb": rss_mb}


def _serve(requests: Connection) -> None:
    """The lean process: for each request, fork a child that runs the pass; report its figures."""
    while True:
        try:
            request = requests.recv()
        except EOFError:
            return
        if request is None:
            return
        job, kwargs = request
        receive, send = Pipe(duplex=False)
        pid = os.fork()
        if pid == 0:  # the child: run the pass, send the figures, never return into the caller's stack
            code = 0
            try:
                receive.close()
                send.send(_timed_pass(job, kwargs))
            except BaseException:  # noqa: BLE001 - reported to the parent, whatever it was
                code = 1
                with suppress(BaseException):  # else the parent sees the exit status
                    send.send({"error": traceback.format_exc()})
            finally:
                os._exit(code)
        send.close()
        try:
            figures = receive.recv()
        except EOFError:
            figures = {"error": "the child died without a word"}
        _pid, status, usage = os.wait4(pid, 0)
        figures["maxrss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
        figures["exit_status"] = status
        requests.send(figures)


class PassRunner:
    """A process forked before the data is generated (it holds Django and the services only), which
    forks one child per pass: the child's peak RSS is then the pass's own, not the benchmark's data."""

    def __init__(self) -> None:
        from django.db import connections

        import members.services  # noqa: F401 - loaded once, before the fork

        connections.close_all()
        gc.collect()
        self.baseline_mb = _status_mb("VmRSS")
        self.requests, theirs = Pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it by closing the pipe
                self.requests.close()
                _serve(theirs)
            except BaseException:  # noqa: BLE001 - whatever happens, never unwind into the parent's cleanup
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        theirs.close()

    def run(self, job: str, **kwargs) -> dict:
        self.requests.send((job, kwargs))
        figures = self.requests.recv()
        if "error" in figures:
            raise RuntimeError(f"{job} failed in its child process:\n{figures['error']}")
        return figures

    def close(self) -> None:
        with suppress(OSError):
            self.requests.send(None)
        self.requests.close()
        os.waitpid(self.pid, 0)


# -- the benchmark's own answers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    window_days: int
    loyal_purchases: int
    loyal_fen: int
    advocate_referrals: int
    missed_after_days: int


def expected_tiers(world: World, at: int, rules: Rules) -> bytearray:
    """Every member's tier at `at` (index = pk, a TIER_CODES index), from the benchmark's copy, in plain Python:
    purchases in (at − window, at]; loyal with enough of them and enough spent; advocate when loyal and at
    least advocate_referrals referred members bought in the window; ordinary once bought by `at`."""
    n = world.scale.members
    t, start, age, amount = world.t, world.start, world.age, world.amount
    newest = t - at  # purchases at or before `at` are at least this old
    oldest = newest + rules.window_days * _DAY  # ... and in the window when younger than this
    count = array("i", [0]) * (n + 1)
    spent = array("q", [0]) * (n + 1)
    ever = bytearray(n + 1)
    for pk in range(1, n + 1):
        purchases = fen = 0
        bought = False
        for index in range(start[pk], start[pk + 1]):
            a = age[index]
            if a >= newest:
                bought = True
                if a < oldest:
                    purchases += 1
                    fen += amount[index]
        count[pk], spent[pk], ever[pk] = purchases, fen, bought
    referred = array("i", [0]) * (n + 1)
    referrer = world.referrer
    for pk in range(1, n + 1):
        if referrer[pk] and count[pk]:
            referred[referrer[pk]] += 1
    tiers = bytearray(n + 1)
    for pk in range(1, n + 1):
        if count[pk] >= rules.loyal_purchases and spent[pk] >= rules.loyal_fen:
            tiers[pk] = 3 if referred[pk] >= rules.advocate_referrals else 2
        elif ever[pk]:
            tiers[pk] = 1
    return tiers


def stored_tiers(n: int) -> bytearray:
    from django.db import connection

    from members.models import Member

    codes = {code: index for index, code in enumerate(TIER_CODES)}
    tiers = bytearray(n + 1)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, tier FROM {Member._meta.db_table}")
        while rows := cursor.fetchmany(100_000):
            for pk, tier in rows:
                tiers[pk] = codes[tier]
    return tiers


def tier_changes_at(at: datetime) -> list[tuple[int, int, int]]:
    from members.models import TierChange

    codes = {code: index for index, code in enumerate(TIER_CODES)}
    return [
        (pk, codes[source], codes[target])
        for pk, source, target in TierChange.objects.filter(changed_at=at).values_list(
            "member_id", "from_tier", "to_tier"
        )
    ]


def check_tiers(
    label: str, stored: bytearray, want: bytearray, before: bytearray, changes: list, returned: int, own: int
) -> list[str]:
    """stored == want for every member; the TierChange rows at the pass's time are exactly before → stored."""
    problems = []
    wrong = [pk for pk in range(1, len(want)) if stored[pk] != want[pk]]
    if wrong:
        problems.append(f"{label}: {len(wrong):,} members' stored tier differs from the rule")
        problems.extend(
            f"  member {pk}: stored {TIER_CODES[stored[pk]]}, expected {TIER_CODES[want[pk]]}" for pk in wrong[:5]
        )
    differ = {pk for pk in range(1, len(want)) if stored[pk] != before[pk]}
    rows = Counter(pk for pk, _s, _t in changes)
    if returned != len(changes):
        problems.append(f"{label}: returned {returned:,} changes, wrote {len(changes):,} TierChange rows")
    if len(changes) != len(differ):
        problems.append(f"{label}: {len(changes):,} TierChange rows, {len(differ):,} members' tiers differ")
    if len(differ) != own:
        problems.append(f"{label}: {len(differ):,} tiers changed, the benchmark's own rule changes {own:,}")
    twice = sum(1 for n in rows.values() if n > 1)
    if twice:
        problems.append(f"{label}: {twice:,} members with more than one TierChange row")
    unexplained = sum(1 for pk, s, t in changes if pk not in differ or (s, t) != (before[pk], stored[pk]))
    if unexplained:
        problems.append(f"{label}: {unexplained:,} TierChange rows do not say the member's before and after tiers")
    return problems


def check_calls(world: World, expected: CallsExpected, returned: dict, missed_before: date) -> tuple[list[str], dict]:
    from django.db import connection

    from members.models import FollowUp, Member
    from stores.models import Staff, Store

    f, m, g, s = FollowUp._meta.db_table, Member._meta.db_table, Staff._meta.db_table, Store._meta.db_table
    active_guide = "COALESCE(g.is_active, FALSE) AND COALESCE(gs.is_active, FALSE)"
    joins = (
        f"FROM {f} f JOIN {m} m ON m.id = f.member_id LEFT JOIN {g} g ON g.id = m.guide_id "
        f"LEFT JOIN {s} gs ON gs.id = g.store_id LEFT JOIN {s} h ON h.id = m.home_store_id "
        "WHERE f.status = 'open'"
    )
    counts = {
        "open calls overdue beyond the threshold": (f"SELECT COUNT(*) FROM {f} WHERE status = 'open' AND due_on < %s",),
        "open calls of a member with an active guide, not that guide's at the guide's store": (
            f"SELECT COUNT(*) {joins} AND {active_guide} "
            "AND (f.guide_id IS NULL OR f.guide_id <> m.guide_id OR f.store_id <> g.store_id)",
        ),
        "open calls of a member without one, with an open home store, not the home store's": (
            f"SELECT COUNT(*) {joins} AND NOT ({active_guide}) AND COALESCE(h.is_active, FALSE) "
            "AND (f.guide_id IS NOT NULL OR f.store_id <> m.home_store_id)",
        ),
        "open calls of a member with neither, still with a guide": (
            f"SELECT COUNT(*) {joins} AND NOT ({active_guide}) AND NOT COALESCE(h.is_active, FALSE) "
            "AND f.guide_id IS NOT NULL",
        ),
    }
    problems, found = [], {}
    with connection.cursor() as cursor:
        for label, (sql,) in counts.items():
            cursor.execute(sql, [missed_before.isoformat()] if "%s" in sql else [])
            found[label] = cursor.fetchone()[0]
            if found[label]:
                problems.append(f"after refresh_follow_ups: {found[label]:,} {label}")
        cursor.execute(f"SELECT status, COUNT(*) FROM {f} GROUP BY status")
        statuses = dict(cursor.fetchall())
    found["statuses"] = statuses
    if statuses.get("missed", 0) != expected.missed or statuses.get("open", 0) != expected.written - expected.missed:
        problems.append(
            f"after refresh_follow_ups: statuses {statuses}, expected {expected.missed:,} missed and "
            f"{expected.written - expected.missed:,} open"
        )
    want = {"missed": expected.missed, "moved": expected.moved, "unguided": expected.unguided}
    if returned != want:
        problems.append(f"refresh_follow_ups returned {returned}, the benchmark's own count is {want}")
    return problems, found


# -- the benchmark ----------------------------------------------------------------------------------------


def _database_version(vendor: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
            settings = []
            for name in ("shared_buffers", "work_mem", "random_page_cost"):
                cursor.execute(f"SHOW {name}")
                settings.append(f"{name} {cursor.fetchone()[0]}")
            return f"PostgreSQL {version} ({', '.join(settings)})"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]}"


def _machine() -> str:
    memory = "?"
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GB"
    except OSError:
        pass
    return f"this machine: {os.cpu_count()} CPUs, {memory} memory"


def _relation_mb(vendor: str, model) -> str:
    from django.db import connection

    if vendor != "postgresql":
        return "-"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_table_size(%s), pg_indexes_size(%s)", [model._meta.db_table] * 2)
        table_bytes, index_bytes = cursor.fetchone()
    return f"{table_bytes / 2**20:,.0f} + {index_bytes / 2**20:,.0f} MB"


def _vacuum_members(vendor: str) -> None:
    from django.db import connection

    from members.models import Member, TierChange

    if vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Member._meta.db_table}, {TierChange._meta.db_table}")


def run(database: ThrowawayDatabase) -> int:
    from members.services import recompute_all_tiers

    vendor = database.vendor
    scale = FULL
    note = ""
    divisor = int(os.environ.get("BENCH_LOYALTY_DIVISOR", "1") or 1)
    if vendor == "sqlite":
        divisor = max(divisor, SQLITE_DIVISOR)
        note = f"SQLite: the scale divided by {divisor} (executemany instead of COPY; PostgreSQL is the target). "
    elif divisor > 1:
        note = f"BENCH_LOYALTY_DIVISOR={divisor}: the scale divided by {divisor}, not the million-member figures. "
    if divisor > 1:
        scale = FULL.divided(divisor)
    chunk_size = inspect.signature(recompute_all_tiers).parameters["chunk_size"].default

    runner = PassRunner()
    try:
        return _measure(database, runner, scale, note, chunk_size)
    finally:
        runner.close()


def _measure(database: ThrowawayDatabase, runner: PassRunner, scale: Scale, note: str, chunk_size: int) -> int:
    from django.utils import timezone

    from members.models import FollowUp, Member, Purchase
    from members.selectors import loyalty_settings

    vendor = database.vendor
    night = _night()
    yesterday = night - timedelta(days=1)
    calls_at = night + timedelta(minutes=20)  # the follow-up job runs at 03:50
    world = World(scale, night, int(night.timestamp()))

    settings = loyalty_settings()
    rules = Rules(
        settings.tier_window_days,
        settings.loyal_min_purchases,
        settings.loyal_min_amount_fen,
        settings.advocate_min_referrals,
        settings.follow_up_missed_after_days,
    )
    missed_before = timezone.localdate(calls_at) - timedelta(days=rules.missed_after_days)
    print(
        f"backend: {_database_version(vendor)}; {_machine()}, load average {os.getloadavg()[0]:.2f} at the start; "
        "Django's query log off, as in production"
    )
    if note:
        print(note.strip())
    print(f"building the data (seed {SEED}) ...", flush=True)
    started = time.perf_counter()
    expected_calls, load_s = build(database, world, missed_before)
    built_s = time.perf_counter() - started

    n = scale.members
    buyers = sum(1 for pk in range(1, n + 1) if world.start[pk + 1] > world.start[pk])
    in_year = sum(1 for a in world.age if a < 365 * _DAY)
    per_buyer = sorted(
        world.start[pk + 1] - world.start[pk] for pk in range(1, n + 1) if world.start[pk + 1] > world.start[pk]
    )
    open_stores = sum(world.store_open.values())
    active_guides = sum(world.guide_active.values())
    rows = [
        ["stores", f"{len(world.store_pks):,}", f"{len(world.store_pks) - open_stores:,} closed"],
        [
            "shopping guides (stores.Staff)",
            f"{len(world.guide_pks):,}",
            f"{len(world.guide_pks) - active_guides:,} gone",
        ],
        [
            "members",
            f"{n:,}",
            f"{n - buyers:,} never bought, {n - world.home[1:].count(0):,} with a home store, "
            f"{n - world.referrer[1:].count(0):,} referred, {n - world.guide[1:].count(0):,} with a guide",
        ],
        [
            "purchases (orders)",
            f"{len(world.age):,}",
            f"{sum(world.online):,} online; {in_year:,} in the last 365 days; per buyer: median "
            f"{per_buyer[len(per_buyer) // 2]}, p90 {per_buyer[len(per_buyer) * 9 // 10]}, "
            f"p99 {per_buyer[len(per_buyer) * 99 // 100]}, max {per_buyer[-1]}",
        ],
        [
            "open follow-up calls",
            f"{expected_calls.written:,}",
            f"{expected_calls.missed:,} due before {missed_before} (overdue beyond {rules.missed_after_days} days), "
            f"on {len(world.tracked)} products with days_per_unit",
        ],
    ]
    print(table(["generated", "rows", ""], rows))
    steps = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in load_s.items())
    print(
        f"load: {steps}; {built_s:.0f} s in all, not part of the figures; tables (heap + indexes): members "
        f"{_relation_mb(vendor, Member)}, purchases {_relation_mb(vendor, Purchase)}, follow-ups "
        f"{_relation_mb(vendor, FollowUp)}",
        flush=True,
    )

    problems: list[str] = []
    figures = []

    # -- 1. cold: every member potential, at T - 1 day (also last night's state for the pass at T)
    local = timezone.localtime
    print(
        f"\nrecompute_all_tiers(at={local(yesterday):%Y-%m-%d %H:%M}, chunk_size={chunk_size:,}): cold ...", flush=True
    )
    cold = runner.run("recompute_all_tiers", at=yesterday, chunk_size=chunk_size)
    started = time.perf_counter()
    want_yesterday = expected_tiers(world, int(yesterday.timestamp()), rules)
    stored_yesterday = stored_tiers(n)
    potential = bytearray(n + 1)
    own = sum(1 for pk in range(1, n + 1) if want_yesterday[pk])
    problems += check_tiers(
        "cold pass", stored_yesterday, want_yesterday, potential, tier_changes_at(yesterday), cold["result"], own
    )
    figures.append(["recompute_all_tiers, cold (all potential)", local(yesterday), cold, n, "members"])
    checked_s = time.perf_counter() - started

    started = time.perf_counter()
    _vacuum_members(vendor)
    vacuum_s = time.perf_counter() - started

    # -- 2. the night at T: from last night's tiers
    print(
        f"recompute_all_tiers(at={local(night):%Y-%m-%d %H:%M}, chunk_size={chunk_size:,}): from last night's ...",
        flush=True,
    )
    warm = runner.run("recompute_all_tiers", at=night, chunk_size=chunk_size)
    started = time.perf_counter()
    want_today = expected_tiers(world, world.t, rules)
    stored_today = stored_tiers(n)
    changes = tier_changes_at(night)
    own = sum(1 for pk in range(1, n + 1) if want_today[pk] != want_yesterday[pk])
    problems += check_tiers("pass at T", stored_today, want_today, stored_yesterday, changes, warm["result"], own)
    figures.append(["recompute_all_tiers, from last night's", local(night), warm, n, "members"])
    checked_s += time.perf_counter() - started

    # -- 3. the follow-up calls
    print(f"refresh_follow_ups(at={local(calls_at):%Y-%m-%d %H:%M}) ...", flush=True)
    calls = runner.run("refresh_follow_ups", at=calls_at)
    started = time.perf_counter()
    call_problems, found = check_calls(world, expected_calls, calls["result"], missed_before)
    problems += call_problems
    checked_s += time.perf_counter() - started
    figures.append(["refresh_follow_ups", local(calls_at), calls, expected_calls.written, "open calls"])

    print()
    rows = []
    for label, at, measured, count, unit in figures:
        result = measured["result"]
        written = result if isinstance(result, int) else ", ".join(f"{k} {v:,}" for k, v in result.items())
        rows.append(
            [
                label,
                f"{at:%m-%d %H:%M}",
                f"{measured['seconds']:.1f}",
                f"{count / measured['seconds']:,.0f} {unit}/s",
                f"{written:,}" if isinstance(written, int) else written,
                f"{measured['statements']:,}",
                f"{measured['rss_mb']:.0f}",
                f"{measured['maxrss_mb']:.0f}",
            ]
        )
    headers = ["pass", "at (local)", "wall s", "rate", "changes written", "SQL", "RSS before MB", "peak RSS MB"]
    print(table(headers, rows))
    print(
        "peak RSS: ru_maxrss (os.wait4) of the child forked for the pass from a lean process, itself forked before "
        f"the data existed (the benchmark was {runner.baseline_mb:.0f} MB resident then; a forked child counts only "
        "the pages it maps again); RSS before: the child's VmRSS just before the call; "
        "SQL: statements through Django's connection (an execute wrapper), BEGIN and COMMIT not included; "
        + (
            f"between the two tier passes VACUUM ANALYZE of members and tier changes ({vacuum_s:.0f} s) stands in "
            "for the day's autovacuum; "
            if vendor == "postgresql"
            else ""
        )
        + f"checks took {checked_s:.0f} s"
    )

    print()
    totals_yesterday, totals_today = Counter(stored_yesterday[1:]), Counter(stored_today[1:])
    print(
        table(
            ["tier", f"after the cold pass ({local(yesterday):%m-%d})", f"after the pass at T ({local(night):%m-%d})"],
            [[TIER_CODES[c], f"{totals_yesterday[c]:,}", f"{totals_today[c]:,}"] for c in range(len(TIER_CODES))],
        )
    )
    moves = Counter((s, t) for _pk, s, t in changes)
    print()
    print(
        table(
            ["changes written at T", "members"],
            [[f"{TIER_CODES[s]} → {TIER_CODES[t]}", f"{k:,}"] for (s, t), k in sorted(moves.items())]
            or [["(none)", "0"]],
        )
    )
    print()
    rows = [[route, f"{k:,}"] for route, k in sorted(expected_calls.by_route.items(), key=lambda item: -item[1])]
    print(table(["open calls as generated (where they were → what the pass must do)", "calls"], rows))
    print(f"statuses after the pass: {', '.join(f'{k} {v:,}' for k, v in sorted(found['statuses'].items()))}")

    if problems:
        print(f"\nERROR: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(
        f"\nanswers: after each tier pass all {n:,} members' tiers equal the benchmark's own rule (window "
        f"{rules.window_days} days, loyal from {rules.loyal_purchases} purchases and ¥{rules.loyal_fen / 100:,.0f}, "
        f"advocate from {rules.advocate_referrals} referred buyers); each pass wrote one TierChange row per changed "
        f"member ({cold['result']:,} cold, {warm['result']:,} at T, as many as the rule's own differences); after "
        "refresh_follow_ups no open call is overdue beyond the threshold, every open call is with the member's "
        "active guide or else open home store, and its counts equal the benchmark's"
    )
    return 0


if __name__ == "__main__":
    from bench.__main__ import main

    sys.exit(main(["loyalty_nightly", *sys.argv[1:]]))
