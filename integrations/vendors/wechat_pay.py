"""WeChat Pay API v3 for JSAPI payments (the mall inside WeChat): prepay, pay parameters, callback, refunds.

A thin client around wechatpayv3 in public-key mode (the platform public key and its
`PUB_KEY_ID_…` from the merchant platform, no platform certificates to download). It imports no
app of the project, so any app may use it; money is integer fen, as WeChat Pay counts it.

The flow an order follows:
1. `create_jsapi_prepay(...)` gives a prepay_id; `jsapi_pay_params(prepay_id=...)` is the object
   the page passes to `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`;
2. WeChat Pay POSTs the result to the notify URL: `parse_notification(headers=..., body=...)`
   verifies, decrypts and checks it; the view answers `notification_ack()` once the payment is
   recorded, `notification_nack(...)` otherwise (WeChat repeats for about 24 hours until it gets
   a success answer, and may send duplicates: record a transaction_id once);
3. a sweeper settles orders whose notification never came with `query_order(...)`, and gives up
   on unpaid ones with `close_order(...)`; `refund(...)` returns money.

The gateway checks what WeChat Pay's own data can prove (signature, freshness, merchant, app);
comparing the amount and the order's state is the caller's job.

`payment_gateway()` gives the deployment's gateway: the real one when WECHAT_PAY_MCH_ID is set,
else, in development only, `DevelopmentGateway`, a stand-in that moves no money.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from wechatpayv3 import SignType, WeChatPay, WeChatPayType
from wechatpayv3.utils import aes_decrypt, load_public_key, rsa_verify

from o2o.errors import ApplicationError

__all__ = [
    "DevelopmentGateway",
    "InvalidNotification",
    "PaymentGateway",
    "PaymentGatewayError",
    "PaymentNotConfigured",
    "PaymentNotice",
    "RefundResult",
    "TransferResult",
    "WeChatPayGateway",
    "notification_ack",
    "notification_nack",
    "payment_gateway",
]

logger = logging.getLogger(__name__)

# WeChat Pay's rule for callbacks: refuse a timestamp further than this from now (replays).
NOTIFICATION_MAX_AGE_S = 300
# wechatpayv3 passes no timeout to requests by default; without one an unreachable WeChat Pay
# holds a worker forever. (connect, read) seconds.
HTTP_TIMEOUT_S = (5, 15)
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
RESOURCE_ALGORITHM = "AEAD_AES_256_GCM"
# time_expire is written in Beijing time, as WeChat Pay's documents show it.
BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

_NONCE_ALPHABET = string.ascii_letters + string.digits

SETTING_NAMES = (
    "WECHAT_APP_ID",
    "WECHAT_PAY_MCH_ID",
    "WECHAT_PAY_PRIVATE_KEY",
    "WECHAT_PAY_CERT_SERIAL_NO",
    "WECHAT_PAY_APIV3_KEY",
    "WECHAT_PAY_NOTIFY_URL",
    "WECHAT_PAY_PUBLIC_KEY",
    "WECHAT_PAY_PUBLIC_KEY_ID",
)


# -- results and errors ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PaymentNotice:
    """What WeChat Pay says about one payment, from a verified callback or an order query.

    `trade_state` is WeChat Pay's: SUCCESS, NOTPAY, CLOSED, REFUND (a refund was made), USERPAYING,
    PAYERROR, REVOKED. `transaction_id`, `payer_openid` and `success_time` are "" / None until
    the shopper has paid. `amount_fen` is the order total (`amount.total`) in fen.
    """

    out_trade_no: str
    transaction_id: str
    trade_state: str
    amount_fen: int
    payer_openid: str
    mchid: str
    appid: str
    success_time: dt.datetime | None

    @property
    def is_paid(self) -> bool:
        return self.trade_state == "SUCCESS"


@dataclass(frozen=True, kw_only=True)
class RefundResult:
    """WeChat Pay's answer to a refund: `status` is SUCCESS, PROCESSING, ABNORMAL or CLOSED."""

    out_refund_no: str
    refund_id: str
    status: str


