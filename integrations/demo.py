"""The demo chain: 贝恩母婴, a fictional mother-and-baby chain in Hangzhou, and its loader.

`load_demo` writes an HQ flagship and sixteen branches with their weekly hours, a
manager and two clerks per store (and a few shopping guides), an HQ superuser, a
catalog of about fifty SKUs and every store's opening stock. Like an ERP import it
goes through the apps' services wherever one exists, so the demo obeys the same
rules as real data (stock moves sum to the stock). It is idempotent: everything
is keyed on codes and usernames, and a store's stock of a SKU is received only
when the store has no stock row for it yet, so a second run writes nothing.

Coordinates are GCJ-02 (as Amap and WeChat report them), each inside its
district. Quantities come from `random.Random` seeded per (store, SKU) with a
fixed seed: the same on every machine and independent of what already exists.
"""

import random
from dataclasses import dataclass
from datetime import time, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from inventory.models import SKU, Category, Product, Stock, StockMove
from inventory.services import adjust_stock_count, receive_stock
from members.crm import CrmMember, upsert_member_from_crm
from members.models import Member, Purchase
from members.services import (
    Referral,
    bind_phone,
    earn_points,
    record_purchase,
    set_home_store_once,
    set_marketing_consent,
    sign_in_for_development,
)
from o2o.phone import normalize_cn_mobile
from orders.dispatch import dispatch_order
from orders.models import Order
from orders.services import DeliveryAddress, confirm_payment, place_order, set_cart_quantity
from stores.models import OpeningHours, Staff, Store
from stores.services import create_staff, create_store, set_opening_hours

SEED = 20240601
CHAIN_NAME = "贝恩母婴"
CITY = "杭州"
DEMO_PASSWORD = "demo12345"  # noqa: S105 - the published password of the demo accounts
EMAIL_DOMAIN = "demo.beien.example"
HQ_USERNAME = "hq"
OPENING_STOCK_REASON = "期初库存"
SOLD_OUT_COUNT_REASON = "盘点：已售罄"
STOCK_REFERENCE = "demo"

# --- Stores -------------------------------------------------------------------------------

Weekly = dict[int, list[tuple[time, time]]]

WEEKDAYS = range(5)
WEEKEND = range(5, 7)

OPENING_HOURS: dict[str, Weekly] = {
    # A street shop: 09:00–21:30, an extra half hour on Saturday and Sunday evenings.
    "street": {
        **{day: [(time(9, 0), time(21, 30))] for day in WEEKDAYS},
        **{day: [(time(9, 0), time(22, 0))] for day in WEEKEND},
    },
    # Inside a shopping mall: the mall's hours every day.
    "mall": {day: [(time(10, 0), time(22, 0))] for day in range(7)},
    # Residential suburbs: open early for parents on the way to work, close earlier.
    "suburb": {
        **{day: [(time(8, 30), time(21, 0))] for day in WEEKDAYS},
        **{day: [(time(8, 30), time(21, 30))] for day in WEEKEND},
    },
}


@dataclass(frozen=True)
class StoreSpec:
    code: str
    name: str
    district: str
    address: str
    latitude: str  # GCJ-02
    longitude: str  # GCJ-02
    phone: str
    delivery_radius_km: str = "3.00"
    kind: str = Store.Kind.BRANCH
    operation: str = Store.Operation.DIRECT
    offers_pickup: bool = True
    delivers: bool = True
    hours: str = "street"
    guides: int = 0

    @property
    def email(self) -> str:
        return f"{self.code.lower()}@{EMAIL_DOMAIN}"


