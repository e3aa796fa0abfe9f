"""The promoter center `/mall/me/promotion/`: the member's share link, QR code, poster and WeChat
sharing, their own team by level (masked, down to HQ's depth), what it brought, their earnings,
and withdrawals; nobody sees another promoter's team."""

import io
import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from commissions import poster as poster_module
from commissions.models import CommissionEntry, Payout
from commissions.selectors import balances, mask_nickname, promoter_summary, team_of
from commissions.services import settle_due_commissions
from inventory.models import ProductImage
from members.models import Member, ReferralVisit
from members.session import MEMBER_SESSION_KEY
from o2o.phone import mask_phone
from orders.models import Order
from orders.services import cancel_order
from tests.factories import MemberFactory, SkuFactory

pytestmark = pytest.mark.django_db

PROMOTION = "/mall/me/promotion/"
TEAM = "/mall/me/promotion/team/"
SHARE = "/mall/me/promotion/share/"
POSTER = "/mall/me/promotion/poster.png"
WITHDRAW = "/mall/me/promotion/withdraw/"


def _signed_in(client, member):
    session = client.session
    session[MEMBER_SESSION_KEY] = member.pk
    session.save()
    return client


def _page(client, url, **params) -> str:
    response = client.get(url, params)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _tree():
    """promoter → a1 → a2 → a3 (a chain four deep), and a second friend b1 of the promoter."""
    promoter = MemberFactory(nickname="推广员", phone="+8613900000000")
    a1 = MemberFactory(referrer=promoter, nickname="王小芳", phone="+8613800000001")
    a2 = MemberFactory(referrer=a1, nickname="李雷", phone="+8613800000002")
    a3 = MemberFactory(referrer=a2, nickname="张三", phone="+8613800000003")
    b1 = MemberFactory(referrer=promoter, nickname="Bob", phone="+8613800000004")
    return promoter, a1, a2, a3, b1


def _settle_now():
    settle_due_commissions(at=timezone.now() + timedelta(days=8))


# --- who may see what -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [PROMOTION, TEAM, SHARE, POSTER])
def test_a_visitor_who_is_not_signed_in_is_sent_to_sign_in(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("members:sign-in"))
    assert parse_qs(urlsplit(response["Location"]).query)["next"] == [url]


def test_withdrawing_without_signing_in_creates_nothing(client, rules):
    response = client.post(WITHDRAW, {"amount": "20.00"})

    assert response.status_code == 302 and response["Location"].startswith(reverse("members:sign-in"))
    assert not Payout.objects.exists()


def test_a_promoter_cannot_see_another_promoters_team(client, rules):
    rules(depth=3)
    alice, a1, a2, a3, a4 = _tree()
    bob = MemberFactory(nickname="鲍勃")
    b1 = MemberFactory(referrer=bob, nickname="赵六", phone="+8613700000001")
    b2 = MemberFactory(referrer=b1, nickname="钱七", phone="+8613700000002")
    _signed_in(client, bob)

    pages = [_page(client, PROMOTION)]
    # A member id in the address changes nothing: the pages read the session's member only.
    pages += [_page(client, TEAM, level=level, member=alice.pk, referrer=alice.pk) for level in (1, 2, 3)]
    pages.append(_page(client, PROMOTION, member=alice.pk))

    text = "\n".join(pages)
    for stranger in (a1, a2, a3, a4):
        assert mask_nickname(stranger.nickname) not in text
        assert mask_phone(stranger.phone) not in text and stranger.phone[3:] not in text
    assert "赵***" in text and "钱***" in text
    # The reads themselves return descendants of the given member only.
    alices_tree = {a1.pk, a2.pk, a3.pk, a4.pk}
    bobs = {m.pk for level in (1, 2, 3) for m in team_of(bob, level=level)}
    assert bobs == {b1.pk, b2.pk}
    assert not bobs & alices_tree
    assert {m.pk for level in (1, 2, 3) for m in team_of(alice, level=level)} == alices_tree
    assert [level.members for level in promoter_summary(bob).levels] == [1, 1, 0]


