"""The shopper's API (/api/v1/mall/): the same rules as the mall's pages, as JSON for the mini program."""

from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from inventory.models import Stock
from inventory.services import receive_stock, set_store_price
from members.session import MEMBER_SESSION_KEY
from o2o.geo import distance_m
from orders.models import CartLine, Order, OrderEvent, Payment, Refund
from orders.pickup import read_pickup_token
from orders.services import place_order, set_cart_quantity
from stores.session import CHOSEN_STORE_SESSION_KEY
from tests.factories import MemberFactory, SkuFactory, StoreFactory

pytestmark = pytest.mark.django_db

CART = reverse("mall_api:cart")
CART_LINES = reverse("mall_api:cart-lines")
QUOTE = reverse("mall_api:checkout-quote")
ORDERS = reverse("mall_api:orders")

NEAR_STORE = {"latitude": 30.281, "longitude": 120.151}  # about 140 m from the `store` fixture


def _cart_line(sku_id: int) -> str:
    return reverse("mall_api:cart-line", args=[sku_id])


def _detail(number: str) -> str:
    return reverse("mall_api:order-detail", args=[number])


def _cancel(number: str) -> str:
    return reverse("mall_api:order-cancel", args=[number])


def _pay(number: str) -> str:
    return reverse("mall_api:order-payment", args=[number])


def _sign_in(client, member, *, chosen_store=None):
    session = client.session
    session[MEMBER_SESSION_KEY] = member.pk
    if chosen_store is not None:
        session[CHOSEN_STORE_SESSION_KEY] = chosen_store.pk
    session.save()
    return client


def _delivery(**changes):
    return {
        "recipient_name": "王芳",
        "recipient_phone": "138 0013 8000",
        "address": "杭州市西湖区文三路 90 号",
        **NEAR_STORE,
        **changes,
    }


@pytest.fixture
def api(api_client, member):
    """An API client signed in as `member` (CSRF not enforced, as DRF's test client defaults)."""
    return _sign_in(api_client, member)


@pytest.fixture
def development_payments(settings):
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""


@pytest.fixture
def order(cart, store):
    return place_order(member=cart, fulfilment="pickup", pickup_store=store)


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]
    return body


def _nothing_ordered(member, *, cart_quantity: int) -> None:
    assert not Order.objects.exists()
    assert not OrderEvent.objects.exists()
    assert sum(CartLine.objects.filter(member=member).values_list("quantity", flat=True)) == cart_quantity
    assert not Stock.objects.filter(reserved__gt=0).exists()


# --- who may call -----------------------------------------------------------------------------


