"""The ERP's orders: the feed of paid orders and their changes since a cursor, and the fulfilment steps
an ERP that ships reports (through the same rules as a clerk's tap)."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from integrations.models import Scope
from inventory.models import Stock
from inventory.services import receive_stock
from members.models import Purchase
from members.selectors import ledger_sum
from orders.dispatch import accept_assignment, dispatch_order
from orders.fulfilment import hand_over, mark_ready, start_preparing
from orders.models import Assignment, Order, OrderEvent
from orders.services import (
    DeliveryAddress,
    confirm_payment,
    expire_unpaid_orders,
    place_order,
    set_cart_quantity,
)
from tests.factories import MemberFactory, SkuFactory, StaffFactory, StoreFactory, UserFactory
from tests.integrations.erp_writes import post_erp

pytestmark = pytest.mark.django_db

CHANGES = reverse("erp:order-changes")
# The feed hands out only committed changes, so the tests that read it commit their writes.
reads_the_feed = pytest.mark.django_db(transaction=True)
HOME = DeliveryAddress(
    recipient_name="王芳",
    recipient_phone="138 0013 8000",
    address="杭州市西湖区文三路 90 号",
    latitude=30.281,
    longitude=120.151,
)


def _status_url(number: str) -> str:
    return reverse("erp:order-status", kwargs={"number": number})


@pytest.fixture(autouse=True)
def _development_payments(settings):
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""


@pytest.fixture
def store():
    return StoreFactory(code="WS", name="文三路店", latitude=Decimal("30.280000"), longitude=Decimal("120.150000"))


@pytest.fixture
def other_store():
    return StoreFactory(code="GD", name="古墩路店", latitude=Decimal("30.300000"), longitude=Decimal("120.110000"))


@pytest.fixture
def formula(store, other_store):
    sku = SkuFactory(code="FH-XFF-3", product__name="飞鹤星飞帆", spec="800g 3段", price_fen=25800)
    receive_stock(store=store, sku=sku, quantity=20)
    receive_stock(store=other_store, sku=sku, quantity=20)
    return sku


@pytest.fixture
def ws_clerk(store):
    return StaffFactory(store=store, user=UserFactory(username="ws-clerk"), display_name="王小明")


@pytest.fixture
def gd_clerk(other_store):
    return StaffFactory(store=other_store, user=UserFactory(username="gd-clerk"), display_name="李小红")


@pytest.fixture
def member():
    return MemberFactory(phone="+8613800138000", card_number="812345678901")


@pytest.fixture
def erp(api_client):
    """Call the ERP API with a key: erp.get(url, key, **params), erp.post(url, key, body)."""

    class Caller:
        def get(self, url, key, **params):
            return api_client.get(url, params, HTTP_AUTHORIZATION=f"Bearer {key}")

        def post(self, url, key, body):
            return post_erp(api_client, url, body, key)

    return Caller()


# --- building orders -------------------------------------------------------------------------------


def _unpaid(member, sku, quantity=1, **where) -> Order:
    set_cart_quantity(member=member, sku=sku, quantity=quantity)
    return place_order(member=member, **where)


def _paid(member, sku, quantity=1, **where) -> Order:
    order = _unpaid(member, sku, quantity, **where)
    confirm_payment(
        out_trade_no=order.number,
        transaction_id=f"wx-{order.number}",
        amount_fen=order.total_fen,
        paid_at=timezone.now(),
    )
    dispatch_order(order_id=order.pk)  # on_commit does not run in these tests
    return Order.objects.get(pk=order.pk)


def _accept(order: Order, staff) -> Order:
    offer = Assignment.objects.get(order=order, status=Assignment.Status.OFFERED)
    return accept_assignment(assignment_id=offer.pk, staff=staff, user=staff.user)


def _pickup(member, store, sku, staff=None, quantity=1) -> Order:
    order = _paid(member, sku, quantity, fulfilment="pickup", pickup_store=store)
    return _accept(order, staff) if staff else order


def _delivery(member, sku, staff=None, quantity=1) -> Order:
    order = _paid(member, sku, quantity, fulfilment="delivery", delivery=HOME)
    return _accept(order, staff) if staff else order


def _walk(erp, key, cursor=None, limit=None) -> tuple[list[dict], str]:
    """Read the feed until it has nothing more: every page's orders, and the last cursor."""
    pages = []
    while True:
        params = {"limit": limit} if limit else {}
        if cursor:
            params["cursor"] = cursor
        response = erp.get(CHANGES, key, **params)
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append(body["results"])
        cursor = body["cursor"]
        if not body["has_more"]:
            return pages, cursor


