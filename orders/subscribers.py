"""What orders does when the apps to its left tell of events (see `o2o.events`)."""

from o2o.events import subscribe


def _member_claimed(*, member_id: int, retired_id: int, **_payload) -> None:
    from orders.services import on_member_claimed

    on_member_claimed(member_id=member_id, retired_id=retired_id)


def connect() -> None:
    # In the claiming transaction: a refusal here undoes the claim.
    subscribe("member.claimed", _member_claimed, when="transaction")
