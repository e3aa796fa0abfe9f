"""The nearest-store search and the opening-hours rules it filters by."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from geopy.distance import geodesic
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from o2o.errors import ApplicationError
from o2o.geo import InvalidCoordinates
from stores.models import OpeningHours, Store
from stores.selectors import is_open_at, nearest_stores
from stores.services import set_opening_hours
from tests.factories import StoreFactory
from tests.isolation import rolled_back

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = date(2025, 6, 2)  # a Monday

CHINA_CITIES = [
    (39.9087, 116.3975),  # Beijing
    (31.2304, 121.4737),  # Shanghai
    (30.2741, 120.1551),  # Hangzhou
    (23.1291, 113.2644),  # Guangzhou
    (22.5431, 114.0579),  # Shenzhen
    (30.5728, 104.0668),  # Chengdu
    (45.8038, 126.5350),  # Harbin
]


# --- the oracle: everything computed the slow, obvious way --------------------------------------


@dataclass(frozen=True)
class StoreSpec:
    latitude: Decimal
    longitude: Decimal
    delivery_radius_km: Decimal
    offers_pickup: bool
    delivers: bool
    is_active: bool
    hours: tuple[tuple[int, time, time], ...]


def expected_open(hours: tuple[tuple[int, time, time], ...], at: datetime) -> bool:
    """Each interval as a real span of local time: overnight ones end on the next day."""
    local = at.astimezone(SHANGHAI).replace(tzinfo=None)
    for weekday, opens, closes in hours:
        for start_day in (local.date() - timedelta(days=1), local.date()):
            if start_day.weekday() != weekday:
                continue
            if opens == closes:  # open all day on that weekday
                start = datetime.combine(start_day, time(0))
                end = start + timedelta(days=1)
            else:
                start = datetime.combine(start_day, opens)
                end_day = start_day if closes > opens else start_day + timedelta(days=1)
                end = datetime.combine(end_day, closes)
            if start <= local < end:
                return True
    return False


def brute_force_ranking(
    centre: tuple[float, float],
    stores: list[tuple[int, StoreSpec]],
    *,
    limit: int,
    within_m: float | None,
    offers_pickup: bool,
    delivers_here: bool,
    open_now: bool,
    at: datetime,
) -> list[tuple[float, int]]:
    """Every active store's geodesic distance, the filters, sorted by (distance, pk)."""
    ranked = []
    for pk, spec in stores:
        if not spec.is_active or (offers_pickup and not spec.offers_pickup):
            continue
        d = geodesic(centre, (float(spec.latitude), float(spec.longitude))).meters
        if within_m is not None and d > within_m:
            continue
        if delivers_here:
            # A zero radius delivers nowhere, not even to the store's own door.
            radius_m = float(spec.delivery_radius_km) * 1000.0
            if not (spec.delivers and spec.delivery_radius_km > 0 and d <= radius_m):
                continue
        if open_now and not expected_open(spec.hours, at):
            continue
        ranked.append((d, pk))
    ranked.sort()
    return ranked[:limit]


# --- strategies ---------------------------------------------------------------------------------

latitudes = st.floats(-90.0, 90.0)
longitudes = st.floats(-180.0, 180.0)
centres = st.one_of(
    st.tuples(latitudes, longitudes),  # anywhere on earth
    st.tuples(st.floats(-89.9, 89.9), st.floats(179.0, 180.0) | st.floats(-180.0, -179.0)),  # antimeridian
    st.tuples(st.floats(80.0, 90.0) | st.floats(-90.0, -80.0), longitudes),  # high latitudes
    st.builds(
        lambda city, d_lat, d_lng: (city[0] + d_lat, city[1] + d_lng),
        st.sampled_from(CHINA_CITIES),
        st.floats(-0.2, 0.2),
        st.floats(-0.2, 0.2),
    ),
)
clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
intervals = st.one_of(
    st.tuples(st.integers(0, 6), clock_times, clock_times),
    st.tuples(st.integers(0, 6), clock_times).map(lambda wt: (wt[0], wt[1], wt[1])),  # all day
)
weekly_hours = st.lists(intervals, max_size=4, unique_by=lambda i: (i[0], i[1])).map(tuple)
moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.sampled_from([SHANGHAI, UTC])
)
radii_km = st.integers(0, 5000).map(lambda n: Decimal(n).scaleb(-2))


def _on_earth(lat: float, lng: float) -> tuple[Decimal, Decimal]:
    """Rounded to the columns' six decimals, kept inside their ranges."""
    lat_d = min(max(Decimal(f"{lat:.6f}"), Decimal(-90)), Decimal(90))
    lng_d = min(max(Decimal(f"{lng:.6f}"), Decimal(-180)), Decimal(180))
    return lat_d, lng_d


