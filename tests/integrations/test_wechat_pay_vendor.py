"""The WeChat Pay v3 adapter: callbacks verified and decrypted, requests as WeChat Pay documents them.

The tests play WeChat Pay's part with keys of their own (docs: /work/shared/wechat-pay-testing.md):
a merchant key the gateway signs with, a platform key "WeChat Pay" signs callbacks and answers
with, and the APIv3 key that encrypts callback resources. No test reaches WeChat Pay: requests'
transport (HTTPAdapter.send) is replaced for every test by a fake that answers from a script,
signs its answers with the platform key, and records every request sent.
"""

import base64
import datetime as dt
import json
import re
import secrets
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from integrations.vendors import wechat_pay
from integrations.vendors.wechat_pay import (
    DevelopmentGateway,
    InvalidNotification,
    PaymentGatewayError,
    PaymentNotConfigured,
    PaymentNotice,
    RefundResult,
    TransferResult,
    WeChatPayGateway,
    notification_ack,
    notification_nack,
    payment_gateway,
)
from o2o.errors import ApplicationError

MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
CERT_SERIAL_NO = "444F4864EA9B34415A7CF3D7E1C2F7C6E6A3A1B0"
APIV3_KEY = "a12d3924fd499edac8a5efc2a1b3c4d5"  # 32 characters
PUBLIC_KEY_ID = "PUB_KEY_ID_0119000001092025030100000000000001"
NOTIFY_URL = "https://mall.example.cn/pay/wechat/notify"
OPENID = "oHkLxtx0vUqe-18p_AXTZ1innxkCY"
NOW = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)  # 17:00 in Beijing


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def _verifies(key: rsa.RSAPrivateKey, signature: str, message: str) -> bool:
    try:
        key.public_key().verify(base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


@pytest.fixture(scope="module")
def merchant_key() -> rsa.RSAPrivateKey:
    return _new_key()


@pytest.fixture(scope="module")
def platform_key() -> rsa.RSAPrivateKey:
    return _new_key()


@pytest.fixture(scope="module")
def stranger_key() -> rsa.RSAPrivateKey:
    """A key neither the merchant nor WeChat Pay holds."""
    return _new_key()


@pytest.fixture
def clock() -> dict[str, dt.datetime]:
    """The gateway's `now`; a test moves it by setting clock["now"]."""
    return {"now": NOW}


@pytest.fixture
def gateway(merchant_key, platform_key, clock) -> WeChatPayGateway:
    return WeChatPayGateway(
        mchid=MCHID,
        appid=APPID,
        private_key_pem=_private_pem(merchant_key),
        cert_serial_no=CERT_SERIAL_NO,
        apiv3_key=APIV3_KEY,
        notify_url=NOTIFY_URL,
        platform_public_key_pem=_public_pem(platform_key),
        platform_public_key_id=PUBLIC_KEY_ID,
        now=lambda: clock["now"],
    )


# -- WeChat Pay's side: its HTTP answers --------------------------------------------------------


class FakeWeChatPay:
    """Answers api.mch.weixin.qq.com from `answers` (method, path) -> (status, body); records requests.

    2xx answers are signed as WeChat Pay signs them (platform key over "timestamp\\nnonce\\nbody\\n",
    Wechatpay-* headers); `signing_key` lets a test sign with another key.
    """

    def __init__(self, platform_key: rsa.RSAPrivateKey) -> None:
        self.signing_key = platform_key
        self.answers: dict[tuple[str, str], tuple[int, dict[str, Any] | None] | Exception] = {}
        self.requests: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def answer(self, method: str, path: str, status: int, body: dict[str, Any] | None = None) -> None:
        self.answers[(method, path)] = (status, body)

    def fail(self, method: str, path: str, error: Exception) -> None:
        self.answers[(method, path)] = error

    def last_json(self) -> dict[str, Any]:
        return json.loads(self.requests[-1].body)

    def send(self, adapter: Any, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = requests.utils.urlparse(request.url)
        path = url.path + (f"?{url.query}" if url.query else "")
        self.requests.append(request)
        self.timeouts.append(kwargs.get("timeout"))
        if url.hostname != "api.mch.weixin.qq.com" or (request.method, path) not in self.answers:
            raise AssertionError(f"unexpected outbound request: {request.method} {request.url}")
        answer = self.answers[(request.method, path)]
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        text = "" if body is None else json.dumps(body, ensure_ascii=False)
        response = requests.Response()
        response.request, response.url, response.status_code = request, request.url, status
        response._content = text.encode()
        if body is not None:
            response.headers["Content-Type"] = "application/json; charset=utf-8"
        if 200 <= status < 300:
            timestamp, nonce = str(int(NOW.timestamp())), secrets.token_hex(16)
            response.headers.update(
                {
                    "Wechatpay-Timestamp": timestamp,
                    "Wechatpay-Nonce": nonce,
                    "Wechatpay-Serial": PUBLIC_KEY_ID,
                    "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                    "Wechatpay-Signature": _sign(self.signing_key, f"{timestamp}\n{nonce}\n{text}\n"),
                }
            )
        return response


@pytest.fixture(autouse=True)
def wechat_pay_api(platform_key) -> Iterator[FakeWeChatPay]:
    fake = FakeWeChatPay(platform_key)
    with mock.patch.object(requests.adapters.HTTPAdapter, "send", autospec=True, side_effect=fake.send):
        yield fake


# -- WeChat Pay's side: callbacks ---------------------------------------------------------------


def paid_transaction(**changes: Any) -> dict[str, Any]:
    """The decrypted resource of a TRANSACTION.SUCCESS callback, as WeChat Pay documents it."""
    resource = {
        "mchid": MCHID,
        "appid": APPID,
        "out_trade_no": "O20250301000123",
        "transaction_id": "4200002345202503011234567890",
        "trade_type": "JSAPI",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "CMC",
        "attach": "",
        "success_time": "2025-03-01T16:59:30+08:00",
        "payer": {"openid": OPENID},
        "amount": {"total": 12900, "payer_total": 12900, "currency": "CNY", "payer_currency": "CNY"},
    }
    resource.update(changes)
    return resource


def encrypt_resource(plaintext: str, *, key: str = APIV3_KEY, associated_data: str = "transaction") -> dict[str, str]:
    nonce = secrets.token_hex(6)  # 12 characters: WeChat Pay's nonce is 12 bytes of text
    ciphertext = AESGCM(key.encode()).encrypt(nonce.encode(), plaintext.encode(), associated_data.encode())
    return {
        "original_type": "transaction",
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def notification(
    signing_key: rsa.RSAPrivateKey,
    resource: dict[str, Any] | str | None = None,
    *,
    event_type: str = "TRANSACTION.SUCCESS",
    apiv3_key: str = APIV3_KEY,
    sent_at: dt.datetime = NOW,
    serial: str = PUBLIC_KEY_ID,
) -> tuple[dict[str, str], bytes]:
    """(headers, body) of a callback exactly as WeChat Pay sends one."""
    plaintext = resource if isinstance(resource, str) else json.dumps(resource or paid_transaction())
    body = json.dumps(
        {
            "id": "EV-2018022511223320873",
            "create_time": "2025-03-01T17:00:00+08:00",
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功",
            "resource": encrypt_resource(plaintext, key=apiv3_key),
        },
        ensure_ascii=False,
    )
    timestamp, nonce = str(int(sent_at.timestamp())), secrets.token_hex(16)
    headers = {
        "Wechatpay-Signature": _sign(signing_key, f"{timestamp}\n{nonce}\n{body}\n"),
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }
    return headers, body.encode()


def refused_code(gateway, headers: dict[str, str], body: bytes) -> str:
    with pytest.raises(InvalidNotification) as refused:
        gateway.parse_notification(headers=headers, body=body)
    assert refused.value.status == 400
    return refused.value.code


# -- callbacks ----------------------------------------------------------------------------------


def test_a_genuine_payment_callback_is_read_into_a_payment_notice(gateway, platform_key, wechat_pay_api):
    headers, body = notification(platform_key)

    notice = gateway.parse_notification(headers=headers, body=body)

    assert notice == PaymentNotice(
        out_trade_no="O20250301000123",
        transaction_id="4200002345202503011234567890",
        trade_state="SUCCESS",
        amount_fen=12900,
        payer_openid=OPENID,
        mchid=MCHID,
        appid=APPID,
        success_time=dt.datetime(2025, 3, 1, 8, 59, 30, tzinfo=dt.UTC),
    )
    assert notice.success_time.utcoffset() == dt.timedelta(hours=8)
    assert notice.is_paid
    assert wechat_pay_api.requests == []  # verified offline, with the configured platform key


@pytest.mark.parametrize(
    "spelling",
    [str.lower, str.upper, lambda name: "HTTP_" + name.upper().replace("-", "_")],
    ids=["lowercase", "uppercase", "django-meta"],
)
def test_callback_header_names_are_read_in_any_case(gateway, platform_key, spelling):
    headers, body = notification(platform_key)

    notice = gateway.parse_notification(headers={spelling(name): value for name, value in headers.items()}, body=body)

    assert notice.transaction_id == "4200002345202503011234567890"


def test_a_callback_whose_body_was_changed_is_refused_as_bad_signature(gateway, platform_key):
    headers, body = notification(platform_key)
    tampered = body.replace("支付成功".encode(), "支付失败".encode())
    assert tampered != body

    assert refused_code(gateway, headers, tampered) == "bad_signature"


def test_a_callback_whose_body_is_not_utf8_is_refused_as_bad_signature(gateway, platform_key):
    headers, body = notification(platform_key)

    assert refused_code(gateway, headers, body + b"\xff") == "bad_signature"


def test_a_callback_signed_by_another_key_is_refused(gateway, stranger_key):
    headers, body = notification(stranger_key)

    assert refused_code(gateway, headers, body) == "bad_signature"


def test_a_callback_naming_an_unknown_platform_key_is_refused_without_calling_wechat_pay(
    gateway, platform_key, wechat_pay_api
):
    # wechatpayv3 itself would download platform certificates to look for an unknown serial.
    headers, body = notification(platform_key, serial="PUB_KEY_ID_0119000001092099999999999999999")

    assert refused_code(gateway, headers, body) == "bad_signature"
    assert wechat_pay_api.requests == []


@pytest.mark.parametrize(
    ("signature", "signature_type"),
    [
        ("WECHATPAY/SIGNTEST/ZmFrZSBzaWduYXR1cmU=", "WECHATPAY2-SHA256-RSA2048"),  # WeChat Pay's probe
        ("not base64 at all!", "WECHATPAY2-SHA256-RSA2048"),
        (None, "WECHATPAY2-SM2-WITH-SM3"),
    ],
    ids=["signature-probe", "garbage", "other-algorithm"],
)
def test_a_probe_or_unsupported_signature_is_refused(gateway, platform_key, signature, signature_type):
    headers, body = notification(platform_key)
    headers["Wechatpay-Signature-Type"] = signature_type
    if signature is not None:
        headers["Wechatpay-Signature"] = signature

    assert refused_code(gateway, headers, body) == "bad_signature"


def test_a_callback_without_signature_type_header_is_read_as_rsa(gateway, platform_key):
    headers, body = notification(platform_key)
    del headers["Wechatpay-Signature-Type"]

    assert gateway.parse_notification(headers=headers, body=body).trade_state == "SUCCESS"


@pytest.mark.parametrize(
    ("missing", "code"),
    [
        ("Wechatpay-Signature", "bad_signature"),
        ("Wechatpay-Timestamp", "malformed_notification"),
        ("Wechatpay-Nonce", "malformed_notification"),
        ("Wechatpay-Serial", "malformed_notification"),
    ],
)
def test_a_callback_missing_a_header_is_refused(gateway, platform_key, missing, code):
    headers, body = notification(platform_key)
    del headers[missing]

    assert refused_code(gateway, headers, body) == code


@pytest.mark.parametrize("offset_s", [-360, 360], ids=["6-minutes-old", "6-minutes-ahead"])
def test_a_callback_more_than_five_minutes_from_now_is_refused_as_stale(gateway, platform_key, clock, offset_s):
    headers, body = notification(platform_key, sent_at=NOW)
    clock["now"] = NOW - dt.timedelta(seconds=offset_s)

    assert refused_code(gateway, headers, body) == "stale_notification"


@pytest.mark.parametrize("offset_s", [-300, 299, 300])
def test_a_callback_within_five_minutes_is_fresh(gateway, platform_key, clock, offset_s):
    headers, body = notification(platform_key, sent_at=NOW)
    clock["now"] = NOW + dt.timedelta(seconds=offset_s)

    assert gateway.parse_notification(headers=headers, body=body).trade_state == "SUCCESS"


def test_a_stale_callback_with_a_forged_signature_is_refused_for_its_signature_first(gateway, stranger_key, clock):
    headers, body = notification(stranger_key, sent_at=NOW - dt.timedelta(hours=1))

    assert refused_code(gateway, headers, body) == "bad_signature"


def test_a_resource_encrypted_with_another_apiv3_key_is_refused(gateway, platform_key):
    headers, body = notification(platform_key, apiv3_key="b" * 32)

    assert refused_code(gateway, headers, body) == "malformed_notification"


@pytest.mark.parametrize(
    "body_text",
    ["not json", '{"resource_type": "encrypt-resource"}', '{"resource_type": "plain", "resource": {}}'],
    ids=["not-json", "no-resource", "not-encrypted"],
)
def test_a_signed_body_without_a_readable_resource_is_malformed(gateway, platform_key, body_text):
    timestamp, nonce = str(int(NOW.timestamp())), "n0nce"
    headers = {
        "Wechatpay-Signature": _sign(platform_key, f"{timestamp}\n{nonce}\n{body_text}\n"),
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": PUBLIC_KEY_ID,
    }

    assert refused_code(gateway, headers, body_text.encode()) == "malformed_notification"


@pytest.mark.parametrize(
    "resource",
    [
        "this is not json",
        json.dumps(paid_transaction(amount={"total": "12900"})),
        json.dumps({key: value for key, value in paid_transaction().items() if key != "out_trade_no"}),
        json.dumps(paid_transaction(success_time="yesterday")),
    ],
    ids=["not-json", "amount-as-text", "no-out-trade-no", "bad-success-time"],
)
def test_a_decrypted_resource_that_makes_no_sense_is_malformed(gateway, platform_key, resource):
    headers, body = notification(platform_key, resource)

    assert refused_code(gateway, headers, body) == "malformed_notification"


@pytest.mark.parametrize(
    "changes", [{"mchid": "1900000999"}, {"appid": "wx0000000000000000"}], ids=["other-mchid", "other-appid"]
)
def test_a_callback_for_another_merchant_or_app_is_refused(gateway, platform_key, changes):
    headers, body = notification(platform_key, paid_transaction(**changes))

    assert refused_code(gateway, headers, body) == "foreign_notification"


def test_a_genuine_refund_result_is_not_taken_for_a_payment(gateway, platform_key):
    refund_resource = {
        "mchid": MCHID,
        "out_trade_no": "O20250301000123",
        "transaction_id": "4200002345202503011234567890",
        "out_refund_no": "R1",
        "refund_id": "50000000382019052709732678859",
        "refund_status": "SUCCESS",
        "amount": {"total": 12900, "refund": 12900, "payer_total": 12900, "payer_refund": 12900},
    }
    headers, body = notification(platform_key, refund_resource, event_type="REFUND.SUCCESS")

    assert refused_code(gateway, headers, body) == "unsupported_notification"


def test_the_callback_answers_are_wechat_pays(gateway):
    assert notification_ack() == ({"code": "SUCCESS", "message": "成功"}, 200)
    assert notification_nack("签名错误") == ({"code": "FAIL", "message": "签名错误"}, 400)


# -- the page's payment parameters -----------------------------------------------------------------


def test_jsapi_pay_params_are_signed_by_the_merchant_key_over_the_documented_message(gateway, merchant_key):
    params = gateway.jsapi_pay_params(prepay_id="wx201410272009395522657a690389285100")

    assert params["appId"] == APPID
    assert params["timeStamp"] == str(int(NOW.timestamp()))
    assert params["package"] == "prepay_id=wx201410272009395522657a690389285100"
    assert params["signType"] == "RSA"
    assert re.fullmatch(r"[A-Za-z0-9]{32}", params["nonceStr"])
    message = f"{APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    assert _verifies(merchant_key, params["paySign"], message)
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}


def test_each_pay_params_object_has_its_own_nonce(gateway):
    first, second = (gateway.jsapi_pay_params(prepay_id="wx1") for _ in range(2))

    assert first["nonceStr"] != second["nonceStr"]


# -- requests to WeChat Pay ----------------------------------------------------------------------

PREPAY_PATH = "/v3/pay/transactions/jsapi"
ORDER_PATH = f"/v3/pay/transactions/out-trade-no/O20250301000123?mchid={MCHID}"
CLOSE_PATH = "/v3/pay/transactions/out-trade-no/O20250301000123/close"
REFUND_PATH = "/v3/refund/domestic/refunds"


def _prepay(gateway, **changes: Any) -> str:
    arguments = {
        "out_trade_no": "O20250301000123",
        "description": "贝恩母婴-文三路店-婴儿奶粉 900g",
        "amount_fen": 12900,
        "payer_openid": OPENID,
        "expires_at": NOW + dt.timedelta(minutes=30),
    }
    return gateway.create_jsapi_prepay(**{**arguments, **changes})


def test_prepay_sends_the_order_as_wechat_pay_documents_it(gateway, wechat_pay_api):
    wechat_pay_api.answer("POST", PREPAY_PATH, 200, {"prepay_id": "wx201410272009395522657a690389285100"})

    prepay_id = _prepay(gateway)

    assert prepay_id == "wx201410272009395522657a690389285100"
    assert wechat_pay_api.last_json() == {
        "appid": APPID,
        "mchid": MCHID,
        "description": "贝恩母婴-文三路店-婴儿奶粉 900g",
        "out_trade_no": "O20250301000123",
        "notify_url": NOTIFY_URL,
        "amount": {"total": 12900, "currency": "CNY"},
        "payer": {"openid": OPENID},
        "time_expire": "2025-03-01T17:30:00+08:00",
    }
    assert wechat_pay_api.timeouts == [wechat_pay.HTTP_TIMEOUT_S]


def test_requests_are_signed_by_the_merchant_key_over_the_bytes_sent(gateway, wechat_pay_api, merchant_key):
    wechat_pay_api.answer("POST", PREPAY_PATH, 200, {"prepay_id": "wx1"})

    _prepay(gateway)

    sent = wechat_pay_api.requests[-1]
    scheme, _, params = sent.headers["Authorization"].partition(" ")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    assert fields["mchid"] == MCHID
    assert fields["serial_no"] == CERT_SERIAL_NO
    assert sent.headers["Wechatpay-Serial"] == PUBLIC_KEY_ID
    message = f"POST\n{PREPAY_PATH}\n{fields['timestamp']}\n{fields['nonce_str']}\n{sent.body.decode()}\n"
    assert _verifies(merchant_key, fields["signature"], message)


def test_prepay_writes_any_aware_expiry_in_beijing_time(gateway, wechat_pay_api):
    wechat_pay_api.answer("POST", PREPAY_PATH, 200, {"prepay_id": "wx1"})
    new_york = dt.timezone(dt.timedelta(hours=-5))

    _prepay(gateway, expires_at=dt.datetime(2025, 3, 1, 4, 30, 15, 999, tzinfo=new_york))

    assert wechat_pay_api.last_json()["time_expire"] == "2025-03-01T17:30:15+08:00"


@pytest.mark.parametrize(
    "changes",
    [{"expires_at": dt.datetime(2025, 3, 1, 17, 30)}, {"amount_fen": 0}, {"amount_fen": 129.0}, {"payer_openid": ""}],
    ids=["naive-expiry", "zero-amount", "float-amount", "no-openid"],
)
def test_prepay_refuses_arguments_wechat_pay_would_refuse(gateway, wechat_pay_api, changes):
    with pytest.raises(ValueError):
        _prepay(gateway, **changes)
    assert wechat_pay_api.requests == []


def test_an_error_answer_raises_payment_gateway_error_with_wechat_pays_code(gateway, wechat_pay_api):
    wechat_pay_api.answer(
        "POST", PREPAY_PATH, 400, {"code": "PARAM_ERROR", "message": "输入源“/body/payer/openid”有误"}
    )

    with pytest.raises(PaymentGatewayError) as refused:
        _prepay(gateway)

    assert refused.value.code == "payment_gateway_error"
    assert refused.value.status == 502
    assert refused.value.details == {
        "action": "prepay",
        "http_status": 400,
        "wechat_code": "PARAM_ERROR",
        "wechat_message": "输入源“/body/payer/openid”有误",
    }
    assert isinstance(refused.value, ApplicationError)


def test_an_answer_not_signed_by_the_platform_key_is_refused(gateway, wechat_pay_api, stranger_key):
    wechat_pay_api.answer("POST", PREPAY_PATH, 200, {"prepay_id": "wx-forged"})
    wechat_pay_api.signing_key = stranger_key

    with pytest.raises(PaymentGatewayError) as refused:
        _prepay(gateway)

    assert refused.value.details["action"] == "prepay"


@pytest.mark.parametrize(
    "error", [requests.ConnectionError("refused"), requests.Timeout("read timed out")], ids=["down", "slow"]
)
def test_an_unreachable_wechat_pay_raises_payment_gateway_error(gateway, wechat_pay_api, error):
    wechat_pay_api.fail("POST", PREPAY_PATH, error)

    with pytest.raises(PaymentGatewayError) as refused:
        _prepay(gateway)

    assert refused.value.details == {"action": "prepay", "reason": type(error).__name__}


def test_an_answer_without_prepay_id_raises_payment_gateway_error(gateway, wechat_pay_api):
    wechat_pay_api.answer("POST", PREPAY_PATH, 200, {"unexpected": True})

    with pytest.raises(PaymentGatewayError):
        _prepay(gateway)


def test_query_reads_a_paid_order(gateway, wechat_pay_api):
    wechat_pay_api.answer("GET", ORDER_PATH, 200, paid_transaction())

    notice = gateway.query_order(out_trade_no="O20250301000123")

    assert notice is not None
    assert (notice.trade_state, notice.amount_fen, notice.transaction_id) == (
        "SUCCESS",
        12900,
        "4200002345202503011234567890",
    )
    assert wechat_pay_api.requests[-1].method == "GET"


def test_query_reads_an_unpaid_order_without_payer_or_transaction(gateway, wechat_pay_api):
    unpaid = {
        "appid": APPID,
        "mchid": MCHID,
        "out_trade_no": "O20250301000123",
        "trade_state": "NOTPAY",
        "trade_state_desc": "订单未支付",
        "amount": {"payer_currency": "CNY", "total": 12900},
        "promotion_detail": [],
    }
    wechat_pay_api.answer("GET", ORDER_PATH, 200, unpaid)

    notice = gateway.query_order(out_trade_no="O20250301000123")

    assert notice == PaymentNotice(
        out_trade_no="O20250301000123",
        transaction_id="",
        trade_state="NOTPAY",
        amount_fen=12900,
        payer_openid="",
        mchid=MCHID,
        appid=APPID,
        success_time=None,
    )
    assert not notice.is_paid


def test_query_of_an_order_wechat_pay_never_saw_is_none(gateway, wechat_pay_api):
    wechat_pay_api.answer("GET", ORDER_PATH, 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})

    assert gateway.query_order(out_trade_no="O20250301000123") is None


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, {"code": "SYSTEM_ERROR", "message": "系统错误"}), (200, paid_transaction(mchid="1900000999"))],
    ids=["system-error", "other-merchant"],
)
def test_query_errors_raise_payment_gateway_error(gateway, wechat_pay_api, status, body):
    wechat_pay_api.answer("GET", ORDER_PATH, status, body)

    with pytest.raises(PaymentGatewayError):
        gateway.query_order(out_trade_no="O20250301000123")


