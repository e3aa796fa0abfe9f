"""The WeChat official-account client: OAuth sign-in, the JS-SDK signature and its shared credentials.

No test reaches WeChat: requests' transport (HTTPAdapter.send) is replaced for every test by a
fake WeChat that answers the documented endpoints and records each call.
"""

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import time_machine
from django.core.cache.backends.locmem import LocMemCache

from integrations.vendors.wechat import (
    CREDENTIAL_SAFETY_MARGIN_S,
    DjangoCacheSessionStorage,
    InvalidOAuthState,
    WeChatError,
    WeChatIdentity,
    WeChatNotConfigured,
    WeChatOfficialAccount,
    is_wechat_browser,
    jssdk_signature,
    make_oauth_state,
    official_account,
    read_oauth_state,
)
from o2o.errors import ApplicationError

APP_ID = "wx1234567890abcdef"
APP_SECRET = "secret-never-logged"
START = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
WEB_TOKEN_ANSWER = {"access_token": "T", "expires_in": 7200, "refresh_token": "R", "openid": "o1"}

Answer = dict[str, Any] | Callable[[dict[str, str]], dict[str, Any]] | Exception | int


class FakeWeChat:
    """Answers WeChat's endpoints by path; `calls` lists (path, query) of every request sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.timeouts: list[Any] = []
        self.answers: dict[str, Answer] = {
            "/cgi-bin/token": {"access_token": "ACCESS-1", "expires_in": 7200},
            "/cgi-bin/ticket/getticket": {"errcode": 0, "errmsg": "ok", "ticket": "TICKET-1", "expires_in": 7200},
        }

    def count(self, path: str) -> int:
        return sum(1 for called, _ in self.calls if called == path)

    def send(self, adapter: Any, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        self.calls.append((parts.path, query))
        self.timeouts.append(kwargs.get("timeout"))
        if parts.hostname != "api.weixin.qq.com" or parts.path not in self.answers:
            raise AssertionError(f"unexpected outbound request: {request.method} {request.url}")
        answer = self.answers[parts.path]
        if isinstance(answer, Exception):
            raise answer
        response = requests.Response()
        response.request = request
        response.url = request.url
        if isinstance(answer, int):
            response.status_code, response._content = answer, b"<html>busy</html>"
            return response
        body = answer(query) if callable(answer) else answer
        response.status_code = 200
        response.headers["Content-Type"] = "text/plain"  # WeChat's real content type for JSON
        response._content = json.dumps(body, ensure_ascii=False).encode()
        return response


@pytest.fixture(autouse=True)
def wechat_api() -> Iterator[FakeWeChat]:
    fake = FakeWeChat()
    with mock.patch("requests.adapters.HTTPAdapter.send", autospec=True, side_effect=fake.send):
        yield fake


@pytest.fixture
def shared_cache() -> LocMemCache:
    """A cache of its own per test, standing for the Redis cache all processes share."""
    return LocMemCache(f"wechat-test-{uuid.uuid4()}", {})


@pytest.fixture
def account(shared_cache: LocMemCache) -> WeChatOfficialAccount:
    return WeChatOfficialAccount(app_id=APP_ID, app_secret=APP_SECRET, cache=shared_cache)


def reference_signature(ticket: str, noncestr: str, timestamp: int, url: str) -> str:
    """WeChat's JS-SDK rule, written out independently of the module."""
    string1 = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(string1.encode("utf-8")).hexdigest()


# -- web OAuth --------------------------------------------------------------------------------


def test_authorize_url_lists_wechats_parameters_in_order_and_ends_with_wechat_redirect(account):
    url = account.authorize_url(
        redirect_uri="https://mall.example.cn/wechat/callback/?src=qr&x=1", scope="snsapi_userinfo", state="abc123XYZ"
    )

    assert url.startswith("https://open.weixin.qq.com/connect/oauth2/authorize?")
    assert url.endswith("#wechat_redirect")
    query = urlsplit(url).query
    assert [pair.split("=", 1)[0] for pair in query.split("&")] == [
        "appid",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
    ]
    assert "redirect_uri=https%3A%2F%2Fmall.example.cn%2Fwechat%2Fcallback%2F%3Fsrc%3Dqr%26x%3D1&" in query
    assert parse_qs(query) == {
        "appid": [APP_ID],
        "redirect_uri": ["https://mall.example.cn/wechat/callback/?src=qr&x=1"],
        "response_type": ["code"],
        "scope": ["snsapi_userinfo"],
        "state": ["abc123XYZ"],
    }


