from decimal import Decimal

import pytest
from django.utils import timezone

from commissions.models import CommissionSettings
from commissions.selectors import forget_commission_settings
from inventory.services import receive_stock
from orders.dispatch import accept_assignment, dispatch_order
from orders.fulfilment import hand_over, mark_ready
from orders.models import Assignment, Order
from orders.services import confirm_payment, place_order, set_cart_quantity
from tests.factories import SkuFactory, StaffFactory, StoreFactory


@pytest.fixture
def rules(db):
    """HQ's rules for these tests: 5 % / 2 % / 1 % by level, the guide 3 %, a 20 % cap, depth 2."""

    def set_rules(**changes):
        values = {
            "depth": 2,
            "level_1_rate_bp": 500,
            "level_2_rate_bp": 200,
            "level_3_rate_bp": 100,
            "guide_rate_bp": 300,
            "guide_signup_reward_fen": 500,
            "order_cap_bp": 2000,
            "return_window_days": 7,
            "min_payout_fen": 1000,
            **changes,
        }
        CommissionSettings.objects.update_or_create(pk=1, defaults=values)
        forget_commission_settings()

    set_rules()
    return set_rules


@pytest.fixture
def store(db):
    return StoreFactory(code="WS", name="文三路店", latitude=Decimal("30.280000"), longitude=Decimal("120.150000"))


@pytest.fixture
def clerk(store):
    return StaffFactory(store=store)


@pytest.fixture
def formula(store):
    sku = SkuFactory(product__name="飞鹤星飞帆", spec="800g 3段", price_fen=19900)
    receive_stock(store=store, sku=sku, quantity=500)
    return sku


@pytest.fixture(autouse=True)
def _development_payments(settings):
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""


def buy_order(store, clerk, member, lines, *, points=0, complete=False) -> Order:
    """The member orders for pickup, pays (`complete=True`: and collects it at the store)."""
    for sku, quantity in lines.items():
        set_cart_quantity(member=member, sku=sku, quantity=quantity)
    order = place_order(member=member, fulfilment="pickup", pickup_store=store, points=points)
    confirm_payment(
        out_trade_no=order.number,
        transaction_id=f"wx-{order.number}",
        amount_fen=order.total_fen,
        paid_at=timezone.now(),
    )
    if complete:
        dispatch_order(order_id=order.pk)
        offer = Assignment.objects.get(order=order, status=Assignment.Status.OFFERED)
        accept_assignment(assignment_id=offer.pk, staff=clerk, user=clerk.user)
        mark_ready(staff=clerk, order=order.number)
        hand_over(staff=clerk, order=order.number)
    return Order.objects.get(pk=order.pk)


@pytest.fixture
def buy(store, clerk):
    def buy(member, lines, *, points=0, complete=False) -> Order:
        return buy_order(store, clerk, member, lines, points=points, complete=complete)

    return buy