def test_close_posts_the_merchant_id_and_accepts_no_content(gateway, wechat_pay_api):
    wechat_pay_api.answer("POST", CLOSE_PATH, 204)

    assert gateway.close_order(out_trade_no="O20250301000123") is None
    assert wechat_pay_api.last_json() == {"mchid": MCHID}


def test_closing_a_paid_order_raises_payment_gateway_error(gateway, wechat_pay_api):
    wechat_pay_api.answer("POST", CLOSE_PATH, 400, {"code": "ORDER_PAID", "message": "订单已支付"})

    with pytest.raises(PaymentGatewayError) as refused:
        gateway.close_order(out_trade_no="O20250301000123")

    assert refused.value.details["wechat_code"] == "ORDER_PAID"


def test_refund_sends_amounts_in_fen_and_reads_the_answer(gateway, wechat_pay_api):
    wechat_pay_api.answer(
        "POST",
        REFUND_PATH,
        200,
        {
            "refund_id": "50000000382019052709732678859",
            "out_refund_no": "R20250301000123-1",
            "transaction_id": "4200002345202503011234567890",
            "out_trade_no": "O20250301000123",
            "channel": "ORIGINAL",
            "user_received_account": "招商银行信用卡0403",
            "create_time": "2025-03-01T17:05:00+08:00",
            "status": "PROCESSING",
            "amount": {"total": 12900, "refund": 2900, "payer_total": 12900, "payer_refund": 2900, "currency": "CNY"},
        },
    )

    result = gateway.refund(
        out_trade_no="O20250301000123",
        out_refund_no="R20250301000123-1",
        refund_fen=2900,
        total_fen=12900,
        reason="缺货退款",
    )

    assert result == RefundResult(
        out_refund_no="R20250301000123-1", refund_id="50000000382019052709732678859", status="PROCESSING"
    )
    assert wechat_pay_api.last_json() == {
        "out_refund_no": "R20250301000123-1",
        "out_trade_no": "O20250301000123",
        "amount": {"refund": 2900, "total": 12900, "currency": "CNY"},
        "reason": "缺货退款",
    }  # no notify_url: refund results must not reach the payment callback