@st.composite
def store_sets(draw, centre: tuple[float, float]) -> list[StoreSpec]:
    """~1-40 stores in clusters: one around the shopper, maybe others around Chinese cities."""
    clusters = [centre, *draw(st.lists(st.sampled_from(CHINA_CITIES), max_size=2))]
    spread_m = draw(st.sampled_from([300.0, 3_000.0, 30_000.0, 1_000_000.0, 20_000_000.0]))
    specs: list[StoreSpec] = []
    for _ in range(draw(st.integers(1, 40))):
        if specs and draw(st.integers(0, 9)) == 0:
            lat, lng = specs[-1].latitude, specs[-1].longitude  # same place: ties break by pk
        else:
            origin = draw(st.sampled_from(clusters))
            distance = draw(st.floats(0.0, spread_m))
            bearing = draw(st.floats(0.0, 360.0))
            p = geodesic(meters=distance).destination(origin, bearing)
            lat, lng = _on_earth(p.latitude, p.longitude)
        specs.append(
            StoreSpec(
                latitude=lat,
                longitude=lng,
                delivery_radius_km=draw(radii_km),
                offers_pickup=draw(st.booleans()),
                delivers=draw(st.booleans()),
                is_active=draw(st.integers(0, 4)) > 0,
                hours=draw(weekly_hours),
            )
        )
    return specs


@st.composite
def searches(draw) -> dict:
    centre = draw(centres)
    return {
        "centre": centre,
        "stores": draw(store_sets(centre)),
        "limit": draw(st.integers(1, 5) | st.integers(1, 100)),
        "within_m": draw(st.none() | st.floats(0.0, 20_000.0) | st.floats(0.0, 21_000_000.0)),
        "offers_pickup": draw(st.booleans()),
        "delivers_here": draw(st.booleans()),
        "open_now": draw(st.booleans()),
        "at": draw(moments),
    }


def create_stores(specs: list[StoreSpec]) -> list[tuple[int, StoreSpec]]:
    stores = Store.objects.bulk_create(
        [
            Store(
                code=f"H{i:03d}",
                name=f"门店{i}",
                address="-",
                city="-",
                latitude=spec.latitude,
                longitude=spec.longitude,
                delivery_radius_km=spec.delivery_radius_km,
                offers_pickup=spec.offers_pickup,
                delivers=spec.delivers,
                is_active=spec.is_active,
            )
            for i, spec in enumerate(specs)
        ]
    )
    OpeningHours.objects.bulk_create(
        [
            OpeningHours(store=store, weekday=weekday, opens_at=opens, closes_at=closes)
            for store, spec in zip(stores, specs, strict=True)
            for weekday, opens, closes in spec.hours
        ]
    )
    return [(store.pk, spec) for store, spec in zip(stores, specs, strict=True)]


# --- the property -------------------------------------------------------------------------------


def _at_the_pole(longitude: str) -> StoreSpec:
    return StoreSpec(
        latitude=Decimal(-90),
        longitude=Decimal(longitude),
        delivery_radius_km=Decimal(3),
        offers_pickup=True,
        delivers=True,
        is_active=True,
        hours=(),
    )


_NO_FILTERS = {
    "offers_pickup": False,
    "delivers_here": False,
    "open_now": False,
    "at": datetime(2025, 6, 2, tzinfo=UTC),
}


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(search=searches())
# At a pole every longitude is the same point: distances there are exactly 0 m.
@example(search={"centre": (-90.0, 0.0), "stores": [_at_the_pole("1")], "limit": 1, "within_m": 0.0, **_NO_FILTERS})
@example(
    search={
        "centre": (-90.0, 0.0),
        "stores": [_at_the_pole("1"), _at_the_pole("0")],
        "limit": 1,
        "within_m": None,
        **_NO_FILTERS,
    }
)
def test_nearest_stores_equal_a_brute_force_geodesic_ranking_of_the_active_stores(search):
    with rolled_back():
        # Given random stores around a random point, with random filters
        stores = create_stores(search["stores"])
        filters = {k: search[k] for k in ("limit", "within_m", "offers_pickup", "delivers_here", "open_now", "at")}

        # When the nearest stores are searched
        found = nearest_stores(*search["centre"], **filters)

        # Then they are exactly the brute-force ranking, with its distances and open states
        expected = brute_force_ranking(search["centre"], stores, **filters)
        assert [n.store.pk for n in found] == [pk for _d, pk in expected]
        for nearby, (distance, _pk) in zip(found, expected, strict=True):
            assert nearby.distance_m == pytest.approx(distance, abs=1e-6)
        specs = dict(stores)
        assert [n.is_open for n in found] == [expected_open(specs[n.store.pk].hours, search["at"]) for n in found]


