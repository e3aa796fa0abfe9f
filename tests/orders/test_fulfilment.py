"""A store fulfils the orders it accepted: pickup handover by scanning, delivery, returns, cancelling, HQ's queue."""

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from inventory.models import Stock, StockMove
from inventory.services import receive_stock
from members.models import Purchase
from members.selectors import ledger_sum
from members.session import MEMBER_SESSION_KEY
from o2o.errors import ApplicationError
from o2o.events import subscribe, unsubscribe
from orders.dispatch import accept_assignment, decline_assignment, dispatch_order
from orders.fulfilment import (
    complete_delivered_orders,
    confirm_delivery,
    hand_over,
    mark_ready,
    return_at_store,
    send_out_for_delivery,
    start_preparing,
)
from orders.models import Assignment, MallSettings, Order, OrderEvent, Refund, Return
from orders.pickup import pickup_token
from orders.selectors import forget_mall_settings
from orders.services import DeliveryAddress, confirm_payment, place_order, set_cart_quantity, transition_order
from tests.factories import SkuFactory, StaffFactory, StoreFactory, UserFactory

pytestmark = pytest.mark.django_db

SCAN_PAGE = reverse("console-orders:scan")
SCAN_API = reverse("console_api:scan")
# About 140 m from the `store` fixture, inside its 3 km radius.
HOME = DeliveryAddress(
    recipient_name="王芳",
    recipient_phone="138 0013 8000",
    address="杭州市西湖区文三路 90 号",
    latitude=30.281,
    longitude=120.151,
)
FULL_PHONE, MASKED_PHONE = "+8613800138000", "138****8000"


@pytest.fixture(autouse=True)
def _development_payments(development_payments):
    """Refunds go through the payment adapter's development gateway."""


@pytest.fixture
def ws_clerk(store):
    return StaffFactory(store=store, user=UserFactory(username="ws-clerk"), display_name="王小明")


@pytest.fixture
def other_store(formula):
    other = StoreFactory(code="GD", name="古墩路店", latitude=Decimal("30.300000"), longitude=Decimal("120.110000"))
    receive_stock(store=other, sku=formula, quantity=10)
    return other


@pytest.fixture
def gd_clerk(other_store):
    return StaffFactory(store=other_store, user=UserFactory(username="gd-clerk"), display_name="李小红")


@pytest.fixture
def milk(store):
    sku = SkuFactory(product__name="伊利金领冠", spec="900g 2段", price_fen=19900)
    receive_stock(store=store, sku=sku, quantity=10)
    return sku


@pytest.fixture
def console(client, ws_clerk):
    client.force_login(ws_clerk.user)
    return client


@pytest.fixture
def console_api(api_client, ws_clerk):
    api_client.force_login(ws_clerk.user)
    return api_client


@pytest.fixture
def returned_events():
    """Every `order.returned` published, as its payload, seen inside the publishing transaction."""
    seen = []

    def handler(**payload):
        seen.append(payload)

    subscribe("order.returned", handler, when="transaction")
    yield seen
    unsubscribe("order.returned", handler)


# --- building orders -------------------------------------------------------------------------------


def _paid(member, lines, **where) -> Order:
    """The member orders `lines` (sku → quantity), pays, and dispatch offers the order to a store."""
    for sku, quantity in lines.items():
        set_cart_quantity(member=member, sku=sku, quantity=quantity)
    order = place_order(member=member, **where)
    confirm_payment(
        out_trade_no=order.number,
        transaction_id=f"wx-{order.number}",
        amount_fen=order.total_fen,
        paid_at=timezone.now(),
    )
    dispatch_order(order_id=order.pk)  # on_commit does not run in these tests
    return Order.objects.get(pk=order.pk)


def _pickup(member, store, lines) -> Order:
    return _paid(member, lines, fulfilment="pickup", pickup_store=store)


def _delivery(member, lines) -> Order:
    return _paid(member, lines, fulfilment="delivery", delivery=HOME)


def _accept(order: Order, staff) -> Order:
    offer = Assignment.objects.get(order=order, status=Assignment.Status.OFFERED)
    return accept_assignment(assignment_id=offer.pk, staff=staff, user=staff.user)