def test_authorize_url_defaults_to_the_silent_base_scope(account):
    url = account.authorize_url(redirect_uri="https://mall.example.cn/cb/", state="s1")

    assert "&scope=snsapi_base&" in url


@pytest.mark.parametrize("state", ["", "has-dash", "has:colon", "x" * 129])
def test_authorize_url_refuses_a_state_outside_wechats_alphabet_or_length(account, state):
    with pytest.raises(ValueError):
        account.authorize_url(redirect_uri="https://mall.example.cn/cb/", state=state)


def test_authorize_url_refuses_an_unknown_scope(account):
    with pytest.raises(ValueError):
        account.authorize_url(redirect_uri="https://mall.example.cn/cb/", scope="snsapi_login", state="s1")


def test_a_base_scope_code_yields_the_openid_in_one_call(account, wechat_api):
    wechat_api.answers["/sns/oauth2/access_token"] = {
        "access_token": "WEB-TOKEN",
        "expires_in": 7200,
        "refresh_token": "REFRESH",
        "openid": "oOPENID-1",
        "scope": "snsapi_base",
    }

    identity = account.identity_from_code(code="CODE-1", scope="snsapi_base")

    assert identity == WeChatIdentity(openid="oOPENID-1", scope="snsapi_base")
    assert identity.unionid == identity.nickname == identity.avatar_url == ""
    assert wechat_api.calls == [
        (
            "/sns/oauth2/access_token",
            {"appid": APP_ID, "secret": APP_SECRET, "code": "CODE-1", "grant_type": "authorization_code"},
        )
    ]


def test_a_userinfo_scope_code_also_yields_unionid_nickname_and_avatar(account, wechat_api):
    wechat_api.answers["/sns/oauth2/access_token"] = {
        "access_token": "WEB-TOKEN",
        "expires_in": 7200,
        "refresh_token": "REFRESH",
        "openid": "oOPENID-2",
        "scope": "snsapi_userinfo",
        "unionid": "uUNION-2",
    }
    wechat_api.answers["/sns/userinfo"] = {
        "openid": "oOPENID-2",
        "nickname": "小明妈妈",
        "sex": 0,
        "province": "",
        "city": "",
        "country": "",
        "headimgurl": "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132",
        "privilege": [],
        "unionid": "uUNION-2",
    }

    identity = account.identity_from_code(code="CODE-2", scope="snsapi_userinfo")

    assert identity == WeChatIdentity(
        openid="oOPENID-2",
        unionid="uUNION-2",
        nickname="小明妈妈",
        avatar_url="https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132",
        scope="snsapi_userinfo",
    )
    assert [path for path, _ in wechat_api.calls] == ["/sns/oauth2/access_token", "/sns/userinfo"]
    assert wechat_api.calls[1][1] == {"access_token": "WEB-TOKEN", "openid": "oOPENID-2", "lang": "zh_CN"}


def test_a_snapshot_page_virtual_account_is_flagged(account, wechat_api):
    wechat_api.answers["/sns/oauth2/access_token"] = {
        "access_token": "WEB-TOKEN",
        "expires_in": 7200,
        "refresh_token": "REFRESH",
        "openid": "oVIRTUAL",
        "scope": "snsapi_base",
        "is_snapshotuser": 1,
    }

    assert account.identity_from_code(code="CODE", scope="snsapi_base").is_snapshot_user is True


def test_an_errcode_answer_raises_wechat_error_with_errcode_and_errmsg(account, wechat_api):
    wechat_api.answers["/sns/oauth2/access_token"] = {"errcode": 40163, "errmsg": "code been used, rid: 1"}

    with pytest.raises(WeChatError) as raised:
        account.identity_from_code(code="USED", scope="snsapi_base")

    error = raised.value
    assert isinstance(error, ApplicationError)
    assert (error.code, error.status) == ("wechat_error", 502)
    assert error.details == {"action": "oauth_access_token", "errcode": 40163, "errmsg": "code been used, rid: 1"}
    assert APP_SECRET not in str(error)
    assert error.__suppress_context__  # the wechatpy exception, which holds the request URL, is not chained