def test_a_member_of_a_team_sees_only_those_below_them_not_their_referrer(client, rules):
    promoter, a1, a2, a3, b1 = _tree()
    _signed_in(client, a1)

    text = _page(client, TEAM, level=1) + _page(client, TEAM, level=2)

    assert "李***" in text and "张***" in text
    assert "推***" not in text and "B***" not in text  # their referrer, and their referrer's other friend


def test_the_team_page_has_no_level_beyond_hqs_depth(client, rules):
    rules(depth=2)
    promoter, *_ = _tree()
    _signed_in(client, promoter)

    assert client.get(TEAM, {"level": 3}).status_code == 404
    assert client.get(TEAM, {"level": 0}).status_code == 404
    assert client.get(TEAM, {"level": "x"}).status_code == 200  # read as level 1


# --- the team ---------------------------------------------------------------------------------------


def test_the_team_by_level_follows_hqs_depth(client, rules):
    promoter, a1, a2, a3, b1 = _tree()
    _signed_in(client, promoter)

    rules(depth=3)
    assert [(lvl.level, lvl.members) for lvl in promoter_summary(promoter).levels] == [(1, 2), (2, 1), (3, 1)]
    assert "张***" in _page(client, TEAM, level=3)

    rules(depth=1)
    assert [(lvl.level, lvl.members) for lvl in promoter_summary(promoter).levels] == [(1, 2)]
    page = _page(client, PROMOTION)
    assert 'id="level-1"' in page and 'id="level-2"' not in page
    assert client.get(TEAM, {"level": 2}).status_code == 404

    rules(depth=0)
    assert "Member commission is switched off" in _page(client, PROMOTION)


def test_team_members_are_shown_masked(client, rules):
    promoter, a1, *_ = _tree()
    _signed_in(client, promoter)

    text = _page(client, TEAM, level=1)

    assert "王***" in text and "138****0001" in text
    assert "王小芳" not in text and "13800000001" not in text and "小芳" not in text


def test_a_closed_account_in_the_team_shows_nothing_of_the_person(client, rules):
    promoter = MemberFactory()
    MemberFactory(referrer=promoter, nickname="", phone=None, closed_at=timezone.now())
    _signed_in(client, promoter)

    assert "Account closed" in _page(client, TEAM, level=1)


def test_masking_rules():
    assert mask_nickname("王小芳") == "王***"
    assert mask_nickname("") == "***"
    assert mask_nickname("  Bob") == "B***"


def test_the_team_shows_what_each_member_bought_and_each_level_adds_up(client, rules, buy, formula, store):
    rules(depth=2)
    promoter, a1, a2, a3, b1 = _tree()
    buy(a1, {formula: 2}, complete=True)  # ¥398.00
    buy(a1, {formula: 1})  # paid, not yet collected: ¥199.00
    buy(a2, {formula: 1})  # level 2: ¥199.00
    cancelled = buy(b1, {formula: 1})
    cancel_order(member=b1, order=cancelled)  # refunded in full: brings nothing
    buy(a3, {formula: 1})  # level 3: beyond HQ's depth

    levels = {lvl.level: lvl for lvl in promoter_summary(promoter).levels}
    assert (levels[1].members, levels[1].buyers, levels[1].orders, levels[1].amount_fen) == (2, 1, 2, 59700)
    assert (levels[2].members, levels[2].buyers, levels[2].orders, levels[2].amount_fen) == (1, 1, 1, 19900)
    assert 3 not in levels
    rows = {m.pk: m for m in team_of(promoter, level=1)}
    assert (rows[a1.pk].orders_brought, rows[a1.pk].amount_brought_fen) == (2, 59700)
    assert (rows[b1.pk].orders_brought, rows[b1.pk].amount_brought_fen) == (0, 0)

    _signed_in(client, promoter)
    page = _page(client, PROMOTION)
    assert re.search(r'id="orders-brought">3<', page)
    assert "¥796.00" in page  # 597 + 199
    team = _page(client, TEAM, level=1)
    assert "¥597.00" in team and "Bought" in team and "Not yet" in team


