"""HQ's admin, the clerk console and the mall pages, as their users reach them."""

import csv
import io
from datetime import time, timedelta

import pytest
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from commissions.models import CategoryCommissionRate, Payout
from commissions.selectors import commission_settings
from integrations.models import ErpConnection, SyncJob, SyncRun
from integrations.outbox import record_webhook_event
from integrations.services import record_api_call, rotate_api_key
from integrations.webhook_endpoints import create_webhook_endpoint
from inventory.models import Category, Stock, StockMove, StockTransfer
from inventory.services import StockLine, receive_stock, receive_transfer, request_transfer, reserve_stock
from members.campaigns import create_campaign, create_segment
from members.models import CampaignMessage, CategoryPointsRate
from members.selectors import campaign_settings, loyalty_settings
from members.services import earn_points, open_follow_ups
from o2o.geo import Point, wgs84_to_gcj02
from orders import pos as till
from orders.dispatch import dispatch_order, expire_overdue_assignments
from orders.selectors import mall_settings
from orders.services import confirm_payment, place_order, request_refund, set_cart_quantity
from stores.services import set_opening_hours
from tests.factories import (
    ApiClientFactory,
    CategoryFactory,
    MemberFactory,
    SkuFactory,
    StaffFactory,
    StoreFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

MODEL_ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


@pytest.fixture
def chain():
    """One of everything HQ manages: stores with hours and staff, catalog, stock, moves, a transfer, a member."""
    source = StoreFactory(code="WS", name="文三路店")
    destination = StoreFactory(code="BJ", name="滨江店")
    set_opening_hours(store=source, weekly={0: [(time(9), time(21))]})
    StaffFactory(store=source, user=UserFactory(username="ws-clerk"), display_name="王小明")
    CategoryFactory(code="feeding", name="喂养")
    sku = SkuFactory(product__name="飞鹤星飞帆 3段", spec="800g")
    receive_stock(store=source, sku=sku, quantity=20)
    transfer = request_transfer(from_store=source, to_store=destination, lines=[StockLine(sku, 2)])
    Group.objects.create(name="区域经理")
    member = MemberFactory(home_store=source, home_store_source="store_qr", referrer=MemberFactory())
    # An order paid and partly refunded, at a store and SKU of its own so the stock tests are undisturbed
    shop, wipes = StoreFactory(code="XS", name="萧山店"), SkuFactory(product__name="湿巾")
    receive_stock(store=shop, sku=wipes, quantity=5)
    set_cart_quantity(member=member, sku=wipes, quantity=1)
    order = place_order(member=member, fulfilment="pickup", pickup_store=shop)
    confirm_payment(
        out_trade_no=order.number, transaction_id="wx-1", amount_fen=order.total_fen, paid_at=order.created_at
    )
    request_refund(payment=order.payments.get(), amount_fen=100, reason="部分退款")
    # offered to its pickup store, which lets the hour pass: the order waits in HQ's exception queue
    offer = dispatch_order(order_id=order.pk)
    expire_overdue_assignments(now=offer.deadline)
    mall_settings()
    loyalty_settings()
    CategoryPointsRate.objects.create(category=Category.objects.get(code="feeding"), points_per_yuan=2)
    commission_settings()
    CategoryCommissionRate.objects.create(category=Category.objects.get(code="feeding"), level=1, rate_bp=800)
    earn_points(member=member, reference="POS-1", lines=[(None, 9900)])
    sku.product.days_per_unit = 7
    sku.product.save(update_fields=["days_per_unit"])
    open_follow_ups(member=member, store=source, reference="POS-1", lines=[(sku.product_id, 2)])
    # An ERP client restricted to the source store, with a key that has made one call
    pos = ApiClientFactory(name="文三路店 POS", scopes=["members:read", "followups:read"])
    pos.stores.set([source])
    rotate_api_key(client=pos, overlap=timedelta(hours=24))
    record_api_call(
        client_id=pos.pk,
        key_prefix=pos.keys.first().prefix,
        method="GET",
        endpoint="api/v1/erp/members/lookup/",
        path="/api/v1/erp/members/lookup/",
        status_code=200,
        duration_ms=4,
    )
    # A segment and a campaign to it, with one logged message; HQ's frequency cap
    segment = create_segment(name="文三路店会员", home_store=source, product=sku.product)
    campaign = create_campaign(segment=segment, name="奶粉周末", channel="sms", body="飞鹤满300减30")
    CampaignMessage.objects.create(
        campaign=campaign, member=member, channel="sms", status="skipped_no_consent", at=timezone.now()
    )
    campaign_settings()
    # An ERP webhook endpoint with one event in the outbox and its delivery
    erp = ApiClientFactory(name="总部 ERP", scopes=["webhooks"])
    create_webhook_endpoint(client=erp, url="https://erp.example.com/hooks", event_types=["member.created"])
    record_webhook_event(event_type="member.created", payload={"member_id": member.pk}, store_ids=None)
    # A till sale to the member, beyond a stock the shop never had, and one unit of it returned
    toy = SkuFactory(product__name="积木", code="TOY-1")
    till.record_pos_sale(
        store=shop,
        receipt_id="R-1",
        sold_at=timezone.now(),
        lines=[till.SaleLine(sku_code="TOY-1", quantity=2, unit_price_fen=5000, amount_fen=10000)],
        total_fen=10000,
        member=till.MemberRef(member_id=member.pk),
    )
    till.record_pos_return(
        store=shop,
        return_id="RT-1",
        receipt_id="R-1",
        returned_at=timezone.now(),
        lines=[till.ReturnedLine(sku_code=toy.code, quantity=1, amount_fen=5000)],
    )
    # An ERP we call on a schedule, its stock job and one failed run
    erp_pull = ErpConnection.objects.create(
        name="总部 ERP", base_url="https://erp.example.com/o2o", auth_token="Bearer x"
    )
    erp_pull.stores.set([source])
    job = SyncJob.objects.create(connection=erp_pull, kind=SyncJob.Kind.PULL_STOCK, cursor="2")
    SyncRun.objects.create(
        job=job, status="failed", finished_at=timezone.now(), duration_ms=1200, pages=2, errors=["x"]
    )
    # A promoter's withdrawal waiting for HQ (the page shows the balances and the decision buttons)
    Payout.objects.create(member=member.referrer, amount_fen=1000)
    return {"source": source, "destination": destination, "sku": sku, "transfer": transfer}


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _admin_request(admin_user):
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    return request


def _messages(response) -> list[tuple[int, str]]:
    return [(m.level, m.message) for m in response.context["messages"]]


# --- every admin screen opens -------------------------------------------------------------------


@pytest.mark.parametrize(("model", "model_admin"), MODEL_ADMINS, ids=[m._meta.label for m, _a in MODEL_ADMINS])
def test_every_admin_list_add_and_change_page_opens(admin_client, admin_user, chain, model, model_admin):
    # The list, and the list searched (search_fields are only checked when used)
    assert admin_client.get(_url(model, "changelist")).status_code == 200
    if model_admin.search_fields:
        assert admin_client.get(_url(model, "changelist"), {"q": "飞鹤"}).status_code == 200

    # The add page, where adding is allowed
    if model_admin.has_add_permission(_admin_request(admin_user)):
        assert admin_client.get(_url(model, "add")).status_code == 200
    else:
        assert admin_client.get(_url(model, "add")).status_code == 403

    # The page of an existing object
    obj = model._default_manager.order_by("pk").first()
    assert obj is not None, f"the fixture has no {model._meta.label}"
    assert admin_client.get(_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize("level", ["low", "out"])
def test_the_stock_list_filters_by_level(admin_client, chain, level):
    response = admin_client.get(_url(Stock, "changelist"), {"level": level})

    assert response.status_code == 200


# --- receive or count stock ---------------------------------------------------------------------

CHANGE_STOCK = "admin:inventory_stock_change_stock"


def test_receiving_stock_in_the_admin_goes_through_the_service_and_writes_a_move(admin_client, admin_user, chain):
    store, sku = chain["destination"], chain["sku"]
    assert admin_client.get(reverse(CHANGE_STOCK)).status_code == 200

    response = admin_client.post(
        reverse(CHANGE_STOCK),
        {"action": "receive", "store": store.pk, "sku": sku.pk, "quantity": 7, "reason": "供应商到货"},
    )

    assert response.status_code == 302
    assert response["Location"] == _url(Stock, "changelist")
    move = StockMove.objects.filter(store=store, sku=sku).get()
    assert (move.kind, move.on_hand_delta, move.on_hand_after, move.actor, move.reason) == (
        StockMove.Kind.RECEIVE,
        7,
        7,
        admin_user,
        "供应商到货",
    )


def test_a_count_below_reserved_in_the_admin_shows_a_form_error_and_changes_nothing(admin_client, chain):
    # Given 20 on hand at the source, 2 reserved by the transfer
    store, sku = chain["source"], chain["sku"]
    moves_before = StockMove.objects.count()

    # When HQ records a count of 1
    response = admin_client.post(
        reverse(CHANGE_STOCK), {"action": "count", "store": store.pk, "sku": sku.pk, "quantity": 1, "reason": ""}
    )

    # Then the form comes back with the refusal, and the stock is untouched
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert b"errornote" in response.content
    assert Stock.objects.filter(store=store, sku=sku).values_list("on_hand", "reserved").get() == (20, 2)
    assert StockMove.objects.count() == moves_before


# --- transfers ----------------------------------------------------------------------------------


def _transfer_form(source, destination, sku, quantity) -> dict:
    return {
        "from_store": source.pk,
        "to_store": destination.pk,
        "reference": "HQ-0001",
        "note": "补货",
        "lines-TOTAL_FORMS": "3",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "1",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-sku": sku.pk,
        "lines-0-quantity": quantity,
    }


def test_requesting_a_transfer_in_the_admin_creates_it_with_the_goods_reserved(admin_client, admin_user, chain):
    source, destination, sku = chain["source"], chain["destination"], chain["sku"]

    response = admin_client.post(_url(StockTransfer, "add"), _transfer_form(source, destination, sku, 5))

    transfer = StockTransfer.objects.exclude(pk=chain["transfer"].pk).get()
    assert response.status_code == 302
    assert response["Location"] == _url(StockTransfer, "change", transfer.pk)
    assert (transfer.status, transfer.requested_by, transfer.reference) == ("requested", admin_user, "HQ-0001")
    assert list(transfer.lines.values_list("sku_id", "quantity")) == [(sku.pk, 5)]
    assert Stock.objects.get(store=source, sku=sku).reserved == 2 + 5


def test_a_transfer_the_source_cannot_supply_is_shown_as_a_form_error(admin_client, chain):
    source, destination, sku = chain["source"], chain["destination"], chain["sku"]

    response = admin_client.post(_url(StockTransfer, "add"), _transfer_form(source, destination, sku, 19))

    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert StockTransfer.objects.count() == 1


def test_a_transfer_to_the_same_store_is_refused_by_the_admin_form(admin_client, chain):
    source, sku = chain["source"], chain["sku"]

    response = admin_client.post(_url(StockTransfer, "add"), _transfer_form(source, source, sku, 1))

    assert response.status_code == 200
    assert "to_store" in response.context["form"].errors
    assert StockTransfer.objects.count() == 1


def _act(admin_client, action: str, transfers):
    return admin_client.post(
        _url(StockTransfer, "changelist"),
        {"action": action, "_selected_action": [t.pk for t in transfers]},
        follow=True,
    )


def test_the_ship_and_receive_actions_move_the_transfer_and_its_stock(admin_client, chain):
    transfer, source, destination, sku = chain["transfer"], chain["source"], chain["destination"], chain["sku"]

    shipped = _act(admin_client, "ship_transfer_action", [transfer])
    transfer.refresh_from_db()
    assert transfer.status == "shipped"
    assert [level for level, _m in _messages(shipped)] == [messages.SUCCESS]
    assert Stock.objects.filter(store=source, sku=sku).values_list("on_hand", "reserved").get() == (18, 0)

    received = _act(admin_client, "receive_transfer_action", [transfer])
    transfer.refresh_from_db()
    assert transfer.status == "received"
    assert [level for level, _m in _messages(received)] == [messages.SUCCESS]
    assert Stock.objects.get(store=destination, sku=sku).on_hand == 2


def test_the_cancel_action_releases_the_reservation(admin_client, chain):
    transfer, source, sku = chain["transfer"], chain["source"], chain["sku"]

    response = _act(admin_client, "cancel_transfer_action", [transfer])

    transfer.refresh_from_db()
    assert transfer.status == "cancelled"
    assert [level for level, _m in _messages(response)] == [messages.SUCCESS]
    assert Stock.objects.get(store=source, sku=sku).reserved == 0


def test_an_illegal_action_is_reported_as_an_error_and_the_others_still_run(admin_client, chain):
    # Given one received transfer and one still requested
    done = chain["transfer"]
    _act(admin_client, "ship_transfer_action", [done])
    receive_transfer(transfer=done)
    pending = request_transfer(
        from_store=chain["source"], to_store=chain["destination"], lines=[StockLine(chain["sku"], 1)]
    )

    # When both are shipped
    response = _act(admin_client, "ship_transfer_action", [done, pending])

    # Then the received one is reported as an error by number, and the other ships
    levels = [level for level, _m in _messages(response)]
    assert sorted(levels) == sorted([messages.ERROR, messages.SUCCESS])
    error = next(m for level, m in _messages(response) if level == messages.ERROR)
    assert error.startswith(f"#{done.pk}: ")
    done.refresh_from_db()
    pending.refresh_from_db()
    assert (done.status, pending.status) == ("received", "shipped")


# --- CSV export ---------------------------------------------------------------------------------


def test_the_stock_csv_export_is_utf8_with_a_bom_and_one_row_per_selected_stock_row(admin_client, chain):
    # Given three stock rows, two of them selected
    formula = Stock.objects.get(store=chain["source"], sku=chain["sku"])
    diapers_sku = SkuFactory(product__name="花王纸尿裤", spec="M 64片")
    receive_stock(store=chain["destination"], sku=diapers_sku, quantity=30)
    diapers = Stock.objects.get(sku=diapers_sku)
    receive_stock(store=chain["destination"], sku=SkuFactory(), quantity=1)  # not selected

    response = admin_client.post(
        _url(Stock, "changelist"), {"action": "export_csv", "_selected_action": [formula.pk, diapers.pk]}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header, *data = rows
    assert len(header) == 11
    assert [(r[0], r[4], r[6], r[7], r[8]) for r in data] == [
        ("BJ", "花王纸尿裤", "30", "0", "30"),
        ("WS", "飞鹤星飞帆 3段", "20", "2", "18"),
    ]


# --- the mall and the console -------------------------------------------------------------------


def test_the_mall_home_page_opens(client, chain):
    response = client.get("/mall/")

    assert response.status_code == 200
    assert "文三路店".encode() in response.content  # in the store chooser


def test_the_site_root_leads_to_the_mall(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/mall/"


def test_the_console_sends_anonymous_visitors_to_sign_in(client):
    response = client.get("/console/")

    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")


def test_a_clerk_signs_in_at_the_console_and_sees_only_their_own_stores_stock(client, clerk):
    # Given stock in the clerk's store and in another store
    own_sku = SkuFactory(product__name="飞鹤星飞帆 3段")
    other_sku = SkuFactory(product__name="花王纸尿裤")
    receive_stock(store=clerk.store, sku=own_sku, quantity=12)
    receive_stock(store=StoreFactory(), sku=other_sku, quantity=30)
    assert client.get("/console/login/").status_code == 200

    # When the clerk signs in, they land on their store's new orders; then they open the stock tab
    response = client.post("/console/login/", {"username": "ws-clerk", "password": "pass-word-123"}, follow=True)
    assert response.redirect_chain[-1][0].endswith("/console/orders/")
    response = client.get("/console/stock/")

    # Then the stock shows only their store's goods
    assert response.status_code == 200
    html = response.content.decode()
    assert "飞鹤星飞帆 3段" in html
    assert "花王纸尿裤" not in html
    assert [row.sku for row in response.context["rows"]] == [own_sku]


def test_a_wrong_password_at_the_console_is_refused(client, clerk):
    response = client.post("/console/login/", {"username": "ws-clerk", "password": "wrong"})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session


def test_a_signed_in_user_who_is_not_store_staff_is_refused_the_console(client):
    client.force_login(UserFactory(username="shopper"))

    assert client.get("/console/stock/").status_code == 403


def test_the_nearby_stores_fragment_lists_the_nearest_first_from_a_browser_position(client):
    # Given two stores north of a shopper whose browser reports WGS-84
    gps = Point(30.2560, 120.1440)
    here = wgs84_to_gcj02(gps)
    StoreFactory(name="远店", latitude=f"{here.lat + 0.0225:.6f}", longitude=f"{here.lng:.6f}")
    StoreFactory(name="近店", latitude=f"{here.lat + 0.0027:.6f}", longitude=f"{here.lng:.6f}")

    response = client.get("/mall/stores/nearby/", {"lat": gps.lat, "lng": gps.lng, "coord": "wgs84"})

    assert response.status_code == 200
    assert [row["store"].name for row in response.context["nearby"]] == ["近店", "远店"]
    html = response.content.decode()
    assert html.index("近店") < html.index("远店")


@pytest.mark.parametrize(("lat", "lng"), [("91", "120"), ("abc", "120"), ("", "")])
def test_the_nearby_stores_fragment_answers_400_to_a_bad_position(client, lat, lng):
    response = client.get("/mall/stores/nearby/", {"lat": lat, "lng": lng, "coord": "wgs84"})

    assert response.status_code == 400
    assert b'class="notice error"' in response.content


def test_the_chosen_store_is_remembered_in_the_session(client, chain):
    response = client.post("/mall/stores/choose/", {"store_id": chain["source"].pk})

    assert response.status_code == 302
    assert client.get("/mall/").context["chosen_store"] == chain["source"]


def test_stock_moves_are_found_by_their_reference_in_the_admin(admin_client, chain):
    reserve_stock(store=chain["source"], lines=[StockLine(chain["sku"], 3)], reference="order:9")

    response = admin_client.get(_url(StockMove, "changelist"), {"q": "order:9"})

    assert response.status_code == 200
    assert b"order:9" in response.content
