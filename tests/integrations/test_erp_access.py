"""What a client may reach, how often, and the log of every call.

The endpoints are read from the erp URL module, so an endpoint added later is checked here
(its scope, its store restriction) without anyone remembering to add it.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from integrations.api import urls as erp_urls
from integrations.api.permissions import WINDOW_SECONDS, HasScope
from integrations.models import ApiCall, ApiKey, Scope
from integrations.services import prune_api_calls, revoke_api_key
from integrations.tasks import prune_api_calls as prune_api_calls_task
from tests.factories import MemberFactory, StoreFactory

pytestmark = pytest.mark.django_db

METHODS = ["get", "post", "put", "patch", "delete"]
ENDPOINTS = [
    (pattern, method)
    for pattern in erp_urls.urlpatterns
    for method in METHODS
    if hasattr(pattern.callback.view_class, method)
]
STORE_ENDPOINTS = [(p, m) for p, m in ENDPOINTS if "store_code" in p.pattern.converters]
ALL_SCOPES = list(Scope.values)
START = datetime(2025, 6, 2, 1, 0, 5, tzinfo=UTC)


def _id(endpoint) -> str:
    pattern, method = endpoint
    return f"{method.upper()} {pattern.name}"


@pytest.fixture
def store():
    return StoreFactory(code="WS")


@pytest.fixture
def other_store():
    return StoreFactory(code="GD")


@pytest.fixture
def member(store):
    return MemberFactory(home_store=store, home_store_source="store_qr")


def _url(pattern, *, store, member) -> str:
    values = {"store_code": store.code, "member_id": member.pk, "number": "2506020000000001"}
    return reverse(f"erp:{pattern.name}", kwargs={name: values[name] for name in pattern.pattern.converters})


def _call(api_client, method: str, url: str, key: str):
    # A valid lookup query for GET; writes send an empty JSON body (their validation is not the point here)
    # under a new Idempotency-Key.
    params = {"phone": "13800138000"} if method == "get" and url.endswith("/lookup/") else {}
    send = getattr(api_client, method)
    if method == "get":
        return send(url, params, HTTP_AUTHORIZATION=f"Bearer {key}")
    return send(url, {}, format="json", HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))


def test_the_erp_api_has_endpoints_and_each_declares_a_known_scope():
    assert ENDPOINTS
    for pattern, _method in ENDPOINTS:
        assert pattern.callback.view_class.required_scope in Scope.values, pattern.name


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_id)
def test_every_endpoint_refuses_a_client_lacking_its_scope(erp_client, api_client, store, member, endpoint):
    # Given a client with every scope but the one this endpoint requires
    pattern, method = endpoint
    required = pattern.callback.view_class.required_scope
    _client, key = erp_client(*[s for s in ALL_SCOPES if s != required])
    calls_before = ApiCall.objects.count()

    response = _call(api_client, method, _url(pattern, store=store, member=member), key)

    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "missing_scope"
    assert required in body["message"]
    assert ApiCall.objects.count() == calls_before + 1  # refused, and logged


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_id)
def test_every_endpoint_admits_a_client_with_only_its_scope(erp_client, api_client, store, member, endpoint):
    pattern, method = endpoint
    _client, key = erp_client(pattern.callback.view_class.required_scope)

    response = _call(api_client, method, _url(pattern, store=store, member=member), key)

    assert response.status_code not in (401, 403), response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_id)
def test_every_endpoint_refuses_a_call_without_a_key(api_client, store, member, endpoint):
    pattern, method = endpoint

    response = getattr(api_client, method)(_url(pattern, store=store, member=member))

    assert response.status_code == 401
    assert response.json()["code"] == "missing_api_key"


def test_a_view_that_forgot_its_scope_refuses_everyone(erp_client, rf):
    client, _key = erp_client(*ALL_SCOPES)
    request = rf.get("/")
    request.auth = client

    class Forgetful:
        required_scope = None

    assert HasScope().has_permission(request, Forgetful()) is False


@pytest.mark.parametrize("endpoint", STORE_ENDPOINTS, ids=_id)
def test_a_client_restricted_to_stores_finds_every_other_store_missing(
    erp_client, api_client, store, other_store, member, endpoint
):
    # Given a client with every scope, restricted to store WS
    pattern, method = endpoint
    _client, key = erp_client(*ALL_SCOPES, stores=[store])

    own = _call(api_client, method, _url(pattern, store=store, member=member), key)
    other = _call(api_client, method, _url(pattern, store=other_store, member=member), key)
    unknown = _call(api_client, method, _url(pattern, store=StoreFactory.build(code="NOPE"), member=member), key)

    assert own.status_code not in (403, 404)
    # Another store answers exactly as a store that does not exist: nothing is learnt from it
    assert other.status_code == unknown.status_code == 404
    assert other.json() == unknown.json()
    assert other.json()["code"] == "store_not_found"


@pytest.mark.parametrize("endpoint", STORE_ENDPOINTS, ids=_id)
def test_a_client_without_a_store_list_reaches_every_active_store(
    erp_client, api_client, store, other_store, member, endpoint
):
    pattern, method = endpoint
    _client, key = erp_client(*ALL_SCOPES)
    closed = StoreFactory(code="OLD", is_active=False)

    assert _call(api_client, method, _url(pattern, store=other_store, member=member), key).status_code not in (403, 404)
    assert _call(api_client, method, _url(pattern, store=closed, member=member), key).status_code == 404


# --- the rate limit ------------------------------------------------------------------------------


def test_a_client_beyond_its_rate_gets_429_with_retry_after_until_the_minute_ends(erp_client, call_erp, member):
    client, key = erp_client(Scope.MEMBERS_READ, rate_limit_per_minute=3)
    url = reverse("erp:member-points", kwargs={"member_id": member.pk})
    cache.delete(f"erp-rate:{client.pk}:{int(START.timestamp()) // WINDOW_SECONDS}")

    with time_machine.travel(START, tick=False):  # 5 s into a minute
        answers = [call_erp(url, key).status_code for _ in range(3)]
        refused = call_erp(url, key)

    assert answers == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert refused["Retry-After"] == "55"
    assert ApiCall.objects.filter(client=client, status_code=429).count() == 1

    # The next minute the client may call again
    with time_machine.travel(START + timedelta(seconds=55), tick=False):
        assert call_erp(url, key).status_code == 200


def test_the_rate_is_counted_per_client(erp_client, call_erp, member):
    url = reverse("erp:member-points", kwargs={"member_id": member.pk})
    busy, busy_key = erp_client(Scope.MEMBERS_READ, rate_limit_per_minute=1)
    _calm, calm_key = erp_client(Scope.MEMBERS_READ, rate_limit_per_minute=1)
    at = START + timedelta(minutes=10)
    cache.delete(f"erp-rate:{busy.pk}:{int(at.timestamp()) // WINDOW_SECONDS}")
    cache.delete(f"erp-rate:{_calm.pk}:{int(at.timestamp()) // WINDOW_SECONDS}")

    with time_machine.travel(at, tick=False):
        assert call_erp(url, busy_key).status_code == 200
        assert call_erp(url, busy_key).status_code == 429
        assert call_erp(url, calm_key).status_code == 200


# --- the call log --------------------------------------------------------------------------------


def test_every_call_is_logged_with_its_client_key_endpoint_status_and_duration(erp_client, call_erp, member):
    client, key = erp_client(Scope.MEMBERS_READ)
    prefix = key.split(".")[0]
    points = reverse("erp:member-points", kwargs={"member_id": member.pk})
    lookup = reverse("erp:member-lookup")

    call_erp(points, key)  # 200
    call_erp(lookup, key, phone="13800000000")  # 404: nobody has this number
    call_erp(points)  # 401: no key

    calls = list(ApiCall.objects.order_by("pk"))
    assert [(c.client, c.key_prefix, c.method, c.path, c.status_code) for c in calls] == [
        (client, prefix, "GET", points, 200),
        (client, prefix, "GET", lookup, 404),
        (None, "", "GET", points, 401),
    ]
    assert calls[0].endpoint == "api/v1/erp/members/<int:member_id>/points/"
    assert all(c.duration_ms >= 0 and c.at is not None for c in calls)
    assert "13800000000" not in calls[1].path  # the query string, which may hold a phone, is not kept


def test_a_refused_call_with_a_revoked_key_is_logged_under_its_client(erp_client, call_erp, member):
    client, key = erp_client(Scope.MEMBERS_READ)
    revoke_api_key(key=ApiKey.objects.get(client=client))

    response = call_erp(reverse("erp:member-points", kwargs={"member_id": member.pk}), key)

    assert response.status_code == 401
    logged = ApiCall.objects.get()
    assert (logged.client, logged.key_prefix, logged.status_code) == (client, key.split(".")[0], 401)


def test_an_unknown_url_under_the_erp_api_is_a_json_404_and_is_logged(erp_client, call_erp):
    _client, key = erp_client(*ALL_SCOPES)

    response = call_erp("/api/v1/erp/nothing-here/", key)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert ApiCall.objects.get().path == "/api/v1/erp/nothing-here/"


def test_other_api_calls_are_not_logged(api_client):
    api_client.get("/api/v1/stores/")

    assert not ApiCall.objects.exists()


def test_calls_older_than_the_retention_are_pruned(erp_client, call_erp, member):
    url = reverse("erp:member-points", kwargs={"member_id": member.pk})
    with time_machine.travel(START, tick=False):
        call_erp(url)
    with time_machine.travel(START + timedelta(days=89), tick=False):
        call_erp(url)

    pruned = prune_api_calls(older_than=timedelta(days=90), at=START + timedelta(days=90, seconds=1), batch_size=1)

    assert pruned == 1
    assert list(ApiCall.objects.values_list("at", flat=True)) == [START + timedelta(days=89)]


def test_the_nightly_task_keeps_the_configured_number_of_days(settings):
    settings.O2O_API_CALL_LOG_DAYS = 30
    now = timezone.now()
    for age in (31, 29):
        ApiCall.objects.create(
            method="GET",
            endpoint="e",
            path="/api/v1/erp/",
            status_code=200,
            duration_ms=1,
            at=now - timedelta(days=age),
        )

    assert prune_api_calls_task.delay().get() == 1

    assert ApiCall.objects.count() == 1
