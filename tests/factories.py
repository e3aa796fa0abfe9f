"""factory_boy factories of every app, in one place."""

from datetime import time
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from inventory.models import SKU, Category, Product, Stock
from stores.models import OpeningHours, Staff, Store


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pass-word-123")


class HQUserFactory(UserFactory):
    is_staff = True
    is_superuser = True


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    code = factory.Sequence(lambda n: f"S{n:04d}")
    name = factory.Sequence(lambda n: f"门店{n}")
    address = "杭州市西湖区文三路1号"
    city = "杭州"
    district = "西湖区"
    latitude = Decimal("30.274000")
    longitude = Decimal("120.155000")
    delivery_radius_km = Decimal("3.00")


class OpeningHoursFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OpeningHours

    store = factory.SubFactory(StoreFactory)
    weekday = 0
    opens_at = time(9, 0)
    closes_at = time(21, 0)


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Staff

    user = factory.SubFactory(UserFactory)
    store = factory.SubFactory(StoreFactory)
    role = Staff.Role.CLERK
    staff_code = factory.Sequence(lambda n: f"G{n:05d}")
    display_name = factory.Sequence(lambda n: f"店员{n}")


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    code = factory.Sequence(lambda n: f"cat{n}")
    name = factory.Sequence(lambda n: f"类目{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    code = factory.Sequence(lambda n: f"P{n:05d}")
    name = factory.Sequence(lambda n: f"商品{n}")
    category = factory.SubFactory(CategoryFactory)


class SkuFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SKU

    product = factory.SubFactory(ProductFactory)
    code = factory.Sequence(lambda n: f"SKU{n:06d}")
    barcode = factory.Sequence(lambda n: f"69{n:011d}")
    spec = "900g"
    price_fen = 25800


class StockFactory(factory.django.DjangoModelFactory):
    """A bare stock row. Tests that need units use inventory.services.receive_stock, so moves match."""

    class Meta:
        model = Stock

    store = factory.SubFactory(StoreFactory)
    sku = factory.SubFactory(SkuFactory)


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "members.Member"

    openid = factory.Sequence(lambda n: f"openid-{n:06d}")
    nickname = factory.Sequence(lambda n: f"会员{n}")
    phone = factory.Sequence(lambda n: f"+86139{n:08d}")


class FollowUpFactory(factory.django.DjangoModelFactory):
    """An open call due today at the member's store (dates and status are set by the test)."""

    class Meta:
        model = "members.FollowUp"

    member = factory.SubFactory(MemberFactory)
    store = factory.SubFactory(StoreFactory)
    product = factory.SubFactory(ProductFactory)
    kind = "replenish"
    due_on = factory.LazyFunction(timezone.localdate)
    source_reference = factory.Sequence(lambda n: f"POS-{n:06d}")


class ApiClientFactory(factory.django.DjangoModelFactory):
    """An ERP/POS client with no scope and no store restriction; keys come from integrations.services."""

    class Meta:
        model = "integrations.ApiClient"

    name = factory.Sequence(lambda n: f"POS {n}")
    scopes = factory.LazyFunction(list)
    rate_limit_per_minute = 1000


class PurchaseFactory(factory.django.DjangoModelFactory):
    """A purchase as members records it; tests of tiers and segments use it with `purchased_at` set."""

    class Meta:
        model = "members.Purchase"

    member = factory.SubFactory(MemberFactory)
    store = factory.SubFactory(StoreFactory)
    channel = "pos"
    reference = factory.Sequence(lambda n: f"POS-{n:06d}")
    amount_fen = 10000
    purchased_at = factory.LazyFunction(timezone.now)


class PurchaseLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "members.PurchaseLine"

    purchase = factory.SubFactory(PurchaseFactory)
    product = factory.SubFactory(ProductFactory)
    quantity = 1
    amount_fen = 10000


class SegmentFactory(factory.django.DjangoModelFactory):
    """HQ's segment of every member, unless filters are given."""

    class Meta:
        model = "members.Segment"

    name = factory.Sequence(lambda n: f"分群{n}")


class CampaignFactory(factory.django.DjangoModelFactory):
    """A draft SMS campaign to a segment (HQ's when the segment is)."""

    class Meta:
        model = "members.Campaign"

    name = factory.Sequence(lambda n: f"活动{n}")
    segment = factory.SubFactory(SegmentFactory)
    store = factory.LazyAttribute(lambda campaign: campaign.segment.store)
    channel = "sms"
    body = "本周末奶粉满300减30，到店出示会员卡即可。"