ENDPOINTS = [
    ("get", CART),
    ("post", CART_LINES),
    ("put", reverse("mall_api:cart-line", args=[1])),
    ("post", QUOTE),
    ("get", ORDERS),
    ("post", ORDERS),
    ("get", reverse("mall_api:order-detail", args=["25010100000001"])),
    ("post", reverse("mall_api:order-cancel", args=["25010100000001"])),
    ("post", reverse("mall_api:order-payment", args=["25010100000001"])),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_a_shopper_who_is_not_signed_in_is_refused_with_not_authenticated(api_client, method, url):
    response = getattr(api_client, method)(url, {}, format="json")

    _assert_error(response, 403, "not_authenticated")


def test_an_inactive_member_is_not_signed_in(api, member):
    member.is_active = False
    member.save(update_fields=["is_active"])

    _assert_error(api.get(CART), 403, "not_authenticated")


def test_a_django_staff_session_is_not_a_member(client, admin_user):
    client.force_login(admin_user)

    _assert_error(client.get(CART), 403, "not_authenticated")


def test_a_signed_in_write_without_the_csrf_token_is_refused_and_changes_nothing(member, formula):
    strict = _sign_in(APIClient(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en"), member)

    assert strict.get(CART).status_code == 200  # safe methods need no token
    response = strict.post(CART_LINES, {"sku_id": formula.pk}, format="json")

    body = _assert_error(response, 403, "permission_denied")
    assert "CSRF" in body["message"]
    assert not CartLine.objects.exists()


def test_a_signed_in_write_with_the_csrf_token_passes(member, formula):
    strict = _sign_in(APIClient(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en"), member)
    token = "a" * 32
    strict.cookies["csrftoken"] = token

    response = strict.post(CART_LINES, {"sku_id": formula.pk}, format="json", HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 200, response.content
    assert CartLine.objects.get(member=member).quantity == 1


# --- the cart ---------------------------------------------------------------------------------


def test_the_cart_lists_lines_at_the_chosen_store_s_prices(api_client, cart, store, formula):
    set_store_price(store=store, sku=formula, price_fen=24900)
    _sign_in(api_client, cart, chosen_store=store)

    response = api_client.get(CART)

    assert response.status_code == 200
    body = response.json()
    assert body["store"] == {"id": store.pk, "code": "WS", "name": "文三路店"}
    assert body["lines"] == [
        {
            "sku_id": formula.pk,
            "sku_code": formula.code,
            "product_name": "飞鹤星飞帆",
            "spec": "800g 3段",
            "quantity": 2,
            "unit_price_fen": 24900,
            "unit_price_display": "¥249.00",
            "line_total_fen": 49800,
            "line_total_display": "¥498.00",
        }
    ]
    assert (body["quantity"], body["subtotal_fen"], body["subtotal_display"]) == (2, 49800, "¥498.00")


def test_without_a_chosen_store_the_cart_is_at_hq_prices(api, cart, formula):
    body = api.get(CART).json()

    assert body["store"] is None
    assert body["subtotal_fen"] == 2 * 25800


def test_an_empty_cart_is_an_empty_list(api):
    assert api.get(CART).json() == {
        "store": None,
        "lines": [],
        "quantity": 0,
        "subtotal_fen": 0,
        "subtotal_display": "¥0.00",
    }


def test_adding_a_sku_creates_its_line_and_adding_again_adds_up(api, member, formula):
    first = api.post(CART_LINES, {"sku_id": formula.pk}, format="json")
    second = api.post(CART_LINES, {"sku_id": formula.pk, "quantity": 3}, format="json")

    assert first.status_code == 200 and first.json()["quantity"] == 1
    assert second.status_code == 200
    assert second.json()["lines"][0]["quantity"] == 4
    assert CartLine.objects.get(member=member).quantity == 4


@pytest.mark.parametrize("quantity", [-1, 0, 100, "many"])
def test_adding_outside_one_to_ninety_nine_is_refused_and_changes_nothing(api, cart, formula, quantity):
    response = api.post(CART_LINES, {"sku_id": formula.pk, "quantity": quantity}, format="json")

    body = _assert_error(response, 400, "invalid")
    assert "quantity" in body["details"]
    assert CartLine.objects.get(member=cart).quantity == 2


def test_adding_an_unknown_sku_is_a_404(api, member):
    response = api.post(CART_LINES, {"sku_id": 999_999}, format="json")

    _assert_error(response, 404, "sku_not_found")
    assert not CartLine.objects.exists()


def test_adding_a_sku_no_longer_sold_is_refused_with_the_service_s_code(api, member):
    retired = SkuFactory(is_active=False)

    _assert_error(api.post(CART_LINES, {"sku_id": retired.pk}, format="json"), 400, "sku_unavailable")
    assert not CartLine.objects.exists()


def test_setting_a_quantity_answers_with_the_cart_and_zero_removes_the_line(api, cart, formula):
    changed = api.put(_cart_line(formula.pk), {"quantity": 5}, format="json")
    removed = api.put(_cart_line(formula.pk), {"quantity": 0}, format="json")

    assert changed.status_code == 200 and changed.json()["lines"][0]["quantity"] == 5
    assert removed.status_code == 200 and removed.json()["lines"] == []
    assert not CartLine.objects.exists()


@pytest.mark.parametrize("quantity", [-1, 100])
def test_setting_a_quantity_outside_zero_to_ninety_nine_is_refused_with_the_service_s_code(
    api, cart, formula, quantity
):
    response = api.put(_cart_line(formula.pk), {"quantity": quantity}, format="json")

    body = _assert_error(response, 400, "invalid_quantity")
    assert body["details"] == {"quantity": [str(quantity)]}
    assert CartLine.objects.get(member=cart).quantity == 2


def test_setting_a_quantity_without_one_is_a_validation_error(api, cart, formula):
    body = _assert_error(api.put(_cart_line(formula.pk), {}, format="json"), 400, "invalid")

    assert "quantity" in body["details"]


def test_setting_a_quantity_of_an_unknown_sku_is_a_404(api, member):
    _assert_error(api.put(_cart_line(999_999), {"quantity": 1}, format="json"), 404, "sku_not_found")


def test_the_cart_reads_a_fixed_number_of_queries_however_many_lines(
    api_client, member, store, django_assert_max_num_queries
):
    for _ in range(8):
        sku = SkuFactory()
        set_store_price(store=store, sku=sku, price_fen=1000)
        set_cart_quantity(member=member, sku=sku, quantity=1)
    _sign_in(api_client, member, chosen_store=store)

    # session, member, chosen store, cart lines with SKU and product, the store's prices
    with django_assert_max_num_queries(5):
        response = api_client.get(CART)

    assert response.status_code == 200
    assert len(response.json()["lines"]) == 8
    assert response.json()["subtotal_fen"] == 8000


# --- the quote --------------------------------------------------------------------------------


def test_a_pickup_quote_prices_at_the_store_and_lists_the_stores_holding_every_item(api_client, cart, store, formula):
    other = StoreFactory(latitude=Decimal("30.290000"), longitude=Decimal("120.150000"))
    receive_stock(store=other, sku=formula, quantity=5)
    StoreFactory(latitude=Decimal("30.281000"), longitude=Decimal("120.150000"))  # near, but holds nothing
    set_store_price(store=store, sku=formula, price_fen=24900)
    _sign_in(api_client, cart, chosen_store=store)

    response = api_client.post(QUOTE, {"fulfilment": "pickup"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["priced_at"]["id"] == store.pk
    assert (body["items_fen"], body["delivery_fee_fen"], body["total_fen"]) == (49800, 0, 49800)
    assert body["total_display"] == "¥498.00"
    assert body["lines"][0]["unit_price_fen"] == 24900 and body["lines"][0]["line_total_fen"] == 49800
    assert [(s["id"], s["distance_m"]) for s in body["pickup_stores"]] == [
        (store.pk, 0),
        (other.pk, round(distance_m(store.point, other.point))),  # about 1.1 km north
    ]
    assert not Order.objects.exists()


def test_a_pickup_quote_at_a_named_store_uses_its_prices_and_without_a_chosen_store_has_no_distances(
    api, cart, store, formula
):
    set_store_price(store=store, sku=formula, price_fen=20000)

    body = api.post(QUOTE, {"fulfilment": "pickup", "pickup_store_id": store.pk}, format="json").json()

    assert body["items_fen"] == 40000
    assert body["pickup_stores"] == [
        {"id": store.pk, "code": "WS", "name": "文三路店", "address": store.address, "distance_m": None}
    ]


def test_a_delivery_quote_adds_the_fee_under_the_free_delivery_threshold(api, member, store):
    cheap = SkuFactory(price_fen=1500)
    receive_stock(store=store, sku=cheap, quantity=5)
    set_cart_quantity(member=member, sku=cheap, quantity=2)

    body = api.post(QUOTE, {"fulfilment": "delivery"}, format="json").json()

    assert (body["items_fen"], body["delivery_fee_fen"], body["total_fen"]) == (3000, 800, 3800)
    assert body["delivery_fee_display"] == "¥8.00"
    assert body["priced_at"] is None and body["pickup_stores"] is None


def test_quoting_an_empty_cart_is_refused(api, member):
    _assert_error(api.post(QUOTE, {"fulfilment": "pickup"}, format="json"), 400, "empty_cart")


def test_quoting_at_an_unknown_store_is_a_404(api, cart):
    response = api.post(QUOTE, {"fulfilment": "pickup", "pickup_store_id": 999_999}, format="json")

    _assert_error(response, 404, "store_not_found")


def test_quoting_an_unknown_fulfilment_is_a_validation_error(api, cart):
    body = _assert_error(api.post(QUOTE, {"fulfilment": "drone"}, format="json"), 400, "invalid")

    assert "fulfilment" in body["details"]


# --- placing orders ---------------------------------------------------------------------------


def test_placing_a_pickup_order_answers_201_with_the_order_and_reserves_its_stock(api, cart, store, formula):
    response = api.post(ORDERS, {"fulfilment": "pickup", "pickup_store_id": store.pk}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    order = Order.objects.get()
    assert body["number"] == order.number
    assert (body["status"], body["fulfilment"]) == ("pending_payment", "pickup")
    assert body["pickup_store"]["id"] == store.pk and body["pickup_store"]["address"] == store.address
    assert body["pickup_store"]["map_url"].startswith("https://uri.amap.com/")
    assert body["lines"] == [
        {
            "sku_id": formula.pk,
            "product_name": "飞鹤星飞帆",
            "spec": "800g 3段",
            "quantity": 2,
            "unit_price_fen": 25800,
            "unit_price_display": "¥258.00",
            "line_total_fen": 51600,
            "line_total_display": "¥516.00",
        }
    ]
    assert (body["items_fen"], body["delivery_fee_fen"], body["total_fen"]) == (51600, 0, 51600)
    assert [e["to_status"] for e in body["events"]] == ["pending_payment"]
    assert body["pickup_code"] is None and body["pickup_qr_token"] is None  # not before it is paid
    assert body["delivery"] is None
    assert body["can_pay"] is True and body["can_cancel"] is True
    assert not CartLine.objects.exists()
    assert Stock.objects.get(store=store, sku=formula).reserved == 2


def test_placing_a_delivery_order_converts_a_wgs84_point_and_keeps_the_address(api, cart, store):
    # A WGS-84 point about 500 m south-west of the store in GCJ-02 terms: still inside its 3 km radius.
    delivery = _delivery(latitude=30.2775, longitude=120.1455, coord="wgs84")

    response = api.post(ORDERS, {"fulfilment": "delivery", "delivery": delivery}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["pickup_store"] is None
    assert body["delivery"]["recipient_phone"] == "+8613800138000"
    assert body["delivery"]["address"] == "杭州市西湖区文三路 90 号"
    latitude, longitude = Decimal(body["delivery"]["latitude"]), Decimal(body["delivery"]["longitude"])
    assert latitude != Decimal("30.277500") and abs(latitude - Decimal("30.2775")) < Decimal("0.01")
    assert abs(longitude - Decimal("120.1455")) < Decimal("0.01")
    assert Order.objects.get().status == Order.Status.PENDING_PAYMENT


def test_placing_a_pickup_order_without_a_store_is_refused_and_writes_nothing(api, cart):
    response = api.post(ORDERS, {"fulfilment": "pickup"}, format="json")

    _assert_error(response, 400, "invalid_pickup_store")
    _nothing_ordered(cart, cart_quantity=2)


def test_placing_a_pickup_order_at_an_unknown_store_is_refused_the_same_way(api, cart):
    response = api.post(ORDERS, {"fulfilment": "pickup", "pickup_store_id": 999_999}, format="json")

    _assert_error(response, 400, "invalid_pickup_store")
    _nothing_ordered(cart, cart_quantity=2)


def test_a_delivery_with_a_bad_phone_is_refused_and_writes_nothing(api, cart):
    response = api.post(
        ORDERS, {"fulfilment": "delivery", "delivery": _delivery(recipient_phone="12345")}, format="json"
    )

    body = _assert_error(response, 400, "invalid_phone")
    assert "recipient_phone" in body["details"]
    _nothing_ordered(cart, cart_quantity=2)


@pytest.mark.parametrize(("latitude", "longitude"), [(91, 120.15), (30.28, 181)])
def test_a_delivery_point_out_of_range_is_refused_and_writes_nothing(api, cart, latitude, longitude):
    delivery = _delivery(latitude=latitude, longitude=longitude)

    response = api.post(ORDERS, {"fulfilment": "delivery", "delivery": delivery}, format="json")

    _assert_error(response, 400, "invalid_coordinates")
    _nothing_ordered(cart, cart_quantity=2)


def test_a_delivery_without_an_address_is_refused(api, cart):
    _assert_error(api.post(ORDERS, {"fulfilment": "delivery"}, format="json"), 400, "address_required")
    _nothing_ordered(cart, cart_quantity=2)


def test_a_delivery_no_store_reaches_is_a_conflict_and_writes_nothing(api, cart):
    delivery = _delivery(latitude=39.9, longitude=116.4)  # Beijing

    response = api.post(ORDERS, {"fulfilment": "delivery", "delivery": delivery}, format="json")

    _assert_error(response, 409, "no_store_delivers_here")
    _nothing_ordered(cart, cart_quantity=2)


def test_a_delivery_body_with_missing_fields_is_a_validation_error(api, cart):
    response = api.post(ORDERS, {"fulfilment": "delivery", "delivery": {"address": "x"}}, format="json")

    body = _assert_error(response, 400, "invalid")
    assert {"recipient_name", "latitude"} <= set(body["details"]["delivery"])
    _nothing_ordered(cart, cart_quantity=2)


def test_ordering_with_an_empty_cart_is_refused(api, member, store):
    response = api.post(ORDERS, {"fulfilment": "pickup", "pickup_store_id": store.pk}, format="json")

    _assert_error(response, 400, "empty_cart")
    _nothing_ordered(member, cart_quantity=0)


def test_ordering_more_than_the_store_holds_is_a_conflict_and_writes_nothing(api, member, store, formula):
    set_cart_quantity(member=member, sku=formula, quantity=11)  # the store holds 10

    response = api.post(ORDERS, {"fulfilment": "pickup", "pickup_store_id": store.pk}, format="json")

    _assert_error(response, 409, "insufficient_stock")
    _nothing_ordered(member, cart_quantity=11)


# --- reading orders ---------------------------------------------------------------------------


def test_the_order_list_holds_only_the_member_s_own_orders_newest_first(api, cart, store, formula):
    first = place_order(member=cart, fulfilment="pickup", pickup_store=store)
    set_cart_quantity(member=cart, sku=formula, quantity=1)
    second = place_order(member=cart, fulfilment="pickup", pickup_store=store)
    stranger = MemberFactory()
    set_cart_quantity(member=stranger, sku=formula, quantity=1)
    place_order(member=stranger, fulfilment="pickup", pickup_store=store)

    response = api.get(ORDERS)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [o["number"] for o in body["results"]] == [second.number, first.number]
    assert body["results"][1]["lines"][0]["quantity"] == 2
    assert body["results"][0]["total_display"] == "¥258.00"
    assert body["results"][0]["pickup_store"] == {"id": store.pk, "code": "WS", "name": "文三路店"}


def test_the_order_list_is_paginated(api, cart, store, formula):
    for _ in range(3):
        set_cart_quantity(member=cart, sku=formula, quantity=1)
        place_order(member=cart, fulfilment="pickup", pickup_store=store)

    body = api.get(ORDERS, {"page_size": 2, "page": 2}).json()

    assert body["count"] == 3 and len(body["results"]) == 1 and body["next"] is None


def test_the_order_list_reads_a_fixed_number_of_queries_for_ten_orders_of_three_lines(
    api, member, store, django_assert_max_num_queries
):
    skus = [SkuFactory(price_fen=1000) for _ in range(3)]
    for sku in skus:
        receive_stock(store=store, sku=sku, quantity=50)
    for _ in range(10):
        for sku in skus:
            set_cart_quantity(member=member, sku=sku, quantity=1)
        place_order(member=member, fulfilment="pickup", pickup_store=store)

    # session, member, count, the page of orders with their stores, their lines
    with django_assert_max_num_queries(5):
        response = api.get(ORDERS)

    assert response.status_code == 200
    assert len(response.json()["results"]) == 10
    assert all(len(o["lines"]) == 3 for o in response.json()["results"])


def test_an_order_s_detail_reads_a_fixed_number_of_queries(api, member, store, django_assert_max_num_queries):
    skus = [SkuFactory(price_fen=1000) for _ in range(3)]
    for sku in skus:
        receive_stock(store=store, sku=sku, quantity=5)
        set_cart_quantity(member=member, sku=sku, quantity=1)
    order = place_order(member=member, fulfilment="pickup", pickup_store=store)

    # session, member, the order with its stores, its lines, its events
    with django_assert_max_num_queries(5):
        response = api.get(_detail(order.number))

    assert response.status_code == 200
    assert len(response.json()["lines"]) == 3


def test_another_member_s_order_is_not_found_to_read_cancel_or_pay(api_client, order, development_payments):
    _sign_in(api_client, MemberFactory())

    _assert_error(api_client.get(_detail(order.number)), 404, "not_found")
    _assert_error(api_client.post(_cancel(order.number), {}, format="json"), 404, "not_found")
    _assert_error(api_client.post(_pay(order.number), {}, format="json"), 404, "not_found")

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
    assert not Payment.objects.exists()


def test_an_unknown_order_number_is_not_found(api):
    _assert_error(api.get(_detail("00000000000000")), 404, "not_found")


# --- cancelling -------------------------------------------------------------------------------


def test_cancelling_an_unpaid_order_answers_with_it_cancelled_and_releases_its_stock(api, order, store, formula):
    response = api.post(_cancel(order.number), {"reason": "changed my mind"}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cancelled" and body["can_cancel"] is False and body["can_pay"] is False
    assert body["events"][-1]["to_status"] == "cancelled" and body["events"][-1]["reason"] == "changed my mind"
    assert Stock.objects.get(store=store, sku=formula).reserved == 0


def test_cancelling_twice_is_a_conflict(api, order):
    api.post(_cancel(order.number), format="json")

    _assert_error(api.post(_cancel(order.number), format="json"), 409, "not_cancellable")


def test_cancelling_a_paid_order_refunds_it(api, order, development_payments, django_capture_on_commit_callbacks):
    api.post(_pay(order.number), format="json")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(_cancel(order.number), format="json")

    assert response.status_code == 200
    assert response.json()["pickup_qr_token"] is None  # a cancelled order has nothing to collect
    assert Refund.objects.get().amount_fen == order.total_fen


# --- paying -----------------------------------------------------------------------------------


def test_the_development_payment_confirms_the_order_and_the_pickup_qr_token_appears(api, order, development_payments):
    response = api.post(_pay(order.number), format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"development": True, "status": "paid", "pay_params": None}
    payment = Payment.objects.get()
    assert payment.is_development and payment.amount_fen == order.total_fen
    detail = api.get(_detail(order.number)).json()
    assert detail["status"] == "paid" and detail["can_pay"] is False
    assert detail["pickup_code"] == order.pickup_code
    assert read_pickup_token(detail["pickup_qr_token"]) == order.number
    assert [e["to_status"] for e in detail["events"]] == ["pending_payment", "paid"]
    assert detail["events"][-1]["actor_type"] == "payment"


def test_paying_a_paid_order_again_is_a_conflict(api, order, development_payments):
    api.post(_pay(order.number), format="json")

    _assert_error(api.post(_pay(order.number), format="json"), 409, "not_payable")
    assert Payment.objects.count() == 1


def test_without_wechat_pay_or_development_payments_paying_is_unavailable(api, order, settings):
    settings.DEBUG = False
    settings.O2O_DEVELOPMENT_PAYMENTS = False
    settings.WECHAT_PAY_MCH_ID = ""

    _assert_error(api.post(_pay(order.number), format="json"), 503, "payment_not_configured")
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


class _WeChatPay:
    """WeChat Pay as the payment endpoint sees it: a prepay id, then signed JSAPI parameters."""

    is_development = False

    def __init__(self):
        self.prepays = []

    def create_jsapi_prepay(self, **arguments):
        self.prepays.append(arguments)
        return "wx-prepay-1"

    def jsapi_pay_params(self, *, prepay_id):
        return {
            "appId": "wx-app",
            "timeStamp": "1700000000",
            "nonceStr": "n" * 32,
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
            "paySign": "signed",
        }


def test_with_wechat_pay_the_answer_is_the_jsapi_parameters_and_the_order_stays_unpaid(api, order, monkeypatch):
    gateway = _WeChatPay()
    monkeypatch.setattr("integrations.vendors.wechat_pay.payment_gateway", lambda: gateway)

    response = api.post(_pay(order.number), format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["development"] is False and body["status"] == "pending_payment"
    assert body["pay_params"]["package"] == "prepay_id=wx-prepay-1"
    [prepay] = gateway.prepays
    assert prepay["out_trade_no"] == order.number and prepay["amount_fen"] == order.total_fen
    assert prepay["payer_openid"] == order.member.openid
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


def test_with_wechat_pay_a_member_signed_in_without_wechat_cannot_pay(api, order, member, monkeypatch):
    member.openid = "dev-00138000"
    member.save(update_fields=["openid"])
    gateway = _WeChatPay()
    monkeypatch.setattr("integrations.vendors.wechat_pay.payment_gateway", lambda: gateway)

    _assert_error(api.post(_pay(order.number), format="json"), 409, "wechat_required")
    assert gateway.prepays == []


# --- the schema -------------------------------------------------------------------------------


def test_the_openapi_document_describes_every_mall_operation(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()

    operations = {
        operation["operationId"]
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/mall/")
        for operation in item.values()
    }
    assert operations == {
        "mall_cart_retrieve",
        "mall_cart_lines_add",
        "mall_cart_lines_set",
        "mall_checkout_quote",
        "mall_orders_create",
        "mall_orders_list",
        "mall_orders_retrieve",
        "mall_orders_cancel",
        "mall_orders_payment",
    }
    assert "memberSession" in schema["components"]["securitySchemes"]