@dataclass(frozen=True, kw_only=True)
class TransferResult:
    """What WeChat Pay says of one transfer to a user's change (商家转账到零钱).

    `status` is the detail's: INIT, WAIT_PAY, PROCESSING (on its way), SUCCESS (paid) or FAIL
    (not paid: `fail_reason` says why, e.g. ACCOUNT_FROZEN, REAL_NAME_CHECK_FAIL).
    """

    out_batch_no: str
    out_detail_no: str
    status: str
    detail_id: str = ""
    fail_reason: str = ""

    @property
    def is_final(self) -> bool:
        return self.status in ("SUCCESS", "FAIL")


class PaymentGatewayError(ApplicationError):
    """WeChat Pay answered with an error, an answer that fails its signature or makes no sense, or could not be reached.

    `details` carries `action` (which call failed) and, when WeChat Pay answered, `http_status`,
    `wechat_code` (e.g. PARAM_ERROR, ORDER_CLOSED, NOT_ENOUGH) and `wechat_message`.
    """

    code = "payment_gateway_error"
    status = 502


class InvalidNotification(ApplicationError):
    """A callback that is not a genuine, fresh payment notification for this merchant and app.

    Codes: `bad_signature` (signature missing, invalid, by an unknown key, or the body was
    changed), `stale_notification` (Wechatpay-Timestamp more than 5 minutes from now),
    `malformed_notification` (a header missing, the resource not decryptable, JSON that does not
    parse or lacks a field), `foreign_notification` (mchid or appid are not this gateway's),
    `unsupported_notification` (a genuine notification of another kind, e.g. a refund result).
    """

    code = "malformed_notification"
    status = 400


class PaymentNotConfigured(ApplicationError):
    """WeChat Pay is not configured, or only partly (`details["missing"]` names the settings)."""

    code = "payment_not_configured"
    status = 503


def notification_ack() -> tuple[dict[str, str], int]:
    """The answer that tells WeChat Pay a callback was received and handled: it stops repeating it."""
    return {"code": "SUCCESS", "message": "成功"}, 200


def notification_nack(message: str) -> tuple[dict[str, str], int]:
    """The answer that tells WeChat Pay a callback failed: it repeats it (for about 24 hours)."""
    return {"code": "FAIL", "message": message}, 400


# -- the real gateway -------------------------------------------------------------------------


