"""A clerk sees and acts on their own store's orders only: another store's order is a 404 on every page and call.

The per-order URLs are read from the console's URL modules, so a URL added later is checked
here without anyone remembering to add it.
"""

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from inventory.models import Stock, StockMove
from inventory.services import receive_stock
from members.models import Purchase
from orders import urls_console
from orders.api import urls_console as api_urls
from orders.api.console import ACTIONS
from orders.dispatch import accept_assignment, decline_assignment, dispatch_order
from orders.fulfilment import confirm_delivery, hand_over, mark_ready, send_out_for_delivery, start_preparing
from orders.models import Assignment, Order, OrderEvent, Refund, Return
from orders.pickup import pickup_token
from orders.services import DeliveryAddress, confirm_payment, place_order, set_cart_quantity
from tests.factories import MemberFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db


def _takes_a_number(pattern) -> bool:
    return "number" in pattern.pattern.converters


ORDER_PAGES = [p.name for p in urls_console.urlpatterns if _takes_a_number(p)]
ORDER_CALLS = [
    (p.name, {"action": action} if "action" in p.pattern.converters else {})
    for p in api_urls.urlpatterns
    if _takes_a_number(p)
    for action in (ACTIONS if "action" in p.pattern.converters else [None])
]
# The URLs without an order: each is checked by a test below.
LIST_PAGES = {"list": ["?tab=new", "?tab=progress", "?tab=done"], "scan": [""]}
LIST_CALLS = {"offers": [""], "orders": ["", "?state=done"], "scan": [""]}

# Only store B (4.4 km north of A; both deliver 3 km) reaches this address.
NEAR_B = DeliveryAddress(
    recipient_name="王芳",
    recipient_phone="13800138000",
    address="杭州市西湖区古墩路 1 号",
    latitude=30.321,
    longitude=120.151,
)
# Both reach this one; A is nearer, so it is offered to A first.
BETWEEN = DeliveryAddress(
    recipient_name="李雷",
    recipient_phone="13900139000",
    address="杭州市西湖区文二路 2 号",
    latitude=30.295,
    longitude=120.150,
)


@pytest.fixture
def store_b(formula):
    other = StoreFactory(code="GD", name="古墩路店", latitude=Decimal("30.320000"), longitude=Decimal("120.150000"))
    receive_stock(store=other, sku=formula, quantity=50)
    return other


@pytest.fixture
def clerk_a(store):
    return StaffFactory(store=store, user=UserFactory(username="ws-clerk"))


@pytest.fixture
def clerk_b(store_b):
    return StaffFactory(store=store_b, user=UserFactory(username="gd-clerk"))


def _paid(sku, **where) -> Order:
    """A new member orders one unit and pays; dispatch offers the order to a store."""
    member = MemberFactory()  # each their own, so no earlier purchase makes a store their usual one
    set_cart_quantity(member=member, sku=sku, quantity=1)
    order = place_order(member=member, **where)
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


@pytest.fixture
def b_orders(store, store_b, formula, clerk_a, clerk_b) -> dict[str, Order]:
    """Store B's orders in every state a clerk can act in, and one store A declined before B took it."""

    def pickup() -> Order:
        return _paid(formula, fulfilment="pickup", pickup_store=store_b)

    def delivery(address=NEAR_B) -> Order:
        return _paid(formula, fulfilment="delivery", delivery=address)

    def prepared() -> Order:
        return start_preparing(staff=clerk_b, order=_accept(delivery(), clerk_b))

    orders = {"offered_pickup": pickup(), "offered_delivery": delivery()}
    orders["accepted"] = _accept(pickup(), clerk_b)
    orders["ready"] = mark_ready(staff=clerk_b, order=_accept(pickup(), clerk_b))
    orders["completed"] = hand_over(staff=clerk_b, order=_accept(pickup(), clerk_b))
    orders["preparing"] = prepared()
    orders["out_for_delivery"] = send_out_for_delivery(staff=clerk_b, order=prepared())
    orders["delivered"] = confirm_delivery(staff=clerk_b, order=send_out_for_delivery(staff=clerk_b, order=prepared()))
    declined = delivery(BETWEEN)
    offer_to_a = Assignment.objects.get(order=declined, store=store, status=Assignment.Status.OFFERED)
    decline_assignment(assignment_id=offer_to_a.pk, staff=clerk_a, user=clerk_a.user, reason="今天没有骑手")
    orders["declined_by_a_accepted_by_b"] = _accept(declined, clerk_b)
    for order in orders.values():
        order.refresh_from_db()
    assert {name: (order.status, order.fulfilling_store_id) for name, order in orders.items()} == {
        "offered_pickup": ("paid", None),
        "offered_delivery": ("assigned", None),
        "accepted": ("accepted", store_b.pk),
        "ready": ("ready", store_b.pk),
        "completed": ("completed", store_b.pk),
        "preparing": ("preparing", store_b.pk),
        "out_for_delivery": ("out_for_delivery", store_b.pk),
        "delivered": ("delivered", store_b.pk),
        "declined_by_a_accepted_by_b": ("accepted", store_b.pk),
    }
    assert Assignment.objects.filter(store=store_b, status="offered").count() == 2
    return orders


