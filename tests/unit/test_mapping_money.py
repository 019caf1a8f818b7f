"""Exact money: cents out as two-decimal strings, dollars in through Decimal, exact splits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapping.fields import MAX_CENTS
from mapping.money import cents, dollars, split_proportionally


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0, "0.00"), (1, "0.01"), (10, "0.10"), (1234, "12.34"), (100000, "1000.00"), (5, "0.05")],
)
def test_dollars(amount: int, text: str) -> None:
    assert dollars(amount) == text


def test_dollars_refuses_negative_and_non_int() -> None:
    with pytest.raises(ValueError):
        dollars(-1)
    with pytest.raises(TypeError):
        dollars(True)
    with pytest.raises(TypeError):
        dollars(12.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("12.3", 1230),
        ("12.34", 1234),
        (" 7 ", 700),
        (12.34, 1234),
        (0.1, 10),
        (25.0, 2500),
        (25, 2500),
        (Decimal("99.99"), 9999),
        ("0", 0),
        ("-5.5", -550),
        ("1.005", 101),
    ],
)
def test_cents_is_exact(amount: str | int | float | Decimal, expected: int) -> None:
    assert cents(amount) == expected


@pytest.mark.parametrize("amount", ["", "twelve", "NaN", "Infinity", float("inf")])
def test_cents_refuses_what_is_not_an_amount(amount: str | float) -> None:
    with pytest.raises(ValueError):
        cents(amount)


def test_cents_refuses_bool() -> None:
    with pytest.raises(TypeError):
        cents(True)


@given(st.integers(min_value=0, max_value=MAX_CENTS))
def test_dollars_and_cents_round_trip(amount: int) -> None:
    text = dollars(amount)
    assert cents(text) == amount
    # A float holds 15 significant digits, more than any amount below MAX_CENTS needs.
    assert cents(float(text)) == amount
    assert cents(Decimal(text)) == amount


@pytest.mark.parametrize(
    ("total", "weights", "shares"),
    [
        (100, [1, 1, 1], [33, 33, 34]),
        (105, [1500, 1000], [63, 42]),
        (333, [3333, 3333, 3334], [110, 110, 113]),
        (10, [0, 5], [0, 10]),
        (10, [0, 0, 0], [3, 3, 4]),
        (0, [3, 4], [0, 0]),
        (7, [9], [7]),
    ],
)
def test_split_proportionally_rows(total: int, weights: list[int], shares: list[int]) -> None:
    assert split_proportionally(total, weights) == shares


def test_split_proportionally_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        split_proportionally(10, [])
    with pytest.raises(ValueError):
        split_proportionally(-1, [1])
    with pytest.raises(ValueError):
        split_proportionally(10, [1, -1])


@given(
    st.integers(min_value=0, max_value=MAX_CENTS),
    st.lists(st.integers(min_value=0, max_value=MAX_CENTS), min_size=1, max_size=20),
)
def test_split_proportionally_sums_exactly_and_is_never_negative(
    total: int, weights: list[int]
) -> None:
    shares = split_proportionally(total, weights)
    assert sum(shares) == total
    assert len(shares) == len(weights)
    assert all(share >= 0 for share in shares)
    weight_sum = sum(weights)
    if weight_sum:
        # Every row but the last is the floor of its exact share; the last absorbs the rest.
        for share, weight in zip(shares[:-1], weights[:-1], strict=True):
            assert share == total * weight // weight_sum