def _collected(member, store, staff, lines) -> Order:
    order = _accept(_pickup(member, store, lines), staff)
    mark_ready(staff=staff, order=order)
    return hand_over(staff=staff, order=order)


def _out_for_delivery(member, staff, lines) -> Order:
    order = _accept(_delivery(member, lines), staff)
    start_preparing(staff=staff, order=order)
    return send_out_for_delivery(staff=staff, order=order)


def _delivered(member, staff, lines) -> Order:
    return confirm_delivery(staff=staff, order=_out_for_delivery(member, staff, lines))


def _stock(store, sku) -> tuple[int, int]:
    row = Stock.objects.get(store=store, sku=sku)
    return row.on_hand, row.reserved


def _world(order: Order) -> dict:
    """Everything an action on the order could change."""
    order.refresh_from_db()
    return {
        "order": (order.status, order.fulfilling_store_id, order.courier_id, order.completed_at),
        "events": order.events.count(),
        "assignments": sorted(order.assignments.values_list("pk", "status")),
        "stock": sorted(Stock.objects.values_list("store_id", "sku_id", "on_hand", "reserved")),
        "moves": StockMove.objects.count(),
        "refunds": Refund.objects.count(),
        "returns": Return.objects.count(),
        "purchases": Purchase.objects.count(),
    }


def _timeline(order: Order) -> list[tuple[str, str, str, str]]:
    return list(
        OrderEvent.objects.filter(order=order)
        .order_by("pk")
        .values_list("from_status", "to_status", "actor_type", "actor_label")
    )


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]
    return body


def _page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def _detail(order: Order) -> str:
    return reverse("console-orders:detail", args=[order.number])


def _action(order: Order, name: str) -> str:
    return reverse(f"console-orders:{name}", args=[order.number])


def _api_action(order: Order, action: str) -> str:
    return reverse("console_api:order-action", args=[order.number, action])


def _api_returns(order: Order) -> str:
    return reverse("console_api:order-returns", args=[order.number])


def _signed_in_member(client, member):
    session = client.session
    session[MEMBER_SESSION_KEY] = member.pk
    session.save()
    return client


# --- pickup ----------------------------------------------------------------------------------------


def test_a_paid_pickup_order_is_offered_to_its_pickup_store_and_its_clerk_accepts_it(
    console, member, store, formula, ws_clerk
):
    order = _pickup(member, store, {formula: 2})

    offer = Assignment.objects.get(order=order)
    assert (offer.store, offer.basis, offer.status) == (store, Assignment.Basis.PICKUP, Assignment.Status.OFFERED)
    assert offer.deadline == offer.offered_at + timedelta(minutes=60)
    assert order.number in _page(console, reverse("console-orders:list") + "?tab=new")

    response = console.post(_action(order, "accept"))

    assert response.status_code == 302 and response["Location"] == _detail(order)
    order.refresh_from_db()
    offer.refresh_from_db()
    assert (order.status, order.fulfilling_store) == (Order.Status.ACCEPTED, store)
    assert (offer.status, offer.decided_by) == (Assignment.Status.ACCEPTED, ws_clerk.user)


def test_a_ready_order_s_qr_scanned_at_the_counter_offers_the_handover(
    console, console_api, member, store, formula, ws_clerk
):
    order = _accept(_pickup(member, store, {formula: 2}), ws_clerk)
    assert console.post(_action(order, "ready")).status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.READY

    page = console.post(SCAN_PAGE, {"code": pickup_token(order.number)})
    api = console_api.post(SCAN_API, {"code": pickup_token(order.number)}, format="json")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="confirm-handover"' in html and f'action="{_action(order, "hand-over")}"' in html
    assert api.status_code == 200, api.content
    assert api.json()["action"] == "hand_over"
    assert (api.json()["order"]["number"], api.json()["order"]["status"]) == (order.number, "ready")


def test_the_typed_six_digit_pickup_code_finds_the_order_as_the_qr_does(
    console, console_api, member, store, formula, ws_clerk
):
    order = _accept(_pickup(member, store, {formula: 2}), ws_clerk)

    page = console.post(SCAN_PAGE, {"code": order.pickup_code})
    api = console_api.post(SCAN_API, {"code": order.pickup_code}, format="json")

    assert page.status_code == 200 and 'id="confirm-handover"' in page.content.decode()
    assert (api.json()["action"], api.json()["order"]["number"]) == ("hand_over", order.number)