STORES: tuple[StoreSpec, ...] = (
    StoreSpec(
        "HZ001",
        "贝恩母婴·武林旗舰店",
        "拱墅区",
        "杭州市拱墅区武林路318号",
        "30.274200",
        "120.162100",
        "0571-85061888",
        delivery_radius_km="5.00",
        kind=Store.Kind.HQ,
        guides=2,
    ),
    StoreSpec(
        "HZ002",
        "贝恩母婴·西湖文三路店",
        "西湖区",
        "杭州市西湖区文三路259号",
        "30.277400",
        "120.141600",
        "0571-88213566",
        delivery_radius_km="3.50",
        guides=1,
    ),
    StoreSpec(
        "HZ003",
        "贝恩母婴·西湖三墩店",
        "西湖区",
        "杭州市西湖区古墩路1580号",
        "30.324600",
        "120.096300",
        "0571-88976021",
        delivery_radius_km="4.00",
    ),
    StoreSpec(
        "HZ004",
        "贝恩母婴·万象城店",
        "上城区",
        "杭州市上城区富春路701号万象城L4层",
        "30.251600",
        "120.213400",
        "0571-89705218",
        offers_pickup=True,
        delivers=False,
        hours="mall",
    ),
    StoreSpec(
        "HZ005",
        "贝恩母婴·上城凯旋路店",
        "上城区",
        "杭州市上城区凯旋路445号",
        "30.276300",
        "120.192700",
        "0571-86451173",
    ),
    StoreSpec(
        "HZ006",
        "贝恩母婴·上城丁桥店",
        "上城区",
        "杭州市上城区大农港路1216号",
        "30.336500",
        "120.233800",
        "0571-86618530",
        delivery_radius_km="4.00",
        hours="suburb",
    ),
    StoreSpec(
        "HZ007",
        "贝恩母婴·拱墅大关店",
        "拱墅区",
        "杭州市拱墅区上塘路458号",
        "30.303900",
        "120.157600",
        "0571-88092745",
    ),
    StoreSpec(
        "HZ008",
        "贝恩母婴·拱宸桥店",
        "拱墅区",
        "杭州市拱墅区丽水路58号",
        "30.318800",
        "120.141900",
        "0571-88159360",
        delivers=False,
    ),
    StoreSpec(
        "HZ009",
        "贝恩母婴·滨江江南大道店",
        "滨江区",
        "杭州市滨江区江南大道588号",
        "30.208400",
        "120.211200",
        "0571-87702316",
        delivery_radius_km="4.00",
        guides=1,
    ),
    StoreSpec(
        "HZ010",
        "贝恩母婴·滨江长河店",
        "滨江区",
        "杭州市滨江区长河路351号",
        "30.190800",
        "120.196400",
        "0571-86695402",
    ),
    StoreSpec(
        "HZ011",
        "贝恩母婴·萧山北干店",
        "萧山区",
        "杭州市萧山区金城路438号",
        "30.183600",
        "120.264200",
        "0571-82731095",
        delivery_radius_km="4.50",
    ),
    StoreSpec(
        "HZ012",
        "贝恩母婴·萧山世纪城店",
        "萧山区",
        "杭州市萧山区奔竞大道353号",
        "30.238500",
        "120.254300",
        "0571-82863647",
        delivery_radius_km="4.00",
    ),
    StoreSpec(
        "HZ013",
        "贝恩母婴·余杭未来科技城店",
        "余杭区",
        "杭州市余杭区文一西路1500号",
        "30.289600",
        "120.004800",
        "0571-88736219",
        delivery_radius_km="5.00",
        guides=1,
    ),
    StoreSpec(
        "HZ014",
        "贝恩母婴·余杭良渚店",
        "余杭区",
        "杭州市余杭区良渚街道金恒路88号",
        "30.372000",
        "120.060000",
        "0571-88770583",
        delivery_radius_km="5.00",
        operation=Store.Operation.FRANCHISE,
        hours="suburb",
    ),
    StoreSpec(
        "HZ015",
        "贝恩母婴·临平迎宾路店",
        "临平区",
        "杭州市临平区迎宾路368号",
        "30.419500",
        "120.298400",
        "0571-86237814",
        delivery_radius_km="5.00",
        operation=Store.Operation.FRANCHISE,
        hours="suburb",
    ),
    StoreSpec(
        "HZ016",
        "贝恩母婴·钱塘下沙店",
        "钱塘区",
        "杭州市钱塘区学源街1158号",
        "30.313800",
        "120.350200",
        "0571-86912470",
        delivery_radius_km="4.50",
    ),
    StoreSpec(
        "HZ017",
        "贝恩母婴·钱塘金沙湖店",
        "钱塘区",
        "杭州市钱塘区金沙大道560号",
        "30.308600",
        "120.321400",
        "0571-86735029",
    ),
)

# --- Staff --------------------------------------------------------------------------------

SURNAMES = "王李张刘陈杨黄赵吴周徐孙朱马胡郭林何高罗郑梁谢宋唐许韩冯邓曹彭曾田董潘袁蔡蒋余叶程魏苏吕丁沈姚卢钟陆汪金"
# Written as text, space-separated: easier to read and extend than a column of one-character strings.
GIVEN_NAMES = (  # noqa: SIM905
    "婷 静 敏 丽 芳 娟 霞 燕 玲 颖 琳 倩 悦 蕾 洁 佳怡 雨欣 思琪 晓燕 文静 海燕 丽娜 欣怡 梦洁 雅琴 晓梅 春燕 丹丹 "
    "慧敏 诗涵 嘉欣 子涵 俊杰 建华 志强 浩然 伟 磊 晨 宇航"
).split()
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155")
MOBILE_PREFIXES += ("156", "157", "158", "159", "180", "181", "182", "183", "185", "186", "187", "188", "189")


@dataclass(frozen=True)
class StaffSpec:
    store_code: str
    username: str
    role: str
    staff_code: str
    display_name: str
    phone: str  # +86 and an 11-digit mobile

    @property
    def email(self) -> str:
        return f"{self.username}@{EMAIL_DOMAIN}"


