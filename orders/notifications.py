"""Telling a store about a new order, and a shopper about their order: e-mail and WeChat messages.

Called from Celery tasks after commit. A store is always told in its console (the live list);
these are the messages that reach people away from it. A message that cannot be sent raises,
so the task retries; a channel that is not configured is skipped.
"""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from integrations.vendors.wechat import official_account, template_id
from o2o.money import format_yuan
from orders.models import Assignment, Order

logger = logging.getLogger(__name__)


def notify_store_of_assignment(*, assignment_id: int) -> list[str]:
    """E-mail the store and send its clerks a WeChat message about an order offered to it.

    Only while the offer is still open. Returns the channels used, for the log and tests.
    """
    assignment = Assignment.objects.select_related("order", "store").filter(pk=assignment_id).first()
    if assignment is None or assignment.status != Assignment.Status.OFFERED:
        return []
    order, store = assignment.order, assignment.store
    url = settings.O2O_PUBLIC_URL + reverse("console-orders:detail", args=[order.number])
    deadline = f"{timezone.localtime(assignment.deadline):%H:%M}"
    used = []
    with translation.override(settings.LANGUAGE_CODE):
        if store.email:
            send_mail(
                subject=_("New order %(number)s: accept before %(deadline)s")
                % {"number": order.number, "deadline": deadline},
                message=_(
                    "%(kind)s order %(number)s, %(total)s, was assigned to %(store)s.\n"
                    "Accept or decline it before %(deadline)s in the store console:\n%(url)s"
                )
                % {
                    "kind": order.get_fulfilment_display(),
                    "number": order.number,
                    "total": format_yuan(order.total_fen),
                    "store": store.name,
                    "deadline": deadline,
                    "url": url,
                },
                from_email=None,
                recipient_list=[store.email],
            )
            used.append("email")
        account, template = official_account(), template_id("new_order")
        if account is not None and template:
            openids = list(
                store.staff.filter(is_active=True).exclude(wechat_openid="").values_list("wechat_openid", flat=True)
            )
            for openid in openids:
                account.send_template_message(
                    openid=openid,
                    template_id=template,
                    data={
                        "first": _("New order for %(store)s") % {"store": store.name},
                        "keyword1": order.number,
                        "keyword2": format_yuan(order.total_fen),
                        "keyword3": deadline,
                        "remark": _("Accept before %(deadline)s.") % {"deadline": deadline},
                    },
                    url=url,
                )
            if openids:
                used.append("wechat")
    return used


def notify_shopper(*, order_id: int) -> bool:
    """Send the shopper a WeChat message about their order's new state, when WeChat is configured."""
    order = Order.objects.select_related("member", "pickup_store").filter(pk=order_id).first()
    account, template = official_account(), template_id("order_status")
    if order is None or account is None or not template or not order.member.openid:
        return False
    url = settings.O2O_PUBLIC_URL + reverse("orders:detail", args=[order.number])
    with translation.override(settings.LANGUAGE_CODE):
        remark = {
            Order.Status.READY: _("Ready for pickup at %(store)s.")
            % {"store": order.pickup_store.name if order.pickup_store else ""},
            Order.Status.OUT_FOR_DELIVERY: _("Your order is on its way."),
            Order.Status.EXCEPTION: _("We are finding a store for your order; HQ will contact you."),
        }.get(order.status, order.get_status_display())
        account.send_template_message(
            openid=order.member.openid,
            template_id=template,
            data={"first": remark, "keyword1": order.number, "keyword2": order.get_status_display()},
            url=url,
        )
    return True