def test_the_handover_completes_the_order_consumes_exactly_the_reserved_stock_and_records_the_purchase(
    console, member, store, formula, milk, ws_clerk
):
    order = _accept(_pickup(member, store, {formula: 2, milk: 3}), ws_clerk)
    mark_ready(staff=ws_clerk, order=order)
    assert (_stock(store, formula), _stock(store, milk)) == ((10, 2), (10, 3))

    response = console.post(_action(order, "hand-over"))

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED and order.completed_at is not None
    assert (_stock(store, formula), _stock(store, milk)) == ((8, 0), (7, 0))
    consumed = StockMove.objects.filter(kind=StockMove.Kind.CONSUME).order_by("sku_id")
    assert [(m.store_id, m.sku_id, m.on_hand_delta, m.reserved_delta, m.reference) for m in consumed] == [
        (store.pk, sku.pk, -units, -units, f"order:{order.number}")
        for sku, units in sorted([(formula, 2), (milk, 3)], key=lambda pair: pair[0].pk)
    ]
    purchase = Purchase.objects.get()
    assert (purchase.member, purchase.store, purchase.channel) == (member, store, Purchase.Channel.ONLINE)
    assert (purchase.reference, purchase.amount_fen) == (order.number, order.total_fen)
    # Members keep what was bought, for segments by product
    assert sorted(purchase.lines.values_list("product_id", "quantity", "amount_fen")) == sorted(
        [(formula.product_id, 2, 2 * formula.price_fen), (milk.product_id, 3, 3 * milk.price_fen)]
    )


def test_purchases_completed_before_lines_were_kept_get_their_order_s_lines_from_the_backfill(
    member, store, formula, milk, ws_clerk
):
    # Given a completed order whose purchase was recorded without lines
    order = _collected(member, store, ws_clerk, {formula: 2, milk: 1})
    purchase = Purchase.objects.get()
    purchase.lines.all().delete()

    # When the migration's backfill runs
    from django.apps import apps

    importlib.import_module("orders.migrations.0004_backfill_purchase_lines").backfill(apps, None)

    # Then the purchase holds the order's lines, and running it again adds nothing
    assert sorted(purchase.lines.values_list("product_id", "quantity")) == sorted(
        [(formula.product_id, 2), (milk.product_id, 1)]
    )
    importlib.import_module("orders.migrations.0004_backfill_purchase_lines").backfill(apps, None)
    assert purchase.lines.count() == 2
    assert order.status == Order.Status.COMPLETED


def test_a_handover_before_the_order_was_marked_ready_writes_both_moves(member, store, formula, ws_clerk):
    order = _accept(_pickup(member, store, {formula: 1}), ws_clerk)

    hand_over(staff=ws_clerk, order=order)

    assert _timeline(order)[-2:] == [
        ("accepted", "ready", "staff", str(ws_clerk)),
        ("ready", "completed", "staff", str(ws_clerk)),
    ]


def test_a_second_scan_of_a_collected_order_says_already_collected_and_changes_nothing(
    console, console_api, member, store, formula, ws_clerk
):
    order = _collected(member, store, ws_clerk, {formula: 2})
    before = _world(order)

    page = console.post(SCAN_PAGE, {"code": pickup_token(order.number)})
    api = console_api.post(SCAN_API, {"code": pickup_token(order.number)}, format="json")
    again = console_api.post(_api_action(order, "hand-over"), {}, format="json")

    assert page.status_code == 409 and 'data-code="already_collected"' in page.content.decode()
    assert "Already collected on" in _assert_error(api, 409, "already_collected")["message"]
    _assert_error(again, 409, "already_collected")
    assert _world(order) == before