def test_the_team_page_costs_the_same_queries_for_a_large_team(client, rules, buy, formula):
    promoter = MemberFactory()
    for _ in range(3):
        buy(MemberFactory(referrer=promoter), {formula: 1})
    _signed_in(client, promoter)
    client.get(TEAM)  # sessions, codes: warm

    with CaptureQueriesContext(connection) as small:
        _page(client, TEAM, level=1)
    for _ in range(17):
        buy(MemberFactory(referrer=promoter), {formula: 1})
    with CaptureQueriesContext(connection) as large:
        text = _page(client, TEAM, level=1)

    assert len(large) == len(small)
    assert text.count('class="team-name"') == 20


def test_a_large_team_is_shown_a_page_at_a_time(client, rules):
    promoter = MemberFactory()
    MemberFactory.create_batch(45, referrer=promoter)
    _signed_in(client, promoter)

    first = _page(client, TEAM, level=1)
    last = _page(client, TEAM, level=1, page=3)

    assert first.count('class="team-name"') == 20 and 'id="next-page"' in first
    assert last.count('class="team-name"') == 5
    assert "45 members at this level" in first


# --- results and earnings -------------------------------------------------------------------------


def test_visits_and_sign_ups_through_the_link_are_counted(client, rules):
    promoter, *_ = _tree()
    ReferralVisit.objects.bulk_create([ReferralVisit(sharer=promoter, device=f"d{i}") for i in range(7)])
    ReferralVisit.objects.create(sharer=MemberFactory())  # someone else's link
    _signed_in(client, promoter)

    page = _page(client, PROMOTION)

    assert re.search(r'id="visits">7<', page)
    assert re.search(r'id="signups">2<', page)


def test_earnings_are_shown_by_state_with_the_recent_ledger(client, rules, buy, formula):
    promoter = MemberFactory()
    friend = MemberFactory(referrer=promoter)
    buy(friend, {formula: 1}, complete=True)  # 5 % of ¥199.00 = ¥9.95
    _settle_now()
    buy(friend, {formula: 2})  # ¥19.90 pending
    _signed_in(client, promoter)

    page = _page(client, PROMOTION)

    assert re.search(r'id="pending">¥19.90<', page)
    assert re.search(r'id="settled">¥9.95<', page)
    assert re.search(r'id="available">¥9.95<', page)
    assert "Sales commission" in page and "¥19.90" in page


# --- withdrawals ----------------------------------------------------------------------------------


@pytest.fixture
def earner(rules, buy, formula):
    """A promoter with ¥29.85 settled: 5 % of three cans of formula their friend bought and collected."""
    promoter = MemberFactory()
    buy(MemberFactory(referrer=promoter), {formula: 3}, complete=True)
    _settle_now()
    assert balances(member=promoter).available_fen == 2985
    return promoter


def test_a_withdrawal_is_requested_in_yuan_and_recorded_in_fen(client, earner):
    _signed_in(client, earner)

    response = client.post(WITHDRAW, {"amount": "12.34"})

    assert response.status_code == 302 and response["Location"].startswith(PROMOTION)
    payout = Payout.objects.get(member=earner)
    assert (payout.amount_fen, payout.status) == (1234, Payout.Status.REQUESTED)
    page = client.get(response["Location"]).content.decode()
    assert "Withdrawal requested" in page
    assert "¥12.34" in page and "Requested" in page
    assert re.search(r'id="available">¥17.51<', page)


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("5.00", "The smallest withdrawal is ¥10.00."),
        ("29.86", "You can withdraw at most ¥29.85 now."),
        ("abc", "Enter a number."),
        ("0", "Ensure this value is greater than or equal to 0.01."),
        ("1.234", "Ensure that there are no more than 2 decimal places."),
    ],
)
def test_a_refused_withdrawal_is_a_form_error_and_changes_nothing(client, earner, amount, message):
    _signed_in(client, earner)
    entries = CommissionEntry.objects.count()

    response = client.post(WITHDRAW, {"amount": amount})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Payout.objects.exists()
    assert CommissionEntry.objects.count() == entries
    assert balances(member=earner).available_fen == 2985


def test_a_second_withdrawal_while_one_is_open_is_refused(client, earner):
    _signed_in(client, earner)
    client.post(WITHDRAW, {"amount": "10.00"})

    response = client.post(WITHDRAW, {"amount": "10.00"})

    assert response.status_code == 400
    assert "still open" in response.content.decode()
    assert Payout.objects.filter(member=earner).count() == 1