def test_a_refused_refund_raises_payment_gateway_error(gateway, wechat_pay_api):
    wechat_pay_api.answer("POST", REFUND_PATH, 403, {"code": "NOT_ENOUGH", "message": "基本账户余额不足"})

    with pytest.raises(PaymentGatewayError) as refused:
        gateway.refund(out_trade_no="O1", out_refund_no="R1", refund_fen=100, total_fen=100, reason="")

    assert refused.value.details["wechat_code"] == "NOT_ENOUGH"


TRANSFER_PATH = "/v3/transfer/batches"
TRANSFER_DETAIL_PATH = "/v3/transfer/batches/out-batch-no/PO7A1/details/out-detail-no/PO7A1D1"


def test_a_transfer_is_one_batch_of_one_detail_in_fen(gateway, wechat_pay_api):
    wechat_pay_api.answer(
        "POST",
        TRANSFER_PATH,
        200,
        {
            "out_batch_no": "PO7A1",
            "batch_id": "1030000071100999991182020050700019480001",
            "create_time": "2025-03-01T17:10:00+08:00",
            "batch_status": "ACCEPTED",
        },
    )

    result = gateway.transfer(
        out_batch_no="PO7A1", out_detail_no="PO7A1D1", amount_fen=1990, openid=OPENID, remark="佣金提现"
    )

    assert result == TransferResult(out_batch_no="PO7A1", out_detail_no="PO7A1D1", status="PROCESSING")
    assert wechat_pay_api.last_json() == {
        "appid": APPID,
        "out_batch_no": "PO7A1",
        "batch_name": "佣金提现",
        "batch_remark": "佣金提现",
        "total_amount": 1990,
        "total_num": 1,
        "transfer_detail_list": [
            {"out_detail_no": "PO7A1D1", "transfer_amount": 1990, "transfer_remark": "佣金提现", "openid": OPENID}
        ],
    }


