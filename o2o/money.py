"""Money is integer fen (WeChat Pay's unit); yuan appear only at display."""

from decimal import ROUND_HALF_UP, Decimal


def fen_to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def format_yuan(fen: int) -> str:
    """ "¥1,234.50" for 123450 fen; negative amounts keep their sign before the symbol."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{fen_to_yuan(abs(fen)):,.2f}"


def yuan_to_fen(yuan: Decimal | str | int) -> int:
    """Exact conversion; more than two decimals is refused rather than silently rounded."""
    amount = Decimal(str(yuan))
    fen = amount * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"{yuan} has more than two decimals")
    return int(fen.to_integral_value(rounding=ROUND_HALF_UP))
