"""The WeChat official account (公众号): web OAuth sign-in and the JS-SDK `wx.config` signature.

A thin client around wechatpy. It imports no app of the project, so any app may use it;
it turns every WeChat failure into `WeChatError` (an `ApplicationError`) and keeps the two
rate-limited credentials — the account's access token and the JS-SDK `jsapi_ticket`, each
limited to 2,000 fetches a day — in Django's cache, which every web and worker process shares
(Redis in production).

The flow a page follows:
1. `make_oauth_state(next_url=...)` and `authorize_url(...)`: send the shopper to WeChat;
2. WeChat redirects back with `code` and `state`: `read_oauth_state(state)` gives the page
   to return to, `identity_from_code(code=..., scope=...)` gives the shopper's openid;
3. every page that calls the JS-SDK renders `jssdk_config(url=<this page's URL>, ...)` into
   `wx.config(...)`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import string
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core import signing
from django.core.cache import cache as default_cache
from django.core.cache.backends.base import BaseCache
from django.utils.encoding import iri_to_uri
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.oauth import WeChatOAuth
from wechatpy.session import SessionStorage

from o2o.errors import ApplicationError

__all__ = [
    "DjangoCacheSessionStorage",
    "InvalidOAuthState",
    "WeChatError",
    "WeChatIdentity",
    "WeChatNotConfigured",
    "WeChatOfficialAccount",
    "is_wechat_browser",
    "jssdk_signature",
    "make_oauth_state",
    "official_account",
    "read_oauth_state",
]

logger = logging.getLogger(__name__)

Scope = Literal["snsapi_base", "snsapi_userinfo"]
SCOPES: tuple[str, ...] = ("snsapi_base", "snsapi_userinfo")

# Credentials are dropped from the cache this long before WeChat says they expire, so a
# page never signs with a ticket that dies between rendering and the browser's wx.config.
CREDENTIAL_SAFETY_MARGIN_S = 300
# wechatpy sets no timeout on its requests; without one an unreachable WeChat holds a worker.
HTTP_TIMEOUT_S = 5.0

OAUTH_STATE_SALT = "wechat-oauth"
# WeChat's documented rule for `state`: a-zA-Z0-9 only, at most 128 bytes.
_WECHAT_STATE = re.compile(r"[A-Za-z0-9]{1,128}")
# A signed state is "<next_url as a URI>:<timestamp>:<signature>": letters and digits, plus the
# characters a URI (django's iri_to_uri) and the base64 signature use. Each of those, and "Z"
# itself, is written as "Z" and one code character, which keeps a state in WeChat's alphabet
# at little cost in length (a JSON-and-base64 payload would cost a third more).
_STATE_SPECIALS = "Z-_.~:/?#[]@!$&'()*+,;=%"
_STATE_CODES = (string.digits + string.ascii_lowercase)[: len(_STATE_SPECIALS)]
_STATE_ESCAPES = {char: "Z" + code for char, code in zip(_STATE_SPECIALS, _STATE_CODES, strict=True)}
_STATE_UNESCAPES = {escaped[1]: char for char, escaped in _STATE_ESCAPES.items()}

_NONCE_ALPHABET = string.ascii_letters + string.digits


class WeChatError(ApplicationError):
    """WeChat answered with an error (errcode != 0), an HTTP failure or nonsense, or could not be reached.

    `details` carries `action` (which call failed) and, when WeChat answered, its `errcode` and
    `errmsg` (e.g. 40029 invalid code, 40163 code already used: restart the sign-in).
    """

    code = "wechat_error"
    status = 502


class WeChatNotConfigured(ApplicationError):
    """The deployment has no WeChat official account (WECHAT_APP_ID / WECHAT_APP_SECRET unset)."""

    code = "wechat_not_configured"
    status = 503


class InvalidOAuthState(ApplicationError):
    """The OAuth `state` is forged, tampered with, expired, bound to another browser, or not a local path."""

    code = "invalid_oauth_state"
    status = 400


@dataclass(frozen=True, kw_only=True)
class WeChatIdentity:
    """Who signed in through WeChat web OAuth.

    `openid` identifies the shopper within this official account; `unionid` across the accounts
    and apps of one WeChat Open Platform account ("" when the account is not bound to one or
    WeChat did not return it). `nickname` and `avatar_url` are only filled with snsapi_userinfo.
    `is_snapshot_user` is WeChat's "snapshot page" virtual account (`is_snapshotuser`): its openid
    and unionid are not the shopper's real ones, so never register or link a member from it.
    """

    openid: str
    unionid: str = ""
    nickname: str = ""
    avatar_url: str = ""
    scope: Scope
    is_snapshot_user: bool = False


class DjangoCacheSessionStorage(SessionStorage):
    """wechatpy's session storage on Django's cache, so every process shares one access token.

    A value stored with a time to live (wechatpy gives the token's `expires_in`) expires
    `safety_margin` seconds early; a fresh WeChatClient trusts whatever token the storage holds,
    so the storage's expiry is what keeps an expired token from being used.
    """

    def __init__(
        self, cache: BaseCache, *, prefix: str = "wechat", safety_margin: int = CREDENTIAL_SAFETY_MARGIN_S
    ) -> None:
        self.cache = cache
        self.prefix = prefix
        self.safety_margin = safety_margin

    def key_name(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def get(self, key: str, default: Any = None) -> Any:
        return self.cache.get(self.key_name(key), default)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        if value is None:
            return
        timeout = None if ttl is None else max(int(ttl) - self.safety_margin, 0)
        self.cache.set(self.key_name(key), value, timeout=timeout)

    def delete(self, key: str) -> None:
        self.cache.delete(self.key_name(key))

    def __getitem__(self, key: str) -> Any:
        # wechatpy's base class forgets to return the value.
        return self.get(key)


class _TimeoutSession(requests.Session):
    """A requests session that applies a timeout when the caller (wechatpy) gives none."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


@contextmanager
def _calling_wechat(action: str) -> Iterator[None]:
    """Translate whatever a WeChat call raises into WeChatError.

    The original exception is suppressed (`from None`): requests' errors quote the request URL,
    which carries the app secret and the shopper's code.
    """
    try:
        yield
    except WeChatClientException as exc:
        if exc.errcode is None:  # an HTTP error status; wechatpy leaves errcode empty
            http_status = getattr(exc.response, "status_code", None)
            logger.warning("WeChat %s failed: HTTP %s", action, http_status)
            raise WeChatError(
                _("WeChat is not answering properly; please try again."),
                details={"action": action, "http_status": http_status},
            ) from None
        logger.warning("WeChat %s refused: errcode=%s errmsg=%s", action, exc.errcode, exc.errmsg)
        raise WeChatError(
            _("WeChat refused the request."),
            details={"action": action, "errcode": exc.errcode, "errmsg": exc.errmsg},
        ) from None
    except requests.RequestException as exc:
        logger.warning("WeChat %s unreachable: %s", action, type(exc).__name__)
        raise WeChatError(
            _("WeChat cannot be reached; please try again."),
            details={"action": action, "reason": type(exc).__name__},
        ) from None
    except (KeyError, TypeError, ValueError) as exc:  # an answer without the documented fields
        logger.warning("WeChat %s answered unexpectedly: %r", action, exc)
        raise WeChatError(
            _("WeChat answered in an unexpected form; please try again."),
            details={"action": action, "reason": type(exc).__name__},
        ) from None


def _check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"unknown WeChat OAuth scope {scope!r}; expected one of {SCOPES}")


