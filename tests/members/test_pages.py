"""The shopper's sign-in pages and the store / product QR entry points."""

import pytest
from django.urls import reverse

from inventory.services import receive_stock
from members.models import Member
from members.session import MEMBER_SESSION_KEY
from tests.factories import MemberFactory, SkuFactory, StoreFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_mode(settings):
    """The embedded demo: DEBUG on, WeChat not configured."""
    settings.DEBUG = True
    settings.WECHAT_APP_ID = ""
    settings.WECHAT_APP_SECRET = ""


def test_the_development_sign_in_is_shown_only_in_the_demo(client, demo_mode):
    page = client.get(reverse("members:sign-in"), {"next": "/mall/products/"})
    assert page.status_code == 200
    assert "WeChat is not configured" in page.content.decode()


def test_without_debug_there_is_no_development_sign_in(client, settings):
    settings.DEBUG = False
    settings.WECHAT_APP_ID = ""
    assert client.get(reverse("members:sign-in")).status_code == 503
    response = client.post(reverse("members:dev-sign-in"), {"phone": "13800138000"})
    assert response.status_code == 404
    assert not Member.objects.exists()


def test_development_sign_in_starts_a_member_session_and_returns_to_next(client, demo_mode):
    response = client.post(reverse("members:dev-sign-in"), {"phone": "138 0013 8000", "next": "/mall/products/"})
    assert response.status_code == 302
    assert response["Location"] == "/mall/products/"
    member = Member.objects.get(phone="+8613800138000")
    assert client.session[MEMBER_SESSION_KEY] == member.pk


def test_a_bad_phone_at_sign_in_is_a_form_error_and_creates_nobody(client, demo_mode):
    response = client.post(reverse("members:dev-sign-in"), {"phone": "12345"})
    assert response.status_code == 400
    assert "11 digits" in response.content.decode()
    assert not Member.objects.exists()


def test_sign_in_never_redirects_off_site(client, demo_mode):
    response = client.post(reverse("members:dev-sign-in"), {"phone": "13800138000", "next": "https://evil.example/"})
    assert response["Location"] == "/mall/"


def test_a_store_qr_code_chooses_the_store_and_becomes_the_home_store_at_sign_in(client, demo_mode):
    store = StoreFactory(code="HZ009")
    client.get(reverse("members:store-entry", args=["HZ009"]))
    client.post(reverse("members:dev-sign-in"), {"phone": "13800138000"})
    member = Member.objects.get(phone="+8613800138000")
    assert member.home_store == store
    assert member.home_store_source == Member.HomeStoreSource.STORE_QR


def test_a_later_qr_code_does_not_move_an_existing_home_store(client, demo_mode):
    home, other = StoreFactory(code="A1"), StoreFactory(code="B2")
    member = MemberFactory(phone="+8613800138000", home_store=home, home_store_source="store_qr")
    client.post(reverse("members:dev-sign-in"), {"phone": "13800138000"})
    client.get(reverse("members:store-entry", args=["B2"]))
    member.refresh_from_db()
    assert member.home_store == home
    assert client.session["mall_store_id"] == other.pk  # but the visit is at the scanned store


def test_a_product_qr_code_opens_the_product_at_that_store(client):
    store = StoreFactory(code="HZ004", name="万象城店")
    sku = SkuFactory(code="FH-3-800", spec="800g 3段", product__name="飞鹤星飞帆")
    receive_stock(store=store, sku=sku, quantity=3)
    response = client.get(reverse("members:product-entry", args=["FH-3-800", "HZ004"]), follow=True)
    page = response.content.decode()
    assert response.status_code == 200
    assert "飞鹤星飞帆" in page
    assert "万象城店" in page
    assert client.session["entry_store"] == {"store_id": store.pk, "source": "product_qr"}


def test_an_unknown_store_or_sku_in_a_qr_code_is_a_404(client):
    StoreFactory(code="HZ001")
    assert client.get(reverse("members:store-entry", args=["NOPE"])).status_code == 404
    assert client.get(reverse("members:product-entry", args=["NOPE", "HZ001"])).status_code == 404


def test_binding_a_phone_needs_a_signed_in_member(client):
    response = client.get(reverse("members:bind-phone"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("members:sign-in"))


def test_the_mall_speaks_chinese_unless_asked_otherwise():
    from django.test import Client

    page = Client().get(reverse("catalog:list")).content.decode()
    assert "商品" in page and "Products" not in page
    english = Client(HTTP_ACCEPT_LANGUAGE="en").get(reverse("catalog:list")).content.decode()
    assert "Products" in english


def test_a_form_posted_before_signing_in_returns_to_the_page_that_sent_it(client):
    sku = SkuFactory()
    product_page = reverse("catalog:product", args=[sku.product_id])
    response = client.post(reverse("orders:cart-add"), {"sku": sku.pk}, HTTP_REFERER=f"http://testserver{product_page}")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('members:sign-in')}?next={product_page.replace('/', '%2F')}"


def test_inside_wechat_the_mall_page_carries_a_signed_js_sdk_config(client, settings, monkeypatch):
    settings.WECHAT_APP_ID, settings.WECHAT_APP_SECRET = "wx-test-app", "secret"
    signed = {"appId": "wx-test-app", "timestamp": 1, "nonceStr": "n", "signature": "s", "jsApiList": ["getLocation"]}
    calls = []

    def jssdk_config(self, *, url, js_api_list):
        calls.append(url)
        return signed

    monkeypatch.setattr("integrations.vendors.wechat.WeChatOfficialAccount.jssdk_config", jssdk_config)
    wechat = "Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.50"
    page = client.get(reverse("mall:home"), headers={"User-Agent": wechat}).content.decode()
    assert 'id="wx-config"' in page and "jweixin-module" in page
    assert calls == ["http://testserver/mall/"]
    browser = client.get(reverse("mall:home"), headers={"User-Agent": "Mozilla/5.0 Chrome"}).content.decode()
    assert 'id="wx-config"' not in browser  # other browsers use their own geolocation
