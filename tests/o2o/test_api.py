"""The API as a whole: its OpenAPI document, its docs page, and JSON errors for unknown URLs."""

import pytest
from rest_framework import exceptions

from o2o.api.errors import exception_handler

pytestmark = pytest.mark.django_db


def test_the_openapi_document_describes_the_v1_endpoints(client):
    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"]
    assert {"/api/v1/stores/", "/api/v1/stores/{store_id}/", "/api/v1/products/", "/api/v1/stock/"} <= set(
        schema["paths"]
    )
    near = [p for p in schema["paths"]["/api/v1/stores/"]["get"]["parameters"] if p["name"] == "near"]
    assert near, "the near parameter is documented"


def test_the_openapi_document_is_served_as_yaml_by_default(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.")


def test_the_api_docs_page_loads_without_a_cdn(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower()
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html


@pytest.mark.parametrize("url", ["/api/v1/nothing-here/", "/api/v2/stores/", "/api/", "/api/v1/stores/abc/"])
def test_an_unknown_api_url_is_a_404_in_the_apis_json_shape(client, url):
    response = client.get(url)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (exceptions.NotAuthenticated(), "not_authenticated"),
        (exceptions.NotAuthenticated(detail="Send a key.", code="missing_api_key"), "missing_api_key"),
        (exceptions.ParseError(), "malformed_request"),
        (exceptions.Throttled(wait=3, code="rate_limited"), "rate_limited"),
    ],
)
def test_a_drf_error_raised_with_its_own_code_keeps_it_else_gets_the_projects_name(exc, code):
    response = exception_handler(exc, {})

    assert response.data["code"] == code
