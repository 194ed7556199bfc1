"""Fault rules run when a session is settled (the billing hook).

`detect_on_settlement` runs every rule in `SETTLEMENT_RULES` over the session and the
pricing attempt and returns the codes found, in code order. A rule is a small function
``(session, pricing) -> FaultCode | None``; add a rule by adding a function to the list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from billing.pricing import Pricing, PricingError, RegisterBackwards, TariffMissing, TimeReversed

from .codes import FaultCode


@dataclass(frozen=True)
class PricingAttempt:
    """What settlement got from the pricing engine: a result, or the error it raised."""

    result: Pricing | None = None
    error: PricingError | None = None


def tariff_missing(session, pricing: PricingAttempt) -> FaultCode | None:
    # Never a default price: no tariff in force makes a fault bill.
    return FaultCode.TARIFF_MISSING if isinstance(pricing.error, TariffMissing) else None


def register_went_backwards(session, pricing: PricingAttempt) -> FaultCode | None:
    # A register that drops (reset, replaced meter) lost energy: never a negative amount.
    backwards = isinstance(pricing.error, RegisterBackwards) or (
        session.meter_stop_wh is not None and session.meter_stop_wh < session.meter_start_wh
    )
    return FaultCode.ENERGY_LOST if backwards else None


def stopped_before_start(session, pricing: PricingAttempt) -> FaultCode | None:
    reversed_time = isinstance(pricing.error, TimeReversed) or (
        session.stopped_at is not None and session.stopped_at < session.started_at
    )
    return FaultCode.TIME_ANOMALY if reversed_time else None


SETTLEMENT_RULES: list[Callable[..., FaultCode | None]] = [
    tariff_missing,
    register_went_backwards,
    stopped_before_start,
]


def detect_on_settlement(*, session, pricing: PricingAttempt) -> list[FaultCode]:
    codes = {rule(session, pricing) for rule in SETTLEMENT_RULES}
    codes.discard(None)
    return sorted(codes)