@pytest.mark.django_db
def test_nearest_stores_never_return_an_inactive_store_even_when_it_is_the_nearest():
    # Given a closed-down store right at the shopper and an active one 1 km away
    StoreFactory(latitude=Decimal("30.274000"), longitude=Decimal("120.155000"), is_active=False)
    active = StoreFactory(latitude=Decimal("30.283000"), longitude=Decimal("120.155000"))

    # When the shopper searches from there
    found = nearest_stores(30.274, 120.155, limit=5)

    # Then only the active store comes back
    assert [n.store for n in found] == [active]


@pytest.mark.django_db
def test_stores_at_the_same_distance_are_ordered_by_id():
    # Given three stores at one address, created in this order
    same_place = {"latitude": Decimal("31.230400"), "longitude": Decimal("121.473700")}
    first, second, third = (StoreFactory(**same_place) for _ in range(3))

    # When the shopper searches from 100 m away, twice
    found = nearest_stores(31.2313, 121.4737, limit=3)
    again = nearest_stores(31.2313, 121.4737, limit=3)

    # Then the tie is broken by id, the same way each time
    assert [n.store for n in found] == [first, second, third]
    assert [n.store for n in again] == [first, second, third]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("shopper", "store_at"),
    [
        ((30.274, 120.155), ("30.274000", "120.155000")),
        # At the pole every longitude is the same point: the store is 0 m away.
        ((90.0, 1.4140625), ("90.000000", "1.414062")),
        ((-90.0, -179.5), ("-90.000000", "20.000000")),
    ],
)
def test_a_store_at_the_shoppers_own_point_is_within_a_zero_metre_radius(shopper, store_at):
    # Given a store exactly where the shopper stands
    store = StoreFactory(latitude=Decimal(store_at[0]), longitude=Decimal(store_at[1]))

    # When the shopper asks for stores within 0 m
    found = nearest_stores(*shopper, within_m=0.0)

    # Then that store is found, 0 m away
    assert [n.store for n in found] == [store]
    assert found[0].distance_m == 0.0


@pytest.mark.django_db
def test_two_stores_at_the_pole_are_both_0_m_away_and_the_older_one_comes_first():
    # Given two stores at the south pole, written with different longitudes (the same point)
    older = StoreFactory(latitude=Decimal("-90"), longitude=Decimal("1.000000"))
    StoreFactory(latitude=Decimal("-90"), longitude=Decimal("0.000000"))

    # When a shopper at the pole asks for the one nearest store
    found = nearest_stores(-90.0, 0.0, limit=1)

    # Then the tie at 0 m is broken by id
    assert [n.store for n in found] == [older]


@pytest.mark.parametrize(
    ("lat", "lng"),
    [
        (91, 0),
        (-90.000001, 0),
        (0, 180.000001),
        (0, -181),
        ("abc", 120),
        (30, "east"),
        ("", ""),
        (None, 120),
        ("nan", 120),
        (30, "inf"),
        ("1e400", 120),
    ],
)
def test_nearest_stores_refuse_out_of_range_or_non_numeric_coordinates_before_reading_anything(lat, lng):
    # Given no database access at all (a query would fail this test)
    # When the search gets a bad point
    with pytest.raises(InvalidCoordinates) as refused:
        nearest_stores(lat, lng)

    # Then the error names the problem with its stable code
    assert refused.value.code == "invalid_coordinates"
    assert refused.value.message
    assert "near" in refused.value.details


@pytest.mark.parametrize("limit", [0, -1, 101, 1000, 2.5, "5", None])
def test_nearest_stores_refuse_a_limit_outside_1_to_100(limit):
    with pytest.raises(ApplicationError) as refused:
        nearest_stores(30.27, 120.15, limit=limit)

    assert refused.value.code == "invalid_limit"
    assert "limit" in refused.value.details


@pytest.mark.parametrize("within_m", [-1.0, float("nan"), float("inf")])
def test_nearest_stores_refuse_a_negative_or_non_finite_radius(within_m):
    with pytest.raises(ApplicationError) as refused:
        nearest_stores(30.27, 120.15, within_m=within_m)

    assert refused.value.code == "invalid_radius"


@pytest.mark.django_db
@pytest.mark.parametrize(("lat", "lng", "limit"), [(90, 180, 1), (-90, -180, 100), (0, 0, 100)])
def test_nearest_stores_accept_the_edges_of_the_coordinate_and_limit_ranges(lat, lng, limit):
    store = StoreFactory(latitude=Decimal("0"), longitude=Decimal("0"))

    found = nearest_stores(lat, lng, limit=limit)

    assert [n.store for n in found] == [store]