def _staff_plan() -> tuple[StaffSpec, ...]:
    """A manager and two clerks per store, plus its guides; names and mobiles drawn once, deterministically."""
    rng = random.Random(f"{SEED}:staff")  # noqa: S311 - demo data, not secrets
    names: set[str] = set()
    phones: set[str] = set()
    plan = []
    for store in STORES:
        roles = [("manager", Staff.Role.MANAGER), ("clerk1", Staff.Role.CLERK), ("clerk2", Staff.Role.CLERK)]
        roles += [(f"guide{n}", Staff.Role.GUIDE) for n in range(1, store.guides + 1)]
        for number, (suffix, role) in enumerate(roles, start=1):
            name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
            while name in names:
                name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
            names.add(name)
            phone = f"+86{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"
            while phone in phones:
                phone = f"+86{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"
            phones.add(phone)
            plan.append(
                StaffSpec(
                    store_code=store.code,
                    username=f"{store.code.lower()}-{suffix}",
                    role=role,
                    staff_code=f"{store.code}-{number:02d}",
                    display_name=name,
                    phone=phone,
                )
            )
    return tuple(plan)


STAFF: tuple[StaffSpec, ...] = _staff_plan()


class DemoLogin(NamedTuple):
    description: str
    username: str
    password: str


# What `make run` prints: one login per kind of user. Every store HZ001–HZ017 has
# hzNNN-manager, hzNNN-clerk1 and hzNNN-clerk2; the guides are hz001-guide1, hz001-guide2,
# hz002-guide1, hz009-guide1 and hz013-guide1. Descriptions stay ASCII so the columns align.
DEMO_LOGINS: tuple[DemoLogin, ...] = (
    DemoLogin("HQ admin (superuser)", HQ_USERNAME, DEMO_PASSWORD),
    DemoLogin("HZ001 flagship: manager", "hz001-manager", DEMO_PASSWORD),
    DemoLogin("HZ001 flagship: clerk", "hz001-clerk1", DEMO_PASSWORD),
    DemoLogin("HZ001 flagship: guide", "hz001-guide1", DEMO_PASSWORD),
    DemoLogin("HZ009 Binjiang: clerk", "hz009-clerk1", DEMO_PASSWORD),
    DemoLogin("HZ004 mall (pickup): clerk", "hz004-clerk1", DEMO_PASSWORD),
)

# --- Catalog ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategorySpec:
    code: str
    name: str
    sort_order: int
    normal_stock: tuple[int, int]  # the range of a well-stocked shelf in a branch


CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec("formula", "奶粉", 10, (6, 30)),
    CategorySpec("diapers", "纸尿裤", 20, (6, 40)),
    CategorySpec("wipes", "湿巾", 30, (10, 80)),
    CategorySpec("bottles", "奶瓶奶嘴", 40, (6, 20)),
    CategorySpec("food", "辅食", 50, (6, 40)),
    CategorySpec("care", "洗护", 60, (6, 30)),
    CategorySpec("toys", "玩具", 70, (6, 12)),
)


@dataclass(frozen=True)
class SkuSpec:
    suffix: str
    spec: str
    price_fen: int


@dataclass(frozen=True)
class ProductSpec:
    code: str  # "P" and four digits; the digits are part of the barcodes
    category: str
    brand: str
    name: str
    description: str
    skus: tuple[SkuSpec, ...]


# The 5-digit company part of each brand's (fictional) barcodes, after the "69" of China.
BRAND_BARCODE_PREFIX = {
    "飞鹤": "10361",
    "君乐宝": "13287",
    "爱他美": "28815",
    "美素佳儿": "31456",
    "惠氏启赋": "35102",
    "帮宝适": "40359",
    "花王": "42210",
    "好奇": "43876",
    "子初": "50412",
    "全棉时代": "51733",
    "贝亲": "52901",
    "可么多么": "55120",
    "亨氏": "60218",
    "嘉宝": "61544",
    "小皮": "62017",
    "英氏": "63392",
    "强生": "70145",
    "艾惟诺": "71268",
    "红色小象": "72803",
    "启初": "73519",
    "费雪": "80356",
    "澳贝": "81627",
}


def _stages(weight: str, prices: tuple[int, int, int]) -> tuple[SkuSpec, ...]:
    months = ("0–6月龄", "6–12月龄", "12–36月龄")
    return tuple(
        SkuSpec(str(stage), f"{stage}段 {months[stage - 1]} {weight}", price)
        for stage, price in enumerate(prices, start=1)
    )


_DIAPER_SIZES = {"NB": "5kg以下", "S": "4–8kg", "M": "6–11kg", "L": "9–14kg", "XL": "12–17kg"}


def _diaper_sizes(pieces: dict[str, int], price_fen: dict[str, int]) -> tuple[SkuSpec, ...]:
    return tuple(
        SkuSpec(size, f"{size}码 {count}片（{_DIAPER_SIZES[size]}）", price_fen[size]) for size, count in pieces.items()
    )


