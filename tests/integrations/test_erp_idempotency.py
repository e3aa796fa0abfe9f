"""Every ERP write takes an Idempotency-Key: one effect and one answer per key, whatever the retries.

The write endpoints are read from the erp URL module, so one added later without idempotency fails here.
"""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from integrations.api import urls as erp_urls
from integrations.api.idempotency import ErpWriteApi
from integrations.idempotency import (
    KEY_TTL,
    LEASE,
    IdempotencyInProgress,
    claim_idempotency_key,
    complete_idempotent_request,
    prune_idempotent_requests,
    request_digest,
)
from integrations.models import IdempotentRequest, Scope
from integrations.tasks import prune_idempotent_requests as prune_task
from inventory.models import Stock
from inventory.services import receive_stock
from members.models import PointsEntry
from o2o.beat import BEAT_SCHEDULE
from orders import pos
from orders.models import PosSale
from tests.concurrency import run_at_once
from tests.factories import MemberFactory, SkuFactory, StoreFactory
from tests.integrations.erp_writes import post_erp, returns_url, sale_url

WRITE_METHODS = ["post", "put", "patch", "delete"]


def _body(receipt="R-1", quantity=2, member_id=None):
    body = {
        "receipt_id": receipt,
        "sold_at": "2025-06-02T15:04:05+08:00",
        "lines": [
            {"sku_code": "FH-3-900", "quantity": quantity, "unit_price_fen": 25800, "amount_fen": 25800 * quantity}
        ],
        "total_fen": 25800 * quantity,
    }
    if member_id is not None:
        body["member"] = {"id": member_id}
    return body


@pytest.fixture
def store(db):
    return StoreFactory(code="WS")


@pytest.fixture
def sku(store):
    sku = SkuFactory(code="FH-3-900")
    receive_stock(store=store, sku=sku, quantity=10)
    return sku


@pytest.fixture
def member(db):
    return MemberFactory()


@pytest.fixture
def pos_client(erp_client):
    return erp_client(Scope.SALES_WRITE)


def _on_hand(store, sku) -> int:
    return Stock.objects.get(store=store, sku=sku).on_hand


def test_every_write_endpoint_of_the_erp_api_takes_an_idempotency_key():
    writes = [
        pattern
        for pattern in erp_urls.urlpatterns
        if any(hasattr(pattern.callback.view_class, method) for method in WRITE_METHODS)
    ]

    assert writes  # sales and returns at least
    for pattern in writes:
        assert issubclass(pattern.callback.view_class, ErpWriteApi), f"{pattern.name} writes without idempotency"


# --- the header ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", [sale_url("WS"), returns_url("WS")])
def test_a_write_without_a_key_is_refused_and_changes_nothing(api_client, pos_client, store, sku, url):
    response = api_client.post(url, _body(), format="json", HTTP_AUTHORIZATION=f"Bearer {pos_client[1]}")

    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert not PosSale.objects.exists() and not IdempotentRequest.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["x" * 256, "含中文", "two words"])
def test_a_key_must_be_1_to_255_visible_ascii_characters(api_client, pos_client, store, sku, bad):
    response = post_erp(api_client, sale_url("WS"), _body(), pos_client[1], idempotency_key=bad)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert not PosSale.objects.exists()


@pytest.mark.django_db
def test_a_write_is_json_only(api_client, pos_client, store, sku):
    response = api_client.post(
        sale_url("WS"),
        {"receipt_id": "R-1"},
        format="multipart",
        HTTP_AUTHORIZATION=f"Bearer {pos_client[1]}",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )

    assert response.status_code == 415
    assert not IdempotentRequest.objects.exists()