def test_a_second_batch_with_the_same_number_is_wechat_pays_refusal(gateway, wechat_pay_api):
    wechat_pay_api.answer("POST", TRANSFER_PATH, 400, {"code": "INVALID_REQUEST", "message": "商户批次单号已存在"})

    with pytest.raises(PaymentGatewayError) as refused:
        gateway.transfer(out_batch_no="PO7A1", out_detail_no="PO7A1D1", amount_fen=1990, openid=OPENID, remark="x")

    assert refused.value.details["wechat_code"] == "INVALID_REQUEST"


@pytest.mark.parametrize(("amount_fen", "openid"), [(0, OPENID), (True, OPENID), (100, "")])
def test_a_transfer_refuses_impossible_arguments_before_asking(gateway, wechat_pay_api, amount_fen, openid):
    with pytest.raises(ValueError):
        gateway.transfer(out_batch_no="B", out_detail_no="D", amount_fen=amount_fen, openid=openid, remark="x")
    assert wechat_pay_api.requests == []


def test_the_transfer_query_reads_the_detail_status(gateway, wechat_pay_api):
    wechat_pay_api.answer(
        "GET",
        TRANSFER_DETAIL_PATH,
        200,
        {
            "mchid": MCHID,
            "out_batch_no": "PO7A1",
            "batch_id": "1030000071100999991182020050700019480001",
            "appid": APPID,
            "out_detail_no": "PO7A1D1",
            "detail_id": "1040000071100999991182020050700019500100",
            "detail_status": "FAIL",
            "transfer_amount": 1990,
            "transfer_remark": "佣金提现",
            "fail_reason": "ACCOUNT_FROZEN",
            "openid": OPENID,
            "initiate_time": "2025-03-01T17:10:00+08:00",
            "update_time": "2025-03-01T17:10:05+08:00",
        },
    )

    result = gateway.query_transfer(out_batch_no="PO7A1", out_detail_no="PO7A1D1")

    assert result == TransferResult(
        out_batch_no="PO7A1",
        out_detail_no="PO7A1D1",
        status="FAIL",
        detail_id="1040000071100999991182020050700019500100",
        fail_reason="ACCOUNT_FROZEN",
    )
    assert result.is_final