def jssdk_signature(*, jsapi_ticket: str, noncestr: str, timestamp: int, url: str) -> str:
    """The JS-SDK `wx.config` signature, as WeChat's JS-SDK document defines it.

    SHA-1 (hex) of `jsapi_ticket=…&noncestr=…&timestamp=…&url=…` (fields in that ASCII order,
    values not URL-encoded), where `url` is the page's full URL without its `#fragment`.
    """
    page_url = url.split("#", 1)[0]
    to_sign = f"jsapi_ticket={jsapi_ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page_url}"
    return hashlib.sha1(to_sign.encode()).hexdigest()  # noqa: S324 - WeChat's protocol is SHA-1


class WeChatOfficialAccount:
    """One official account (服务号): its web OAuth and its JS-SDK configuration.

    `cache` holds the shared access token and jsapi ticket; it must be shared by every process
    (Django's default cache: Redis in production), or each process spends the daily quota anew.
    """

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        cache: BaseCache = default_cache,
        timeout: float = HTTP_TIMEOUT_S,
    ) -> None:
        if not app_id or not app_secret:
            raise WeChatNotConfigured(_("WeChat sign-in is not configured."))
        self.app_id = app_id
        self._app_secret = app_secret
        self._cache = cache
        self._timeout = timeout
        self._client: WeChatClient | None = None

    def __repr__(self) -> str:
        return f"<WeChatOfficialAccount {self.app_id}>"

    # -- web OAuth -------------------------------------------------------------------------

    def authorize_url(self, *, redirect_uri: str, scope: Scope = "snsapi_base", state: str) -> str:
        """Where to send the shopper to authorize: WeChat's URL ending in `#wechat_redirect`.

        snsapi_base is silent and yields the openid; snsapi_userinfo asks the shopper's consent
        and also yields nickname and avatar. `redirect_uri` must be on the account's configured
        web-authorization domain. `state` must follow WeChat's rule (1 to 128 of a-zA-Z0-9);
        `make_oauth_state` makes one.
        """
        _check_scope(scope)
        if not _WECHAT_STATE.fullmatch(state):
            raise ValueError("a WeChat OAuth state is 1 to 128 characters of a-zA-Z0-9")
        # wechatpy writes the parameters in the order WeChat's link check insists on.
        return WeChatOAuth(self.app_id, self._app_secret, redirect_uri, scope, state).authorize_url

    def identity_from_code(self, *, code: str, scope: Scope) -> WeChatIdentity:
        """Exchange the `code` WeChat redirected back with for the shopper's identity.

        A code is good once and for five minutes. With snsapi_userinfo the profile (nickname,
        headimgurl, unionid) is fetched too. Raises WeChatError with WeChat's errcode/errmsg.
        """
        _check_scope(scope)
        if not code:
            # WeChat sends no code when the shopper declines the snsapi_userinfo consent.
            raise ApplicationError(_("WeChat did not authorize the sign-in."), code="wechat_code_missing")
        oauth = self._oauth()
        with _calling_wechat("oauth_access_token"):
            token = oauth.fetch_access_token(code)
            openid = str(token["openid"])
            web_access_token = str(token["access_token"])
        profile: dict[str, Any] = {}
        if scope == "snsapi_userinfo":
            with _calling_wechat("oauth_userinfo"):
                profile = dict(oauth.get_user_info(openid=openid, access_token=web_access_token))
        return WeChatIdentity(
            openid=openid,
            unionid=str(profile.get("unionid") or token.get("unionid") or ""),
            nickname=str(profile.get("nickname") or ""),
            avatar_url=str(profile.get("headimgurl") or ""),
            scope=scope,
            is_snapshot_user=bool(token.get("is_snapshotuser")),
        )

    # -- JS-SDK ----------------------------------------------------------------------------

    def jssdk_config(self, *, url: str, js_api_list: Sequence[str]) -> dict[str, Any]:
        """What the page passes to `wx.config`: appId, timestamp, nonceStr, signature, jsApiList.

        `url` is the page's full URL as the browser shows it (scheme, host, path, query); its
        `#fragment` is dropped before signing, as WeChat requires. The ticket comes from the
        shared cache (see `jsapi_ticket`).
        """
        ticket = self.jsapi_ticket()
        timestamp = int(time.time())
        nonce = "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(16))
        return {
            "appId": self.app_id,
            "timestamp": timestamp,
            "nonceStr": nonce,
            "signature": jssdk_signature(jsapi_ticket=ticket, noncestr=nonce, timestamp=timestamp, url=url),
            "jsApiList": list(js_api_list),
        }

    def jsapi_ticket(self) -> str:
        """The account's JS-SDK ticket: from the cache, else fetched from WeChat and cached.

        Cached per app id for its `expires_in` less the safety margin; the access token the
        fetch needs is likewise shared through the cache (wechatpy's session storage).
        """
        key = f"wechat:{self.app_id}:jsapi_ticket"
        ticket = self._cache.get(key)
        if ticket:
            return str(ticket)
        with _calling_wechat("jsapi_ticket"):
            # get_ticket rather than get_jsapi_ticket: the latter stores the ticket with no
            # expiry and no margin, and hides expires_in.
            answer = self._wechat_client().jsapi.get_ticket("jsapi")
            ticket = str(answer["ticket"])
            expires_in = int(answer.get("expires_in", 7200))
        self._cache.set(key, ticket, timeout=max(expires_in - CREDENTIAL_SAFETY_MARGIN_S, 0))
        return ticket

    # -- template messages -----------------------------------------------------------------

    def send_template_message(self, *, openid: str, template_id: str, data: dict[str, str], url: str = "") -> str:
        """Send one template message (模板消息) to a follower; returns WeChat's msgid.

        `data` maps the template's keywords to values; WeChat wants each as {"value": ...}.
        """
        payload = {key: {"value": str(value)[:200]} for key, value in data.items()}
        with _calling_wechat("template_message"):
            answer = self._wechat_client().message.send_template(openid, template_id, payload, url=url or None)
        return str(answer.get("msgid", ""))

    # -- wechatpy objects ------------------------------------------------------------------

    def _oauth(self) -> WeChatOAuth:
        oauth = WeChatOAuth(self.app_id, self._app_secret, redirect_uri="")
        oauth._http = _TimeoutSession(self._timeout)
        return oauth

    def _wechat_client(self) -> WeChatClient:
        if self._client is None:
            client = WeChatClient(
                self.app_id,
                self._app_secret,
                session=DjangoCacheSessionStorage(self._cache),
                timeout=self._timeout,
            )
            # The client's own access-token fetch ignores `timeout`; the session supplies it.
            client._http = _TimeoutSession(self._timeout)
            self._client = client
        return self._client