PRODUCTS: tuple[ProductSpec, ...] = (
    # 奶粉: one product per range, one SKU per stage; cans ¥200–450.
    ProductSpec(
        "P1001",
        "formula",
        "飞鹤",
        "飞鹤星飞帆婴幼儿配方奶粉",
        "国产高端婴幼儿配方奶粉，新鲜生牛乳一次成粉。添加OPO结构脂与乳铁蛋白，按月龄分段喂养。",
        _stages("800g", (32800, 31800, 29800)),
    ),
    ProductSpec(
        "P1002",
        "formula",
        "君乐宝",
        "君乐宝乐铂婴幼儿配方奶粉",
        "自有牧场奶源，从牧场到奶粉全程可追溯。按宝宝月龄分为1、2、3段。",
        _stages("800g", (23800, 22800, 20800)),
    ),
    ProductSpec(
        "P1003",
        "formula",
        "爱他美",
        "爱他美卓萃婴幼儿配方奶粉",
        "原装进口婴幼儿配方奶粉，含天然乳脂与益生元组合。请按宝宝月龄选择对应段数。",
        _stages("900g", (42800, 41800, 39800)),
    ),
    ProductSpec(
        "P1004",
        "formula",
        "美素佳儿",
        "皇家美素佳儿婴幼儿配方奶粉",
        "荷兰原装进口，自有牧场新鲜奶源，一次成型工艺。罐装带量勺，冲调方便。",
        _stages("800g", (33800, 32800, 30800)),
    ),
    ProductSpec(
        "P1005",
        "formula",
        "惠氏启赋",
        "惠氏启赋蓝钻婴幼儿配方奶粉",
        "爱尔兰原装进口，含母乳低聚糖HMO与OPN蛋白等营养成分。按月龄分段喂养。",
        _stages("810g", (44800, 43800, 39800)),
    ),
    # 纸尿裤: one SKU per size; packs ¥90–190.
    ProductSpec(
        "P2001",
        "diapers",
        "帮宝适",
        "帮宝适一级帮纸尿裤",
        "日本进口高端纸尿裤，丝般柔软表层，轻薄透气。夜间长效干爽，宝宝睡得更安稳。",
        _diaper_sizes(
            {"NB": 84, "S": 76, "M": 62, "L": 52, "XL": 44},
            {"NB": 18900, "S": 18900, "M": 17900, "L": 17900, "XL": 17900},
        ),
    ),
    ProductSpec(
        "P2002",
        "diapers",
        "花王",
        "花王妙而舒纸尿裤",
        "日本花王经典纸尿裤，透气性好，腰部柔软有弹性。适合日常使用。",
        _diaper_sizes(
            {"NB": 90, "S": 82, "M": 64, "L": 54, "XL": 44},
            {"NB": 11900, "S": 11900, "M": 10900, "L": 10900, "XL": 9900},
        ),
    ),
    ProductSpec(
        "P2003",
        "diapers",
        "好奇",
        "好奇心钻装纸尿裤",
        "好奇高端系列，立体剪裁贴合宝宝身形。瞬吸表层，不易回渗。",
        _diaper_sizes(
            {"S": 62, "M": 50, "L": 40, "XL": 36},
            {"S": 14900, "M": 14900, "L": 14900, "XL": 15900},
        ),
    ),
    # 湿巾: three-pack bundles, ¥20–40.
    ProductSpec(
        "P3001",
        "wipes",
        "好奇",
        "好奇纯水婴儿湿巾",
        "纯水配方，不含酒精和香精。适合宝宝手口及小屁屁清洁。",
        (SkuSpec("3P", "80抽×3包", 3990),),
    ),
    ProductSpec(
        "P3002",
        "wipes",
        "子初",
        "子初婴儿手口湿巾",
        "加厚无纺布，湿润度适中，专为宝宝手口清洁设计。独立密封盖，外出方便携带。",
        (SkuSpec("3P", "80抽×3包", 2990),),
    ),
    ProductSpec(
        "P3003",
        "wipes",
        "全棉时代",
        "全棉时代纯棉婴儿湿巾",
        "纯棉水刺无纺布，柔软亲肤。新生儿可用。",
        (SkuSpec("3P", "60抽×3包", 3590),),
    ),
    ProductSpec(
        "P3004",
        "wipes",
        "贝亲",
        "贝亲婴儿柔湿巾",
        "添加芦荟精华，温和不刺激。适合宝宝日常清洁。",
        (SkuSpec("3P", "80抽×3包", 2690),),
    ),
    # 奶瓶奶嘴.
    ProductSpec(
        "P4001",
        "bottles",
        "贝亲",
        "贝亲宽口径玻璃奶瓶",
        "耐热玻璃瓶身，宽口径便于冲调和清洗。附自然实感奶嘴。",
        (SkuSpec("160", "160ml 附S码奶嘴", 9900), SkuSpec("240", "240ml 附M码奶嘴", 11900)),
    ),
    ProductSpec(
        "P4002",
        "bottles",
        "贝亲",
        "贝亲自然实感宽口径硅胶奶嘴",
        "柔软有弹性的硅胶奶嘴，按月龄选择尺码。建议每2–3个月更换一次。",
        (
            SkuSpec("S", "S码 1个月以上 2只装", 5900),
            SkuSpec("M", "M码 3个月以上 2只装", 5900),
            SkuSpec("L", "L码 6个月以上 2只装", 5900),
        ),
    ),
    ProductSpec(
        "P4003",
        "bottles",
        "可么多么",
        "可么多么硅胶奶瓶",
        "全硅胶瓶身，柔软易握，宽口径防胀气设计。适合从母乳过渡到奶瓶的宝宝。",
        (SkuSpec("250", "250ml", 18900),),
    ),
    # 辅食.
    ProductSpec(
        "P5001",
        "food",
        "亨氏",
        "亨氏超金健儿优婴儿营养米粉",
        "宝宝第一口辅食，强化铁、锌和钙，细腻易冲调。适合6月龄以上宝宝。",
        (SkuSpec("IRON", "原味高铁 400g", 4990), SkuSpec("CARROT", "胡萝卜 400g", 4990)),
    ),
    ProductSpec(
        "P5002",
        "food",
        "嘉宝",
        "嘉宝婴儿米粉",
        "单一谷物配方，添加铁和维生素。适合初添辅食的宝宝。",
        (SkuSpec("1", "1段 225g", 4500),),
    ),
    ProductSpec(
        "P5003",
        "food",
        "小皮",
        "小皮有机果泥",
        "欧洲有机水果制成，不额外添加糖和盐。开袋即食，适合6月龄以上宝宝。",
        (SkuSpec("AB", "苹果香蕉 100g", 1590), SkuSpec("PA", "西梅苹果 100g", 1690)),
    ),
    ProductSpec(
        "P5004",
        "food",
        "英氏",
        "英氏婴幼儿营养面条",
        "不添加食盐，细软易煮。适合8月龄以上宝宝。",
        (SkuSpec("200", "原味 200g", 2580),),
    ),
    # 洗护.
    ProductSpec(
        "P6001",
        "care",
        "强生",
        "强生婴儿牛奶沐浴露",
        "含牛奶精华，温和无泪配方。洗后肌肤柔润。",
        (SkuSpec("300", "300ml", 3590),),
    ),
    ProductSpec(
        "P6002",
        "care",
        "艾惟诺",
        "艾惟诺婴儿每日倍护润肤乳",
        "含天然燕麦精华，全天保湿滋润。温和配方，适合宝宝日常护理。",
        (SkuSpec("227", "227g", 12900),),
    ),
    ProductSpec(
        "P6003",
        "care",
        "红色小象",
        "红色小象婴儿洗发沐浴二合一",
        "洗发沐浴一瓶搞定，无泪配方。温和清洁宝宝头发与肌肤。",
        (SkuSpec("530", "530ml", 7900),),
    ),
    ProductSpec(
        "P6004",
        "care",
        "启初",
        "启初婴儿多效倍护霜",
        "保湿滋润，秋冬呵护宝宝娇嫩脸颊。质地轻薄易推开。",
        (SkuSpec("50", "50g", 6900),),
    ),
    ProductSpec(
        "P6005",
        "care",
        "贝亲",
        "贝亲桃叶精华婴儿爽身露",
        "含桃叶精华，夏季洗澡后使用，清爽舒适。液体质地，不飞粉。",
        (SkuSpec("200", "200ml", 5900),),
    ),
    # 玩具.
    ProductSpec(
        "P7001",
        "toys",
        "费雪",
        "费雪声光安抚海马",
        "轻按肚子发出柔和灯光和摇篮曲，陪伴宝宝入睡。可机洗布面。",
        (SkuSpec("BLUE", "蓝色", 15900),),
    ),
    ProductSpec(
        "P7002",
        "toys",
        "澳贝",
        "澳贝婴儿手摇铃牙胶套装",
        "色彩鲜艳的手摇铃与牙胶组合，锻炼宝宝抓握和听觉。",
        (SkuSpec("SET", "6件套", 6900),),
    ),
)