def test_a_transfer_wechat_pay_never_got_is_none(gateway, wechat_pay_api):
    wechat_pay_api.answer("GET", TRANSFER_DETAIL_PATH, 404, {"code": "NOT_FOUND", "message": "记录不存在"})

    assert gateway.query_transfer(out_batch_no="PO7A1", out_detail_no="PO7A1D1") is None


def test_the_development_gateway_pays_nobody_out():
    assert DevelopmentGateway().can_transfer is False


@pytest.mark.parametrize(("refund_fen", "total_fen"), [(0, 100), (101, 100), (100, 0)])
def test_refund_refuses_impossible_amounts_before_asking(gateway, wechat_pay_api, refund_fen, total_fen):
    with pytest.raises(ValueError):
        gateway.refund(out_trade_no="O1", out_refund_no="R1", refund_fen=refund_fen, total_fen=total_fen, reason="")
    assert wechat_pay_api.requests == []


# -- configuration -------------------------------------------------------------------------------


@pytest.fixture
def configured(settings, merchant_key, platform_key):
    settings.WECHAT_APP_ID = APPID
    settings.WECHAT_PAY_MCH_ID = MCHID
    settings.WECHAT_PAY_PRIVATE_KEY = _private_pem(merchant_key)
    settings.WECHAT_PAY_CERT_SERIAL_NO = CERT_SERIAL_NO
    settings.WECHAT_PAY_APIV3_KEY = APIV3_KEY
    settings.WECHAT_PAY_NOTIFY_URL = NOTIFY_URL
    settings.WECHAT_PAY_PUBLIC_KEY = _public_pem(platform_key)
    settings.WECHAT_PAY_PUBLIC_KEY_ID = PUBLIC_KEY_ID
    return settings


