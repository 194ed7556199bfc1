"""What a driver sees of a charge while it runs: energy, power, state of charge, how long,
and the amount so far as the pricing engine would bill the samples received until now
(an estimate: the bill is made from the pile's stop reading)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from chargenet.money import kwh_shown

from .models import ChargingSession, MeterSample
from .pricing import PricingError, price_session
from .selectors import session_samples, tariff_specs_for


@dataclass(frozen=True)
class LiveFigures:
    energy_kwh: Decimal
    power_kw: Decimal | None
    soc: int | None
    duration_s: int
    amount_so_far: Decimal | None  # None: no tariff in force / nothing to price yet
    sampled_at: dt.datetime | None


def session_live(*, session: ChargingSession, at: dt.datetime) -> LiveFigures:
    """The running figures of ``session`` (with its station, pile and operator)."""
    samples = session_samples(session)
    energy_wh = max(samples[-1][1] - session.meter_start_wh, Decimal(0))
    latest = (
        MeterSample.objects.filter(session=session)
        .exclude(power_w__isnull=True, soc__isnull=True)
        .order_by("-at")
        .values("power_w", "soc", "at")
        .first()
    ) or {}
    amount = None
    if len(samples) > 1:
        try:
            amount = price_session(
                samples=samples,
                tariffs=tariff_specs_for(
                    station=session.station,
                    current_type=session.pile.current_type,
                    start=samples[0][0],
                    end=samples[-1][0],
                ),
                zone=session.station.time_zone,
                rounding=session.operator.rounding_mode,
            ).total
        except PricingError:
            amount = None
    power = latest.get("power_w")
    return LiveFigures(
        energy_kwh=kwh_shown(energy_wh),
        power_kw=(power / 1000).quantize(Decimal("0.01")) if power is not None else None,
        soc=latest.get("soc"),
        duration_s=max(int((at - session.started_at).total_seconds()), 0),
        amount_so_far=amount,
        sampled_at=samples[-1][0] if len(samples) > 1 else None,
    )