def ean13(first_twelve: str) -> str:
    """The 13-digit EAN: the 12 digits given and their check digit (weights 1, 3, 1, 3, … from the left)."""
    if len(first_twelve) != 12 or not first_twelve.isdigit():
        raise ValueError(f"an EAN-13 needs 12 digits before its check digit, not {first_twelve!r}")
    total = sum(int(digit) * (3 if index % 2 else 1) for index, digit in enumerate(first_twelve))
    return first_twelve + str(-total % 10)


def sku_code(product: ProductSpec, sku: SkuSpec) -> str:
    return f"{product.code}-{sku.suffix}"


def sku_barcode(product: ProductSpec, index: int) -> str:
    """69 (China), the brand's company number, the product's four digits and the SKU's place in it."""
    return ean13(f"69{BRAND_BARCODE_PREFIX[product.brand]}{product.code[1:]}{index}")


# --- Opening stock ------------------------------------------------------------------------

LOW_STOCK_THRESHOLD: int = Stock._meta.get_field("low_stock_threshold").default


@dataclass(frozen=True)
class OpeningStock:
    received: int
    sold_out: bool = False  # a count found none left: the row shows 0 on hand


def opening_stock(store: StoreSpec, category: CategorySpec, code: str) -> OpeningStock | None:
    """What a store starts with of one SKU; None when it does not carry it.

    Most rows are well stocked; about one in seven is low (at or under the
    threshold), a few are sold out and a few SKUs are not carried, so the
    low-stock screens have something to show. The flagship carries everything,
    in double quantities.
    """
    rng = random.Random(f"{SEED}:{store.code}:{code}")  # noqa: S311 - demo data, not secrets
    flagship = store.kind == Store.Kind.HQ
    draw = rng.random()
    if draw < 0.04 and not flagship:
        return None
    if draw < 0.07:
        return OpeningStock(received=rng.randint(1, 3), sold_out=True)
    if draw < 0.22:
        return OpeningStock(received=rng.randint(1, LOW_STOCK_THRESHOLD))
    low, high = category.normal_stock
    quantity = rng.randint(max(low, LOW_STOCK_THRESHOLD + 1), high)
    return OpeningStock(received=quantity * 2 if flagship else quantity)