# --- share link, product link, WeChat sharing --------------------------------------------------------


def test_the_share_link_is_absolute_and_carries_the_members_code(client, rules, settings):
    settings.O2O_PUBLIC_URL = "https://mall.example.cn"
    promoter = MemberFactory()
    _signed_in(client, promoter)

    page = _page(client, PROMOTION)

    promoter.refresh_from_db()
    link = f"https://mall.example.cn/mall/r/{promoter.referral_code}/"
    assert promoter.referral_code and f'value="{link}"' in page
    assert re.search(rf'id="referral-code">{promoter.referral_code}<', page)
    assert "<svg" in page  # its QR code


def test_a_product_share_link_opens_the_product_and_binds_the_visitor(client, rules, settings, formula):
    settings.O2O_PUBLIC_URL = "https://mall.example.cn"
    promoter = MemberFactory()
    _signed_in(client, promoter)

    page = _page(client, SHARE, sku=formula.code)

    promoter.refresh_from_db()
    product_path = f"/mall/products/{formula.product_id}/?sku={formula.code}"
    link = f"https://mall.example.cn/mall/r/{promoter.referral_code}/?next={quote(product_path, safe='')}"
    assert f'value="{link}"' in page
    assert "¥199.00" in page and formula.product.name in page
    # A new visitor who follows it lands on the product, with the promoter as pending referrer.
    from django.test import Client

    visitor = Client(HTTP_ACCEPT_LANGUAGE="en")
    response = visitor.get(link.removeprefix("https://mall.example.cn"))
    assert response.status_code == 302 and response["Location"] == product_path
    assert visitor.session["referral"] == {"referrer_id": promoter.pk}


def test_the_share_link_never_sends_a_visitor_off_site(client, rules):
    MemberFactory(referral_code="ABCD2345")

    response = client.get("/mall/r/ABCD2345/", {"next": "https://evil.example/phish"})

    assert response.status_code == 302 and response["Location"] == "/mall/"


def test_finding_a_product_to_share(client, rules, formula):
    SkuFactory(product__name="湿巾 80抽")
    _signed_in(client, MemberFactory())

    page = _page(client, SHARE, q="飞鹤")

    assert f"?sku={formula.code}" in page and "湿巾" not in page
    assert client.get(SHARE, {"sku": "NO-SUCH"}).status_code == 200  # back to the search


def test_without_wechat_the_page_offers_the_link_and_poster_only(client, rules, settings):
    settings.WECHAT_APP_ID = ""
    _signed_in(client, MemberFactory())

    page = client.get(PROMOTION, HTTP_USER_AGENT="Mozilla/5.0 MicroMessenger/8.0.50").content.decode()

    assert 'id="wx-config"' not in page
    assert 'id="share-data"' in page and 'id="mall-poster"' in page


def test_inside_wechat_the_page_signs_the_js_sdk_for_sharing(client, rules, settings):
    settings.WECHAT_APP_ID, settings.WECHAT_APP_SECRET = "wx-test-app", "secret"
    settings.O2O_PUBLIC_URL = "https://mall.example.cn"
    cache.set("wechat:wx-test-app:jsapi_ticket", "TICKET", timeout=60)
    promoter = MemberFactory()
    _signed_in(client, promoter)
    try:
        page = client.get(PROMOTION, HTTP_USER_AGENT="Mozilla/5.0 MicroMessenger/8.0.50").content.decode()
    finally:
        cache.delete("wechat:wx-test-app:jsapi_ticket")

    config = json.loads(re.search(r'id="wx-config" type="application/json">(.*?)</script>', page).group(1))
    share = json.loads(re.search(r'id="share-data" type="application/json">(.*?)</script>', page).group(1))
    assert config["appId"] == "wx-test-app" and "updateAppMessageShareData" in config["jsApiList"]
    promoter.refresh_from_db()
    assert share["link"] == f"https://mall.example.cn/mall/r/{promoter.referral_code}/"
    assert share["imgUrl"].startswith("https://mall.example.cn/") and share["title"]


