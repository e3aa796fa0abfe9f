"""The arithmetic of commission, apart from the database: pure functions over integers (fen).

- What each line paid: the points discount is spread over the lines in proportion to their
  totals (floor), the last line taking the remainder, so the lines add up to exactly what the
  order paid for its items. Delivery fees never earn commission.
- What a beneficiary earns: floor(Σ line paid × rate ÷ 10,000), rates in basis points
  (1 bp = 0.01 %), per the line's category where HQ overrides it. One floor per beneficiary
  and order, so every amount is whole fen and rounds in the chain's favour by under 1 fen.
- The cap: the order's total commission is at most floor(paid × cap ÷ 10,000). Beneficiaries
  are served nearest first (the guide, then level 1, 2, 3); whoever comes after the cap is
  reached gets what is left, possibly nothing.
- A refund takes back, after refunds totalling R of the P paid for the items, exactly
  floor(earned × R ÷ P) of each earning, so partial refunds add up to the whole and never more.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

BASIS = 10_000
MAX_DEPTH = 3  # levels of member commission, at most; the database says so too
GUIDE_LEVEL = 0


@dataclass(frozen=True)
class Line:
    category_id: int | None
    total_fen: int


@dataclass(frozen=True)
class Share:
    level: int  # 0: the guide; 1..3: the referrer chain
    base_fen: int  # what the rates applied to
    amount_fen: int  # after the cap


def lines_paid(lines: Sequence[Line], items_paid_fen: int) -> list[int]:
    """What each line paid in money: its share of the items' paid amount, exact to the fen."""
    items_fen = sum(line.total_fen for line in lines)
    if not lines or items_fen <= 0 or items_paid_fen <= 0:
        return [0] * len(lines)
    paid = min(items_paid_fen, items_fen)
    shares = [line.total_fen * paid // items_fen for line in lines]
    shares[-1] += paid - sum(shares)
    return shares


def order_shares(
    *,
    lines: Sequence[Line],
    items_paid_fen: int,
    levels: Sequence[int],
    rate_bp: Callable[[int, int | None], int],
    cap_bp: int,
) -> list[Share]:
    """Each level's commission on one order, nearest first, within the order's cap.

    `levels` lists who is there to earn (0 for a guide, then 1..depth up the referrer chain, in
    that order); `rate_bp(level, category_id)` gives HQ's rate.
    """
    paid = lines_paid(lines, items_paid_fen)
    room = max(items_paid_fen, 0) * max(cap_bp, 0) // BASIS
    shares = []
    for level in levels:
        earned = sum(fen * rate_bp(level, line.category_id) for fen, line in zip(paid, lines, strict=True)) // BASIS
        amount = min(earned, room)
        room -= amount
        shares.append(Share(level=level, base_fen=sum(paid), amount_fen=amount))
    return shares


def reversal_target(*, earned_fen: int, refunded_fen: int, paid_fen: int) -> int:
    """How much of an earning a refund takes back in all: floor(earned × refunded ÷ paid)."""
    if paid_fen <= 0 or earned_fen <= 0:
        return 0
    return earned_fen * min(max(refunded_fen, 0), paid_fen) // paid_fen
