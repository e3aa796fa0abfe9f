"""Coordinates (WGS-84 → GCJ-02, search boxes, parsing) and money conversions."""

from decimal import Decimal

import pytest
from geopy.distance import geodesic
from hypothesis import example, given, settings
from hypothesis import strategies as st

from o2o.geo import Box, InvalidCoordinates, Point, bounding_box, parse_point_pair, wgs84_to_gcj02
from o2o.money import fen_to_yuan, format_yuan, yuan_to_fen

# --- WGS-84 → GCJ-02 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "point",
    [
        Point(48.8566, 2.3522),  # Paris
        Point(40.7128, -74.0060),  # New York
        Point(35.6762, 139.6503),  # Tokyo: east of the transform's box
        Point(-33.8688, 151.2093),  # Sydney
        Point(0.5, 103.8),  # south of the box
        Point(56.0, 120.0),  # north of the box
        Point(0.0, 0.0),
    ],
)
def test_a_point_outside_china_is_unchanged_by_the_gcj02_transform(point):
    assert wgs84_to_gcj02(point) == point


@given(
    st.one_of(
        st.builds(Point, st.floats(-90, 90), st.floats(-180, 72.0)),
        st.builds(Point, st.floats(-90, 90), st.floats(137.84, 180)),
        st.builds(Point, st.floats(55.83, 90), st.floats(-180, 180)),
        st.builds(Point, st.floats(-90, 0.82), st.floats(-180, 180)),
    )
)
def test_every_point_outside_the_transforms_box_is_unchanged(point):
    assert wgs84_to_gcj02(point) == point


def test_the_gcj02_transform_gives_the_published_reference_value():
    # The reference vector of the widely used open-source implementation (wandergis/coordtransform).
    converted = wgs84_to_gcj02(Point(39.915, 116.404))

    assert converted.lat == pytest.approx(39.91640428150164, abs=1e-12)
    assert converted.lng == pytest.approx(116.41024449916938, abs=1e-12)


@pytest.mark.parametrize(
    ("city", "wgs", "lat_moves"),
    [
        ("Beijing Tiananmen", Point(39.9087, 116.3975), "north"),
        ("Harbin", Point(45.8038, 126.5350), "north"),
        ("Shanghai People's Square", Point(31.2304, 121.4737), "south"),
        ("Hangzhou", Point(30.2741, 120.1551), "south"),
        ("Guangzhou", Point(23.1291, 113.2644), "south"),
        ("Shenzhen", Point(22.5431, 114.0579), "south"),
    ],
)
def test_inside_eastern_china_gcj02_is_a_few_hundred_metres_east_of_wgs84(city, wgs, lat_moves):
    # When a GPS position in an eastern Chinese city is converted
    gcj = wgs84_to_gcj02(wgs)

    # Then it moves 100-700 m, always east there; north in the north, south in the south-east
    offset_m = geodesic((wgs.lat, wgs.lng), (gcj.lat, gcj.lng)).meters
    assert 100 < offset_m < 700, city
    assert gcj.lng > wgs.lng
    assert (gcj.lat > wgs.lat) if lat_moves == "north" else (gcj.lat < wgs.lat)


@settings(max_examples=300)
@given(st.builds(Point, st.floats(18.0, 53.0), st.floats(73.5, 135.0)))
def test_anywhere_in_the_transforms_china_box_the_offset_stays_under_a_kilometre(wgs):
    gcj = wgs84_to_gcj02(wgs)

    offset_m = geodesic((wgs.lat, wgs.lng), (gcj.lat, gcj.lng)).meters
    assert 0 < offset_m < 1000  # the published transform never moves more than ~0.9 km
    # and in the populated east (east of 105°E, south of 42°N) it stays in the 100-700 m band
    if wgs.lng > 105 and wgs.lat < 42:
        assert 100 < offset_m < 700


# --- bounding boxes -----------------------------------------------------------------------------


# geopy's destination() itself is off by a few ulps (1.0 comes back as 0.9999999999999998);
# 1e-9° is 0.1 mm, a thousand times finer than the stores' six decimals.
_ULPS = 1e-9


def _contains(box: Box, lat: float, lng: float) -> bool:
    if not box.min_lat - _ULPS <= lat <= box.max_lat + _ULPS:
        return False
    if box.covers_all_longitudes:
        return True
    if box.crosses_antimeridian:
        return lng >= box.min_lng - _ULPS or lng <= box.max_lng + _ULPS
    return box.min_lng - _ULPS <= lng <= box.max_lng + _ULPS


box_centres = st.one_of(
    st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
    st.tuples(st.floats(80, 90) | st.floats(-90, -80), st.floats(-180, 180)),
    st.tuples(st.floats(-89, 89), st.floats(179, 180) | st.floats(-180, -179)),
    st.tuples(st.floats(18, 53), st.floats(73, 135)),  # China
)
box_radii = st.one_of(st.floats(0, 5_000), st.floats(0, 100_000), st.floats(0, 3_000_000), st.floats(0, 20_100_000))


