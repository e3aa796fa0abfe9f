"""The POS prints a store's calls of the day: open ones due that day or overdue, with what the clerk needs."""

from datetime import date, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from integrations.models import Scope
from members.models import FollowUp
from tests.factories import FollowUpFactory, MemberFactory, ProductFactory, StaffFactory, StoreFactory

pytestmark = pytest.mark.django_db

DAY = date(2025, 6, 2)


@pytest.fixture
def store():
    return StoreFactory(code="WS")


@pytest.fixture
def key(erp_client):
    return erp_client(Scope.FOLLOWUPS_READ)[1]


def _url(store) -> str:
    return reverse("erp:store-follow-ups", kwargs={"store_code": store.code})


def test_the_calls_of_the_day_are_the_open_ones_due_that_day_or_before_overdue_first(call_erp, key, store):
    # Given calls of the store: overdue, due today, due tomorrow, done; and another store's
    member = MemberFactory(nickname="王芳", phone="+8613800138000")
    guide = StaffFactory(store=store, display_name="李娜")
    formula = ProductFactory(code="FH-3", name="飞鹤星飞帆 3段")
    overdue = FollowUpFactory(
        store=store,
        member=member,
        product=formula,
        guide=guide,
        due_on=DAY - timedelta(days=1),
        runs_out_on=DAY + timedelta(days=4),
    )
    today = FollowUpFactory(store=store, kind="first_use", due_on=DAY)
    FollowUpFactory(store=store, due_on=DAY + timedelta(days=1))
    FollowUpFactory(store=store, due_on=DAY, status=FollowUp.Status.DONE)
    FollowUpFactory(due_on=DAY)

    response = call_erp(_url(store), key, day="2025-06-02")

    assert response.status_code == 200
    body = response.json()
    assert (body["store_code"], body["day"], body["count"]) == ("WS", "2025-06-02", 2)
    assert [c["id"] for c in body["results"]] == [overdue.pk, today.pk]
    assert body["results"][0] == {
        "id": overdue.pk,
        "kind": "replenish",
        "kind_label": "Replenishment call",
        "due_on": "2025-06-01",
        "overdue": True,
        "runs_out_on": "2025-06-06",
        "member_id": member.pk,
        "member_name": "王芳",
        "member_phone": "+8613800138000",
        "product_code": "FH-3",
        "product_name": "飞鹤星飞帆 3段",
        "guide_name": "李娜",
    }
    assert (body["results"][1]["overdue"], body["results"][1]["guide_name"]) == (False, None)


def test_without_a_day_the_list_is_today_s_in_beijing_time(call_erp, key, store):
    # 23:30 UTC on 1 June is 07:30 on 2 June in Beijing
    with time_machine.travel("2025-06-01T23:30:00+00:00", tick=False):
        FollowUpFactory(store=store, due_on=DAY)
        response = call_erp(_url(store), key)
        assert timezone.localdate() == DAY

    assert response.json()["day"] == "2025-06-02"
    assert response.json()["count"] == 1


@pytest.mark.parametrize("day", ["02/06/2025", "2025-13-01", "tomorrow"])
def test_a_day_that_is_no_date_is_400(call_erp, key, store, day):
    response = call_erp(_url(store), key, day=day)

    assert response.status_code == 400
    assert "day" in response.json()["details"]


def test_a_store_that_does_not_exist_is_404(call_erp, key):
    response = call_erp("/api/v1/erp/stores/NOPE/follow-ups/", key)

    assert response.status_code == 404
    assert response.json()["code"] == "store_not_found"


def test_a_store_restricted_client_reads_its_own_store_and_no_other(erp_client, call_erp, store):
    other = StoreFactory(code="GD")
    FollowUpFactory(store=store, due_on=DAY)
    FollowUpFactory(store=other, due_on=DAY)
    _client, key = erp_client(Scope.FOLLOWUPS_READ, stores=[store])

    own = call_erp(_url(store), key, day="2025-06-02")
    refused = call_erp(_url(other), key, day="2025-06-02")

    assert (own.status_code, own.json()["count"]) == (200, 1)
    assert (refused.status_code, refused.json()["code"]) == (404, "store_not_found")


def test_the_list_reads_in_a_bounded_number_of_queries_however_many_calls(
    call_erp, key, store, django_assert_max_num_queries
):
    for n in range(30):
        FollowUpFactory(store=store, due_on=DAY, guide=StaffFactory(store=store) if n % 2 else None)

    # key + client, last use, store, count, page (with member, product, guide), the call log
    with django_assert_max_num_queries(6):
        response = call_erp(_url(store), key, day="2025-06-02", page_size=30)

    assert len(response.json()["results"]) == 30