# --- opening hours ------------------------------------------------------------------------------


def _at(day_offset: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """A Shanghai time `day_offset` days after Monday 2 June 2025."""
    return datetime.combine(MONDAY + timedelta(days=day_offset), time(hh, mm, ss), tzinfo=SHANGHAI)


def _store_with_hours(weekly: dict[int, list[tuple[time, time]]]) -> Store:
    store = StoreFactory()
    set_opening_hours(store=store, weekly=weekly)
    return store


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        (_at(0, 9, 0), True),
        (_at(0, 20, 59, 59), True),
        (_at(0, 8, 59, 59), False),
        (_at(0, 21, 0), False),
        (_at(1, 10, 0), False),  # Tuesday: no hours that day
    ],
)
def test_a_store_is_open_from_opening_time_until_just_before_closing_time(at, is_open):
    store = _store_with_hours({0: [(time(9), time(21))]})

    assert is_open_at(store, at) is is_open


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("at", "is_open"),
    [
        (_at(4, 22, 0), True),  # Friday evening
        (_at(4, 23, 59), True),
        (_at(5, 0, 0), True),  # Saturday, the early-morning part of Friday's interval
        (_at(5, 1, 59, 59), True),
        (_at(5, 2, 0), False),
        (_at(4, 21, 59), False),
        (_at(4, 1, 0), False),  # Friday early morning belongs to Thursday, which has no hours
        (_at(6, 1, 0), False),  # Sunday early morning: Saturday has no hours
    ],
)
def test_an_interval_closing_at_or_before_its_opening_runs_past_midnight_into_the_next_weekday(at, is_open):
    store = _store_with_hours({4: [(time(22), time(2))]})

    assert is_open_at(store, at) is is_open


@pytest.mark.django_db
def test_a_sunday_night_interval_runs_into_monday_morning():
    store = _store_with_hours({6: [(time(20), time(3))]})

    assert is_open_at(store, _at(6, 23, 0)) is True  # Sunday evening
    assert is_open_at(store, _at(7, 2, 30)) is True  # Monday early morning, after the week wraps
    assert is_open_at(store, _at(7, 3, 0)) is False
    assert is_open_at(store, _at(8, 2, 30)) is False  # Tuesday early morning: Monday has no hours


@pytest.mark.django_db
def test_an_interval_that_closes_when_it_opens_is_open_all_that_day():
    store = _store_with_hours({2: [(time(0), time(0))]})

    assert is_open_at(store, _at(2, 0, 0)) is True
    assert is_open_at(store, _at(2, 12, 0)) is True
    assert is_open_at(store, _at(2, 23, 59, 59)) is True
    assert is_open_at(store, _at(3, 0, 0)) is False
    assert is_open_at(store, _at(1, 23, 59, 59)) is False


@pytest.mark.django_db
@pytest.mark.parametrize("at", [_at(0, 0), _at(2, 12), _at(6, 23, 59)])
def test_a_store_without_opening_hours_is_never_open(at):
    store = StoreFactory()

    assert is_open_at(store, at) is False


@pytest.mark.django_db
def test_opening_hours_are_read_in_shanghai_time_whatever_the_time_zone_of_the_moment():
    # Given a store open Monday 09:00-21:00 in Shanghai (UTC+8)
    store = _store_with_hours({0: [(time(9), time(21))]})

    # Then Monday 02:00 UTC (10:00 in Shanghai) is open, and Monday 14:00 UTC (22:00) is closed
    assert is_open_at(store, datetime(2025, 6, 2, 2, 0, tzinfo=UTC)) is True
    assert is_open_at(store, datetime(2025, 6, 2, 14, 0, tzinfo=UTC)) is False
    # and Sunday 23:30 UTC is already Monday 07:30 in Shanghai: closed, not "Sunday"
    assert is_open_at(store, datetime(2025, 6, 1, 23, 30, tzinfo=UTC)) is False
    assert is_open_at(store, datetime(2025, 6, 2, 1, 0, tzinfo=UTC)) is True


@pytest.mark.django_db
@settings(max_examples=200, deadline=None)
@given(hours=weekly_hours, at=moments)
def test_is_open_at_agrees_with_the_weekly_intervals_laid_out_on_the_calendar(hours, at):
    with rolled_back():
        store = StoreFactory()
        OpeningHours.objects.bulk_create(
            [OpeningHours(store=store, weekday=w, opens_at=o, closes_at=c) for w, o, c in hours]
        )

        assert is_open_at(store, at) is expected_open(hours, at)
