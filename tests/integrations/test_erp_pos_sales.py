"""Sales and returns at the till: stock at the store, points, the member's purchase and calls, once per receipt."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.models import Scope
from inventory.models import Stock, StockMove
from inventory.services import StockLine, receive_stock, reserve_stock
from members.models import FollowUp, PointsEntry, Purchase
from members.selectors import affinity_store, ledger_sum
from members.services import card_code
from orders.models import PosReturn, PosSale
from tests.factories import MemberFactory, PurchaseFactory, SkuFactory, StaffFactory, StoreFactory
from tests.integrations.erp_writes import post_erp, returns_url, sale_url
from tests.isolation import rolled_back

pytestmark = pytest.mark.django_db

SOLD_AT = "2025-06-02T15:04:05+08:00"


@pytest.fixture
def store():
    return StoreFactory(code="WS")


@pytest.fixture
def key(erp_client):
    return erp_client(Scope.SALES_WRITE)[1]


@pytest.fixture
def formula(store):
    """A tin of formula, 10 on the shelf, one tin lasting a week."""
    sku = SkuFactory(code="FH-3-900", price_fen=25800, product__days_per_unit=7)
    receive_stock(store=store, sku=sku, quantity=10)
    return sku


@pytest.fixture
def wipes(store):
    sku = SkuFactory(code="WIPES-80", price_fen=1290)
    receive_stock(store=store, sku=sku, quantity=50)
    return sku


@pytest.fixture
def member():
    return MemberFactory(phone="+8613800138000")


def _sale(receipt="R-0001", *, lines=None, member=None, **fields):
    lines = lines or [{"sku_code": "FH-3-900", "quantity": 2, "unit_price_fen": 25800, "amount_fen": 51600}]
    body = {"receipt_id": receipt, "sold_at": SOLD_AT, "lines": lines, "total_fen": sum(x["amount_fen"] for x in lines)}
    if member is not None:
        body["member"] = member
    return {**body, **fields}


def _on_hand(store, sku) -> int:
    return Stock.objects.get(store=store, sku=sku).on_hand


def test_the_urls_are_where_the_docs_say():
    assert reverse("erp:store-sales", kwargs={"store_code": "WS"}) == sale_url("WS")
    assert reverse("erp:store-returns", kwargs={"store_code": "WS"}) == returns_url("WS")


# --- sales -----------------------------------------------------------------------------------------


def test_a_sale_to_a_member_moves_stock_earns_points_records_the_purchase_and_opens_calls(
    api_client, key, store, formula, wipes, member
):
    guide = StaffFactory(store=store, staff_code="G0007")
    lines = [
        {"sku_code": "FH-3-900", "quantity": 2, "unit_price_fen": 25800, "amount_fen": 51600},
        {"sku_code": "WIPES-80", "quantity": 1, "unit_price_fen": 1290, "amount_fen": 1290},
    ]
    body = _sale(lines=lines, member={"card_code": card_code(member=member).text}, guide_staff_code="G0007")

    response = post_erp(api_client, sale_url("WS"), body, key)

    assert response.status_code == 201, response.content
    answer = response.json()
    assert answer["duplicate"] is False
    assert (answer["receipt_id"], answer["store_code"], answer["reference"]) == ("R-0001", "WS", "POS:WS:R-0001")
    assert (answer["total_fen"], answer["paid_fen"], answer["member_id"]) == (52890, 52890, member.pk)
    assert answer["guide_staff_code"] == "G0007"
    assert answer["points_earned"] == 516 + 12  # one point per whole yuan, per line
    assert [line["shortfall"] for line in answer["lines"]] == [0, 0]
    # Stock left the store, as moves of the till
    assert (_on_hand(store, formula), _on_hand(store, wipes)) == (8, 49)
    moves = StockMove.objects.filter(reference="POS:WS:R-0001").order_by("sku_id")
    assert [(m.kind, m.on_hand_delta, m.reserved_delta) for m in moves] == [("pos_sale", -2, 0), ("pos_sale", -1, 0)]
    # Points, on the member's ledger under the receipt
    member.refresh_from_db()
    assert member.points_balance == 528 == ledger_sum(member)
    assert PointsEntry.objects.get(member=member, kind="earn").reference == "POS:WS:R-0001"
    # The purchase at this store, with its lines: the member's affinity store for dispatch
    purchase = Purchase.objects.get(member=member)
    assert (purchase.channel, purchase.store, purchase.amount_fen) == ("pos", store, 52890)
    assert sorted((line.product_id, line.quantity) for line in purchase.lines.all()) == sorted(
        [(formula.product_id, 2), (wipes.product_id, 1)]
    )
    assert affinity_store(member) == store
    # The follow-up windows of the formula (consumed at a known rate), not of the wipes
    calls = FollowUp.objects.filter(member=member).order_by("kind")
    assert {(c.kind, c.product_id, c.store_id) for c in calls} == {
        ("first_use", formula.product_id, store.pk),
        ("replenish", formula.product_id, store.pk),
    }
    sale = PosSale.objects.get()
    assert (sale.guide, sale.points_earned) == (guide, 528)
    assert sale.reported_by.startswith("POS ")  # the API client's name


def test_a_till_sale_after_an_online_purchase_elsewhere_makes_its_store_the_dispatch_affinity(
    api_client, key, store, formula, member
):
    PurchaseFactory(
        member=member, store=StoreFactory(code="GD"), channel="online", purchased_at=timezone.now() - timedelta(days=3)
    )
    body = _sale(member={"phone": "138 0013 8000"}, sold_at=timezone.now().isoformat())

    assert post_erp(api_client, sale_url("WS"), body, key).status_code == 201

    assert affinity_store(member) == store


def test_the_member_may_be_named_by_the_id_a_lookup_gave(api_client, key, store, formula, member):
    response = post_erp(api_client, sale_url("WS"), _sale(member={"id": member.pk}), key)

    assert response.status_code == 201
    assert response.json()["member_id"] == member.pk


def test_a_sale_without_a_member_moves_stock_and_earns_nothing(api_client, key, store, formula):
    response = post_erp(api_client, sale_url("WS"), _sale(), key)

    assert response.status_code == 201
    assert (response.json()["member_id"], response.json()["points_earned"]) == (None, 0)
    assert _on_hand(store, formula) == 8
    assert not PointsEntry.objects.exists() and not Purchase.objects.exists()


def test_points_are_earned_on_what_was_paid_in_money(api_client, key, store, formula, member):
    body = _sale(member={"id": member.pk}, paid_fen=41600)  # ¥100 of ¥516 paid with a voucher

    response = post_erp(api_client, sale_url("WS"), body, key)

    assert response.json()["points_earned"] == 416
    assert Purchase.objects.get().amount_fen == 41600


def test_the_same_receipt_under_another_key_is_answered_as_a_duplicate_and_changes_nothing(
    api_client, key, store, formula, member
):
    body = _sale(member={"id": member.pk})
    first = post_erp(api_client, sale_url("WS"), body, key)

    again = post_erp(api_client, sale_url("WS"), body, key)  # a new Idempotency-Key

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "duplicate": True}
    assert "Idempotent-Replayed" not in again
    assert PosSale.objects.count() == 1
    assert _on_hand(store, formula) == 8
    assert PointsEntry.objects.filter(member=member).count() == 1


def test_the_same_receipt_with_other_lines_is_refused_as_another_sale(api_client, key, store, formula):
    post_erp(api_client, sale_url("WS"), _sale(), key)
    other = [{"sku_code": "FH-3-900", "quantity": 1, "unit_price_fen": 25800, "amount_fen": 25800}]

    response = post_erp(api_client, sale_url("WS"), _sale(lines=other), key)

    assert response.status_code == 409
    assert response.json()["code"] == "receipt_exists"
    assert _on_hand(store, formula) == 8


def test_a_receipt_id_is_unique_per_store_only(api_client, key, store, formula):
    other = StoreFactory(code="GD")
    receive_stock(store=other, sku=formula, quantity=5)

    assert post_erp(api_client, sale_url("WS"), _sale(), key).status_code == 201
    assert post_erp(api_client, sale_url("GD"), _sale(), key).status_code == 201

    assert (_on_hand(store, formula), _on_hand(other, formula)) == (8, 3)


def test_a_sale_beyond_the_available_stock_takes_what_is_there_and_records_the_shortfall(api_client, key, store):
    # 5 on hand, 3 of them reserved for an online order: 2 available
    sku = SkuFactory(code="TOY-1")
    receive_stock(store=store, sku=sku, quantity=5)
    reserve_stock(store=store, lines=[StockLine(sku=sku, quantity=3)], reference="order:M1")
    lines = [{"sku_code": "TOY-1", "quantity": 4, "unit_price_fen": 1000, "amount_fen": 4000}]

    response = post_erp(api_client, sale_url("WS"), _sale(lines=lines), key)

    assert response.status_code == 201
    assert response.json()["lines"][0]["shortfall"] == 2
    stock = Stock.objects.get(store=store, sku=sku)
    assert (stock.on_hand, stock.reserved) == (3, 3)  # the reservation is kept whole
    assert StockMove.objects.get(kind="pos_sale").on_hand_delta == -2


def test_a_sale_of_a_sku_the_store_never_stocked_is_recorded_with_all_of_it_short(api_client, key, store):
    SkuFactory(code="NEW-1")
    lines = [{"sku_code": "NEW-1", "quantity": 2, "unit_price_fen": 500, "amount_fen": 900}]

    response = post_erp(api_client, sale_url("WS"), _sale(lines=lines), key)

    assert response.status_code == 201
    assert response.json()["lines"][0]["shortfall"] == 2
    assert not StockMove.objects.filter(kind="pos_sale").exists()


@pytest.mark.parametrize(
    ("change", "status", "code", "detail"),
    [
        (
            {
                "lines": [
                    {"sku_code": "FH-3-900", "quantity": 1, "unit_price_fen": 25800, "amount_fen": 25800},
                    {"sku_code": "NOPE", "quantity": 1, "unit_price_fen": 100, "amount_fen": 100},
                ],
                "total_fen": 25900,
            },
            422,
            "unknown_sku",
            "lines[1].sku_code",
        ),
        ({"total_fen": 51599}, 422, "total_mismatch", "total_fen"),
        (
            {
                "lines": [{"sku_code": "FH-3-900", "quantity": 0, "unit_price_fen": 25800, "amount_fen": 0}],
                "total_fen": 0,
            },
            422,
            "invalid_quantity",
            "lines[0].quantity",
        ),
        (
            {
                "lines": [{"sku_code": "FH-3-900", "quantity": 1, "unit_price_fen": 25800, "amount_fen": 25900}],
                "total_fen": 25900,
            },
            422,
            "line_amount_exceeds_price",
            "lines[0].amount_fen",
        ),
        ({"lines": []}, 422, "no_lines", "lines"),
        ({"paid_fen": 51601}, 422, "paid_exceeds_total", "paid_fen"),
        ({"sold_at": "2999-01-01T00:00:00+08:00"}, 422, "sold_at_in_future", "sold_at"),
        ({"receipt_id": "含中文"}, 422, "invalid_receipt_id", "receipt_id"),
        ({"member": {"phone": "13900000000"}}, 422, "member_not_found", "member.phone"),
        ({"member": {"id": 999999}}, 422, "member_not_found", "member.id"),
        ({"member": {"card_code": "812345678901123456"}}, 422, "stale_card_code", "member.card_code"),
        ({"member": {"phone": "13800138000", "id": 1}}, 400, "invalid", "member"),
        ({"guide_staff_code": "NOBODY"}, 422, "unknown_guide", "guide_staff_code"),
        ({"total_fen": "a lot"}, 400, "invalid", "total_fen"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_bad_sale_is_refused_with_its_code_and_changes_nothing(
    api_client, key, store, formula, member, change, status, code, detail
):
    response = post_erp(api_client, sale_url("WS"), {**_sale(), **change}, key)

    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert detail in response.json()["details"]
    assert not PosSale.objects.exists()
    assert _on_hand(store, formula) == 10
    assert not PointsEntry.objects.exists()


def test_a_sale_a_little_ahead_of_our_clock_is_accepted(api_client, key, store, formula):
    body = _sale(sold_at=(timezone.now() + timedelta(minutes=3)).isoformat())

    assert post_erp(api_client, sale_url("WS"), body, key).status_code == 201


def test_a_guide_of_another_store_is_unknown_here(api_client, key, store, formula):
    StaffFactory(store=StoreFactory(code="GD"), staff_code="G0100")

    response = post_erp(api_client, sale_url("WS"), _sale(guide_staff_code="G0100"), key)

    assert response.status_code == 422
    assert response.json()["code"] == "unknown_guide"


def test_a_batch_beyond_the_cap_is_refused_before_its_lines_are_read(api_client, key, store, formula):
    line = {"sku_code": "FH-3-900", "quantity": 1, "unit_price_fen": 1, "amount_fen": 1}

    response = post_erp(api_client, sale_url("WS"), _sale(lines=[line] * 501), key)

    assert response.status_code == 422
    assert response.json()["code"] == "too_many_lines"
    assert post_erp(api_client, sale_url("WS"), _sale(lines=[line] * 500), key).status_code == 201


# --- returns ---------------------------------------------------------------------------------------


def _return(return_id="RT-1", receipt="R-0001", lines=None, **fields):
    lines = lines or [{"sku_code": "FH-3-900", "quantity": 1, "amount_fen": 25800}]
    return {
        "return_id": return_id,
        "receipt_id": receipt,
        "returned_at": "2025-06-03T10:00:00+08:00",
        "lines": lines,
        **fields,
    }


@pytest.fixture
def sold(api_client, key, store, formula, member):
    """Two tins sold to the member for ¥516: 516 points."""
    response = post_erp(api_client, sale_url("WS"), _sale(member={"id": member.pk}), key)
    assert response.status_code == 201
    return PosSale.objects.get()


def test_a_partial_return_puts_stock_back_and_reverses_points_in_proportion(
    api_client, key, store, formula, member, sold
):
    response = post_erp(api_client, returns_url("WS"), _return(), key)

    assert response.status_code == 201, response.content
    answer = response.json()
    assert (answer["return_id"], answer["receipt_id"], answer["amount_fen"]) == ("RT-1", "R-0001", 25800)
    assert answer["points_reversed"] == 258
    assert _on_hand(store, formula) == 9
    move = StockMove.objects.get(kind="return")
    assert (move.on_hand_delta, move.reference) == (1, "POS:WS:R-0001")
    member.refresh_from_db()
    assert member.points_balance == 258 == ledger_sum(member)


def test_returning_the_rest_reverses_every_point_the_sale_earned(api_client, key, store, member, sold):
    post_erp(api_client, returns_url("WS"), _return("RT-1"), key)

    response = post_erp(api_client, returns_url("WS"), _return("RT-2"), key)

    assert response.json()["points_reversed"] == 258
    member.refresh_from_db()
    assert member.points_balance == 0 == ledger_sum(member)


def test_returning_more_than_was_sold_is_refused(api_client, key, store, formula, sold):
    post_erp(api_client, returns_url("WS"), _return("RT-1"), key)
    two = [{"sku_code": "FH-3-900", "quantity": 2, "amount_fen": 25800}]

    response = post_erp(api_client, returns_url("WS"), _return("RT-2", lines=two), key)

    assert response.status_code == 422
    assert response.json()["code"] == "return_exceeds_sale"
    assert "lines[0].quantity" in response.json()["details"]
    assert _on_hand(store, formula) == 9
    assert PosReturn.objects.count() == 1


def test_returning_more_money_than_was_paid_is_refused(api_client, key, sold):
    rich = [{"sku_code": "FH-3-900", "quantity": 1, "amount_fen": 51700}]

    response = post_erp(api_client, returns_url("WS"), _return(lines=rich), key)

    assert response.status_code == 422
    assert response.json()["code"] == "return_exceeds_sale"
    assert "lines[0].amount_fen" in response.json()["details"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"receipt_id": "R-9999"}, "receipt_not_found"),
        ({"lines": [{"sku_code": "WIPES-80", "quantity": 1, "amount_fen": 100}]}, "sku_not_on_receipt"),
        ({"lines": [{"sku_code": "FH-3-900", "quantity": -1, "amount_fen": 0}]}, "invalid_quantity"),
        ({"returned_at": "2025-06-01T10:00:00+08:00"}, "returned_before_sale"),
        ({"returned_at": "2999-06-01T10:00:00+08:00"}, "returned_at_in_future"),
    ],
)
def test_a_bad_return_is_refused_with_its_code_and_changes_nothing(
    api_client, key, store, formula, wipes, member, sold, change, code
):
    response = post_erp(api_client, returns_url("WS"), {**_return(), **change}, key)

    assert response.status_code == 422
    assert response.json()["code"] == code
    assert not PosReturn.objects.exists()
    assert _on_hand(store, formula) == 8
    member.refresh_from_db()
    assert member.points_balance == 516


def test_a_return_is_found_at_the_store_of_the_sale_only(api_client, key, sold):
    StoreFactory(code="GD")

    response = post_erp(api_client, returns_url("GD"), _return(), key)

    assert response.status_code == 422
    assert response.json()["code"] == "receipt_not_found"


def test_the_same_return_under_another_key_is_a_duplicate_and_another_one_under_its_id_a_conflict(
    api_client, key, store, formula, member, sold
):
    first = post_erp(api_client, returns_url("WS"), _return(), key)
    again = post_erp(api_client, returns_url("WS"), _return(), key)
    other = post_erp(
        api_client, returns_url("WS"), _return(lines=[{"sku_code": "FH-3-900", "quantity": 1, "amount_fen": 100}]), key
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json() == {**first.json(), "duplicate": True}
    assert other.json()["code"] == "return_exists"
    assert _on_hand(store, formula) == 9
    member.refresh_from_db()
    assert member.points_balance == 258


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    lines=st.lists(
        st.tuples(st.integers(min_value=1, max_value=4), st.integers(min_value=0, max_value=60_000)),
        min_size=1,
        max_size=3,
    ),
    paid_share=st.integers(min_value=0, max_value=100),
    data=st.data(),
)
def test_returns_never_reverse_more_than_their_sale_earned_and_all_of_it_once_all_is_back(
    api_client, key, store, lines, paid_share, data
):
    with rolled_back():
        # Given a sale of a few SKUs to a member, part paid otherwise than in money
        member = MemberFactory()
        skus = [SkuFactory() for _ in lines]
        for sku, (quantity, _fen) in zip(skus, lines, strict=True):
            receive_stock(store=store, sku=sku, quantity=quantity)
        sale_lines = [
            {"sku_code": sku.code, "quantity": quantity, "unit_price_fen": fen, "amount_fen": fen * quantity}
            for sku, (quantity, fen) in zip(skus, lines, strict=True)
        ]
        total = sum(line["amount_fen"] for line in sale_lines)
        body = _sale("R-P", lines=sale_lines, member={"id": member.pk}, paid_fen=total * paid_share // 100)
        assert post_erp(api_client, sale_url("WS"), body, key).status_code == 201
        earned = PosSale.objects.get(receipt_id="R-P").points_earned
        left = {line["sku_code"]: [line["quantity"], line["amount_fen"]] for line in sale_lines}

        # When the goods come back in any number of returns, in any pieces
        for index in range(data.draw(st.integers(min_value=0, max_value=4))):
            code = data.draw(st.sampled_from(sorted(left)))
            units, fen = left[code]
            if not units:
                continue
            quantity = data.draw(st.integers(min_value=1, max_value=units))
            amount = fen if quantity == units else data.draw(st.integers(min_value=0, max_value=fen))
            line = {"sku_code": code, "quantity": quantity, "amount_fen": amount}
            assert (
                post_erp(api_client, returns_url("WS"), _return(f"RT-{index}", "R-P", [line]), key).status_code == 201
            )
            left[code] = [units - quantity, fen - amount]
            reversed_ = sum(PosReturn.objects.filter(sale__receipt_id="R-P").values_list("points_reversed", flat=True))
            # Then never more is reversed than was earned, and the balance is the ledger's sum
            assert 0 <= reversed_ <= earned
            member.refresh_from_db()
            assert member.points_balance == ledger_sum(member) == earned - reversed_

        # And once everything is back, every point is reversed
        rest = [{"sku_code": c, "quantity": u, "amount_fen": f} for c, (u, f) in left.items() if u]
        if rest:
            assert post_erp(api_client, returns_url("WS"), _return("RT-LAST", "R-P", rest), key).status_code == 201
        member.refresh_from_db()
        assert member.points_balance == 0 == ledger_sum(member)


def test_hq_finds_the_sales_beyond_the_available_stock_in_the_admin(api_client, admin_client, key, store, formula):
    SkuFactory(code="NEW-1")
    short = [{"sku_code": "NEW-1", "quantity": 1, "unit_price_fen": 500, "amount_fen": 500}]
    post_erp(api_client, sale_url("WS"), _sale("R-SHORT", lines=short), key)
    post_erp(api_client, sale_url("WS"), _sale("R-FINE"), key)

    page = admin_client.get("/admin/orders/possale/", {"shortfall": "yes"})

    assert page.status_code == 200
    assert "POS:WS:R-SHORT" in page.content.decode()
    assert "POS:WS:R-FINE" not in page.content.decode()