def test_another_store_s_order_code_is_a_404_naming_that_store(
    console, console_api, member, formula, other_store, gd_clerk
):
    theirs = _accept(_pickup(member, other_store, {formula: 1}), gd_clerk)
    before = _world(theirs)

    for code in (pickup_token(theirs.number), theirs.pickup_code):
        body = _assert_error(console_api.post(SCAN_API, {"code": code}, format="json"), 404, "order_of_another_store")
        assert body["message"] == "This order belongs to 古墩路店."
        assert body["details"] == {"store": ["GD"]}
    page = console.post(SCAN_PAGE, {"code": pickup_token(theirs.number)})
    assert page.status_code == 404 and "This order belongs to 古墩路店." in page.content.decode()
    assert _world(theirs) == before


def _tampered(token: str) -> str:
    head, signature = token.rsplit(":", 1)
    return f"{head}:{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda number: signing.dumps({"o": number}, salt="orders.pickup", key="x" * 50), id="wrong-key"),
        pytest.param(lambda number: signing.dumps({"o": number}, salt="elsewhere", compress=True), id="wrong-salt"),
        pytest.param(lambda number: _tampered(pickup_token(number)), id="tampered-signature"),
        pytest.param(lambda number: "hello, world", id="garbage"),
        pytest.param(lambda number: "12345", id="five-digits"),
    ],
)
def test_a_forged_or_garbage_code_is_refused_as_bad_code(console, console_api, member, store, formula, ws_clerk, forge):
    order = _accept(_pickup(member, store, {formula: 1}), ws_clerk)
    code = forge(order.number)

    _assert_error(console_api.post(SCAN_API, {"code": code}, format="json"), 400, "bad_code")
    page = console.post(SCAN_PAGE, {"code": code})
    assert page.status_code == 400 and 'data-code="bad_code"' in page.content.decode()


def test_only_a_clerk_of_the_pickup_store_can_confirm_the_handover(
    api_client, console, member, store, formula, ws_clerk, gd_clerk
):
    order = _accept(_pickup(member, store, {formula: 2}), ws_clerk)
    mark_ready(staff=ws_clerk, order=order)
    before = _world(order)
    elsewhere = Client(HTTP_ACCEPT_LANGUAGE="en")
    elsewhere.force_login(gd_clerk.user)
    api_client.force_login(gd_clerk.user)

    assert elsewhere.post(_action(order, "hand-over")).status_code == 404
    _assert_error(api_client.post(_api_action(order, "hand-over"), {}, format="json"), 404, "order_not_found")
    with pytest.raises(ApplicationError) as refused:
        hand_over(staff=gd_clerk, order=order.number)

    assert refused.value.status == 404
    assert _world(order) == before
    assert console.post(_action(order, "hand-over")).status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED


def test_every_move_of_a_pickup_order_writes_an_event_with_from_to_and_actor(member, store, formula, ws_clerk):
    order = _collected(member, store, ws_clerk, {formula: 2})

    clerk = str(ws_clerk)
    assert _timeline(order) == [
        ("", "pending_payment", "member", str(member)),
        ("pending_payment", "paid", "payment", f"wx-{order.number}"),
        ("paid", "paid", "system", ""),  # offered to the pickup store: a note, not a move
        ("paid", "accepted", "staff", clerk),
        ("accepted", "ready", "staff", clerk),
        ("ready", "completed", "staff", clerk),
    ]


# --- delivery --------------------------------------------------------------------------------------


def test_a_delivery_is_prepared_then_sent_out_with_its_courier_and_only_then_leaves_the_stock(
    console_api, member, store, formula, ws_clerk
):
    order = _accept(_delivery(member, {formula: 2}), ws_clerk)
    assert (order.status, order.fulfilling_store) == (Order.Status.ACCEPTED, store)

    prepared = console_api.post(_api_action(order, "prepare"), {}, format="json")

    assert prepared.status_code == 200 and prepared.json()["status"] == "preparing"
    assert _stock(store, formula) == (10, 2)
    assert not StockMove.objects.filter(kind=StockMove.Kind.CONSUME).exists()

    sent = console_api.post(_api_action(order, "send-out"), {}, format="json")

    assert sent.status_code == 200 and sent.json()["status"] == "out_for_delivery"
    order.refresh_from_db()
    assert order.courier == ws_clerk
    assert _stock(store, formula) == (8, 0)
    consumed = StockMove.objects.get(kind=StockMove.Kind.CONSUME)
    assert (consumed.on_hand_delta, consumed.reserved_delta, consumed.reference) == (-2, -2, order.reference)


