"""WeChat Pay's payment notice through HTTP: verified before anything changes, one effect however often it comes.

The tests play WeChat Pay with their own RSA keys (see tests/integrations/test_wechat_pay_vendor.py).
"""

import datetime as dt
import json

import pytest
from django.urls import reverse

from orders.models import Order, Payment
from tests.integrations.test_wechat_pay_vendor import (
    APIV3_KEY,
    APPID,
    CERT_SERIAL_NO,
    MCHID,
    NOTIFY_URL,
    PUBLIC_KEY_ID,
    _new_key,
    _private_pem,
    _public_pem,
    notification,
    paid_transaction,
)

pytestmark = pytest.mark.django_db

PLATFORM_KEY = _new_key()
STRANGER_KEY = _new_key()


@pytest.fixture(autouse=True)
def wechat_pay_configured(settings):
    settings.WECHAT_APP_ID = APPID
    settings.WECHAT_PAY_MCH_ID = MCHID
    settings.WECHAT_PAY_PRIVATE_KEY = _private_pem(_new_key())
    settings.WECHAT_PAY_CERT_SERIAL_NO = CERT_SERIAL_NO
    settings.WECHAT_PAY_APIV3_KEY = APIV3_KEY
    settings.WECHAT_PAY_NOTIFY_URL = NOTIFY_URL
    settings.WECHAT_PAY_PUBLIC_KEY = _public_pem(PLATFORM_KEY)
    settings.WECHAT_PAY_PUBLIC_KEY_ID = PUBLIC_KEY_ID


def _notice(order, *, key=PLATFORM_KEY, sent_at=None, **changes):
    resource = paid_transaction(
        out_trade_no=order.number,
        transaction_id=changes.pop("transaction_id", "4200000000202611230000000001"),
        amount={"total": changes.pop("total", order.total_fen), "payer_total": order.total_fen, "currency": "CNY"},
        **changes,
    )
    return notification(key, resource, sent_at=sent_at or dt.datetime.now(dt.UTC))


def _post(client, headers, body):
    return client.post(reverse("wechat-pay-notify"), data=body, content_type="application/json", headers=headers)


def test_a_genuine_notice_pays_the_order_and_is_acknowledged(client, order):
    response = _post(client, *_notice(order))
    assert response.status_code == 200
    assert response.json()["code"] == "SUCCESS"
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_a_replayed_notice_pays_once_and_is_still_acknowledged(client, order):
    headers, body = _notice(order)
    assert _post(client, headers, body).status_code == 200
    assert _post(client, headers, body).status_code == 200
    assert Payment.objects.filter(order=order).count() == 1


def test_a_tampered_body_is_refused_and_changes_nothing(client, order):
    headers, body = _notice(order)
    tampered = json.loads(body)
    tampered["summary"] = "改过"
    response = _post(client, headers, json.dumps(tampered, ensure_ascii=False).encode())
    assert response.status_code == 400
    assert response.json()["code"] == "FAIL"
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


def test_a_notice_signed_with_another_key_is_refused(client, order):
    assert _post(client, *_notice(order, key=STRANGER_KEY)).status_code == 400
    assert not Payment.objects.exists()


def test_a_stale_notice_is_refused(client, order):
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
    assert _post(client, *_notice(order, sent_at=stale)).status_code == 400
    assert not Payment.objects.exists()


def test_a_notice_for_a_different_amount_is_refused_and_changes_nothing(client, order):
    response = _post(client, *_notice(order, total=order.total_fen - 1))
    assert response.status_code == 400
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
    assert not Payment.objects.exists()


def test_an_unpaid_state_is_acknowledged_and_ignored(client, order):
    response = _post(client, *_notice(order, trade_state="NOTPAY"))
    assert response.status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


def test_without_wechat_pay_the_notice_url_does_not_exist(client, settings, order):
    settings.WECHAT_PAY_MCH_ID = ""
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    assert _post(client, *_notice(order)).status_code == 404