@settings(max_examples=500)
@given(centre=box_centres, radius_m=box_radii, bearing=st.floats(0, 360), fraction=st.sampled_from([1.0, 0.5, 0.0]))
@example(centre=(89.9, 0.0), radius_m=20_000.0, bearing=0.0, fraction=1.0)  # across the pole
@example(centre=(0.0, 179.99), radius_m=5_000.0, bearing=90.0, fraction=1.0)  # across the antimeridian
@example(centre=(60.0, -179.99), radius_m=50_000.0, bearing=270.0, fraction=1.0)
@example(centre=(-90.0, 0.0), radius_m=1.0, bearing=0.0, fraction=1.0)
def test_the_search_box_contains_every_point_within_the_radius(centre, radius_m, bearing, fraction):
    # Given a point at geodesic distance radius_m × fraction in some bearing
    reached = geodesic(meters=radius_m * fraction).destination(centre, bearing)

    # When the box for radius_m is built
    box = bounding_box(Point(*centre), radius_m)

    # Then the point is inside it
    assert _contains(box, reached.latitude, reached.longitude), (box, reached)


def test_the_search_box_is_a_narrow_box_away_from_poles_and_antimeridian():
    box = bounding_box(Point(30.0, 120.0), 10_000)

    assert not box.covers_all_longitudes
    assert not box.crosses_antimeridian
    assert 30.08 < box.max_lat < 30.1 and 29.9 < box.min_lat < 29.92
    assert 120.09 < box.max_lng < 120.12 and 119.88 < box.min_lng < 119.91


def test_the_search_box_splits_across_the_antimeridian_and_spans_all_longitudes_at_a_pole():
    across = bounding_box(Point(0.0, 179.99), 10_000)
    polar = bounding_box(Point(89.95, 10.0), 10_000)

    assert across.crosses_antimeridian and across.min_lng > 179 and across.max_lng < -179
    assert polar.covers_all_longitudes and polar.max_lat == 90.0


# --- parsing "lat,lng" --------------------------------------------------------------------------


def test_a_coordinate_pair_is_parsed_with_surrounding_spaces():
    assert parse_point_pair(" 30.2741 , 120.1551 ") == Point(30.2741, 120.1551)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("1", "near"),
        ("", "near"),
        ("1,2,3", "near"),
        ("abc", "near"),
        ("abc,120", "near"),
        ("30,", "near"),
        (",", "near"),
        ("91,0", "near"),
        ("-91,0", "near"),
        ("0,181", "near"),
        ("0,-180.5", "near"),
        ("nan,0", "near"),
        ("0,inf", "near"),
        ("30;120", "position"),
    ],
)
def test_a_bad_coordinate_pair_is_refused_with_the_field_named(text, field):
    with pytest.raises(InvalidCoordinates) as refused:
        parse_point_pair(text, field=field)

    assert refused.value.code == "invalid_coordinates"
    assert refused.value.status == 400
    assert refused.value.message
    assert list(refused.value.details) == [field]


# --- money --------------------------------------------------------------------------------------

fen_amounts = st.integers(-(10**15), 10**15)


@given(fen_amounts)
def test_fen_to_yuan_and_back_is_exact(fen):
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


@given(st.decimals(min_value=-(10**13), max_value=10**13, places=2, allow_nan=False, allow_infinity=False))
def test_yuan_with_at_most_two_decimals_to_fen_and_back_is_exact(yuan):
    fen = yuan_to_fen(yuan)

    assert isinstance(fen, int)
    assert fen_to_yuan(fen) == yuan


@pytest.mark.parametrize(("yuan", "fen"), [("0.01", 1), ("258", 25800), (Decimal("199.90"), 19990), (7, 700)])
def test_yuan_are_converted_to_fen_exactly(yuan, fen):
    assert yuan_to_fen(yuan) == fen


@pytest.mark.parametrize("yuan", ["0.001", "1.005", "258.999", Decimal("0.015")])
def test_yuan_with_more_than_two_decimals_are_refused_not_rounded(yuan):
    with pytest.raises(ValueError, match="more than two decimals"):
        yuan_to_fen(yuan)


@given(st.decimals(places=3, min_value=-(10**9), max_value=10**9).filter(lambda d: d * 100 % 1 != 0))
def test_any_amount_with_a_third_decimal_is_refused(yuan):
    with pytest.raises(ValueError):
        yuan_to_fen(yuan)


@pytest.mark.parametrize(("fen", "text"), [(123450, "¥1,234.50"), (1, "¥0.01"), (0, "¥0.00"), (-2500, "-¥25.00")])
def test_amounts_are_shown_in_yuan_with_two_decimals(fen, text):
    assert format_yuan(fen) == text