@pytest.fixture
def unconfigured(settings):
    for name in wechat_pay.SETTING_NAMES:
        setattr(settings, name, "")
    return settings


def test_the_real_gateway_is_built_from_settings_once(configured, wechat_pay_api):
    gateway = payment_gateway()

    assert isinstance(gateway, WeChatPayGateway)
    assert not gateway.is_development
    assert (gateway.mchid, gateway.appid, gateway.notify_url) == (MCHID, APPID, NOTIFY_URL)
    assert payment_gateway() is gateway
    assert wechat_pay_api.requests == []  # public-key mode: nothing downloaded at start


def test_a_pem_with_escaped_line_breaks_in_one_variable_is_read(configured):
    configured.WECHAT_PAY_PRIVATE_KEY = configured.WECHAT_PAY_PRIVATE_KEY.replace("\n", "\\n")

    assert isinstance(payment_gateway(), WeChatPayGateway)


def test_a_partial_configuration_names_the_missing_settings(configured):
    configured.WECHAT_PAY_APIV3_KEY = ""
    del configured.WECHAT_PAY_PUBLIC_KEY_ID

    with pytest.raises(PaymentNotConfigured) as refused:
        payment_gateway()

    assert refused.value.details["missing"] == ["WECHAT_PAY_APIV3_KEY", "WECHAT_PAY_PUBLIC_KEY_ID"]
    assert "WECHAT_PAY_APIV3_KEY" in refused.value.message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WECHAT_PAY_APIV3_KEY", "too-short"),
        ("WECHAT_PAY_NOTIFY_URL", "http://mall.example.cn/pay/wechat/notify"),
        ("WECHAT_PAY_NOTIFY_URL", "https://mall.example.cn/pay/wechat/notify?store=1"),
        ("WECHAT_PAY_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----"),
        ("WECHAT_PAY_PUBLIC_KEY", "not a key"),
    ],
)
def test_an_unusable_configuration_is_refused(configured, name, value):
    setattr(configured, name, value)

    with pytest.raises(PaymentNotConfigured):
        payment_gateway()


