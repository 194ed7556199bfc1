"""Money and energy arithmetic: the one place that rounds.

- Prices are yuan per kWh to 5 places (0.00001 yuan).
- Energy is kept in Wh (exact Decimal, 3 places allowed for interpolated shares).
- Amounts are brought to the fen (0.01 yuan) once, by `to_fen`, with the operator's
  rounding mode (ROUND_DOWN by default: it matches every real bill we have).
Never float: every function here refuses one.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from chargenet.errors import DomainError

FEN = Decimal("0.01")
PRICE_QUANTUM = Decimal("0.00001")
KWH_QUANTUM = Decimal("0.001")
WH_PER_KWH = Decimal(1000)

ROUNDING_MODES = {"ROUND_DOWN": ROUND_DOWN, "ROUND_HALF_UP": ROUND_HALF_UP}


class MoneyError(DomainError):
    code = "money_invalid"


def _decimal(value: Decimal | int | str, what: str) -> Decimal:
    if isinstance(value, float):
        raise MoneyError(_("%(what)s must be exact (Decimal), not a float.") % {"what": what})
    return Decimal(value)


def to_fen(amount: Decimal | int | str, *, rounding: str | None = None) -> Decimal:
    """Bring an amount to the fen with the configured (or given) rounding mode."""
    mode = rounding or settings.CHARGENET_ROUNDING
    if mode not in ROUNDING_MODES.values():
        mode = ROUNDING_MODES.get(mode)
        if mode is None:
            raise MoneyError(_("Unknown rounding mode."), details={"rounding": rounding})
    return _decimal(amount, "amount").quantize(FEN, rounding=mode)


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


def allocate_to_fen(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` (already in fen) over lines proportional to ``weights`` so that the
    lines are whole fen and add up to ``total`` exactly.

    Largest-remainder method: each line first gets its share truncated to the fen; the fen
    left over go one by one to the lines with the largest truncated remainder, earlier
    lines first on ties. Deterministic, so a bill shows the same lines every time.
    """
    total = _decimal(total, "total")
    if total != total.quantize(FEN):
        raise MoneyError(_("The total to allocate must be whole fen."))
    weights = [_decimal(w, "weight") for w in weights]
    whole = sum(weights, Decimal(0))
    if not weights:
        return []
    if whole == 0:
        return [total] + [Decimal("0.00")] * (len(weights) - 1)
    exact = [total * w / whole for w in weights]
    lines = [e.quantize(FEN, rounding=ROUND_DOWN) for e in exact]
    left = int((total - sum(lines, Decimal(0))) / FEN)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - lines[i]), i))
    for i in order[:left]:
        lines[i] += FEN
    return lines