def test_a_userinfo_errcode_raises_wechat_error(account, wechat_api):
    wechat_api.answers["/sns/oauth2/access_token"] = WEB_TOKEN_ANSWER
    wechat_api.answers["/sns/userinfo"] = {"errcode": 40003, "errmsg": "invalid openid"}

    with pytest.raises(WeChatError) as raised:
        account.identity_from_code(code="C", scope="snsapi_userinfo")

    assert raised.value.details["errcode"] == 40003


def test_unreachable_wechat_raises_wechat_error_without_the_url(account, wechat_api):
    wechat_api.answers["/sns/oauth2/access_token"] = requests.ConnectionError(
        f"Max retries exceeded with url: /sns/oauth2/access_token?secret={APP_SECRET}"
    )

    with pytest.raises(WeChatError) as raised:
        account.identity_from_code(code="C", scope="snsapi_base")

    assert raised.value.details == {"action": "oauth_access_token", "reason": "ConnectionError"}
    assert raised.value.__suppress_context__


def test_an_http_error_status_raises_wechat_error(account, wechat_api):
    wechat_api.answers["/sns/oauth2/access_token"] = 503

    with pytest.raises(WeChatError) as raised:
        account.identity_from_code(code="C", scope="snsapi_base")

    assert raised.value.details == {"action": "oauth_access_token", "http_status": 503}


def test_every_request_to_wechat_carries_a_timeout(account, wechat_api):
    wechat_api.answers["/sns/oauth2/access_token"] = WEB_TOKEN_ANSWER

    account.identity_from_code(code="C", scope="snsapi_base")
    account.jssdk_config(url="https://mall.example.cn/", js_api_list=["scanQRCode"])

    assert len(wechat_api.timeouts) == 3
    assert all(timeout for timeout in wechat_api.timeouts)


def test_a_missing_code_is_refused_without_calling_wechat(account, wechat_api):
    with pytest.raises(ApplicationError) as raised:
        account.identity_from_code(code="", scope="snsapi_userinfo")

    assert raised.value.code == "wechat_code_missing"
    assert wechat_api.calls == []


# -- JS-SDK -----------------------------------------------------------------------------------


def test_wechats_documented_jssdk_signature_example():
    # The worked example in the appendix of WeChat's JS-SDK document.
    signature = jssdk_signature(
        jsapi_ticket="sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
        noncestr="Wm3WZYTPz0wzccnW",
        timestamp=1414587457,
        url="http://mp.weixin.qq.com?params=value",
    )

    assert signature == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"


def test_jssdk_config_is_signed_over_the_url_without_its_fragment(account):
    page = "https://mall.example.cn/mall/stores/?near=1&from=singlemessage"

    config = account.jssdk_config(url=page + "#/map", js_api_list=["getLocation", "scanQRCode"])

    assert set(config) == {"appId", "timestamp", "nonceStr", "signature", "jsApiList"}
    assert config["appId"] == APP_ID
    assert isinstance(config["timestamp"], int)
    assert len(config["nonceStr"]) == 16 and config["nonceStr"].isalnum()
    assert config["jsApiList"] == ["getLocation", "scanQRCode"]
    assert config["signature"] == reference_signature("TICKET-1", config["nonceStr"], config["timestamp"], page)


def test_jssdk_config_uses_a_fresh_nonce_each_time(account):
    first = account.jssdk_config(url="https://mall.example.cn/", js_api_list=[])
    second = account.jssdk_config(url="https://mall.example.cn/", js_api_list=[])

    assert first["nonceStr"] != second["nonceStr"]


def test_the_ticket_is_fetched_once_then_served_from_the_cache_until_it_expires(account, wechat_api):
    with time_machine.travel(START, tick=False) as clock:
        account.jssdk_config(url="https://mall.example.cn/", js_api_list=[])
        for _ in range(5):
            account.jssdk_config(url="https://mall.example.cn/", js_api_list=[])
        assert (wechat_api.count("/cgi-bin/token"), wechat_api.count("/cgi-bin/ticket/getticket")) == (1, 1)
        assert wechat_api.calls[1][1] == {"access_token": "ACCESS-1", "type": "jsapi"}

        clock.shift(7200 - CREDENTIAL_SAFETY_MARGIN_S - 1)
        account.jssdk_config(url="https://mall.example.cn/", js_api_list=[])
        assert wechat_api.count("/cgi-bin/ticket/getticket") == 1

        clock.shift(2)  # now inside the safety margin: both credentials are fetched anew
        wechat_api.answers["/cgi-bin/ticket/getticket"] = {"errcode": 0, "ticket": "TICKET-2", "expires_in": 7200}
        config = account.jssdk_config(url="https://mall.example.cn/", js_api_list=[])

    assert (wechat_api.count("/cgi-bin/token"), wechat_api.count("/cgi-bin/ticket/getticket")) == (2, 2)
    assert config["signature"] == reference_signature(
        "TICKET-2", config["nonceStr"], config["timestamp"], "https://mall.example.cn/"
    )


