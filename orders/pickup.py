"""The pickup QR code: a signed token naming the order, so a forged or altered code is refused."""

from django.core import signing

_SALT = "orders.pickup"


def pickup_token(order_number: str) -> str:
    return signing.dumps({"o": order_number}, salt=_SALT, compress=True)


def read_pickup_token(token: str) -> str | None:
    """The order number in a scanned code, or None if it was not issued by us."""
    try:
        return signing.loads(token, salt=_SALT)["o"]
    except (signing.BadSignature, KeyError, TypeError):
        return None