# --- Loading ------------------------------------------------------------------------------


class _DemoPassword:
    """The demo password hashed once per load.

    Hashing it for each of ~60 users with Django's default PBKDF2 would take half a
    minute on every fresh `make run`; the users share one (public) password anyway.
    """

    def __init__(self) -> None:
        self._hash = ""

    @property
    def hash(self) -> str:
        if not self._hash:
            self._hash = make_password(DEMO_PASSWORD)
        return self._hash


@dataclass(frozen=True)
class DemoSummary:
    before: dict[str, int]
    after: dict[str, int]

    @property
    def created(self) -> dict[str, int]:
        return {name: self.after[name] - self.before[name] for name in self.after}

    @property
    def changed_anything(self) -> bool:
        return any(self.created.values())

    def lines(self) -> list[str]:
        width = max(len(name) for name in self.after)
        rows = [f"  {name:<{width}}  {self.after[name]:>5}  (+{self.created[name]})" for name in self.after]
        verdict = "loaded" if self.changed_anything else "already loaded, nothing new"
        return [f"Demo chain {CHAIN_NAME} ({CITY}): {verdict}.", *rows]


def _counts() -> dict[str, int]:
    User = get_user_model()
    counted: dict[str, models.QuerySet] = {
        "stores": Store.objects.all(),
        "opening hours": OpeningHours.objects.all(),
        "staff": Staff.objects.all(),
        "users": User.objects.all(),
        "categories": Category.objects.all(),
        "products": Product.objects.all(),
        "SKUs": SKU.objects.all(),
        "stock rows": Stock.objects.all(),
        "stock moves": StockMove.objects.all(),
        "orders": Order.objects.all(),
        "members": Member.objects.all(),
        "purchases": Purchase.objects.all(),
    }
    return {name: queryset.count() for name, queryset in counted.items()}


def _ensure_hq_user(password: _DemoPassword) -> AbstractBaseUser:
    User = get_user_model()
    user = User.objects.filter(username=HQ_USERNAME).first()
    if user is None:
        user = User(username=HQ_USERNAME, email=f"{HQ_USERNAME}@{EMAIL_DOMAIN}", is_staff=True, is_superuser=True)
        user.password = password.hash
        user.save()
    return user


def _ensure_stores() -> dict[str, Store]:
    existing = {store.code: store for store in Store.objects.filter(code__in=[spec.code for spec in STORES])}
    with_hours = set(OpeningHours.objects.filter(store__in=existing.values()).values_list("store_id", flat=True))
    stores = {}
    for spec in STORES:
        store = existing.get(spec.code)
        if store is None:
            store = create_store(
                code=spec.code,
                name=spec.name,
                kind=spec.kind,
                operation=spec.operation,
                address=spec.address,
                city=CITY,
                district=spec.district,
                phone=spec.phone,
                email=spec.email,
                latitude=Decimal(spec.latitude),
                longitude=Decimal(spec.longitude),
                delivery_radius_km=Decimal(spec.delivery_radius_km),
                offers_pickup=spec.offers_pickup,
                delivers=spec.delivers,
            )
        # A store that has hours keeps them (HQ may have changed them); one with none gets the demo's.
        if store.pk not in with_hours:
            set_opening_hours(store=store, weekly=OPENING_HOURS[spec.hours])
        stores[spec.code] = store
    return stores