def test_the_access_token_stays_cached_when_a_shorter_lived_ticket_is_refetched(account, wechat_api):
    wechat_api.answers["/cgi-bin/ticket/getticket"] = {"errcode": 0, "ticket": "T", "expires_in": 3600}

    with time_machine.travel(START, tick=False) as clock:
        account.jsapi_ticket()
        clock.shift(3600 - CREDENTIAL_SAFETY_MARGIN_S + 1)
        account.jsapi_ticket()

    assert wechat_api.count("/cgi-bin/ticket/getticket") == 2
    assert wechat_api.count("/cgi-bin/token") == 1
    assert [query["access_token"] for path, query in wechat_api.calls if path == "/cgi-bin/ticket/getticket"] == [
        "ACCESS-1",
        "ACCESS-1",
    ]


def test_another_process_reuses_the_cached_ticket_and_token(shared_cache, wechat_api):
    first = WeChatOfficialAccount(app_id=APP_ID, app_secret=APP_SECRET, cache=shared_cache)
    second = WeChatOfficialAccount(app_id=APP_ID, app_secret=APP_SECRET, cache=shared_cache)

    first.jssdk_config(url="https://mall.example.cn/", js_api_list=[])
    calls_after_first = len(wechat_api.calls)
    second.jssdk_config(url="https://mall.example.cn/", js_api_list=[])

    assert calls_after_first == 2
    assert len(wechat_api.calls) == 2


def test_a_ticket_errcode_raises_wechat_error_and_caches_nothing(account, wechat_api, shared_cache):
    wechat_api.answers["/cgi-bin/ticket/getticket"] = {"errcode": 45009, "errmsg": "reach max api daily quota limit"}

    with pytest.raises(WeChatError) as raised:
        account.jssdk_config(url="https://mall.example.cn/", js_api_list=[])

    assert raised.value.details == {
        "action": "jsapi_ticket",
        "errcode": 45009,
        "errmsg": "reach max api daily quota limit",
    }
    assert shared_cache.get(f"wechat:{APP_ID}:jsapi_ticket") is None


def test_an_access_token_errcode_raises_wechat_error(account, wechat_api):
    wechat_api.answers["/cgi-bin/token"] = {"errcode": 40125, "errmsg": "invalid appsecret"}

    with pytest.raises(WeChatError) as raised:
        account.jsapi_ticket()

    assert raised.value.details["errcode"] == 40125


def test_the_session_storage_expires_values_a_safety_margin_early(shared_cache):
    storage = DjangoCacheSessionStorage(shared_cache)

    with time_machine.travel(START, tick=False) as clock:
        storage.set("wx1_access_token", "TOKEN", 7200)
        storage.set("ignored", None, 7200)
        clock.shift(7200 - CREDENTIAL_SAFETY_MARGIN_S - 1)
        assert storage.get("wx1_access_token") == storage["wx1_access_token"] == "TOKEN"
        clock.shift(2)
        assert storage.get("wx1_access_token", "gone") == "gone"

    assert storage.get("ignored") is None


# -- the OAuth state --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "next_url",
    [
        "/",
        "/mall/stores/WS/?from=singlemessage&isappinstalled=0",
        "/mall/products/42/?guide=G0042&store=WS#reviews",
        "/mall/search/?q=%E5%A5%B6%E7%B2%89&sort=-price",
        "/a_b.c~d/:@!$&'()*+,;=/Z/[x]",
    ],
)
def test_an_oauth_state_round_trips_within_wechats_state_rule(next_url):
    state = make_oauth_state(next_url=next_url)

    assert state.isascii() and state.isalnum() and len(state) <= 128
    assert read_oauth_state(state) == next_url