def test_without_configuration_development_payments_give_the_development_gateway(unconfigured):
    unconfigured.O2O_DEVELOPMENT_PAYMENTS = True

    assert isinstance(payment_gateway(), DevelopmentGateway)


def test_without_configuration_debug_decides_when_development_payments_is_unset(unconfigured):
    if hasattr(unconfigured, "O2O_DEVELOPMENT_PAYMENTS"):
        del unconfigured.O2O_DEVELOPMENT_PAYMENTS
    unconfigured.DEBUG = True
    assert payment_gateway().is_development

    unconfigured.DEBUG = False
    with pytest.raises(PaymentNotConfigured):
        payment_gateway()


def test_without_configuration_production_refuses_to_pretend(unconfigured):
    unconfigured.DEBUG = True
    unconfigured.O2O_DEVELOPMENT_PAYMENTS = False

    with pytest.raises(PaymentNotConfigured) as refused:
        payment_gateway()

    assert refused.value.code == "payment_not_configured"


# -- the development stand-in --------------------------------------------------------------------


def test_the_development_gateway_pretends_without_moving_money(platform_key, wechat_pay_api):
    gateway = DevelopmentGateway(now=lambda: NOW)
    headers, body = notification(platform_key)

    prepay_id = gateway.create_jsapi_prepay(
        out_trade_no="O1", description="demo", amount_fen=100, payer_openid="dev", expires_at=NOW
    )
    params = gateway.jsapi_pay_params(prepay_id=prepay_id)
    refund = gateway.refund(out_trade_no="O1", out_refund_no="R1", refund_fen=100, total_fen=100, reason="")

    assert gateway.is_development
    assert prepay_id == "dev-prepay-O1"
    assert params["development"] is True
    assert params["package"] == "prepay_id=dev-prepay-O1"
    assert gateway.query_order(out_trade_no="O1") is None
    assert gateway.close_order(out_trade_no="O1") is None
    assert refund == RefundResult(out_refund_no="R1", refund_id="dev-refund-R1", status="SUCCESS")
    with pytest.raises(InvalidNotification) as refused:
        gateway.parse_notification(headers=headers, body=body)  # even a genuinely signed one
    assert refused.value.code == "bad_signature"
    assert wechat_pay_api.requests == []


def test_any_request_the_fake_was_not_told_to_answer_fails_the_test():
    with pytest.raises(AssertionError, match="unexpected outbound request"):
        requests.get("https://api.mch.weixin.qq.com/v3/certificates", timeout=1)