@pytest.mark.django_db
def test_scope_comes_before_the_key(api_client, erp_client, store):
    _client, key = erp_client(Scope.MEMBERS_READ)

    response = api_client.post(sale_url("WS"), _body(), format="json", HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 403
    assert response.json()["code"] == "missing_scope"


# --- replays ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_replayed_key_has_one_effect_and_the_same_answer(api_client, pos_client, store, sku, member):
    key = str(uuid.uuid4())
    first = post_erp(api_client, sale_url("WS"), _body(member_id=member.pk), pos_client[1], idempotency_key=key)

    again = post_erp(api_client, sale_url("WS"), _body(member_id=member.pk), pos_client[1], idempotency_key=key)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content  # verbatim, not "duplicate": the first answer itself
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert PosSale.objects.count() == 1
    assert _on_hand(store, sku) == 8
    assert PointsEntry.objects.filter(member=member).count() == 1


@pytest.mark.django_db
def test_the_same_body_in_another_spacing_or_key_order_is_the_same_request(api_client, pos_client, store, sku):
    key = str(uuid.uuid4())
    body = _body()
    post_erp(api_client, sale_url("WS"), body, pos_client[1], idempotency_key=key)
    reordered = dict(reversed(list(body.items())))

    again = api_client.post(
        sale_url("WS"),
        data=json.dumps(reordered, indent=4),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {pos_client[1]}",
        HTTP_IDEMPOTENCY_KEY=key,
    )

    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_refusal_is_stored_too_and_the_same_bad_request_gets_the_same_answer(api_client, pos_client, store, sku):
    key = str(uuid.uuid4())
    bad = {**_body(), "total_fen": 1}
    first = post_erp(api_client, sale_url("WS"), bad, pos_client[1], idempotency_key=key)
    again = post_erp(api_client, sale_url("WS"), bad, pos_client[1], idempotency_key=key)

    assert first.status_code == again.status_code == 422
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert not PosSale.objects.exists()


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_refused_and_changes_nothing(api_client, pos_client, store, sku):
    key = str(uuid.uuid4())
    post_erp(api_client, sale_url("WS"), _body(quantity=2), pos_client[1], idempotency_key=key)

    response = post_erp(
        api_client, sale_url("WS"), _body(receipt="R-2", quantity=3), pos_client[1], idempotency_key=key
    )

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert PosSale.objects.count() == 1
    assert _on_hand(store, sku) == 8


@pytest.mark.django_db
def test_the_same_key_on_another_path_is_refused(api_client, pos_client, store, sku):
    key = str(uuid.uuid4())
    StoreFactory(code="GD")
    post_erp(api_client, sale_url("WS"), _body(), pos_client[1], idempotency_key=key)

    response = post_erp(api_client, sale_url("GD"), _body(), pos_client[1], idempotency_key=key)

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"


@pytest.mark.django_db
def test_keys_are_per_client(api_client, erp_client, store, sku):
    key = "pos-0001"
    _one, one_key = erp_client(Scope.SALES_WRITE)
    _two, two_key = erp_client(Scope.SALES_WRITE)

    first = post_erp(api_client, sale_url("WS"), _body("R-1"), one_key, idempotency_key=key)
    second = post_erp(api_client, sale_url("WS"), _body("R-2"), two_key, idempotency_key=key)

    assert (first.status_code, second.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in second
    assert PosSale.objects.count() == 2


@pytest.mark.django_db
def test_a_key_still_in_progress_is_answered_409_with_retry_after_and_never_runs(api_client, pos_client, store, sku):
    client, raw = pos_client
    body = _body()
    digest = request_digest(body=body, query={})
    claim_idempotency_key(client=client, key="k-1", method="POST", path=sale_url("WS"), digest=digest)

    response = post_erp(api_client, sale_url("WS"), body, raw, idempotency_key="k-1")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_in_progress"
    assert int(response["Retry-After"]) >= 1
    assert not PosSale.objects.exists()


@pytest.mark.django_db
def test_a_claim_abandoned_past_its_lease_is_taken_over(api_client, pos_client, store, sku):
    client, raw = pos_client
    body = _body()
    claim_idempotency_key(
        client=client,
        key="k-1",
        method="POST",
        path=sale_url("WS"),
        digest=request_digest(body=body, query={}),
        at=timezone.now() - LEASE - timedelta(seconds=1),
    )

    response = post_erp(api_client, sale_url("WS"), body, raw, idempotency_key="k-1")

    assert response.status_code == 201
    assert PosSale.objects.count() == 1
    assert IdempotentRequest.objects.get().state == "done"


@pytest.mark.django_db
def test_a_request_that_lost_its_claim_rolls_its_write_back(api_client, pos_client, store, sku, monkeypatch):
    # Given a request so slow that a retry took its key over after the lease
    real = pos.record_pos_sale

    def slow(**kwargs):
        recorded = real(**kwargs)
        IdempotentRequest.objects.update(attempt=uuid.uuid4())  # the retry's takeover
        return recorded

    monkeypatch.setattr(pos, "record_pos_sale", slow)

    response = post_erp(api_client, sale_url("WS"), _body(), pos_client[1], idempotency_key="k-1")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_in_progress"
    assert not PosSale.objects.exists()  # the retry that holds the key does the write, once
    assert _on_hand(store, sku) == 10


@pytest.mark.django_db
def test_an_unexpected_error_releases_the_key_so_a_retry_runs(pos_client, store, sku, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(pos, "record_pos_sale", broken)
    api_client = APIClient(raise_request_exception=False)

    failed = post_erp(api_client, sale_url("WS"), _body(), pos_client[1], idempotency_key="k-1")

    assert failed.status_code == 500
    assert not IdempotentRequest.objects.exists()
    monkeypatch.undo()
    retried = post_erp(api_client, sale_url("WS"), _body(), pos_client[1], idempotency_key="k-1")
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried


@pytest.mark.django_db
def test_after_24_hours_a_key_is_new_again(api_client, pos_client, store, sku):
    client, raw = pos_client
    record = claim_idempotency_key(
        client=client,
        key="k-1",
        method="POST",
        path=sale_url("GD"),
        digest="0" * 64,
        at=timezone.now() - KEY_TTL - timedelta(minutes=1),
    )
    complete_idempotent_request(claim=record, status=201, body="{}")

    response = post_erp(api_client, sale_url("WS"), _body(), raw, idempotency_key="k-1")

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert PosSale.objects.count() == 1


@pytest.mark.django_db
def test_keys_older_than_24_hours_are_pruned_nightly(pos_client):
    client, _raw = pos_client
    now = timezone.now()
    for name, age in (("old", KEY_TTL + timedelta(minutes=1)), ("young", KEY_TTL - timedelta(minutes=1))):
        claim_idempotency_key(client=client, key=name, method="POST", path="/", digest="0" * 64, at=now - age)

    assert prune_idempotent_requests(at=now, batch_size=1) == 1
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["young"]
    assert prune_task.delay().get() == 0
    assert {"task": "integrations.prune_idempotent_requests"}.items() <= BEAT_SCHEDULE[
        "prune-idempotent-requests"
    ].items()


@pytest.mark.django_db
def test_a_lost_claim_cannot_store_its_answer(pos_client):
    client, _raw = pos_client
    claim = claim_idempotency_key(client=client, key="k", method="POST", path="/", digest="0" * 64)
    IdempotentRequest.objects.update(attempt=uuid.uuid4())

    with pytest.raises(IdempotencyInProgress):
        complete_idempotent_request(claim=claim, status=201, body="{}")


# --- at the same moment, on real connections -------------------------------------------------------


def _post_from_a_thread(url, body, raw, idempotency_key):
    return lambda: post_erp(APIClient(), url, body, raw, idempotency_key=idempotency_key)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_execute_once(pos_client, store, sku, member):
    _client, raw = pos_client
    body = _body(member_id=member.pk)

    answers, raised = run_at_once([_post_from_a_thread(sale_url("WS"), body, raw, "same-key")] * 4)

    assert not raised
    ran = [a for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a]
    assert len(ran) == 1
    for other in answers:
        if other is not ran[0]:
            assert other.status_code in (201, 409)
            assert other.status_code == 409 or (
                other["Idempotent-Replayed"] == "true" and other.content == ran[0].content
            )
    assert PosSale.objects.count() == 1
    assert _on_hand(store, sku) == 8
    assert PointsEntry.objects.filter(member=member).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_receipt_sent_at_once_under_different_keys_is_one_sale(pos_client, store, sku, member):
    _client, raw = pos_client
    body = _body(member_id=member.pk)

    answers, raised = run_at_once([_post_from_a_thread(sale_url("WS"), body, raw, f"key-{n}") for n in range(4)])

    assert not raised
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert [a.json()["duplicate"] for a in answers].count(False) == 1
    assert PosSale.objects.count() == 1
    assert _on_hand(store, sku) == 8
    member.refresh_from_db()
    assert PointsEntry.objects.filter(member=member).count() == 1
    assert member.points_balance == 516


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_returns_of_one_sale_at_once_never_take_back_more_than_was_sold(pos_client, store, sku, member):
    _client, raw = pos_client
    assert post_erp(APIClient(), sale_url("WS"), _body(member_id=member.pk), raw).status_code == 201
    one = [{"sku_code": "FH-3-900", "quantity": 1, "amount_fen": 25800}]
    returns = [
        {"return_id": f"RT-{n}", "receipt_id": "R-1", "returned_at": "2025-06-03T10:00:00+08:00", "lines": one}
        for n in range(4)
    ]

    answers, raised = run_at_once([_post_from_a_thread(returns_url("WS"), body, raw, None) for body in returns])

    assert not raised
    assert sorted(a.status_code for a in answers) == [201, 201, 422, 422]
    assert _on_hand(store, sku) == 10
    member.refresh_from_db()
    assert member.points_balance == 0
