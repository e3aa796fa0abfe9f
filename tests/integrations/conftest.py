import pytest

from integrations.services import issue_api_key
from tests.factories import ApiClientFactory


@pytest.fixture
def erp_client():
    """Make an API client with these scopes (and stores, rate, …) and one key: returns (client, full key)."""

    def make(*scopes, stores=(), **fields):
        client = ApiClientFactory(scopes=list(scopes), **fields)
        client.stores.set(stores)
        return client, issue_api_key(client=client).raw

    return make


@pytest.fixture
def call_erp(api_client):
    """GET an ERP endpoint with a key as `Authorization: Bearer <key>`."""

    def get(url, key=None, **params):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
        return api_client.get(url, params, **headers)

    return get