# --- the poster -----------------------------------------------------------------------------------


def _png(response) -> Image.Image:
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "private" in response["Cache-Control"]
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    return image


def test_the_mall_poster_is_a_png(client, rules):
    _signed_in(client, MemberFactory())

    assert _png(client.get(POSTER)).size == (poster_module.WIDTH, poster_module.HEIGHT)


def test_a_product_poster_is_a_png_with_its_picture(client, rules, formula, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    picture = io.BytesIO()
    Image.new("RGB", (800, 600), (200, 30, 30)).save(picture, "PNG")
    ProductImage.objects.create(
        product=formula.product, image=SimpleUploadedFile("can.png", picture.getvalue(), "image/png")
    )
    _signed_in(client, MemberFactory())

    image = _png(client.get(POSTER, {"sku": formula.code})).convert("RGB")

    assert image.size == (750, 1200)
    assert image.getpixel((375, 370)) == (200, 30, 30)  # the picture, in the middle of its box


def test_a_poster_whose_picture_file_is_gone_is_drawn_without_it(client, rules, formula, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    ProductImage.objects.create(product=formula.product, image="products/2026/01/gone.jpg")
    _signed_in(client, MemberFactory())

    assert _png(client.get(POSTER, {"sku": formula.code})).size == (750, 1200)


def test_the_poster_is_drawn_when_the_font_setting_points_nowhere(client, rules, formula, settings, monkeypatch):
    settings.O2O_POSTER_FONT = "/nowhere/NoSuchFont.ttc"
    monkeypatch.setattr(poster_module, "FONT_CANDIDATES", ("/nowhere/either.ttf",))
    poster_module.forget_poster_font()
    _signed_in(client, MemberFactory())
    try:
        assert poster_module.poster_font_file() is None  # Pillow's own font
        assert _png(client.get(POSTER, {"sku": formula.code})).size == (750, 1200)
        assert _png(client.get(POSTER)).size == (750, 1200)
    finally:
        poster_module.forget_poster_font()


def test_a_font_setting_that_is_not_a_font_falls_back(client, rules, settings, tmp_path):
    not_a_font = tmp_path / "font.ttf"
    not_a_font.write_text("not a font")
    settings.O2O_POSTER_FONT = str(not_a_font)
    poster_module.forget_poster_font()
    _signed_in(client, MemberFactory())
    try:
        assert poster_module.poster_font_file() != (str(not_a_font), 0)
        assert _png(client.get(POSTER)).size == (750, 1200)
    finally:
        poster_module.forget_poster_font()


def test_a_poster_of_an_unknown_product_is_not_found(client, rules):
    _signed_in(client, MemberFactory())

    assert client.get(POSTER, {"sku": "NO-SUCH"}).status_code == 404


# --- the member center ------------------------------------------------------------------------------


def test_the_member_center_links_to_the_promotion_page(client, rules):
    _signed_in(client, MemberFactory())

    assert f'href="{PROMOTION}"' in _page(client, "/mall/me/")


def test_the_promotion_page_only_lists_orders_of_the_team(client, rules, buy, formula):
    """A member's own orders are not "brought" by their link."""
    promoter = MemberFactory()
    buy(promoter, {formula: 1})
    _signed_in(client, promoter)

    assert re.search(r'id="orders-brought">0<', _page(client, PROMOTION))
    assert Order.objects.filter(member=promoter).count() == 1
    assert Member.objects.filter(referrer=promoter).count() == 0


def test_poster_text_keeps_to_its_lines_and_breaks_words_only_when_it_must():
    from PIL import ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    face = poster_module.font(30)

    english = poster_module._wrap(draw, "Long-press the QR code to shop at 贝恩母婴", face, 446, 3)
    chinese = poster_module._wrap(draw, "飞鹤星飞帆幼儿配方奶粉" * 10, face, 446, 2)

    assert " ".join(english).replace("  ", " ") == "Long-press the QR code to shop at 贝恩母婴"
    assert all(not line.startswith(("hop", "op", "p ")) for line in english)
    assert len(chinese) == 2 and chinese[-1].endswith("…")
    assert all(draw.textlength(line, font=face) <= 446 for line in english + chinese)
