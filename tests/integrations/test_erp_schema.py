"""The ERP API is in the OpenAPI document: its paths, the bearer key scheme, each operation's scope and examples."""

import pytest
from django.core.management import call_command

from integrations.api import urls as erp_urls

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_every_erp_endpoint_is_documented_with_the_bearer_key_and_its_scope(schema):
    erp_paths = {path: ops for path, ops in schema["paths"].items() if path.startswith("/api/v1/erp/")}
    assert set(erp_paths) == {
        "/api/v1/erp/members/lookup/",
        "/api/v1/erp/members/{member_id}/points/",
        "/api/v1/erp/stores/{store_code}/follow-ups/",
        "/api/v1/erp/stores/{store_code}/sales/",
        "/api/v1/erp/stores/{store_code}/returns/",
        "/api/v1/erp/catalog/products/",
        "/api/v1/erp/prices/",
        "/api/v1/erp/stores/{store_code}/stock/",
        "/api/v1/erp/stores/{store_code}/stock/snapshot/",
        "/api/v1/erp/stores/{store_code}/stock/moves/",
        "/api/v1/erp/stock/changes/",
        "/api/v1/erp/orders/changes/",
        "/api/v1/erp/orders/{number}/status/",
        "/api/v1/erp/members/upsert/",
    }
    assert len(erp_paths) == len(erp_urls.urlpatterns)
    for path, operations in erp_paths.items():
        for operation in operations.values():
            assert operation["security"] == [{"erpApiKey": []}], path
            assert operation["description"].startswith("Scope: `"), path
            assert {"401", "403", "429"} <= set(operation["responses"]), path
            assert operation["responses"]["200"]["content"]["application/json"]["examples"], path


def test_the_key_scheme_is_http_bearer(schema):
    scheme = schema["components"]["securitySchemes"]["erpApiKey"]

    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def test_the_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
