"""A store's ERP reports the fulfilment steps it took (where the chain lets the ERP ship).

Each step goes through the same service a clerk's tap does (`orders.fulfilment`), with the store's
system as the actor: the same state rules, stock handed over, points earned, messages sent, and an
order event recorded as the ERP's (`OrderEvent.Actor.ERP`, labelled with the client's name).
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import TextChoices
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from integrations.models import ApiClient
from integrations.order_feed import client_orders
from o2o.errors import Conflict, NotFound, PermissionDenied
from orders import fulfilment
from orders.models import Order
from orders.services import note_on_order


class Step(TextChoices):
    PREPARING = "preparing", gettext_lazy("Being prepared (delivery)")
    OUT_FOR_DELIVERY = "out_for_delivery", gettext_lazy("Out for delivery")
    DELIVERED = "delivered", gettext_lazy("Delivered")
    READY = "ready", gettext_lazy("Ready for pickup")
    COMPLETED = "completed", gettext_lazy("Handed over at the counter (pickup)")


_SERVICES = {
    Step.PREPARING: fulfilment.start_preparing,
    Step.OUT_FOR_DELIVERY: fulfilment.send_out_for_delivery,
    Step.DELIVERED: fulfilment.confirm_delivery,
    Step.READY: fulfilment.mark_ready,
    Step.COMPLETED: fulfilment.hand_over,
}
# Refusals of the fulfilment services that mean "this move is not allowed from here".
_ILLEGAL = {"wrong_status", "wrong_fulfilment", "already_delivered", "already_collected", "illegal_transition"}


@dataclass(frozen=True)
class StepResult:
    order: Order
    changed: bool  # False: the order was already there, nothing was written


def report_fulfilment_step(*, client: ApiClient, number: str, status: str, note: str = "") -> StepResult:
    """Move an order the client's stores fulfil to `status`, as a clerk of its store would.

    Refused: a client the chain does not let ship (403 `fulfilment_not_allowed`); an order it may
    not see (404 `order_not_found`); a move the order's rules forbid (409 `illegal_transition`: not
    yet accepted by a store, or completing a delivery, which only the shopper or the timer does).
    Reporting the status the order already has changes nothing (idempotent).
    """
    if not client.may_fulfil_orders:
        raise PermissionDenied(
            _("This client may not report fulfilment: the chain has not let it ship orders."),
            code="fulfilment_not_allowed",
        )
    step = Step(status)
    note = (note or "").strip()[:200]
    with transaction.atomic():
        order = (
            client_orders(client)
            .select_for_update(of=("self",))
            .select_related("fulfilling_store")
            .filter(number=number)
            .first()
        )
        if order is None:
            raise NotFound(_("No such order."), code="order_not_found")
        if order.status == step:
            return StepResult(order=order, changed=False)
        if order.fulfilling_store is None:  # paid, not yet accepted by a store
            raise _illegal(order, step)
        actor = fulfilment.StoreActor.system(store=order.fulfilling_store, name=client.name)
        try:
            moved = _SERVICES[step](actor=actor, order=order.number)
        except Conflict as refusal:
            if refusal.code not in _ILLEGAL:
                raise  # e.g. waiting_for_transfer: allowed, but not yet
            raise _illegal(order, step) from None
        if note:
            note_on_order(order=moved, actor_type=actor.actor_type, actor_label=actor.label, reason=note)
        return StepResult(order=moved, changed=True)


def _illegal(order: Order, step: Step) -> Conflict:
    return Conflict(
        _("An order in status “{current}” cannot be reported “{status}”.").format(
            current=order.status, status=step.value
        ),
        code="illegal_transition",
        details={"status": [order.status], "requested": [step.value]},
    )
