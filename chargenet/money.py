"""Money and energy arithmetic: the one place that rounds.

- Prices are yuan per kWh to 5 places (0.00001 yuan).
- Energy is kept in Wh (exact Decimal, 3 places allowed for interpolated shares).
- Amounts are brought to the fen (0.01 yuan) once, by `to_fen`, with the operator's
  rounding mode (ROUND_DOWN by default: it matches every real bill we have).
Never float: every function here refuses one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from chargenet.errors import DomainError

FEN = Decimal("0.01")
PRICE_QUANTUM = Decimal("0.00001")
KWH_QUANTUM = Decimal("0.001")
WH_PER_KWH = Decimal(1000)

# OCPP 1.6 sends meterStart/meterStop as whole Wh, while meter samples may carry decimals:
# a stop less than this below the last sample is the same reading truncated, not energy
# lost. The bill takes the stop register (what the pile shows and reports); the samples
# above it by less than this are read as it (`billing.selectors.session_points`).
METER_STOP_RESOLUTION_WH = Decimal(1)

ROUNDING_MODES = {"ROUND_DOWN": ROUND_DOWN, "ROUND_HALF_UP": ROUND_HALF_UP}


class MoneyError(DomainError):
    code = "money_invalid"


def _decimal(value: Decimal | int | str, what: str) -> Decimal:
    if isinstance(value, float):
        raise MoneyError(_("%(what)s must be exact (Decimal), not a float.") % {"what": what})
    return Decimal(value)


def rounding_mode(rounding: str | None = None) -> str:
    """The decimal rounding constant for ``rounding`` (a name such as "ROUND_DOWN", or the
    constant itself); the configured default when None; an unknown name is an error."""
    mode = rounding or settings.CHARGENET_ROUNDING
    if mode not in ROUNDING_MODES.values():
        mode = ROUNDING_MODES.get(mode)
        if mode is None:
            raise MoneyError(
                _("Unknown rounding mode %(rounding)s: use ROUND_DOWN or ROUND_HALF_UP.")
                % {"rounding": rounding},
                code="rounding_unknown",
                details={"rounding": rounding},
            )
    return mode


def to_fen(amount: Decimal | Fraction | int | str, *, rounding: str | None = None) -> Decimal:
    """Bring an amount to the fen with the configured (or given) rounding mode.

    An exact `Fraction` (the pricing engine's full-precision total) is rounded exactly,
    without first passing through a finite-precision Decimal.
    """
    mode = rounding_mode(rounding)
    if isinstance(amount, Fraction):
        return _fraction_to_fen(amount, mode)
    return _decimal(amount, "amount").quantize(FEN, rounding=mode)


def _fraction_to_fen(amount: Fraction, mode: str) -> Decimal:
    cents = amount * 100
    sign = -1 if cents < 0 else 1
    cents = abs(cents)
    if mode == ROUND_DOWN:
        whole = cents.numerator // cents.denominator
    else:  # ROUND_HALF_UP: halves away from zero, like Decimal's
        whole = (cents + Fraction(1, 2)).numerator // (cents + Fraction(1, 2)).denominator
    return (Decimal(sign * whole) / 100).quantize(FEN)


def price(value: Decimal | int | str) -> Decimal:
    """A unit price in yuan/kWh; more than 5 decimal places is an error, not a rounding."""
    value = _decimal(value, "price")
    if value != value.quantize(PRICE_QUANTUM):
        raise MoneyError(
            _("A price has at most 5 decimal places (0.00001 yuan); got %(value)s.")
            % {"value": value}
        )
    if value < 0:
        raise MoneyError(_("A price cannot be negative; got %(value)s.") % {"value": value})
    return value


def wh_to_kwh(wh: Decimal | int | str) -> Decimal:
    return _decimal(wh, "energy") / WH_PER_KWH


def kwh_shown(wh: Decimal | int | str, *, quantum: Decimal = KWH_QUANTUM) -> Decimal:
    """Energy in Wh as kWh for display, to ``quantum`` (the Wh by default); the decimal
    context's rounding, as every page and message showed it so far."""
    return wh_to_kwh(wh).quantize(quantum)


def allocate_units(total: int, weights: Sequence[int | Fraction]) -> list[int]:
    """Split the whole number ``total`` over lines proportional to ``weights`` (ints or exact
    Fractions, none negative) so that the lines are whole numbers adding up to ``total``.

    Largest-remainder method: each line first gets its share rounded down; the units left
    over go one by one to the lines with the largest remainder, earlier lines first on
    ties. Used for fen (`allocate_to_fen`) and for energy in mWh (bill period lines).
    """
    if not weights:
        return []
    if any(w < 0 for w in weights):
        raise MoneyError(_("A weight to allocate by cannot be negative."))
    if not all(isinstance(w, int) for w in weights):  # Fractions: to one denominator
        common = math.lcm(*(Fraction(w).denominator for w in weights))
        weights = [int(Fraction(w) * common) for w in weights]
    whole = sum(weights)
    if whole == 0:
        return [total] + [0] * (len(weights) - 1)
    # share i = total × w_i / whole = lines[i] + remainders[i] / whole, in integers
    shares = [divmod(total * w, whole) for w in weights]
    lines = [q for q, _r in shares]
    left = total - sum(lines)
    order = sorted(range(len(weights)), key=lambda i: (-shares[i][1], i))
    for i in order[:left]:
        lines[i] += 1
    return lines


def allocate_by_floor(total: int, amounts: Sequence[int | Fraction]) -> list[int]:
    """Whole units for exact ``amounts`` (ints or Fractions, in units, none negative) adding
    up to ``total``, each within one unit of its own amount.

    Each amount is first rounded down to a whole unit; the units left to reach ``total``
    go one each to the amounts with the largest remainders, earlier amounts first on ties.
    ``total`` is the sum of the amounts rounded once (down, or half up), so it lies between
    the sum of the floors and that sum plus one unit per amount; outside that is an error.
    Used for a bill's fee cells: each cell is its exact amount truncated to the fen (or one
    fen more), so a driver recomputing a line finds it within a fen.
    """
    if any(a < 0 for a in amounts):
        raise MoneyError(_("An amount to allocate cannot be negative."))
    floors = [math.floor(a) for a in amounts]
    left = total - sum(floors)
    if not 0 <= left <= len(amounts):
        raise MoneyError(_("The total to allocate is not the amounts' sum, rounded once."))
    order = sorted(range(len(amounts)), key=lambda i: (floors[i] - amounts[i], i))
    for i in order[:left]:
        floors[i] += 1
    return floors


def fen_to_yuan(fen: int) -> Decimal:
    """A whole number of fen as yuan with two places (no rounding happens here)."""
    return Decimal(fen).scaleb(-2)


def allocate_to_fen(total: Decimal, weights: Sequence[Decimal | Fraction]) -> list[Decimal]:
    """Split ``total`` (already in fen) over lines proportional to ``weights`` so that the
    lines are whole fen and add up to ``total`` exactly.

    Largest-remainder method: each line first gets its share truncated to the fen; the fen
    left over go one by one to the lines with the largest truncated remainder, earlier
    lines first on ties. Deterministic, so a bill shows the same lines every time.
    """
    total = _decimal(total, "total")
    if total != total.quantize(FEN):
        raise MoneyError(_("The total to allocate must be whole fen."))
    weights = [w if isinstance(w, Fraction) else Fraction(_decimal(w, "weight")) for w in weights]
    if total < 0:
        return [-line for line in allocate_to_fen(-total, weights)]
    fen = allocate_units(int(total * 100), weights)
    return [(Decimal(f) / 100).quantize(FEN) for f in fen]