def _world() -> dict:
    """Everything a console action could change, anywhere."""
    return {
        "orders": list(
            Order.objects.order_by("pk").values_list(
                "pk", "status", "fulfilling_store_id", "courier_id", "delivered_at", "completed_at"
            )
        ),
        "events": OrderEvent.objects.count(),
        "assignments": list(Assignment.objects.order_by("pk").values_list("pk", "status", "decided_by_id")),
        "stock": list(Stock.objects.order_by("pk").values_list("pk", "on_hand", "reserved")),
        "moves": StockMove.objects.count(),
        "refunds": Refund.objects.count(),
        "returns": Return.objects.count(),
        "purchases": Purchase.objects.count(),
    }


def _form(order: Order) -> dict:
    """A form every action would accept, so that only the scoping can stop it."""
    return {
        "reason": "scoping check",
        "token": "s" * 32,
        "scanned": "1",
        **{f"line-{line.pk}": "1" for line in order.lines.all()},
    }


def _body(order: Order) -> dict:
    return {"reason": "scoping check", "token": "s" * 32, "lines": {str(line.pk): 1 for line in order.lines.all()}}


def _answers(client, url: str, **data) -> dict[str, int]:
    return {method: getattr(client, method)(url, **data).status_code for method in ("get", "post")}


def _taken(answers: dict[str, int]) -> set[int]:
    """The answers to the methods the URL takes (405: a method it does not)."""
    return {status for status in answers.values() if status != 405}


