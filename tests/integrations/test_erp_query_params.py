"""Every whole-number query parameter the ERP API documents, walked from the OpenAPI schema itself, so
an endpoint added later is held to the same rule: a value that is not a whole number within the
documented bounds is refused with a 4xx and a machine-readable code, never read as the default."""

import pytest
from django.urls import resolve

from integrations.models import IdempotentRequest, Scope
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db

NOT_WHOLE_NUMBERS = ["", " ", "abc", "1.5", "-3", "0", " 5", "5 ", "+5", "1e3", "٣", "99999999999999999999"]


def _integer_query_parameters(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1/erp/"):
            continue
        for method, operation in operations.items():
            if method != "get":
                continue
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter.get("schema", {}).get("type") == "integer":
                    yield path, parameter["name"], parameter["schema"]


@pytest.fixture
def schema(api_client):
    return api_client.get("/api/schema/?format=json").json()


@pytest.fixture
def key(erp_client):
    StoreFactory(code="WS")
    MemberFactory(phone="13800000001")
    return erp_client(*Scope.values, rate_limit_per_minute=100_000)[1]


def _url(path):
    return path.replace("{store_code}", "WS").replace("{member_id}", "1")


def test_the_walk_finds_the_paged_endpoints(schema):
    found = {(path, name) for path, name, _ in _integer_query_parameters(schema)}
    # If the schema stopped describing these, the walk below would pass while checking nothing.
    assert ("/api/v1/erp/stock/changes/", "page_size") in found
    assert ("/api/v1/erp/orders/changes/", "limit") in found
    assert ("/api/v1/erp/stores/{store_code}/stock/", "page") in found
    assert len(found) >= 6


def test_no_integer_query_parameter_accepts_what_is_not_a_whole_number_in_bounds(schema, key, call_erp):
    accepted = []
    for path, name, bounds in _integer_query_parameters(schema):
        values = list(NOT_WHOLE_NUMBERS)
        if "maximum" in bounds:
            values.append(str(bounds["maximum"] + 1))
        for value in values:
            response = call_erp(_url(path), key, **{name: value})
            if response.status_code < 400 or response.status_code >= 500:
                accepted.append((path, name, value, response.status_code))
            elif response.status_code != 404:
                assert response.json()["code"] in {"invalid", "page_size_too_large", "invalid_cursor"}, (path, name)
    assert accepted == []


def test_an_empty_page_size_is_refused_not_read_as_the_default(key, call_erp):
    response = call_erp("/api/v1/erp/stock/changes/", key, page_size="")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "page_size" in body["details"]
    assert "page_size" in body["message"]


def test_a_page_size_beyond_the_cap_is_422_and_one_within_it_is_served(key, call_erp):
    assert call_erp("/api/v1/erp/stores/WS/stock/", key, page_size="201").status_code == 422
    response = call_erp("/api/v1/erp/stores/WS/stock/", key, page_size="200", page="1")
    assert response.status_code == 200


def _operations(schema):
    for path, operations in schema["paths"].items():
        if path.startswith("/api/v1/erp/"):
            for method, operation in operations.items():
                if method in {"get", "post", "put", "patch", "delete"}:
                    names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
                    yield path, method, names


def _concrete(path):
    return path.replace("{store_code}", "WS").replace("{member_id}", "1").replace("{number}", "X1")


def test_every_endpoint_reads_exactly_the_query_parameters_its_schema_documents(schema):
    operations = list(_operations(schema))
    assert len(operations) >= 14
    for path, _method, documented in operations:
        view = resolve(_concrete(path)).func.view_class
        assert view.query_parameters == documented, path


def test_an_unknown_query_parameter_is_refused_on_every_endpoint_before_anything_is_written(schema, key, api_client):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    for path, method, _documented in _operations(schema):
        url = _concrete(path) + "?curser=abc"
        if method == "get":
            response = api_client.get(url, **headers)
        else:
            response = api_client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{path}", **headers)
        assert response.status_code == 400, (method, path, response.status_code)
        body = response.json()
        assert body["code"] == "invalid"
        assert "curser" in body["details"]
        assert "curser" in body["message"]
    assert not IdempotentRequest.objects.exists()  # refused before the key was claimed


def test_an_unknown_parameter_is_refused_only_after_the_key_is_checked(api_client):
    response = api_client.get("/api/v1/erp/stock/changes/?curser=abc")
    assert response.status_code == 401


def test_atomic_takes_a_boolean_and_refuses_anything_else(key, api_client):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_IDEMPOTENCY_KEY": "atomic-typo"}
    price = {"items": [{"sku_code": "NOPE", "price_fen": 100}]}
    response = api_client.post("/api/v1/erp/prices/?atomic=ture", price, format="json", **headers)
    assert response.status_code == 400
    assert response.json()["details"] == {"atomic": ["ture"]}
    headers["HTTP_IDEMPOTENCY_KEY"] = "atomic-true"
    response = api_client.post("/api/v1/erp/prices/?atomic=TRUE", price, format="json", **headers)
    assert response.status_code == 422  # all or nothing: the unknown SKU refuses the whole batch
    headers["HTTP_IDEMPOTENCY_KEY"] = "atomic-false"
    response = api_client.post("/api/v1/erp/prices/?atomic=0", price, format="json", **headers)
    assert response.status_code == 200  # item by item: the unknown SKU is answered as rejected