# -- the OAuth state -----------------------------------------------------------------------


def _is_local_path(url: str) -> bool:
    """A path on this site: starts with one "/", no scheme or host, nothing a browser reads as one."""
    return (
        url.startswith("/")
        and not url.startswith("//")
        # Browsers read "\" as "/" and drop tabs and newlines, so "/\evil" and "/\t/evil" go off-site.
        and "\\" not in url
        and not any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url)
        and url_has_allowed_host_and_scheme(url, allowed_hosts=None)
    )


def _state_signer(binding: str) -> signing.TimestampSigner:
    salt = f"{OAUTH_STATE_SALT}:{binding}" if binding else OAUTH_STATE_SALT
    return signing.TimestampSigner(salt=salt)


def _signed_to_state(signed: str) -> str:
    return "".join(_STATE_ESCAPES.get(char, char) for char in signed)


def _state_to_signed(state: str) -> str:
    chars = iter(state)
    signed = []
    for char in chars:
        if char == "Z":
            code = next(chars, "")
            if code not in _STATE_UNESCAPES:
                raise ValueError("bad escape in OAuth state")
            signed.append(_STATE_UNESCAPES[code])
        else:
            signed.append(char)
    return "".join(signed)


def make_oauth_state(*, next_url: str, binding: str = "") -> str:
    """A signed, timestamped `state` for the OAuth round trip that carries the page to return to.

    `next_url` must be a local path ("/…", not "//…"); anything else is refused with
    InvalidOAuthState, so the callback can never redirect off-site. It travels as a URI
    (non-ASCII characters percent-encoded, as `iri_to_uri` does). The state follows WeChat's
    rule (a-zA-Z0-9, at most 128 bytes), which leaves room for a next_url of about 60
    characters (each of "/?&=%…" counts twice): a longer one loses its query, and failing that
    the shopper returns to "/".
    `binding`, when given, is a value tied to the shopper's browser (e.g. a random value kept in
    their session); the state then reads back only with the same binding, which stops login CSRF
    (a victim completing a sign-in an attacker started).
    """
    if not _is_local_path(next_url):
        raise InvalidOAuthState(_("The page to return to must be on this site."))
    signer = _state_signer(binding)
    uri = iri_to_uri(next_url)
    for candidate in (uri, urlsplit(uri).path):
        state = _signed_to_state(signer.sign(candidate))
        if _WECHAT_STATE.fullmatch(state):  # WeChat's alphabet and at most 128 characters
            return state
    return _signed_to_state(signer.sign("/"))


