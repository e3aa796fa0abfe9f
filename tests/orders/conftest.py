from decimal import Decimal

import pytest

from inventory.services import receive_stock
from orders.services import place_order, set_cart_quantity
from tests.factories import MemberFactory, SkuFactory, StoreFactory


@pytest.fixture
def store():
    return StoreFactory(code="WS", name="文三路店", latitude=Decimal("30.280000"), longitude=Decimal("120.150000"))


@pytest.fixture
def formula(store):
    sku = SkuFactory(product__name="飞鹤星飞帆", spec="800g 3段", price_fen=25800)
    receive_stock(store=store, sku=sku, quantity=10)
    return sku


@pytest.fixture
def member():
    return MemberFactory()


@pytest.fixture
def cart(member, formula):
    set_cart_quantity(member=member, sku=formula, quantity=2)
    return member


@pytest.fixture
def development_payments(settings):
    """The demo's payment stand-in: WeChat Pay not configured, development payments allowed."""
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""


@pytest.fixture
def order(cart, store):
    """The cart ordered for pickup at the store, awaiting payment."""
    return place_order(member=cart, fulfilment="pickup", pickup_store=store)
