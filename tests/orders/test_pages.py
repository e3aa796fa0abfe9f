"""The mall's order pages: a member sees and acts on their own orders only."""

import pytest
from django.urls import reverse

from members.session import MEMBER_SESSION_KEY
from orders.models import Order
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def _signed_in(client, member):
    session = client.session
    session[MEMBER_SESSION_KEY] = member.pk
    session.save()
    return client


def test_a_member_sees_their_order_and_pays_it_with_the_development_payment(client, settings, order, cart):
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""
    _signed_in(client, cart)
    assert client.get(reverse("orders:detail", args=[order.number])).status_code == 200
    client.post(reverse("orders:dev-pay", args=[order.number]))
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    page = client.get(reverse("orders:detail", args=[order.number])).content.decode()
    assert "<svg" in page and order.pickup_code in page


def test_another_member_s_order_is_a_404_to_see_and_to_pay(client, settings, order):
    settings.O2O_DEVELOPMENT_PAYMENTS = True
    settings.WECHAT_PAY_MCH_ID = ""
    _signed_in(client, MemberFactory())
    assert client.get(reverse("orders:detail", args=[order.number])).status_code == 404
    assert client.post(reverse("orders:dev-pay", args=[order.number])).status_code == 404
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


def test_without_development_payments_there_is_no_development_pay(client, settings, order, cart):
    settings.DEBUG = False
    settings.O2O_DEVELOPMENT_PAYMENTS = False
    settings.WECHAT_PAY_MCH_ID = ""
    _signed_in(client, cart)
    assert client.get(reverse("orders:detail", args=[order.number])).status_code == 200
    response = client.post(reverse("orders:dev-pay", args=[order.number]))
    assert response.status_code == 404
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


def test_the_checkout_form_reports_a_missing_delivery_address_and_places_nothing(client, cart):
    _signed_in(client, cart)
    response = client.post(reverse("orders:checkout"), {"fulfilment": "delivery"})
    assert response.status_code == 400
    assert "Needed for delivery." in response.content.decode()
    assert not Order.objects.exists()


def test_checkout_for_pickup_places_the_order_and_opens_its_page(client, cart, store):
    _signed_in(client, cart)
    response = client.post(reverse("orders:checkout"), {"fulfilment": "pickup", "pickup_store": store.pk})
    order = Order.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("orders:detail", args=[order.number])
