"""Exact money: WeGive counts integer cents, Virtuous reads two-decimal dollar strings.

Invariant: no float ever carries an amount. Cents go out as ``"12.34"`` strings (what the
Virtuous docs recommend, so no binary rounding reaches the wire), dollars come back through
:class:`~decimal.Decimal`, and every split of an amount sums back to it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

_CENT = Decimal("0.01")


def _require_int(value: object, what: str) -> int:
    # bool is an int subclass; True cents is always a bug upstream.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return value


def dollars(cents: int) -> str:
    """Format non-negative integer cents as a two-decimal dollar string: 1234 -> "12.34"."""
    _require_int(cents, "cents")
    if cents < 0:
        raise ValueError(f"cents must not be negative, got {cents}")
    return f"{cents // 100}.{cents % 100:02d}"


def cents(amount: str | int | float | Decimal) -> int:
    """Convert a Virtuous dollar amount to integer cents, exactly: "12.3" -> 1230, 12.34 -> 1234.

    Floats are read through their shortest decimal repr, so 12.34 means 12.34 and not
    12.339999.... A sub-cent remainder (never expected from Virtuous) rounds half away from
    zero. Negative amounts are allowed: a pulled reversal may carry one.
    """
    if isinstance(amount, bool):
        raise TypeError("amount must be a number or a numeric string, got bool")
    if isinstance(amount, Decimal):
        value = amount
    elif isinstance(amount, int):
        value = Decimal(amount)
    elif isinstance(amount, float):
        value = Decimal(repr(amount))
    elif isinstance(amount, str):
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            raise ValueError(f"not a dollar amount: {amount!r}") from None
    else:
        raise TypeError(f"amount must be a number or a numeric string, got {type(amount).__name__}")
    if not value.is_finite():
        raise ValueError(f"not a finite dollar amount: {amount!r}")
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def split_proportionally(total_cents: int, weights: Sequence[int]) -> list[int]:
    """Split ``total_cents`` across rows in proportion to ``weights``; the result sums exactly.

    Every row but the last gets ``floor(total * weight / sum(weights))``; the last row absorbs
    the rounding, so it is never negative. When every weight is 0 the total is split equally,
    again with the remainder on the last row. Raises ValueError for no rows or negative inputs.
    """
    _require_int(total_cents, "total_cents")
    if total_cents < 0:
        raise ValueError(f"total_cents must not be negative, got {total_cents}")
    if not weights:
        raise ValueError("cannot split an amount across zero rows")
    for weight in weights:
        _require_int(weight, "weight")
        if weight < 0:
            raise ValueError(f"weights must not be negative, got {weight}")
    weight_sum = sum(weights)
    if weight_sum == 0:
        weights = [1] * len(weights)
        weight_sum = len(weights)
    shares = [total_cents * weight // weight_sum for weight in weights[:-1]]
    shares.append(total_cents - sum(shares))
    return shares