def test_the_clerk_confirms_a_delivery(console, member, formula, ws_clerk):
    order = _out_for_delivery(member, ws_clerk, {formula: 1})

    assert console.post(_action(order, "delivered")).status_code == 302

    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED and order.delivered_at is not None
    assert _timeline(order)[-1] == ("out_for_delivery", "delivered", "staff", str(ws_clerk))


def test_scanning_the_shopper_s_qr_at_the_door_offers_to_confirm_the_delivery(
    console, console_api, member, formula, ws_clerk
):
    order = _out_for_delivery(member, ws_clerk, {formula: 1})

    api = console_api.post(SCAN_API, {"code": pickup_token(order.number)}, format="json")
    page = console.post(SCAN_PAGE, {"code": pickup_token(order.number)})

    assert api.status_code == 200 and api.json()["action"] == "confirm_delivery"
    html = page.content.decode()
    assert 'id="confirm-delivery"' in html and f'action="{_action(order, "delivered")}"' in html
    assert console.post(_action(order, "delivered"), {"scanned": "1"}).status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert order.events.order_by("pk").last().reason == "order QR scanned at the door"
    _assert_error(
        console_api.post(SCAN_API, {"code": pickup_token(order.number)}, format="json"), 409, "already_delivered"
    )


def test_the_shopper_confirming_receipt_completes_the_delivery_and_records_the_purchase(
    client, member, store, formula, ws_clerk
):
    order = _delivered(member, ws_clerk, {formula: 2})

    response = _signed_in_member(client, member).post(reverse("orders:confirm-receipt", args=[order.number]))

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED
    assert _timeline(order)[-1] == ("delivered", "completed", "member", str(member))
    purchase = Purchase.objects.get()
    assert (purchase.store, purchase.channel, purchase.reference) == (store, "online", order.number)


def test_a_delivered_order_completes_by_itself_once_hq_s_auto_complete_hours_pass(member, store, formula, ws_clerk):
    MallSettings.objects.update_or_create(pk=1, defaults={"auto_complete_hours": 2})
    forget_mall_settings()
    order = _delivered(member, ws_clerk, {formula: 1})

    early = complete_delivered_orders(now=order.delivered_at + timedelta(hours=2) - timedelta(seconds=1))
    order.refresh_from_db()
    assert (early, order.status) == (0, Order.Status.DELIVERED)

    due = complete_delivered_orders(now=order.delivered_at + timedelta(hours=2))

    order.refresh_from_db()
    assert (due, order.status) == (1, Order.Status.COMPLETED)
    assert _timeline(order)[-1] == ("delivered", "completed", "system", "")
    assert Purchase.objects.get().store == store


def test_every_move_of_a_delivery_writes_an_event_with_from_to_and_actor(client, member, formula, ws_clerk):
    order = _delivered(member, ws_clerk, {formula: 1})
    _signed_in_member(client, member).post(reverse("orders:confirm-receipt", args=[order.number]))

    clerk = str(ws_clerk)
    assert _timeline(order) == [
        ("", "pending_payment", "member", str(member)),
        ("pending_payment", "awaiting_dispatch", "payment", f"wx-{order.number}"),
        ("awaiting_dispatch", "assigned", "system", ""),
        ("assigned", "accepted", "staff", clerk),
        ("accepted", "preparing", "staff", clerk),
        ("preparing", "out_for_delivery", "staff", clerk),
        ("out_for_delivery", "delivered", "staff", clerk),
        ("delivered", "completed", "member", str(member)),
    ]


@pytest.mark.parametrize(("action", "status"), [("send-out", "accepted"), ("delivered", "accepted")])
def test_a_move_out_of_order_is_a_409_that_changes_nothing(
    console, console_api, member, formula, ws_clerk, action, status
):
    order = _accept(_delivery(member, {formula: 1}), ws_clerk)
    before = _world(order)

    body = _assert_error(console_api.post(_api_action(order, action), {}, format="json"), 409, "wrong_status")
    page = console.post(_action(order, action), follow=True)

    assert body["details"] == {"status": [status]}
    assert page.status_code == 200 and body["message"] in page.content.decode()
    assert _world(order) == before


