"""What commissions does when orders and members tell of events (see `o2o.events`).

In the publishing transaction (`when="transaction"`): the ledger entries commit or roll back with
the payment, the refund or the registration that caused them, so none is lost between the two
and none is made for a change that did not happen. Repeated events add nothing (unique entries).
"""

from o2o.events import subscribe


def _order_paid(*, order_id: int, **_payload) -> None:
    from commissions.services import record_order_commissions

    record_order_commissions(order_id=order_id)


def _order_refunded(*, order_id: int, **_payload) -> None:
    from commissions.services import reverse_order_commissions

    reverse_order_commissions(order_id=order_id)


def _member_registered(*, member_id: int, guide_id: int | None = None, **_payload) -> None:
    from commissions.services import reward_guide_signup

    if guide_id:
        reward_guide_signup(member_id=member_id)


def _member_claimed(*, retired_id: int, bindings_carried: bool, **_payload) -> None:
    from commissions.services import on_member_claimed

    on_member_claimed(retired_id=retired_id, bindings_carried=bindings_carried)


def connect() -> None:
    subscribe("order.paid", _order_paid, when="transaction")
    subscribe("order.refunded", _order_refunded, when="transaction")
    subscribe("member.registered", _member_registered, when="transaction")
    subscribe("member.claimed", _member_claimed, when="transaction")