def _ensure_staff(stores: dict[str, Store], password: _DemoPassword) -> None:
    User = get_user_model()
    taken = set(User.objects.filter(username__in=[spec.username for spec in STAFF]).values_list("username", flat=True))
    for spec in STAFF:
        if spec.username in taken:
            continue
        staff = create_staff(
            store=stores[spec.store_code],
            username=spec.username,
            password=None,
            display_name=spec.display_name,
            role=spec.role,
            staff_code=spec.staff_code,
            phone=spec.phone,
            email=spec.email,
        )
        staff.user.password = password.hash
        staff.user.save(update_fields=["password"])


def _create_validated(model: type[models.Model], **fields: object) -> models.Model:
    obj = model(**fields)
    obj.full_clean()
    obj.save()
    return obj


def _ensure_catalog() -> list[tuple[SKU, CategorySpec]]:
    """Categories, products and SKUs keyed on their codes (no catalog service exists yet: plain ORM)."""
    categories = {cat.code: cat for cat in Category.objects.filter(code__in=[spec.code for spec in CATEGORIES])}
    for spec in CATEGORIES:
        if spec.code not in categories:
            categories[spec.code] = _create_validated(
                Category, code=spec.code, name=spec.name, sort_order=spec.sort_order
            )
    products = {p.code: p for p in Product.objects.filter(code__in=[spec.code for spec in PRODUCTS])}
    codes = [sku_code(spec, sku_spec) for spec in PRODUCTS for sku_spec in spec.skus]
    skus = {sku.code: sku for sku in SKU.objects.filter(code__in=codes)}
    category_specs = {spec.code: spec for spec in CATEGORIES}
    result = []
    for spec in PRODUCTS:
        product = products.get(spec.code)
        if product is None:
            product = _create_validated(
                Product,
                code=spec.code,
                name=spec.name,
                category=categories[spec.category],
                brand=spec.brand,
                description=spec.description,
            )
        for index, sku_spec in enumerate(spec.skus, start=1):
            code = sku_code(spec, sku_spec)
            sku = skus.get(code)
            if sku is None:
                sku = _create_validated(
                    SKU,
                    product=product,
                    code=code,
                    barcode=sku_barcode(spec, index),
                    spec=sku_spec.spec,
                    price_fen=sku_spec.price_fen,
                )
            result.append((sku, category_specs[spec.category]))
    return result


def _ensure_opening_stock(
    stores: dict[str, Store], catalog: list[tuple[SKU, CategorySpec]], *, actor: AbstractBaseUser
) -> None:
    held = set(
        Stock.objects.filter(store__in=stores.values(), sku__in=[sku for sku, _ in catalog]).values_list(
            "store_id", "sku_id"
        )
    )
    by_code = sorted(catalog, key=lambda pair: pair[0].code)
    for spec in STORES:
        store = stores[spec.code]
        for sku, category in by_code:
            if (store.pk, sku.pk) in held:
                continue  # moves keep summing to the row: never top up what a store already holds
            plan = opening_stock(spec, category, sku.code)
            if plan is None:
                continue
            receive_stock(
                store=store,
                sku=sku,
                quantity=plan.received,
                actor=actor,
                reason=OPENING_STOCK_REASON,
                reference=STOCK_REFERENCE,
            )
            if plan.sold_out:
                adjust_stock_count(store=store, sku=sku, counted=0, actor=actor, reason=SOLD_OUT_COUNT_REASON)


@transaction.atomic
def load_demo() -> DemoSummary:
    """Load the demo chain, creating only what is missing; all of it or nothing."""
    before = _counts()
    password = _DemoPassword()
    hq_user = _ensure_hq_user(password)
    stores = _ensure_stores()
    _ensure_staff(stores, password)
    catalog = _ensure_catalog()
    _ensure_opening_stock(stores, catalog, actor=hq_user)
    _ensure_demo_orders(stores, catalog)
    _ensure_demo_members(stores, catalog)
    _ensure_demo_store_member(stores, catalog)
    return DemoSummary(before=before, after=_counts())


DEMO_SHOPPER_PHONE = "13800000001"
# The member whose share link brought the demo shopper: her promoter center shows a team of one.
DEMO_PROMOTER_PHONE = "13800000301"
# A delivery address in 拱墅区, inside the flagship's radius (GCJ-02).
DEMO_DELIVERY = DeliveryAddress(
    recipient_name="陈女士",
    recipient_phone="13800000001",
    address="杭州市拱墅区体育场路 178 号 2 单元 301",
    latitude=30.2770,
    longitude=120.1590,
)