def test_the_state_machine_refuses_an_illegal_move_and_records_no_event(member, formula, ws_clerk):
    order = _accept(_delivery(member, {formula: 1}), ws_clerk)
    before = _world(order)

    with pytest.raises(ApplicationError) as refused:
        transition_order(order=order, to=Order.Status.DELIVERED, actor_type=OrderEvent.Actor.STAFF)

    assert (refused.value.code, refused.value.status) == ("illegal_transition", 409)
    assert _world(order) == before


def test_the_customer_s_phone_is_masked_until_the_store_accepts_and_shown_in_full_while_in_progress(
    console, console_api, member, formula, ws_clerk
):
    order = _delivery(member, {formula: 1})
    api_url = reverse("console_api:order", args=[order.number])

    def shown() -> tuple[str, str]:
        page = _page(console, _detail(order))
        in_page = FULL_PHONE if FULL_PHONE in page else (MASKED_PHONE if MASKED_PHONE in page else "")
        return in_page, console_api.get(api_url).json()["phone"]

    assert shown() == (MASKED_PHONE, MASKED_PHONE)  # offered, not accepted
    _accept(order, ws_clerk)
    assert shown() == (FULL_PHONE, FULL_PHONE)
    start_preparing(staff=ws_clerk, order=order)
    send_out_for_delivery(staff=ws_clerk, order=order)
    assert shown() == (FULL_PHONE, FULL_PHONE)
    confirm_delivery(staff=ws_clerk, order=order)
    assert shown() == (MASKED_PHONE, MASKED_PHONE)  # handed over


# --- returns at the store --------------------------------------------------------------------------


def _return_form(order: Order, token: str, quantities: dict) -> dict:
    lines = {line.sku_id: line for line in order.lines.all()}
    return {
        "token": token,
        "reason": "尺寸不合适",
        **{f"line-{lines[sku.pk].pk}": str(q) for sku, q in quantities.items()},
    }


def test_a_partial_return_restores_exactly_the_returned_units_and_refunds_their_price(
    console, member, store, formula, milk, ws_clerk, returned_events, django_capture_on_commit_callbacks
):
    order = _collected(member, store, ws_clerk, {formula: 2, milk: 1})
    assert (_stock(store, formula), _stock(store, milk)) == ((8, 0), (9, 0))

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(_action(order, "return"), _return_form(order, "a" * 32, {formula: 1}))

    assert response.status_code == 302 and response["Location"] == _detail(order)
    assert (_stock(store, formula), _stock(store, milk)) == ((9, 0), (9, 0))
    back = StockMove.objects.get(kind=StockMove.Kind.RETURN)
    assert (back.store, back.sku, back.on_hand_delta, back.reserved_delta) == (store, formula, 1, 0)
    assert back.reference == order.reference
    record = Return.objects.get()
    assert (record.store, record.amount_fen, record.received_by) == (store, 25800, ws_clerk.user)
    refund = Refund.objects.get()
    assert (refund.amount_fen, refund.payment.order) == (25800, order)
    assert refund.status == Refund.Status.SUCCEEDED and refund.refund_id == f"dev-refund-{refund.out_refund_no}"
    formula_line = order.lines.get(sku=formula)
    assert returned_events == [
        {"order_id": order.pk, "return_id": record.pk, "amount_fen": 25800, "lines": {str(formula_line.pk): 1}}
    ]
    order.refresh_from_db()
    assert order.status == Order.Status.COMPLETED


def test_the_same_return_form_sent_twice_restores_stock_once_and_refunds_once(
    console, member, store, formula, ws_clerk, returned_events
):
    order = _collected(member, store, ws_clerk, {formula: 2})
    form = _return_form(order, "b" * 32, {formula: 1})

    first = console.post(_action(order, "return"), form)
    second = console.post(_action(order, "return"), form)

    assert (first.status_code, second.status_code) == (302, 302)
    assert _stock(store, formula) == (9, 0)
    assert StockMove.objects.filter(kind=StockMove.Kind.RETURN).count() == 1
    assert (Return.objects.count(), Refund.objects.count(), len(returned_events)) == (1, 1, 1)


