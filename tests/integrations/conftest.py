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


@pytest.fixture
def webhook_endpoint(db, settings):
    """Make a webhook endpoint (its client gets the webhooks scope unless `scopes` says otherwise)."""
    from integrations.webhook_endpoints import create_webhook_endpoint

    settings.O2O_WEBHOOK_ALLOW_HTTP_LOOPBACK = True

    def make(*event_types, url="https://erp.example.com/hooks", client=None, stores=(), scopes=("webhooks",)):
        if client is None:
            client = ApiClientFactory(scopes=list(scopes))
        return create_webhook_endpoint(client=client, url=url, event_types=list(event_types), stores=stores)

    return make


@pytest.fixture
def receiver():
    """A receiver listening on loopback for the test's length (see tests/integrations/webhook_receiver.py)."""
    from tests.integrations.webhook_receiver import Receiver

    with Receiver() as running:
        yield running