def _ensure_demo_orders(stores: dict[str, Store], catalog: list[tuple[SKU, CategorySpec]]) -> None:
    """Two paid orders waiting in the flagship's console: one for pickup, one for delivery, by a
    shopper whom a promoter's link and the flagship's guide brought in.

    Made once, through the same services as a shopper's checkout and payment; they then
    live their normal life (the hour to accept runs from the moment they are loaded).
    """
    member = Member.objects.filter(phone=normalize_cn_mobile(DEMO_SHOPPER_PHONE)).first()
    if member is not None:
        return
    flagship = stores["HZ001"]
    # She registered through a promoter's share link and the flagship guide's QR code, so the
    # orders below earn both commission (pending until collected and past the return window).
    promoter = sign_in_for_development(phone=DEMO_PROMOTER_PHONE)
    Member.objects.filter(pk=promoter.pk).update(nickname="林女士")
    guide = Staff.objects.get(user__username="hz001-guide1")
    member = sign_in_for_development(
        phone=DEMO_SHOPPER_PHONE, referral=Referral(referrer_id=promoter.pk, guide_id=guide.pk)
    )
    Member.objects.filter(pk=member.pk).update(nickname="演示顾客")
    set_home_store_once(member=member, store=flagship, source=Member.HomeStoreSource.STORE_QR)
    held = set(Stock.objects.filter(store=flagship, on_hand__gte=3).values_list("sku_id", flat=True))
    skus = [sku for sku, _category in catalog if sku.pk in held]
    for number, (fulfilment, basket) in enumerate((("pickup", skus[:2]), ("delivery", skus[2:3])), start=1):
        for sku in basket:
            set_cart_quantity(member=member, sku=sku, quantity=1)
        if fulfilment == "pickup":
            order = place_order(member=member, fulfilment=fulfilment, pickup_store=flagship)
        else:
            order = place_order(member=member, fulfilment=fulfilment, delivery=DEMO_DELIVERY)
        confirm_payment(
            out_trade_no=order.number,
            transaction_id=f"demo-{number}-{order.number}",
            amount_fen=order.total_fen,
            paid_at=order.created_at,
            is_development=True,
        )
        dispatch_order(order_id=order.pk)


# Members of the flagship for its manager's campaigns: (nickname, agrees to marketing messages,
# days since each till purchase). Recent buyers, lapsed ones, and one who never bought.
DEMO_MEMBERS: tuple[tuple[str, bool, tuple[int, ...]], ...] = (
    ("王女士", True, (3, 40, 95)),
    ("李先生", True, (12,)),
    ("张妈妈", True, (65, 120)),
    ("赵女士", False, (8, 30)),
    ("刘先生", True, (150,)),
    ("陈妈妈", True, ()),
    ("杨女士", False, (70,)),
    ("周先生", True, (1, 15, 33, 50, 80)),
)


# A member the chain's CRM opened at the flagship's till, with points, who has never used the
# mall: proving this number in the mall's "Add mobile" takes her membership over.
DEMO_STORE_MEMBER_PHONE = "13800000401"


def _ensure_demo_store_member(stores: dict[str, Store], catalog: list[tuple[SKU, CategorySpec]]) -> None:
    if Member.objects.filter(phone=normalize_cn_mobile(DEMO_STORE_MEMBER_PHONE)).exists():
        return
    member = upsert_member_from_crm(item=CrmMember(phone=DEMO_STORE_MEMBER_PHONE, nickname="吴女士")).member
    flagship = stores["HZ001"]
    set_home_store_once(member=member, store=flagship, source=Member.HomeStoreSource.STORE_QR)
    sku = catalog[0][0]
    bought_at = timezone.now() - timedelta(days=20)
    reference = "DEMO-POS-CRM-01"
    record_purchase(
        member=member,
        store=flagship,
        channel=Purchase.Channel.POS,
        reference=reference,
        amount_fen=sku.price_fen * 2,
        purchased_at=bought_at,
        lines=[(sku.product_id, 2, sku.price_fen * 2)],
    )
    earn_points(member=member, reference=reference, lines=[(sku.product.category_id, sku.price_fen * 2)], at=bought_at)


def _ensure_demo_members(stores: dict[str, Store], catalog: list[tuple[SKU, CategorySpec]]) -> None:
    """A few members of the flagship with till purchases at different times, most of whom agreed to
    marketing messages, so that its manager has someone to send a campaign to. Keyed on phone."""
    flagship = stores["HZ001"]
    now = timezone.now()
    for number, (nickname, consent, days_ago) in enumerate(DEMO_MEMBERS, start=1):
        phone = f"138000002{number:02d}"
        if Member.objects.filter(phone=normalize_cn_mobile(phone)).exists():
            continue
        member = bind_phone(member=Member.objects.create(nickname=nickname, openid=f"demo-{phone}"), phone=phone)
        set_home_store_once(member=member, store=flagship, source=Member.HomeStoreSource.STORE_QR)
        if consent:
            set_marketing_consent(member=member, consent=True)
        for visit, ago in enumerate(days_ago, start=1):
            sku = catalog[(number * 7 + visit * 3) % len(catalog)][0]
            record_purchase(
                member=member,
                store=flagship,
                channel=Purchase.Channel.POS,
                reference=f"DEMO-POS-{number:02d}{visit:02d}",
                amount_fen=sku.price_fen * 2,
                purchased_at=now - timedelta(days=ago),
                lines=[(sku.product_id, 2, sku.price_fen * 2)],
            )