def _sessions_holding_the_feed() -> list[tuple]:
    """Other sessions of this database in a writing transaction: they hold the feed back (for a failure's message)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_type, state, backend_xid::text, left(query, 80) FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        )
        return cursor.fetchall()


def _event_ids(pages) -> list[int]:
    return [event["id"] for page in pages for order in page for event in order["events"]]


# --- the feed ------------------------------------------------------------------------------------


@reads_the_feed
def test_the_feed_gives_a_paid_order_as_it_is_now_with_its_changes(erp, erp_client, member, store, formula, ws_clerk):
    _client, key = erp_client(Scope.ORDERS_READ)
    order = _delivery(member, formula, ws_clerk, quantity=2)
    start_preparing(staff=ws_clerk, order=order)

    response = erp.get(CHANGES, key)

    assert response.status_code == 200
    body = response.json()
    assert body["has_more"] is False
    assert len(body["results"]) == 1, _sessions_holding_the_feed()
    [row] = body["results"]
    assert row["number"] == order.number
    assert (row["status"], row["fulfilment"], row["store_code"], row["credited_store_code"]) == (
        "preparing",
        "delivery",
        "WS",
        "WS",  # the first order's store became the member's home store
    )
    assert row["member"] == {"id": member.pk, "card_number": "812345678901", "phone_masked": "138****8000"}
    assert row["lines"] == [
        {
            "sku_code": "FH-XFF-3",
            "product_name": "飞鹤星飞帆",
            "spec": "800g 3段",
            "quantity": 2,
            "unit_price_fen": 25800,
            "line_total_fen": 51600,
        }
    ]
    assert row["amounts"] == {
        "items_fen": 51600,
        "delivery_fee_fen": 0,
        "points_used": 0,
        "points_discount_fen": 0,
        "total_fen": 51600,
        "refunded_fen": 0,
    }
    # The store has the order in hand: it gets the recipient in full, as its clerk does
    assert row["delivery"] == {
        "recipient_name": "王芳",
        "recipient_phone": "+8613800138000",
        "address": "杭州市西湖区文三路 90 号",
    }
    assert row["times"]["paid_at"] and row["times"]["accepted_at"] and row["times"]["completed_at"] is None
    # Every change since payment, in order; the unpaid creation is not one of them
    expected = list(
        OrderEvent.objects.filter(order=order)
        .exclude(to_status="pending_payment")
        .order_by("pk")
        .values_list("pk", "to_status")
    )
    assert [(e["id"], e["to_status"]) for e in row["events"]] == expected
    assert [e["to_status"] for e in row["events"]][-2:] == ["accepted", "preparing"]
    assert row["events"][-1]["actor_type"] == "staff" and row["events"][-1]["actor"] == str(ws_clerk)


@reads_the_feed
def test_unpaid_orders_are_never_in_the_feed(erp, erp_client, member, store, formula, ws_clerk):
    _client, key = erp_client(Scope.ORDERS_READ)
    waiting = _unpaid(member, formula, fulfilment="pickup", pickup_store=store)
    expired = _unpaid(MemberFactory(), formula, fulfilment="pickup", pickup_store=store)
    Order.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    expire_unpaid_orders()
    paid = _pickup(MemberFactory(), store, formula)

    pages, _cursor = _walk(erp, key)

    assert Order.objects.get(pk=expired.pk).status == Order.Status.EXPIRED
    numbers = [order["number"] for page in pages for order in page]
    assert numbers == [paid.number]
    assert waiting.number not in numbers


@reads_the_feed
def test_a_client_restricted_to_a_store_sees_only_the_orders_its_store_fulfils_or_hands_over(
    erp, erp_client, member, store, other_store, formula, ws_clerk, gd_clerk
):
    _client, key = erp_client(Scope.ORDERS_READ, stores=[store])
    picked_up_here = _pickup(member, store, formula)  # not yet accepted: the pickup store sees it
    delivered_by_us = _delivery(MemberFactory(), formula, ws_clerk)
    theirs = _pickup(MemberFactory(), other_store, formula, gd_clerk)

    pages, _cursor = _walk(erp, key)

    numbers = {order["number"] for page in pages for order in page}
    assert numbers == {picked_up_here.number, delivered_by_us.number}
    assert theirs.number not in numbers


@reads_the_feed
def test_the_recipient_is_given_only_while_the_store_has_the_delivery_in_hand(
    erp, erp_client, member, store, formula, ws_clerk
):
    _client, key = erp_client(Scope.ORDERS_READ)
    offered = _delivery(member, formula)  # not accepted yet

    [[row]], _cursor = _walk(erp, key)

    assert row["number"] == offered.number
    assert row["status"] == "assigned"
    assert row["delivery"] is None
    assert row["store_code"] is None


@reads_the_feed
def test_paging_hands_out_every_change_exactly_once_and_later_changes_on_the_next_call(
    erp, erp_client, member, store, formula, ws_clerk
):
    _client, key = erp_client(Scope.ORDERS_READ)
    first = _pickup(member, store, formula, ws_clerk)
    second = _delivery(MemberFactory(), formula, ws_clerk)
    start_preparing(staff=ws_clerk, order=second)
    mark_ready(staff=ws_clerk, order=first)
    feedable = set(OrderEvent.objects.exclude(to_status="pending_payment").values_list("pk", flat=True))
    assert len(feedable) > 6

    pages, cursor = _walk(erp, key, limit=2)

    assert len(pages) >= 4
    assert all(len({order["number"] for order in page}) == len(page) for page in pages)  # each order once a page
    ids = _event_ids(pages)
    assert sorted(ids) == sorted(feedable)
    assert len(ids) == len(set(ids))

    # Nothing new: an empty page, and the cursor does not go back
    again = erp.get(CHANGES, key, cursor=cursor).json()
    assert again["results"] == []

    # Changes made after the last page come on the next call, and only they
    hand_over(staff=ws_clerk, order=first)
    later, _cursor = _walk(erp, key, cursor=again["cursor"])
    [[row]] = later
    assert row["number"] == first.number
    assert row["status"] == "completed"
    assert [e["to_status"] for e in row["events"]] == ["completed"]


def test_a_limit_above_500_is_refused_not_shrunk_and_a_foreign_cursor_is_400(erp, erp_client):
    _client, key = erp_client(Scope.ORDERS_READ)

    too_large = erp.get(CHANGES, key, limit=501)
    not_a_number = erp.get(CHANGES, key, limit="many")
    forged = erp.get(CHANGES, key, cursor="not-ours")

    assert (too_large.status_code, too_large.json()["code"]) == (422, "page_size_too_large")
    assert (not_a_number.status_code, not_a_number.json()["code"]) == (400, "invalid")
    assert (forged.status_code, forged.json()["code"]) == (400, "invalid_cursor")
    assert erp.get(CHANGES, key, limit=500).status_code == 200


def test_a_misspelt_cursor_is_refused_rather_than_restarting_the_feed(erp, erp_client):
    _client, key = erp_client(Scope.ORDERS_READ)

    response = erp.get(CHANGES, key, curser="MTo1OjA")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "curser" in response.json()["details"]


@reads_the_feed
def test_the_feed_reads_a_page_in_a_fixed_number_of_queries(
    erp, erp_client, member, store, formula, ws_clerk, django_assert_max_num_queries
):
    _client, key = erp_client(Scope.ORDERS_READ, stores=[store])
    for _ in range(6):
        order = _delivery(MemberFactory(), formula, ws_clerk)
        start_preparing(staff=ws_clerk, order=order)

    # key, rate (cache), client stores, horizon (3), events, orders, lines, call log, last-used
    with django_assert_max_num_queries(12):
        response = erp.get(CHANGES, key)

    assert len(response.json()["results"]) == 6


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_change_still_being_written_holds_the_cursor_back_so_none_is_skipped(
    erp, erp_client, member, store, formula, ws_clerk
):
    # Given two accepted orders, and the feed read to its end
    _client, key = erp_client(Scope.ORDERS_READ)
    slow = _delivery(member, formula, ws_clerk)
    quick = _delivery(MemberFactory(), formula, ws_clerk)
    _pages, cursor = _walk(erp, key)

    # When a transaction writes a change of one order and has not committed yet,
    # while a later change of the other order commits
    written, release = threading.Event(), threading.Event()
    failures = []

    def slow_writer():
        from django.db import connections

        try:
            with transaction.atomic():
                start_preparing(staff=ws_clerk, order=slow.number)
                written.set()
                release.wait(timeout=60)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
            written.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert written.wait(timeout=60)
        start_preparing(staff=ws_clerk, order=quick.number)  # commits, with a later event id
        during = erp.get(CHANGES, key, cursor=cursor).json()
    finally:
        release.set()
        thread.join()
    assert not failures

    # Then the committed change waits behind the one in flight, and the next call brings both, once
    after, _cursor = _walk(erp, key, cursor=during["cursor"])
    ids = [e["id"] for o in during["results"] for e in o["events"]] + _event_ids(after)
    preparing = list(OrderEvent.objects.filter(to_status="preparing").values_list("pk", flat=True))
    assert sorted(ids) == sorted(preparing)
    assert len(ids) == len(set(ids)) == 2
    assert during["results"] == []


# --- fulfilment steps ------------------------------------------------------------------------------


@pytest.fixture
def shipping_erp(erp_client, store):
    """A client of the WS store that the chain lets ship."""
    client, key = erp_client(
        Scope.ORDERS_READ, Scope.ORDERS_WRITE, stores=[store], may_fulfil_orders=True, name="文三路 ERP"
    )
    return client, key


def test_an_erp_that_ships_moves_a_delivery_through_the_clerks_rules(
    erp, shipping_erp, member, store, formula, ws_clerk
):
    _client, key = shipping_erp
    order = _delivery(member, formula, ws_clerk, quantity=2)
    on_hand_before = Stock.objects.get(store=store, sku=formula).on_hand

    answers = [
        erp.post(_status_url(order.number), key, {"status": status})
        for status in ("preparing", "out_for_delivery", "delivered")
    ]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[-1].json() == {"number": order.number, "status": "delivered", "changed": True}
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED and order.delivered_at and order.courier is None
    # The reserved goods left the store when it went out, as when a clerk sends it
    stock = Stock.objects.get(store=store, sku=formula)
    assert (stock.on_hand, stock.reserved) == (on_hand_before - 2, 0)
    moves = list(order.events.filter(actor_type="erp").values_list("to_status", "actor_label"))
    assert moves == [("preparing", "文三路 ERP"), ("out_for_delivery", "文三路 ERP"), ("delivered", "文三路 ERP")]


def test_reporting_the_status_an_order_already_has_changes_nothing(erp, shipping_erp, member, store, formula, ws_clerk):
    _client, key = shipping_erp
    order = _delivery(member, formula, ws_clerk)
    erp.post(_status_url(order.number), key, {"status": "preparing"})
    events = order.events.count()

    again = erp.post(_status_url(order.number), key, {"status": "preparing"})

    assert again.status_code == 200
    assert again.json() == {"number": order.number, "status": "preparing", "changed": False}
    assert order.events.count() == events


def test_an_erp_handing_over_a_pickup_order_earns_the_points_a_clerks_hand_over_does(
    erp, shipping_erp, store, formula, ws_clerk
):
    # Given two members with the same pickup order, one handed over by the clerk, one by the ERP
    by_clerk, by_erp = MemberFactory(), MemberFactory()
    clerk_order = _pickup(by_clerk, store, formula, ws_clerk)
    erp_order = _pickup(by_erp, store, formula, ws_clerk)
    hand_over(staff=ws_clerk, order=clerk_order)
    _client, key = shipping_erp

    ready = erp.post(_status_url(erp_order.number), key, {"status": "ready"})
    done = erp.post(_status_url(erp_order.number), key, {"status": "completed", "note": "收银台 3"})

    assert (ready.status_code, done.status_code) == (200, 200)
    by_clerk.refresh_from_db()
    by_erp.refresh_from_db()
    assert by_erp.points_balance == by_clerk.points_balance > 0
    assert ledger_sum(by_erp) == by_erp.points_balance
    assert Purchase.objects.filter(member=by_erp, store=store, reference=erp_order.number).exists()
    erp_order.refresh_from_db()
    assert erp_order.status == Order.Status.COMPLETED
    last = erp_order.events.order_by("pk").last()
    assert (last.actor_type, last.reason) == ("erp", "收银台 3")  # the note follows the move


def test_a_client_the_chain_does_not_let_ship_is_refused_and_nothing_moves(
    erp, erp_client, member, store, formula, ws_clerk
):
    _client, key = erp_client(Scope.ORDERS_WRITE, stores=[store])
    order = _delivery(member, formula, ws_clerk)

    response = erp.post(_status_url(order.number), key, {"status": "preparing"})

    assert response.status_code == 403
    assert response.json()["code"] == "fulfilment_not_allowed"
    order.refresh_from_db()
    assert order.status == Order.Status.ACCEPTED


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("delivery", "completed"),  # only the shopper or the timer completes a delivery
        ("delivery", "ready"),
        ("delivery", "delivered"),  # not sent out yet
        ("pickup", "preparing"),
        ("pickup", "out_for_delivery"),
        ("offered", "ready"),  # no store accepted it yet
    ],
)
def test_a_move_the_order_does_not_allow_is_409_and_changes_nothing(
    erp, shipping_erp, member, store, formula, ws_clerk, kind, status
):
    _client, key = shipping_erp
    order = {
        "delivery": lambda: _delivery(member, formula, ws_clerk),
        "pickup": lambda: _pickup(member, store, formula, ws_clerk),
        "offered": lambda: _pickup(member, store, formula),
    }[kind]()
    before = (order.status, order.events.count())

    response = erp.post(_status_url(order.number), key, {"status": status})

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "illegal_transition"
    order.refresh_from_db()
    assert (order.status, order.events.count()) == before


def test_another_stores_order_is_not_found_as_an_unknown_one(erp, shipping_erp, member, other_store, formula, gd_clerk):
    _client, key = shipping_erp
    theirs = _pickup(member, other_store, formula, gd_clerk)

    other = erp.post(_status_url(theirs.number), key, {"status": "ready"})
    unknown = erp.post(_status_url("9999999999999999"), key, {"status": "ready"})

    assert other.status_code == unknown.status_code == 404
    assert other.json() == unknown.json()
    assert other.json()["code"] == "order_not_found"
    theirs.refresh_from_db()
    assert theirs.status == Order.Status.ACCEPTED


def test_an_unknown_status_is_400(erp, shipping_erp, member, store, formula, ws_clerk):
    _client, key = shipping_erp
    order = _delivery(member, formula, ws_clerk)

    response = erp.post(_status_url(order.number), key, {"status": "cancelled"})

    assert response.status_code == 400
    assert "status" in response.json()["details"]