def _console(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def _console_api(user) -> APIClient:
    client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


# --- the URLs this file covers ---------------------------------------------------------------------


def test_every_console_url_without_an_order_is_one_the_list_and_scan_tests_cover():
    pages = {p.name for p in urls_console.urlpatterns if not _takes_a_number(p)}
    calls = {p.name for p in api_urls.urlpatterns if not _takes_a_number(p)}

    assert (pages, calls) == (set(LIST_PAGES), set(LIST_CALLS))
    assert "detail" in ORDER_PAGES and ("order-action", {"action": "accept"}) in ORDER_CALLS


def test_store_b_s_own_clerk_sees_each_of_these_orders(clerk_b, b_orders):
    pages, calls = _console(clerk_b.user), _console_api(clerk_b.user)

    for order in b_orders.values():
        assert pages.get(reverse("console-orders:detail", args=[order.number])).status_code == 200
        assert calls.get(reverse("console_api:order", args=[order.number])).status_code == 200


# --- another store's order: 404, and nothing changes -----------------------------------------------


@pytest.mark.parametrize("name", ORDER_PAGES)
def test_another_store_s_order_is_a_404_on_every_console_page_and_action(clerk_a, b_orders, name):
    client = _console(clerk_a.user)
    before = _world()

    answers = {
        state: _answers(client, reverse(f"console-orders:{name}", args=[order.number]), data=_form(order))
        for state, order in b_orders.items()
    }

    assert {state: got for state, got in answers.items() if _taken(got) != {404}} == {}
    assert _world() == before


@pytest.mark.parametrize(("name", "kwargs"), ORDER_CALLS, ids=[f"{n}-{k.get('action', '')}" for n, k in ORDER_CALLS])
def test_another_store_s_order_is_a_404_on_every_console_api_endpoint(clerk_a, b_orders, name, kwargs):
    client = _console_api(clerk_a.user)
    before = _world()
    refused = {}

    for state, order in b_orders.items():
        url = reverse(f"console_api:{name}", kwargs={"number": order.number, **kwargs})
        for method in ("get", "post"):
            response = getattr(client, method)(url, _body(order), format="json")
            if response.status_code != 405:
                refused[state, method] = (response.status_code, response.json()["code"])

    assert refused and set(refused.values()) == {(404, "order_not_found")}, refused
    assert _world() == before


def test_scanning_another_store_s_order_code_is_a_404_and_changes_nothing(clerk_a, b_orders):
    pages, calls = _console(clerk_a.user), _console_api(clerk_a.user)
    before = _world()
    codes = [(state, pickup_token(order.number)) for state, order in b_orders.items()]
    codes += [(f"{state} typed", o.pickup_code) for state, o in b_orders.items() if o.fulfilment == "pickup"]

    answers = {
        state: (
            pages.post(reverse("console-orders:scan"), {"code": code}).status_code,
            calls.post(reverse("console_api:scan"), {"code": code}, format="json").status_code,
        )
        for state, code in codes
    }

    assert set(answers.values()) == {(404, 404)}, answers
    assert _world() == before


def test_the_console_lists_never_show_another_store_s_orders(store, formula, clerk_a, b_orders):
    receive_stock(store=store, sku=formula, quantity=10)
    offered = _paid(formula, fulfilment="pickup", pickup_store=store)
    in_progress = _accept(_paid(formula, fulfilment="pickup", pickup_store=store), clerk_a)
    done = hand_over(staff=clerk_a, order=_accept(_paid(formula, fulfilment="pickup", pickup_store=store), clerk_a))
    own = {"new": offered.number, "progress": in_progress.number, "done": done.number}
    theirs = {order.number for order in b_orders.values()}
    pages, calls = _console(clerk_a.user), _console_api(clerk_a.user)

    for tab, number in own.items():
        response = pages.get(reverse("console-orders:list"), {"tab": tab})
        html = response.content.decode()
        assert response.status_code == 200 and number in html, tab
        assert [n for n in theirs if n in html] == [], tab
    listed = {
        "offers": [o["number"] for o in calls.get(reverse("console_api:offers")).json()],
        "orders": [o["number"] for o in calls.get(reverse("console_api:orders")).json()],
        "done": [o["number"] for o in calls.get(reverse("console_api:orders"), {"state": "done"}).json()],
    }
    assert listed == {"offers": [own["new"]], "orders": [own["progress"]], "done": [own["done"]]}


# --- who may use the console -----------------------------------------------------------------------


def _every_page(order: Order) -> list[str]:
    lists = [reverse(f"console-orders:{name}") + query for name, queries in LIST_PAGES.items() for query in queries]
    return lists + [reverse(f"console-orders:{name}", args=[order.number]) for name in ORDER_PAGES]


def _every_call(order: Order) -> list[str]:
    lists = [reverse(f"console_api:{name}") + query for name, queries in LIST_CALLS.items() for query in queries]
    return lists + [
        reverse(f"console_api:{name}", kwargs={"number": order.number, **kwargs}) for name, kwargs in ORDER_CALLS
    ]


@pytest.fixture(
    params=["a user without a store", "an HQ superuser", "an inactive clerk of the store", "a clerk of a closed store"]
)
def not_store_staff(request, admin_user, store_b):
    if request.param == "a user without a store":
        return UserFactory(username="customer-service")
    if request.param == "an HQ superuser":
        return admin_user
    if request.param == "an inactive clerk of the store":
        return StaffFactory(store=store_b, is_active=False).user
    closed = StoreFactory(is_active=False)
    return StaffFactory(store=closed).user


def test_a_signed_in_user_who_is_not_store_staff_gets_403_everywhere(not_store_staff, b_orders):
    order = b_orders["accepted"]
    pages, calls = _console(not_store_staff), _console_api(not_store_staff)
    before = _world()

    page_answers = {url: _answers(pages, url, data=_form(order)) for url in _every_page(order)}
    call_answers = {
        (url, method): (response.status_code, response.json()["code"])
        for url in _every_call(order)
        for method in ("get", "post")
        for response in [getattr(calls, method)(url, _body(order), format="json")]
    }

    assert {url: got for url, got in page_answers.items() if set(got.values()) != {403}} == {}
    assert set(call_answers.values()) == {(403, "permission_denied")}, call_answers
    assert _world() == before


def test_anonymous_is_sent_to_the_console_login_and_refused_by_the_api(b_orders):
    order = b_orders["accepted"]
    pages, calls = Client(HTTP_ACCEPT_LANGUAGE="en"), APIClient(HTTP_ACCEPT_LANGUAGE="en")
    before = _world()

    for url in _every_page(order):
        for method in ("get", "post"):
            response = getattr(pages, method)(url, _form(order))
            assert response.status_code == 302, (method, url)
            assert response["Location"].startswith(reverse("console:login") + "?next="), (method, url)
    for url in _every_call(order):
        for method in ("get", "post"):
            response = getattr(calls, method)(url, _body(order), format="json")
            assert (response.status_code, response.json()["code"]) == (403, "not_authenticated"), (method, url)
    assert _world() == before


# --- the new-offers list stays cheap ---------------------------------------------------------------


@pytest.mark.parametrize("offers", [1, 10])
def test_the_new_offers_list_reads_a_fixed_number_of_queries_however_many_offers(
    store, formula, clerk_a, offers, django_assert_max_num_queries
):
    receive_stock(store=store, sku=formula, quantity=10)
    numbers = [_paid(formula, fulfilment="pickup", pickup_store=store).number for _ in range(offers)]
    pages, calls = _console(clerk_a.user), _console_api(clerk_a.user)

    # session, user, staff with store, offers with orders and members, their lines, waiting transfers
    with django_assert_max_num_queries(6):
        page = pages.get(reverse("console-orders:list"), {"tab": "new"})
    # session, user, staff with store, offers with orders and members, their lines, their deadlines
    with django_assert_max_num_queries(6):
        api = calls.get(reverse("console_api:offers"))

    assert all(number in page.content.decode() for number in numbers)
    assert sorted(o["number"] for o in api.json()) == sorted(numbers)
    assert all(o["offer_deadline"] for o in api.json())