def test_returning_more_than_was_sold_is_refused_and_changes_nothing(
    console, console_api, member, store, formula, ws_clerk, returned_events
):
    order = _collected(member, store, ws_clerk, {formula: 2})
    line = order.lines.get()
    before = _world(order)

    api = console_api.post(_api_returns(order), {"token": "c" * 32, "lines": {str(line.pk): 3}}, format="json")
    page = console.post(_action(order, "return"), _return_form(order, "d" * 32, {formula: 3}))

    assert _assert_error(api, 400, "return_exceeds_sold")["details"] == {"line": [line.pk]}
    assert page.status_code == 400 and "At most 2 of" in page.content.decode()
    assert _world(order) == before and returned_events == []


def test_returning_the_rest_completes_the_return_and_the_refunds_add_up_to_what_was_paid_with_the_fee(
    console, member, store, ws_clerk, returned_events
):
    cheap = SkuFactory(product__name="婴儿湿巾", spec="80抽", price_fen=1500)
    receive_stock(store=store, sku=cheap, quantity=10)
    order = _delivered(member, ws_clerk, {cheap: 2})
    assert (order.items_fen, order.delivery_fee_fen, order.total_fen) == (3000, 800, 3800)

    console.post(_action(order, "return"), _return_form(order, "e" * 32, {cheap: 1}))
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    console.post(_action(order, "return"), _return_form(order, "f" * 32, {cheap: 1}))

    order.refresh_from_db()
    assert order.status == Order.Status.RETURNED
    assert [r.amount_fen for r in Refund.objects.order_by("pk")] == [1500, 2300]  # the fee goes with the last
    assert sum(Refund.objects.values_list("amount_fen", flat=True)) == order.payments.get().amount_fen
    assert _stock(store, cheap) == (10, 0)
    assert [event["amount_fen"] for event in returned_events] == [1500, 2300]
    assert _timeline(order)[-1][:2] == ("delivered", "returned")


def test_a_return_through_the_api_sent_twice_with_one_token_has_one_effect(
    console_api, member, store, formula, ws_clerk, returned_events
):
    order = _collected(member, store, ws_clerk, {formula: 2})
    body = {"token": "g" * 32, "reason": "破损", "lines": {str(order.lines.get().pk): 2}}

    first = console_api.post(_api_returns(order), body, format="json")
    second = console_api.post(_api_returns(order), body, format="json")

    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert (
        first.json()
        == second.json()
        == {
            "id": Return.objects.get().pk,
            "amount_fen": order.total_fen,
            "order_status": "returned",
        }
    )
    assert _stock(store, formula) == (10, 0)
    assert (Refund.objects.count(), len(returned_events)) == (1, 1)


# --- cancelled by the store ------------------------------------------------------------------------


def test_the_store_cancels_with_a_reason_before_the_goods_leave_refunding_in_full_and_releasing_stock(
    console, member, store, formula, ws_clerk, django_capture_on_commit_callbacks
):
    order = _accept(_delivery(member, {formula: 2}), ws_clerk)
    start_preparing(staff=ws_clerk, order=order)
    assert _stock(store, formula) == (10, 2)

    with django_capture_on_commit_callbacks(execute=True):
        response = console.post(_action(order, "cancel"), {"reason": "奶粉批次召回"})

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert _timeline(order)[-1] == ("preparing", "cancelled", "staff", str(ws_clerk))
    assert order.events.order_by("pk").last().reason == "奶粉批次召回"
    refund = Refund.objects.get()
    assert (refund.amount_fen, refund.status) == (order.total_fen, Refund.Status.SUCCEEDED)
    assert _stock(store, formula) == (10, 0)


def test_the_store_cannot_cancel_without_a_reason(console, console_api, member, store, formula, ws_clerk):
    order = _accept(_pickup(member, store, {formula: 1}), ws_clerk)
    before = _world(order)

    page = console.post(_action(order, "cancel"), {"reason": "  "}, follow=True)
    api = console_api.post(_api_action(order, "cancel"), {}, format="json")

    assert "Say why the order is cancelled." in page.content.decode()
    _assert_error(api, 400, "reason_required")
    assert _world(order) == before


