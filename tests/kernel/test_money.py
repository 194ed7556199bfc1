from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargenet.money import MoneyError, allocate_by_floor, allocate_to_fen, price, to_fen


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("33.0282", "33.02"), ("0.009", "0.00"), ("10", "10.00"), ("1.999999", "1.99")],
)
def test_to_fen_truncates_by_default(amount, expected):
    assert to_fen(Decimal(amount)) == Decimal(expected)


def test_to_fen_half_up_when_asked():
    assert to_fen(Decimal("1.005"), rounding="ROUND_HALF_UP") == Decimal("1.01")
    assert to_fen(Decimal("1.005"), rounding=ROUND_HALF_UP) == Decimal("1.01")


def test_float_is_refused():
    with pytest.raises(MoneyError, match="not a float"):
        to_fen(1.5)


def test_price_refuses_sixth_decimal_and_negative():
    assert price("0.64000") == Decimal("0.64")
    with pytest.raises(MoneyError, match="at most 5 decimal places"):
        price("0.000001")
    with pytest.raises(MoneyError, match="cannot be negative"):
        price("-0.1")


def test_allocate_places_the_leftover_fen_on_largest_remainders():
    # 10.00 over three equal lines: 3.33 each leaves one fen, which goes to the first line.
    assert allocate_to_fen(Decimal("10.00"), [1, 1, 1]) == [
        Decimal("3.34"),
        Decimal("3.33"),
        Decimal("3.33"),
    ]


@given(
    total=st.decimals(min_value=0, max_value=100000, places=2),
    weights=st.lists(st.decimals(min_value=0, max_value=1000, places=3), min_size=1, max_size=8),
)
def test_allocated_lines_always_add_up_to_the_total(total, weights):
    lines = allocate_to_fen(total, weights)
    assert sum(lines, Decimal(0)) == total
    assert all(line == line.quantize(Decimal("0.01")) for line in lines)


def test_allocate_by_floor_truncates_each_amount_and_tops_up_largest_remainders():
    # DOMAIN.md's worked example in fen: 565.76 + 450.84 + 857.34 + 1428.9 → total 3302
    exact = [Fraction("565.76"), Fraction("450.84"), Fraction("857.34"), Fraction("1428.9")]
    assert allocate_by_floor(3302, exact) == [565, 451, 857, 1429]
    # ties: the earlier amount first
    assert allocate_by_floor(1, [Fraction(1, 2), Fraction(1, 2)]) == [1, 0]
    with pytest.raises(MoneyError):
        allocate_by_floor(3307, exact)  # more than a fen per amount
