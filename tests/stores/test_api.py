"""The store API: the list (nearest first from a point), one store, and its errors."""

from datetime import time
from decimal import Decimal

import pytest
from geopy.distance import geodesic

from o2o.geo import Point, wgs84_to_gcj02
from stores.services import set_opening_hours
from tests.factories import StoreFactory

pytestmark = pytest.mark.django_db

LIST = "/api/v1/stores/"
WEST_LAKE = Point(30.2590, 120.1490)  # GCJ-02
ALL_DAY = {day: [(time(0), time(0))] for day in range(7)}


def store_north_of(point: Point, metres: float, **fields):
    reached = geodesic(meters=metres).destination((point.lat, point.lng), 0)
    return StoreFactory(
        latitude=Decimal(f"{reached.latitude:.6f}"), longitude=Decimal(f"{reached.longitude:.6f}"), **fields
    )


def near(point: Point) -> str:
    return f"{point.lat},{point.lng}"


def codes(response) -> list[str]:
    return [item["store"]["code"] for item in response.json()]


def test_without_a_point_the_active_stores_are_listed_by_code_without_distance(api_client):
    StoreFactory(code="B2", name="滨江店")
    StoreFactory(code="A1", name="文三路店")
    StoreFactory(code="A0", is_active=False)

    response = api_client.get(LIST)

    assert response.status_code == 200
    assert codes(response) == ["A1", "B2"]
    first = response.json()[0]
    assert first["distance_m"] is None
    assert first["is_open"] is False  # no opening hours
    assert first["store"]["name"] == "文三路店"
    assert first["store"]["map_url"].startswith("https://uri.amap.com/marker?")


def test_with_a_point_the_stores_come_nearest_first_with_their_distance_in_metres(api_client):
    store_north_of(WEST_LAKE, 2500, code="FAR")
    store_north_of(WEST_LAKE, 300, code="NEAR")
    store_north_of(WEST_LAKE, 900, code="MID")

    response = api_client.get(LIST, {"near": near(WEST_LAKE)})

    assert response.status_code == 200
    assert codes(response) == ["NEAR", "MID", "FAR"]
    assert [item["distance_m"] for item in response.json()] == [300, 900, 2500]


def test_a_browser_position_sent_as_wgs84_is_converted_to_gcj02_first(api_client):
    # Given a store at the GCJ-02 equivalent of a GPS position
    gps = Point(30.2560, 120.1440)
    store_north_of(wgs84_to_gcj02(gps), 0, code="HERE")

    # When the GPS position is sent marked as WGS-84, then unmarked (read as GCJ-02)
    as_wgs84 = api_client.get(LIST, {"near": near(gps), "coord": "wgs84"})
    as_gcj02 = api_client.get(LIST, {"near": near(gps)})

    # Then only the marked one finds the store where the shopper stands
    assert as_wgs84.json()[0]["distance_m"] <= 1
    assert 100 < as_gcj02.json()[0]["distance_m"] < 700


def test_the_list_filters_by_pickup_city_radius_opening_and_delivery_area(api_client):
    # Given stores around West Lake with different services
    pickup = store_north_of(WEST_LAKE, 200, code="PICKUP", city="杭州", delivery_radius_km=Decimal("0.1"))
    store_north_of(WEST_LAKE, 400, code="NOPICK", city="杭州", offers_pickup=False)
    far = store_north_of(WEST_LAKE, 5000, code="FAR", city="杭州", delivery_radius_km=Decimal("10"))
    elsewhere = store_north_of(WEST_LAKE, 600, code="OTHER", city="绍兴", delivers=False)
    for store in (pickup, far, elsewhere):
        set_opening_hours(store=store, weekly=ALL_DAY)
    point = near(WEST_LAKE)

    def found(**params):
        response = api_client.get(LIST, {"near": point, **params})
        assert response.status_code == 200, response.json()
        return codes(response)

    # Then each filter keeps exactly the stores it names
    assert found() == ["PICKUP", "NOPICK", "OTHER", "FAR"]
    assert found(offers_pickup="true") == ["PICKUP", "OTHER", "FAR"]
    assert found(city="杭州") == ["PICKUP", "NOPICK", "FAR"]
    assert found(within_m=1000) == ["PICKUP", "NOPICK", "OTHER"]
    assert found(open_now="true") == ["PICKUP", "OTHER", "FAR"]
    assert found(delivers_here="true") == ["NOPICK", "FAR"]  # PICKUP delivers only 100 m; OTHER not at all
    assert found(limit=2) == ["PICKUP", "NOPICK"]


def test_filters_that_need_a_point_are_refused_without_one(api_client):
    response = api_client.get(LIST, {"open_now": "true"})

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "near" in body["details"]


@pytest.mark.parametrize("bad", ["91,0", "-91,0", "0,181", "abc", "1", "1,2,3", "30,abc", ",", "nan,0"])
def test_bad_coordinates_get_a_400_json_error_with_a_stable_code_and_a_message(api_client, bad):
    response = api_client.get(LIST, {"near": bad})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] in {"invalid_coordinates", "invalid"}
    assert body["message"]
    assert "near" in body["details"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"coord": "bd09"}, "coord"), ({"within_m": 0}, "within_m")],
)
def test_out_of_range_parameters_get_a_400_naming_the_field(api_client, params, field):
    response = api_client.get(LIST, {"near": near(WEST_LAKE), **params})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert field in response.json()["details"]


def test_one_store_is_shown_with_its_opening_hours(api_client):
    store = StoreFactory(code="WS", name="文三路店", phone="0571-88886666")
    set_opening_hours(store=store, weekly={0: [(time(9), time(21))], 5: [(time(22), time(2))]})

    response = api_client.get(f"{LIST}{store.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["code"], body["name"], body["phone"]) == (store.pk, "WS", "文三路店", "0571-88886666")
    assert body["latitude"] == "30.274000"
    assert body["opening_hours"] == [
        {"weekday": 0, "opens_at": "09:00:00", "closes_at": "21:00:00"},
        {"weekday": 5, "opens_at": "22:00:00", "closes_at": "02:00:00"},
    ]


@pytest.mark.parametrize("kind", ["unknown", "inactive"])
def test_an_unknown_or_inactive_store_is_a_404_json_not_found(api_client, kind):
    store_id = StoreFactory(is_active=False).pk if kind == "inactive" else 999_999

    response = api_client.get(f"{LIST}{store_id}/")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert response.json()["message"]


@pytest.mark.parametrize("with_point", [False, True])
def test_the_store_list_reads_a_fixed_number_of_queries_however_many_stores(
    api_client, django_assert_max_num_queries, with_point
):
    # Given 25 stores within a few km, each with a week of opening hours
    for i in range(25):
        store = store_north_of(WEST_LAKE, 100 + i * 50)
        set_opening_hours(store=store, weekly={day: [(time(9), time(21))] for day in range(7)})
    params = {"near": near(WEST_LAKE), "limit": 25} if with_point else {"limit": 25}

    # When the list is read, its queries do not grow with the stores or their hours
    with django_assert_max_num_queries(3):
        response = api_client.get(LIST, params)

    assert len(response.json()) == 25
    assert all(len(item["store"]["opening_hours"]) == 7 for item in response.json())