def test_once_the_goods_left_the_store_it_can_no_longer_cancel(console_api, member, formula, ws_clerk):
    order = _out_for_delivery(member, ws_clerk, {formula: 1})
    before = _world(order)

    _assert_error(
        console_api.post(_api_action(order, "cancel"), {"reason": "太远"}, format="json"), 409, "wrong_status"
    )
    assert _world(order) == before


# --- HQ's exception queue --------------------------------------------------------------------------


@pytest.fixture
def exception_order(member, store, formula, ws_clerk):
    """A delivery the only store that reaches the address declined."""
    order = _delivery(member, {formula: 2})
    offer = Assignment.objects.get(order=order, status=Assignment.Status.OFFERED)
    decline_assignment(assignment_id=offer.pk, staff=ws_clerk, user=ws_clerk.user, reason="今天没有骑手")
    order.refresh_from_db()
    assert order.status == Order.Status.EXCEPTION
    return order


def _decide(order: Order) -> str:
    return reverse("admin:orders_dispatchexception_decide", args=[order.pk])


def test_hq_s_exception_queue_lists_the_order_no_store_would_take(
    admin_client, exception_order, member, store, formula
):
    _collected(member, store, StaffFactory(store=store), {formula: 1})  # an order that needs no decision

    page = _page(admin_client, reverse("admin:orders_dispatchexception_changelist"))

    assert exception_order.number in page and _decide(exception_order) in page
    assert Order.objects.filter(status=Order.Status.COMPLETED).get().number not in page


def test_hq_assigns_an_exception_order_to_a_store_of_its_choice(
    admin_client, exception_order, store, formula, other_store
):
    response = admin_client.post(_decide(exception_order), {"store": other_store.pk, "reason": "古墩路店有骑手"})

    assert response.status_code == 302
    exception_order.refresh_from_db()
    assert exception_order.status == Order.Status.ASSIGNED
    offer = Assignment.objects.get(order=exception_order, status=Assignment.Status.OFFERED)
    assert (offer.store, offer.basis) == (other_store, Assignment.Basis.HQ)
    assert (_stock(other_store, formula), _stock(store, formula)) == ((10, 2), (10, 0))
    assert _decide(exception_order) not in _page(admin_client, reverse("admin:orders_dispatchexception_changelist"))


def test_hq_cancels_an_exception_order_and_refunds_it_in_full(
    admin_client, exception_order, store, formula, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(_decide(exception_order), {"cancel": "1", "reason": "缺货"})

    assert response.status_code == 302
    exception_order.refresh_from_db()
    assert exception_order.status == Order.Status.CANCELLED
    assert _timeline(exception_order)[-1] == ("exception", "cancelled", "hq", "admin")
    refund = Refund.objects.get()
    assert (refund.amount_fen, refund.status) == (exception_order.total_fen, Refund.Status.SUCCEEDED)
    assert _stock(store, formula) == (10, 0)


# --- points on online orders ---------------------------------------------------------------------


def test_a_collected_order_earns_its_points_once_and_returns_take_them_back_in_proportion(
    member, store, formula, milk, ws_clerk
):
    # Given a collected order of ¥258 + ¥199 ×2 (HQ's default: one point per yuan)
    order = _collected(member, store, ws_clerk, {formula: 1, milk: 2})
    member.refresh_from_db()
    assert member.points_balance == 258 + 398
    lines = {line.sku_id: line for line in order.lines.all()}

    # When one tin of milk comes back, then the rest
    return_at_store(staff=ws_clerk, order=order, quantities={lines[milk.pk].pk: 1}, token="t1")
    member.refresh_from_db()
    after_one = member.points_balance
    return_at_store(staff=ws_clerk, order=order, quantities={lines[formula.pk].pk: 1, lines[milk.pk].pk: 1}, token="t2")

    # Then a tin's share goes first (656 × 199 / 656 = 199), and everything once all is back
    assert after_one == 656 - 199
    member.refresh_from_db()
    assert member.points_balance == 0 == ledger_sum(member)
