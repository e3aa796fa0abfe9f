"""Calling the ERP API's writes in tests: a key, and an Idempotency-Key (a new one unless given)."""

import uuid


def post_erp(api_client, url: str, body, key: str, idempotency_key: str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    headers["HTTP_IDEMPOTENCY_KEY"] = idempotency_key or str(uuid.uuid4())
    return api_client.post(url, body, format="json", **headers)


def sale_url(store_code: str) -> str:
    return f"/api/v1/erp/stores/{store_code}/sales/"


def returns_url(store_code: str) -> str:
    return f"/api/v1/erp/stores/{store_code}/returns/"