def test_an_oauth_state_carries_a_non_ascii_path_percent_encoded():
    state = make_oauth_state(next_url="/会员/")

    assert read_oauth_state(state) == "/%E4%BC%9A%E5%91%98/"


def test_an_oauth_state_has_room_for_a_typical_product_link_with_its_query():
    next_url = "/mall/products/12345/?store=WS&guide=G00042&page=2"

    for _ in range(20):  # the signature differs each second; its escapes must not tip it over
        assert read_oauth_state(make_oauth_state(next_url=next_url)) == next_url


def test_an_oauth_state_drops_a_query_too_long_for_wechat():
    long_url = "/mall/products/42/?" + "&".join(f"utm_param{i}=value{i}" for i in range(10))

    state = make_oauth_state(next_url=long_url)

    assert len(state) <= 128
    assert read_oauth_state(state) == "/mall/products/42/"


def test_a_tampered_oauth_state_is_refused():
    state = make_oauth_state(next_url="/mall/")
    tampered = state[:-1] + ("A" if state[-1] != "A" else "B")

    with pytest.raises(InvalidOAuthState) as raised:
        read_oauth_state(tampered)

    assert (raised.value.code, raised.value.status) == ("invalid_oauth_state", 400)


@pytest.mark.parametrize("state", ["", "not-alphanumeric", "Z", "Z9abc", "x" * 129])
def test_a_malformed_oauth_state_is_refused(state):
    with pytest.raises(InvalidOAuthState):
        read_oauth_state(state)


def test_an_expired_oauth_state_is_refused():
    with time_machine.travel(START, tick=False) as clock:
        state = make_oauth_state(next_url="/mall/")
        clock.shift(600)
        assert read_oauth_state(state) == "/mall/"
        clock.shift(2)
        with pytest.raises(InvalidOAuthState):
            read_oauth_state(state)


def test_a_state_bound_to_one_browser_is_refused_in_another():
    state = make_oauth_state(next_url="/mall/", binding="browser-a")

    assert read_oauth_state(state, binding="browser-a") == "/mall/"
    with pytest.raises(InvalidOAuthState):
        read_oauth_state(state, binding="browser-b")
    with pytest.raises(InvalidOAuthState):
        read_oauth_state(state)


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example",
        "//evil.example/mall/",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "mall/",
        "",
    ],
)
def test_an_oauth_state_refuses_a_next_url_off_this_site(next_url):
    with pytest.raises(InvalidOAuthState):
        make_oauth_state(next_url=next_url)


# -- configuration and environment ------------------------------------------------------------


def test_there_is_no_official_account_when_wechat_is_not_configured(settings):
    if hasattr(settings, "WECHAT_APP_ID"):
        del settings.WECHAT_APP_ID
    if hasattr(settings, "WECHAT_APP_SECRET"):
        del settings.WECHAT_APP_SECRET
    assert official_account() is None

    settings.WECHAT_APP_ID = APP_ID
    settings.WECHAT_APP_SECRET = ""
    assert official_account() is None


def test_the_official_account_comes_from_settings(settings):
    settings.WECHAT_APP_ID = APP_ID
    settings.WECHAT_APP_SECRET = APP_SECRET

    account = official_account()

    assert isinstance(account, WeChatOfficialAccount)
    assert account.app_id == APP_ID
    assert APP_SECRET not in repr(account)


def test_an_account_without_id_or_secret_is_not_configured():
    with pytest.raises(WeChatNotConfigured):
        WeChatOfficialAccount(app_id=APP_ID, app_secret="")


def test_the_official_account_uses_djangos_cache_by_default(settings, wechat_api):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "wechat-default"}
    }
    settings.WECHAT_APP_ID = APP_ID
    settings.WECHAT_APP_SECRET = APP_SECRET
    from django.core.cache import cache

    official_account().jsapi_ticket()
    official_account().jsapi_ticket()

    assert cache.get(f"wechat:{APP_ID}:jsapi_ticket") == "TICKET-1"
    assert wechat_api.count("/cgi-bin/ticket/getticket") == 1
    cache.clear()


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN",
            True,
        ),
        ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36", False),
        ("", False),
    ],
)
def test_the_wechat_browser_is_recognised_by_its_user_agent(user_agent, expected):
    assert is_wechat_browser(user_agent) is expected