class WeChatPayGateway:
    """One merchant (mchid) paying through one official account (appid), JSAPI, public-key mode.

    `private_key_pem` and `cert_serial_no` are the merchant's API key and its certificate's serial
    number; `apiv3_key` the 32-character APIv3 key; `platform_public_key_pem` and
    `platform_public_key_id` WeChat Pay's public key and its id (`PUB_KEY_ID_…`). `notify_url` is
    the https address WeChat Pay posts payment results to. `now` is injectable for tests.
    Raises PaymentNotConfigured when a value is missing or unusable.
    """

    is_development = False
    can_transfer = True  # pays users out (transfer to change)

    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        private_key_pem: str,
        cert_serial_no: str,
        apiv3_key: str,
        notify_url: str,
        platform_public_key_pem: str,
        platform_public_key_id: str,
        now: Callable[[], dt.datetime] = timezone.now,
    ) -> None:
        given = {
            "mchid": mchid,
            "appid": appid,
            "private_key_pem": private_key_pem,
            "cert_serial_no": cert_serial_no,
            "apiv3_key": apiv3_key,
            "notify_url": notify_url,
            "platform_public_key_pem": platform_public_key_pem,
            "platform_public_key_id": platform_public_key_id,
        }
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise PaymentNotConfigured(
                _("WeChat Pay is not fully configured: %(missing)s missing.") % {"missing": ", ".join(missing)},
                details={"missing": missing},
            )
        if len(apiv3_key.encode()) != 32:
            # AES-256-GCM: a wrong key would only show when the first callback fails to decrypt.
            raise PaymentNotConfigured(_("The WeChat Pay APIv3 key must be 32 characters."))
        if not notify_url.startswith("https://") or "?" in notify_url:
            raise PaymentNotConfigured(_("The WeChat Pay notify URL must be https and carry no query."))
        self.mchid = mchid
        self.appid = appid
        self.notify_url = notify_url
        self.platform_public_key_id = platform_public_key_id
        self._apiv3_key = apiv3_key
        self._now = now
        try:
            self._platform_key = load_public_key(platform_public_key_pem)
            # notify_url is deliberately not given to WeChatPay: wechatpayv3 would also put it on
            # every refund, and refund results posted to the payment callback would be refused there
            # (they carry no appid and no trade_state). It is passed to each prepay instead.
            self._pay = WeChatPay(
                wechatpay_type=WeChatPayType.JSAPI,
                mchid=mchid,
                private_key=private_key_pem,
                cert_serial_no=cert_serial_no,
                appid=appid,
                apiv3_key=apiv3_key,
                public_key=platform_public_key_pem,
                public_key_id=platform_public_key_id,
                cert_dir=None,
                timeout=HTTP_TIMEOUT_S,
            )
        except Exception as exc:  # noqa: BLE001 - wechatpayv3 raises bare Exception for unreadable keys
            raise PaymentNotConfigured(_("A WeChat Pay key cannot be read: %(reason)s") % {"reason": exc}) from None

    def __repr__(self) -> str:
        return f"<WeChatPayGateway mchid={self.mchid} appid={self.appid}>"

    # -- paying --------------------------------------------------------------------------------

    def create_jsapi_prepay(
        self,
        *,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        payer_openid: str,
        expires_at: dt.datetime,
    ) -> str:
        """Place the order with WeChat Pay (JSAPI 下单) and return its prepay_id (valid two hours).

        `amount_fen` is the total in fen (at least 1), `payer_openid` the shopper's openid under
        this gateway's appid, `expires_at` an aware datetime after which WeChat Pay refuses payment
        (sent as RFC 3339 in +08:00). Placing the same out_trade_no again with the same content
        gives a prepay_id again; with other content WeChat Pay refuses (PaymentGatewayError).
        """
        if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen < 1:
            raise ValueError(f"amount_fen must be a positive integer, not {amount_fen!r}")
        if not payer_openid:
            raise ValueError("a JSAPI payment needs the payer's openid")
        code, data = self._call(
            "prepay",
            self._pay.pay,
            description=description,
            out_trade_no=out_trade_no,
            amount={"total": amount_fen, "currency": "CNY"},
            payer={"openid": payer_openid},
            time_expire=rfc3339_beijing(expires_at),
            notify_url=self.notify_url,
            pay_type=WeChatPayType.JSAPI,
        )
        self._raise_unless_ok("prepay", code, data)
        prepay_id = data.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise self._unexpected("prepay", code)
        return prepay_id

    def jsapi_pay_params(self, *, prepay_id: str) -> dict[str, str]:
        """The object for `WeixinJSBridge.invoke('getBrandWCPayRequest', …)` (or wx.chooseWXPay).

        paySign is RSA-SHA256 (PKCS#1 v1.5, base64) with the merchant key over
        "appId\\ntimeStamp\\nnonceStr\\npackage\\n", as WeChat Pay's JSAPI document defines it.
        """
        time_stamp = str(int(self._now().timestamp()))
        nonce = _nonce()
        package = f"prepay_id={prepay_id}"
        pay_sign = self._pay.sign([self.appid, time_stamp, nonce, package], sign_type=SignType.RSA_SHA256)
        return {
            "appId": self.appid,
            "timeStamp": time_stamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": pay_sign,
        }

    # -- the callback --------------------------------------------------------------------------

    def parse_notification(self, *, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        """Verify, decrypt and check a payment callback; return what it says.

        In this order, nothing read before it is verified: the platform key's signature over
        "timestamp\\nnonce\\nbody\\n" of the raw body (by the configured key id, else bad_signature);
        the timestamp within 5 minutes of now (else stale_notification); the resource decrypted
        with the APIv3 key (else malformed_notification); a TRANSACTION.* event (else
        unsupported_notification); mchid and appid this gateway's (else foreign_notification).
        Header names are case-insensitive; Django's META names (HTTP_WECHATPAY_…) are read too.
        Raises InvalidNotification with those codes. The amount is the caller's to compare.
        """
        fields = _wechatpay_headers(headers)
        signature = fields.get("signature", "")
        if not signature:
            raise _refused("bad_signature", "the Wechatpay-Signature header is missing")
        absent = [name for name in ("timestamp", "nonce", "serial") if not fields.get(name)]
        if absent:
            raise _refused("malformed_notification", "missing headers: " + ", ".join(f"Wechatpay-{n}" for n in absent))
        if fields.get("signature-type", SIGNATURE_TYPE) != SIGNATURE_TYPE:
            raise _refused("bad_signature", f"unsupported signature type {fields['signature-type']!r}")
        if fields["serial"] != self.platform_public_key_id:
            # Not our platform key; wechatpayv3 would go and download certificates to look for it.
            raise _refused("bad_signature", "signed by an unknown key (Wechatpay-Serial)")
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise _refused("bad_signature", "the body is not the UTF-8 text WeChat Pay signs") from None
        if not rsa_verify(fields["timestamp"], fields["nonce"], text, signature, self._platform_key):
            raise _refused("bad_signature", "the signature does not match the body")

        try:
            sent_at = int(fields["timestamp"])
        except ValueError:
            raise _refused("malformed_notification", "Wechatpay-Timestamp is not a number") from None
        if abs(self._now().timestamp() - sent_at) > NOTIFICATION_MAX_AGE_S:
            raise _refused("stale_notification", "Wechatpay-Timestamp is more than 5 minutes from now")

        event_type, resource = self._decrypted_event(text)
        if not event_type.startswith("TRANSACTION.") or "trade_state" not in resource:
            # e.g. REFUND.SUCCESS, when the merchant platform sends refund results to this URL.
            raise _refused("unsupported_notification", f"not a payment notification ({event_type or 'no event_type'})")
        if resource.get("mchid") != self.mchid or resource.get("appid") != self.appid:
            raise _refused("foreign_notification", "the notification is for another merchant or app")
        try:
            return _payment_notice(resource)
        except (KeyError, TypeError, ValueError) as exc:
            raise _refused(
                "malformed_notification", f"the resource lacks a field or has a wrong one: {exc!r}"
            ) from None

    def _decrypted_event(self, text: str) -> tuple[str, dict[str, Any]]:
        """The verified body's event_type and its decrypted resource."""
        try:
            envelope = json.loads(text)
            event_type = str(envelope.get("event_type") or "")
            resource = envelope["resource"]
            if envelope.get("resource_type") != "encrypt-resource" or resource["algorithm"] != RESOURCE_ALGORITHM:
                raise ValueError("not an AEAD_AES_256_GCM encrypted resource")
            plain = aes_decrypt(
                nonce=resource["nonce"],
                ciphertext=resource["ciphertext"],
                associated_data=resource.get("associated_data") or "",
                apiv3_key=self._apiv3_key,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # binascii.Error (bad base64) and a wrong nonce length are ValueErrors too.
            raise _refused("malformed_notification", f"the envelope cannot be read: {exc!r}") from None
        if plain is None:
            raise _refused("malformed_notification", "the resource does not decrypt with the APIv3 key")
        try:
            decrypted = json.loads(plain)
        except ValueError:
            raise _refused("malformed_notification", "the decrypted resource is not JSON") from None
        if not isinstance(decrypted, dict):
            raise _refused("malformed_notification", "the decrypted resource is not an object")
        return event_type, decrypted

    # -- queries, closing, refunds ---------------------------------------------------------------

    def query_order(self, *, out_trade_no: str) -> PaymentNotice | None:
        """What WeChat Pay knows of an order now, or None when it has never heard of it (ORDER_NOT_EXIST).

        The answer's signature is verified by wechatpayv3; an answer for another merchant or app
        raises PaymentGatewayError.
        """
        code, data = self._call("query_order", self._pay.query, out_trade_no=out_trade_no)
        if data.get("code") == "ORDER_NOT_EXIST":
            return None
        self._raise_unless_ok("query_order", code, data)
        if data.get("mchid") != self.mchid or data.get("appid") != self.appid:
            raise self._unexpected("query_order", code)
        try:
            return _payment_notice(data)
        except (KeyError, TypeError, ValueError):
            raise self._unexpected("query_order", code) from None

    def close_order(self, *, out_trade_no: str) -> None:
        """Close an unpaid order so it can no longer be paid (WeChat Pay answers 204).

        A paid order cannot be closed (PaymentGatewayError, wechat_code ORDER_PAID): query it and
        record the payment instead.
        """
        code, data = self._call("close_order", self._pay.close, out_trade_no=out_trade_no)
        self._raise_unless_ok("close_order", code, data)

    def refund(
        self,
        *,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str,
    ) -> RefundResult:
        """Ask WeChat Pay to refund `refund_fen` of an order paid `total_fen` (both in fen).

        `out_refund_no` names the refund: asking again with the same one is the same refund, so a
        retry never pays twice. No refund notify_url is sent, so results are not posted to the
        payment callback; a PROCESSING refund is settled later by WeChat Pay's refund query.
        `reason` (at most 80 characters) is shown to the shopper.
        """
        for name, value in (("refund_fen", refund_fen), ("total_fen", total_fen)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if refund_fen > total_fen:
            raise ValueError("refund_fen cannot exceed total_fen")
        code, data = self._call(
            "refund",
            self._pay.refund,
            out_refund_no=out_refund_no,
            amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"},
            out_trade_no=out_trade_no,
            reason=reason or None,
        )
        self._raise_unless_ok("refund", code, data)
        refund_id, status = data.get("refund_id"), data.get("status")
        if not isinstance(refund_id, str) or not isinstance(status, str) or not refund_id or not status:
            raise self._unexpected("refund", code)
        return RefundResult(
            out_refund_no=str(data.get("out_refund_no") or out_refund_no), refund_id=refund_id, status=status
        )

    # -- paying users out (commission payouts) ------------------------------------------------------

    def transfer(
        self, *, out_batch_no: str, out_detail_no: str, amount_fen: int, openid: str, remark: str
    ) -> TransferResult:
        """Send `amount_fen` to the change (零钱) of the user `openid` of this app: one batch of one
        detail. The out numbers name the transfer: WeChat Pay refuses a second batch with the same
        `out_batch_no`, so a retry never pays twice. The result comes later: `query_transfer`.
        WeChat Pay asks for the payee's real name from 2,000 yuan up; this client sends none, so the
        caller pays such amounts another way.
        """
        if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen < 1:
            raise ValueError(f"amount_fen must be a positive integer, not {amount_fen!r}")
        if not openid:
            raise ValueError("a transfer needs the payee's openid")
        remark = remark[:32]
        code, data = self._call(
            "transfer",
            self._pay.transfer_batch,
            out_batch_no=out_batch_no,
            batch_name=remark,
            batch_remark=remark,
            total_amount=amount_fen,
            total_num=1,
            transfer_detail_list=[
                {
                    "out_detail_no": out_detail_no,
                    "transfer_amount": amount_fen,
                    "transfer_remark": remark,
                    "openid": openid,
                }
            ],
        )
        self._raise_unless_ok("transfer", code, data)
        if not data.get("batch_id"):
            raise self._unexpected("transfer", code)
        return TransferResult(out_batch_no=out_batch_no, out_detail_no=out_detail_no, status="PROCESSING")

    def query_transfer(self, *, out_batch_no: str, out_detail_no: str) -> TransferResult | None:
        """Where a transfer is; None if WeChat Pay has no such transfer (it was never accepted)."""
        code, data = self._call(
            "query_transfer",
            self._pay.transfer_query_out_detail_no,
            out_detail_no=out_detail_no,
            out_batch_no=out_batch_no,
        )
        if code == 404:
            return None
        self._raise_unless_ok("query_transfer", code, data)
        status = data.get("detail_status")
        if not isinstance(status, str) or not status:
            raise self._unexpected("query_transfer", code)
        return TransferResult(
            out_batch_no=out_batch_no,
            out_detail_no=out_detail_no,
            status=status,
            detail_id=_text(data.get("detail_id")),
            fail_reason=_text(data.get("fail_reason")),
        )

    # -- talking to WeChat Pay -------------------------------------------------------------------

    def _call(self, action: str, method: Callable[..., tuple[int, Any]], **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """Call a wechatpayv3 method; return the HTTP status and the answer's JSON object ({} if none)."""
        try:
            code, message = method(**kwargs)
        except requests.RequestException as exc:
            logger.warning("WeChat Pay %s unreachable: %s", action, type(exc).__name__)
            raise PaymentGatewayError(
                _("WeChat Pay cannot be reached; please try again."),
                details={"action": action, "reason": type(exc).__name__},
            ) from exc
        except Exception as exc:
            logger.warning("WeChat Pay %s answer refused: %s", action, exc)
            raise PaymentGatewayError(
                _("WeChat Pay's answer could not be verified; please try again."),
                details={"action": action, "reason": str(exc)},
            ) from exc
        if not message:
            return code, {}
        try:
            data = json.loads(message)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise self._unexpected(action, code)
        return code, data

    def _raise_unless_ok(self, action: str, code: int, data: dict[str, Any]) -> None:
        if 200 <= code < 300:
            return
        wechat_code, wechat_message = data.get("code", ""), data.get("message", "")
        logger.warning("WeChat Pay %s refused: HTTP %s %s %s", action, code, wechat_code, wechat_message)
        raise PaymentGatewayError(
            _("WeChat Pay refused the request: %(message)s") % {"message": wechat_message or wechat_code or code},
            details={
                "action": action,
                "http_status": code,
                "wechat_code": wechat_code,
                "wechat_message": wechat_message,
            },
        )

    def _unexpected(self, action: str, code: int) -> PaymentGatewayError:
        logger.warning("WeChat Pay %s answered unexpectedly (HTTP %s)", action, code)
        return PaymentGatewayError(
            _("WeChat Pay answered in an unexpected form; please try again."),
            details={"action": action, "http_status": code},
        )


# -- the development stand-in ------------------------------------------------------------------


class DevelopmentGateway:
    """DEVELOPMENT ONLY: the stand-in when WeChat Pay is not configured. It moves no money.

    Used only when WECHAT_PAY_MCH_ID is unset and O2O_DEVELOPMENT_PAYMENTS (default: DEBUG) is on,
    so the demo can be paid through without a merchant account. Prepay ids and refund ids start
    with "dev-"; it never accepts a callback, since anyone could post one.
    """

    is_development = True
    can_transfer = False  # moves no money, so pays nobody out: payouts are paid by hand

    def __init__(self, *, now: Callable[[], dt.datetime] = timezone.now) -> None:
        self._now = now

    def __repr__(self) -> str:
        return "<DevelopmentGateway>"

    def create_jsapi_prepay(
        self,
        *,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        payer_openid: str,
        expires_at: dt.datetime,
    ) -> str:
        """Development: "dev-prepay-<out_trade_no>", nothing is sent anywhere."""
        return f"dev-prepay-{out_trade_no}"

    def jsapi_pay_params(self, *, prepay_id: str) -> dict[str, Any]:
        """Development: the shape of the real parameters, unsigned and marked `development: True`.

        The page must not call WeixinJSBridge with them; it offers the demo's pretend payment.
        """
        return {
            "development": True,
            "appId": "",
            "timeStamp": str(int(self._now().timestamp())),
            "nonceStr": _nonce(),
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
            "paySign": "",
        }

    def parse_notification(self, *, headers: Mapping[str, str], body: bytes) -> PaymentNotice:
        """Development: always refused (bad_signature): without keys no callback can be genuine."""
        raise _refused("bad_signature", "the development gateway accepts no payment callback")

    def query_order(self, *, out_trade_no: str) -> PaymentNotice | None:
        """Development: None, WeChat Pay has never heard of the order."""
        return None

    def close_order(self, *, out_trade_no: str) -> None:
        """Development: nothing to close."""

    def refund(
        self,
        *,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        reason: str,
    ) -> RefundResult:
        """Development: refunded at once, refund_id "dev-refund-<out_refund_no>"."""
        return RefundResult(out_refund_no=out_refund_no, refund_id=f"dev-refund-{out_refund_no}", status="SUCCESS")


PaymentGateway = WeChatPayGateway | DevelopmentGateway


# -- configuration -----------------------------------------------------------------------------


def payment_gateway() -> PaymentGateway:
    """The deployment's payment gateway.

    The real WeChatPayGateway when WECHAT_PAY_MCH_ID is set (built once per configuration and
    process; PaymentNotConfigured names any other WECHAT_* setting it still lacks). Otherwise
    the DevelopmentGateway when O2O_DEVELOPMENT_PAYMENTS (default: DEBUG) is true, else
    PaymentNotConfigured: production never falls back to pretend payments.
    """
    values = tuple(str(getattr(settings, name, "") or "") for name in SETTING_NAMES)
    config = dict(zip(SETTING_NAMES, values, strict=True))
    if config["WECHAT_PAY_MCH_ID"]:
        missing = [name for name, value in config.items() if not value]
        if missing:
            raise PaymentNotConfigured(
                _("WeChat Pay is not fully configured: %(missing)s missing.") % {"missing": ", ".join(missing)},
                details={"missing": missing},
            )
        return _real_gateway(values)
    if getattr(settings, "O2O_DEVELOPMENT_PAYMENTS", settings.DEBUG):
        return DevelopmentGateway()
    raise PaymentNotConfigured(
        _("WeChat Pay is not configured."), details={"missing": [name for name in SETTING_NAMES if not config[name]]}
    )


@functools.lru_cache(maxsize=2)
def _real_gateway(values: tuple[str, ...]) -> WeChatPayGateway:
    """Keyed by the settings' values, so a changed configuration (a test's) builds a new gateway."""
    config = dict(zip(SETTING_NAMES, values, strict=True))
    return WeChatPayGateway(
        mchid=config["WECHAT_PAY_MCH_ID"],
        appid=config["WECHAT_APP_ID"],
        private_key_pem=_pem(config["WECHAT_PAY_PRIVATE_KEY"]),
        cert_serial_no=config["WECHAT_PAY_CERT_SERIAL_NO"],
        apiv3_key=config["WECHAT_PAY_APIV3_KEY"],
        notify_url=config["WECHAT_PAY_NOTIFY_URL"],
        platform_public_key_pem=_pem(config["WECHAT_PAY_PUBLIC_KEY"]),
        platform_public_key_id=config["WECHAT_PAY_PUBLIC_KEY_ID"],
    )


# -- helpers -----------------------------------------------------------------------------------


def rfc3339_beijing(moment: dt.datetime) -> str:
    """An aware datetime as WeChat Pay writes times: RFC 3339 in Beijing time, e.g. 2025-03-01T17:30:00+08:00."""
    if timezone.is_naive(moment):
        raise ValueError("a naive datetime has no place on the wire; pass an aware one")
    return moment.astimezone(BEIJING).replace(microsecond=0).isoformat()


def _pem(value: str) -> str:
    # A PEM put in one environment variable often arrives with literal "\n" for its line breaks.
    return value.replace("\\n", "\n")


def _nonce() -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(32))


def _refused(code: str, reason: str) -> InvalidNotification:
    logger.warning("WeChat Pay notification refused (%s): %s", code, reason)
    return InvalidNotification(reason, code=code)


def _wechatpay_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The Wechatpay-* headers by their lowercase suffix ("signature", "timestamp", …), any spelling."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        key = str(name).lower().replace("_", "-")
        key = key.removeprefix("http-")
        if key.startswith("wechatpay-"):
            found[key.removeprefix("wechatpay-")] = str(value).strip()
    return found


def _payment_notice(data: Mapping[str, Any]) -> PaymentNotice:
    """A PaymentNotice from WeChat Pay's transaction object (callback resource or query answer)."""
    amount = data["amount"]["total"]
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amount.total is not an integer")
    success_time = None
    if data.get("success_time"):
        success_time = dt.datetime.fromisoformat(str(data["success_time"]))
        if timezone.is_naive(success_time):
            raise ValueError("success_time has no offset")
    payer = data.get("payer") or {}
    return PaymentNotice(
        out_trade_no=_text(data["out_trade_no"]),
        transaction_id=_text(data.get("transaction_id")),
        trade_state=_text(data["trade_state"]),
        amount_fen=amount,
        payer_openid=_text(payer.get("openid")),
        mchid=_text(data.get("mchid")),
        appid=_text(data.get("appid")),
        success_time=success_time,
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value