def read_oauth_state(state: str, *, max_age: int = 600, binding: str = "") -> str:
    """The local path a state made by `make_oauth_state` carries, if it is genuine and fresh.

    Refused with InvalidOAuthState when the state is malformed, tampered with, older than
    `max_age` seconds, made with another `binding`, or (defence in depth) not a local path.
    """
    if not state or not _WECHAT_STATE.fullmatch(state):
        raise InvalidOAuthState(_("The sign-in link is not valid; please sign in again."))
    try:
        next_url = _state_signer(binding).unsign(_state_to_signed(state), max_age=max_age)
    except signing.SignatureExpired:
        raise InvalidOAuthState(_("The sign-in link has expired; please sign in again.")) from None
    except (signing.BadSignature, ValueError):
        raise InvalidOAuthState(_("The sign-in link is not valid; please sign in again.")) from None
    if not _is_local_path(next_url):
        raise InvalidOAuthState(_("The page to return to must be on this site."))
    return next_url


# -- configuration and environment ---------------------------------------------------------


def official_account() -> WeChatOfficialAccount | None:
    """The deployment's official account from WECHAT_APP_ID / WECHAT_APP_SECRET, or None when unset.

    None means the mall runs without WeChat: browser geolocation and the development sign-in.
    """
    app_id = getattr(settings, "WECHAT_APP_ID", "") or ""
    app_secret = getattr(settings, "WECHAT_APP_SECRET", "") or ""
    if not app_id or not app_secret:
        return None
    return WeChatOfficialAccount(app_id=app_id, app_secret=app_secret)


def template_id(purpose: str) -> str:
    """The template id HQ configured for a purpose ("new_order", "order_status"), or "" when none."""
    return (getattr(settings, "WECHAT_TEMPLATES", {}) or {}).get(purpose, "")


def is_wechat_browser(user_agent: str) -> bool:
    """Whether the request comes from WeChat's in-app browser (its user agent names MicroMessenger).

    WeChat Work (企业微信) and WeChat for PC also say MicroMessenger.
    """
    return "MicroMessenger" in (user_agent or "")
