"""HQ registers clients, issues and rotates keys (each full key shown once), revokes keys, reads the call log."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import ApiCall, ApiClient, ApiKey, Scope
from integrations.services import authenticate_api_key, digest, issue_api_key, record_api_call
from tests.factories import ApiClientFactory, StoreFactory

pytestmark = pytest.mark.django_db

CLIENTS = reverse("admin:integrations_apiclient_changelist")


def _act(admin_client, url, action, objects, **extra):
    return admin_client.post(url, {"action": action, "_selected_action": [o.pk for o in objects], **extra})


def _shown_key(response) -> str:
    html = response.content.decode()
    start = html.index('value="o2o_') + len('value="')
    return html[start : html.index('"', start)]


def test_hq_registers_a_client_with_scopes_stores_and_a_rate(admin_client):
    store = StoreFactory(code="WS")

    response = admin_client.post(
        reverse("admin:integrations_apiclient_add"),
        {
            "name": "文三路店 POS",
            "is_active": "on",
            "scopes": ["followups:read", "members:read"],
            "stores": [store.pk],
            "rate_limit_per_minute": "60",
            "notes": "",
            "keys-TOTAL_FORMS": "0",
            "keys-INITIAL_FORMS": "0",
            "keys-MIN_NUM_FORMS": "0",
            "keys-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    client = ApiClient.objects.get()
    assert client.scopes == ["members:read", "followups:read"]  # stored in the scopes' own order
    assert list(client.stores.all()) == [store]
    assert client.rate_limit_per_minute == 60


def test_an_unknown_scope_is_refused_by_the_form(admin_client):
    response = admin_client.post(
        reverse("admin:integrations_apiclient_add"),
        {"name": "ERP", "scopes": ["members:delete"], "rate_limit_per_minute": "60"},
    )

    assert response.status_code == 200
    assert "scopes" in response.context["adminform"].form.errors
    assert not ApiClient.objects.exists()


def test_issuing_a_key_shows_it_once_and_the_database_keeps_only_its_digest(admin_client, admin_user):
    client = ApiClientFactory(name="总部 ERP", scopes=[Scope.MEMBERS_READ])

    response = _act(admin_client, CLIENTS, "issue_key_action", [client])

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert "will not be shown again" in html
    raw = _shown_key(response)
    key = ApiKey.objects.get(client=client)
    assert raw.startswith(key.prefix + ".")
    assert key.hashed == digest(raw.split(".", 1)[1]) and raw.split(".", 1)[1] not in key.hashed
    assert key.created_by == admin_user
    assert authenticate_api_key(raw=raw) == key
    # Nothing shows it again: the client's page shows the prefix only
    page = admin_client.get(reverse("admin:integrations_apiclient_change", args=[client.pk])).content.decode()
    assert key.prefix in page and raw not in page


def test_rotating_asks_for_the_overlap_then_issues_a_key_and_dates_the_old_ones(admin_client):
    client = ApiClientFactory()
    old = issue_api_key(client=client).key

    form = _act(admin_client, CLIENTS, "rotate_keys_action", [client])
    assert form.status_code == 200
    assert form.context["form"]["overlap_hours"].value() == 24
    before = timezone.now()
    response = _act(admin_client, CLIENTS, "rotate_keys_action", [client], apply="1", overlap_hours="48")

    assert response.status_code == 200
    raw = _shown_key(response)
    new = ApiKey.objects.exclude(pk=old.pk).get(client=client)
    assert raw.startswith(new.prefix + ".")
    old.refresh_from_db()
    assert before + timedelta(hours=48) <= old.expires_at <= timezone.now() + timedelta(hours=48)
    assert new.expires_at is None


def test_an_overlap_beyond_thirty_days_is_a_form_error_and_nothing_changes(admin_client):
    client = ApiClientFactory()
    old = issue_api_key(client=client).key

    response = _act(admin_client, CLIENTS, "rotate_keys_action", [client], apply="1", overlap_hours="721")

    assert response.status_code == 200
    assert "overlap_hours" in response.context["form"].errors
    assert list(ApiKey.objects.filter(client=client)) == [old]


def test_hq_revokes_a_key_from_the_keys_list(admin_client):
    key = issue_api_key(client=ApiClientFactory()).key

    response = _act(admin_client, reverse("admin:integrations_apikey_changelist"), "revoke_keys_action", [key])

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_the_call_log_filters_by_client_and_status(admin_client):
    pos, erp = ApiClientFactory(name="POS"), ApiClientFactory(name="ERP")
    for client, status in [(pos, 200), (pos, 429), (erp, 200)]:
        record_api_call(
            client_id=client.pk,
            key_prefix="o2o_abcdefgh",
            method="GET",
            endpoint="api/v1/erp/members/lookup/",
            path="/api/v1/erp/members/lookup/",
            status_code=status,
            duration_ms=3,
        )
    url = reverse("admin:integrations_apicall_changelist")

    response = admin_client.get(url, {"client__id__exact": pos.pk, "status_code": 429})

    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == list(ApiCall.objects.filter(client=pos, status_code=429))
    assert admin_client.get(reverse("admin:integrations_apicall_add")).status_code == 403
