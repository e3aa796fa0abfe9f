"""API keys: shown once and stored hashed; a wrong, revoked or expired key, or a disabled client, is 401;
rotation lets the old key work until the overlap ends."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.urls import reverse

from integrations.models import ApiKey, Scope
from integrations.services import (
    InvalidApiKey,
    authenticate_api_key,
    digest,
    issue_api_key,
    revoke_api_key,
    rotate_api_key,
)
from o2o.errors import ApplicationError
from tests.factories import ApiClientFactory, MemberFactory

pytestmark = pytest.mark.django_db

START = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def points_url():
    return reverse("erp:member-points", kwargs={"member_id": MemberFactory().pk})


def test_a_key_is_its_visible_prefix_and_a_secret_of_which_only_the_digest_is_stored():
    client = ApiClientFactory()

    issued = issue_api_key(client=client)

    prefix, secret = issued.raw.split(".", 1)
    assert prefix.startswith("o2o_") and len(prefix) == 12
    assert len(secret) >= 43  # 256 random bits, URL-safe base64
    key = ApiKey.objects.get(pk=issued.key.pk)
    assert (key.prefix, key.hashed) == (prefix, digest(secret))
    # Nowhere in the key's row, nor in any text column of the table, is the secret itself
    with connection.cursor() as cursor:
        cursor.execute("SELECT prefix, hashed FROM integrations_apikey")
        stored = " ".join(" ".join(row) for row in cursor.fetchall())
    assert secret not in stored


def test_two_keys_never_share_a_secret_or_a_prefix():
    client = ApiClientFactory()

    keys = [issue_api_key(client=client).raw for _ in range(20)]

    assert len({k.split(".")[0] for k in keys}) == 20
    assert len({k.split(".")[1] for k in keys}) == 20


def test_a_valid_key_answers_with_its_client(erp_client, call_erp, points_url):
    client, key = erp_client(Scope.MEMBERS_READ)

    response = call_erp(points_url, key)

    assert response.status_code == 200
    assert authenticate_api_key(raw=key).client == client


def test_the_key_may_also_come_in_the_x_api_key_header(erp_client, api_client, points_url):
    _client, key = erp_client(Scope.MEMBERS_READ)

    response = api_client.get(points_url, HTTP_X_API_KEY=key)

    assert response.status_code == 200


def test_a_call_without_a_key_is_401_missing_api_key_with_the_bearer_scheme(call_erp, points_url):
    response = call_erp(points_url)

    assert response.status_code == 401
    assert response.json()["code"] == "missing_api_key"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # one character of the secret wrong
        lambda key: key.split(".")[0],  # the prefix alone
        lambda key: "o2o_zzzzzzzz." + key.split(".")[1],  # the secret under another prefix
        lambda key: "not a key at all",
        lambda key: key + key,
    ],
    ids=["wrong-secret", "prefix-only", "unknown-prefix", "garbage", "doubled"],
)
def test_a_wrong_key_is_401_invalid_api_key(erp_client, call_erp, points_url, mangle):
    _client, key = erp_client(Scope.MEMBERS_READ)

    response = call_erp(points_url, mangle(key))

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_is_refused_at_once_and_revoking_again_keeps_the_first_date(erp_client, call_erp, points_url):
    client, key = erp_client(Scope.MEMBERS_READ)
    row = client.keys.get()

    revoke_api_key(key=row, at=START)
    revoke_api_key(key=row, at=START + timedelta(days=1))

    response = call_erp(points_url, key)
    assert response.status_code == 401
    assert response.json() == {"code": "invalid_api_key", "message": "This API key was revoked."}
    row.refresh_from_db()
    assert row.revoked_at == START


def test_an_expired_key_is_refused(call_erp, points_url):
    client = ApiClientFactory(scopes=[Scope.MEMBERS_READ])
    with time_machine.travel(START, tick=False):
        key = issue_api_key(client=client, expires_at=START + timedelta(hours=1)).raw
        assert call_erp(points_url, key).status_code == 200

    with time_machine.travel(START + timedelta(hours=1), tick=False):
        response = call_erp(points_url, key)

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


def test_a_disabled_clients_keys_are_all_refused(erp_client, call_erp, points_url):
    client, key = erp_client(Scope.MEMBERS_READ)
    client.is_active = False
    client.save(update_fields=["is_active"])

    response = call_erp(points_url, key)

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"
    with pytest.raises(InvalidApiKey):
        authenticate_api_key(raw=key)


def test_after_a_rotation_the_old_key_works_until_the_overlap_ends_and_the_new_one_after(call_erp, points_url):
    # Given a client with a key in use
    client = ApiClientFactory(scopes=[Scope.MEMBERS_READ])
    with time_machine.travel(START, tick=False):
        old = issue_api_key(client=client).raw

        # When HQ rotates with a 24-hour overlap
        new = rotate_api_key(client=client, overlap=timedelta(hours=24)).raw

        # Then both work now
        assert call_erp(points_url, old).status_code == 200
        assert call_erp(points_url, new).status_code == 200

    # and an instant before the overlap ends, still both
    with time_machine.travel(START + timedelta(hours=24) - timedelta(seconds=1), tick=False):
        assert call_erp(points_url, old).status_code == 200

    # and once it has ended, only the new one
    with time_machine.travel(START + timedelta(hours=24), tick=False):
        assert call_erp(points_url, old).status_code == 401
        assert call_erp(points_url, new).status_code == 200
    old_row = ApiKey.objects.get(prefix=old.split(".")[0])
    assert old_row.expires_at == START + timedelta(hours=24)
    assert ApiKey.objects.get(prefix=new.split(".")[0]).expires_at is None


def test_a_rotation_never_lengthens_a_key_that_expires_sooner_nor_revives_a_revoked_one():
    client = ApiClientFactory()
    soon = issue_api_key(client=client, expires_at=START + timedelta(hours=2)).key
    revoked = revoke_api_key(key=issue_api_key(client=client).key, at=START)

    rotate_api_key(client=client, overlap=timedelta(days=3), at=START)

    soon.refresh_from_db()
    revoked.refresh_from_db()
    assert soon.expires_at == START + timedelta(hours=2)
    assert (revoked.revoked_at, revoked.expires_at) == (START, None)


def test_a_rotation_with_no_overlap_stops_the_old_key_at_once(call_erp, points_url):
    client = ApiClientFactory(scopes=[Scope.MEMBERS_READ])
    old = issue_api_key(client=client).raw

    new = rotate_api_key(client=client, overlap=timedelta(0)).raw

    assert call_erp(points_url, old).status_code == 401
    assert call_erp(points_url, new).status_code == 200


@pytest.mark.parametrize("overlap", [timedelta(seconds=-1), timedelta(days=31)])
def test_an_overlap_out_of_range_is_refused_and_issues_nothing(overlap):
    client = ApiClientFactory()
    key = issue_api_key(client=client).key

    with pytest.raises(ApplicationError) as refused:
        rotate_api_key(client=client, overlap=overlap)

    assert refused.value.code == "invalid_overlap"
    assert list(client.keys.all()) == [key]
    key.refresh_from_db()
    assert key.expires_at is None


def test_a_key_records_when_it_was_last_used_at_most_once_a_minute(erp_client, call_erp, points_url):
    client, key = erp_client(Scope.MEMBERS_READ)
    with time_machine.travel(START, tick=False):
        call_erp(points_url, key)
    with time_machine.travel(START + timedelta(seconds=30), tick=False):
        call_erp(points_url, key)
    assert client.keys.get().last_used_at == START

    with time_machine.travel(START + timedelta(seconds=61), tick=False):
        call_erp(points_url, key)

    assert client.keys.get().last_used_at == START + timedelta(seconds=61)
