"""The pricing engine: meter samples + tariff versions → per-period energy, fees, total.

A pure function (no database, no clock): `price_session`. How it works:

1. Samples are (time, energy register in Wh). Between two consecutive samples the energy
   delivered is the register difference, assumed to flow evenly in (elapsed) time.
2. The session's time span is cut into *segments* wherever the tariff version in force
   changes or the station's local wall-clock time enters a half-hour slot of another
   period. Local time comes from the station's zone, so a DST day is priced by the clock
   on the wall: the jump itself is a segment boundary (zones switch on a half-hour mark).
3. Energy of a sample pair lying inside one segment goes to that segment whole; a pair
   straddling boundaries is divided in proportion to the time spent in each segment.
   Shares are exact `Fraction`s of a mWh, so nothing is lost or invented by splitting,
   and inserting an interpolated sample changes nothing.
4. A *line* is one (tariff version, period): its exact energy × its electricity and
   service prices. The total is the exact sum, brought to the fen ONCE by
   `chargenet.money.to_fen` with the operator's rounding mode (DOMAIN.md: truncation).
5. What the bill shows is allocated so that it adds up exactly (largest remainder,
   `chargenet.money.allocate_units`): each line's energy is whole mWh and the lines'
   energies add up to the register difference; the total in fen is split over the
   2 × lines fee cells (electricity, service of each line) in proportion to their exact
   amounts: every cell gets its share rounded down to the fen and the fen left over go
   to the cells with the largest remainders, earlier cells first on ties (older version,
   sharper period, electricity before service). Worked example (DOMAIN.md): exact
   5.6576 + 4.5084 + 8.5734 + 14.289 = 33.0284 → total 33.02, shown as
   5.66 + 4.51 + 8.57 + 14.28.

No tariff in force at some moment of the session raises `TariffMissing` (the bill becomes
a fault bill, code 12) — never a default price.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from django.utils.translation import gettext_lazy as _

from chargenet.errors import DomainError
from chargenet.money import allocate_to_fen, allocate_units, price, rounding_mode, to_fen

PERIODS = 4  # p0 sharp, p1 peak, p2 flat, p3 valley
SLOTS_PER_DAY = 48
SLOT_SECONDS = 1800
US = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MWH = Decimal(1000)


class PricingError(DomainError):
    """The samples or tariffs cannot be priced; the subclass names the reason."""

    code = "pricing_invalid"


class TariffMissing(PricingError):
    code = "tariff_missing"


class RegisterBackwards(PricingError):
    code = "register_backwards"


class NegativeEnergy(PricingError):
    code = "energy_negative"


class TimeReversed(PricingError):
    code = "time_reversed"


@dataclass(frozen=True, slots=True)
class PeriodPrice:
    electricity: Decimal
    service: Decimal


@dataclass(frozen=True)
class TariffSpec:
    """One tariff version as the engine sees it, for one current type (AC or DC).

    In force from ``effective_from`` until the next spec's ``effective_from``.
    ``schedule`` has 48 entries, the period (0–3) of each local half hour from 00:00.
    """

    effective_from: dt.datetime
    schedule: tuple[int, ...]
    prices: tuple[PeriodPrice, PeriodPrice, PeriodPrice, PeriodPrice]
    version_id: int | None = None
    is_missing: bool = False

    @classmethod
    def missing(cls, effective_from: dt.datetime) -> TariffSpec:
        """No tariff from ``effective_from`` on (e.g. a station moved to a plan that has no
        version yet): pricing energy delivered then raises `TariffMissing`."""
        return cls(effective_from=effective_from, schedule=(), prices=(), is_missing=True)

    def __post_init__(self):
        if self.is_missing:
            return
        if len(self.schedule) != SLOTS_PER_DAY or any(p not in (0, 1, 2, 3) for p in self.schedule):
            raise PricingError(_("A day schedule has 48 half-hour slots, each period 0 to 3."))
        if len(self.prices) != PERIODS:
            raise PricingError(_("A tariff has a price for each of the four periods."))
        for p in self.prices:
            price(p.electricity)
            price(p.service)
        if self.effective_from.tzinfo is None:
            raise PricingError(_("A tariff's effective-from time must carry its time zone."))


@dataclass(frozen=True)
class PricedLine:
    """One (version, period) of a bill: energy in Wh (3 places) and fees in yuan."""

    version_id: int | None
    period: int
    energy_wh: Decimal
    electricity_price: Decimal
    service_price: Decimal
    electricity_fee: Decimal
    service_fee: Decimal
    exact_energy_wh: Fraction
    exact_amount: Fraction

    @property
    def amount(self) -> Decimal:
        return self.electricity_fee + self.service_fee


@dataclass(frozen=True)
class Pricing:
    energy_wh: Decimal
    lines: tuple[PricedLine, ...]
    electricity_fee: Decimal
    service_fee: Decimal
    total: Decimal
    exact_total: Fraction
    rounding: str

    def energy_by_period(self) -> dict[int, Decimal]:
        out = {p: Decimal("0.000") for p in range(PERIODS)}
        for line in self.lines:
            out[line.period] += line.energy_wh
        return out

    @property
    def version_ids(self) -> list[int | None]:
        return list(dict.fromkeys(line.version_id for line in self.lines))


def schedule_from_text(text: str) -> tuple[int, ...]:
    """'3333…2222' (48 digits) → a schedule tuple."""
    return tuple(int(c) for c in text)


def _us(t: dt.datetime) -> int:
    d = t - _EPOCH
    return (d.days * 86400 + d.seconds) * US + d.microseconds


def _mwh(wh: Decimal) -> int:
    if isinstance(wh, float):
        raise PricingError(_("Energy must be exact (Decimal), not a float."))
    m = wh * _MWH
    i = int(m)
    if i != m:
        raise PricingError(
            _("Energy registers are kept to 0.001 Wh; got %(value)s Wh.") % {"value": wh}
        )
    return i


def _tariff_missing(at_us: int, zone: ZoneInfo):
    at = dt.datetime.fromtimestamp(at_us // US, tz=zone)
    raise TariffMissing(
        _("No tariff is in force at %(time)s (station time); the bill needs one.")
        % {"time": at.strftime("%Y-%m-%d %H:%M:%S")}
    )


def _segments(start: int, end: int, tariffs: Sequence[TariffSpec], zone: ZoneInfo):
    """[(segment end µs, line key)] covering [start, end]; key = (tariff index, period)."""
    froms = [_us(t.effective_from) for t in tariffs]
    if not tariffs or froms[0] > start:
        _tariff_missing(start, zone)
    # The same version reached twice (a station re-assigned to its old plan) is one line.
    first_of = {}
    vkey = [
        first_of.setdefault(t.version_id, i) if t.version_id is not None else i
        for i, t in enumerate(tariffs)
    ]
    ti = 0
    while ti + 1 < len(froms) and froms[ti + 1] <= start:
        ti += 1
    segments: list[tuple[int, tuple[int, int]]] = []
    t = start
    while True:
        version_end = froms[ti + 1] if ti + 1 < len(froms) else None
        if tariffs[ti].is_missing:
            _tariff_missing(t, zone)
        sec, frac = divmod(t, US)
        local = dt.datetime.fromtimestamp(sec, tz=zone)
        sod = local.hour * 3600 + local.minute * 60 + local.second
        period = tariffs[ti].schedule[sod // SLOT_SECONDS]
        nxt = t + (SLOT_SECONDS - sod % SLOT_SECONDS) * US - frac
        if version_end is not None and version_end <= nxt:
            nxt, next_ti = version_end, ti + 1
        else:
            next_ti = ti
        key = (vkey[ti], period)
        if segments and segments[-1][1] == key:
            segments[-1] = (min(nxt, end), key)
        else:
            segments.append((min(nxt, end), key))
        if nxt >= end:
            return segments
        t, ti = nxt, next_ti


def price_session(
    *,
    samples: Sequence[tuple[dt.datetime, Decimal]],
    tariffs: Sequence[TariffSpec],
    zone: ZoneInfo | str,
    rounding: str = "ROUND_DOWN",
) -> Pricing:
    """Price one session. ``samples`` are (aware time, energy register Wh) in time order;
    ``tariffs`` the versions for the pile's current type, oldest first; ``zone`` the
    station's time zone; ``rounding`` the operator's mode. Raises a `PricingError`
    subclass (nothing is priced) on a register going backwards, negative energy, time
    going backwards or no tariff in force."""
    mode = rounding_mode(rounding)
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    if not samples:
        raise PricingError(_("A session needs at least one meter sample to be priced."))
    times = [_us(t) for t, _e in samples]
    regs = [_mwh(e) for _t, e in samples]
    if min(regs) < 0:
        raise NegativeEnergy(_("An energy register cannot be negative."))
    for i in range(1, len(times)):
        if times[i] < times[i - 1] or (times[i] == times[i - 1] and regs[i] != regs[i - 1]):
            raise TimeReversed(
                _("Meter sample times go backwards at %(time)s: a stop before its start?")
                % {"time": samples[i][0].isoformat()}
            )
        if regs[i] < regs[i - 1]:
            raise RegisterBackwards(
                _("The energy register goes backwards at %(time)s (%(before)s → %(after)s Wh).")
                % {
                    "time": samples[i][0].isoformat(),
                    "before": samples[i - 1][1],
                    "after": samples[i][1],
                }
            )
    segments = _segments(times[0], times[-1], tariffs, zone)

    # Walk samples and segments together; whole pairs inside a segment stay integers.
    whole: dict[tuple[int, int], int] = {}
    split: dict[tuple[int, int], Fraction] = {}
    si = 0
    seg_end, key = segments[0]
    for i in range(1, len(times)):
        t0, t1 = times[i - 1], times[i]
        delta = regs[i] - regs[i - 1]
        while seg_end <= t0 and si + 1 < len(segments):
            si += 1
            seg_end, key = segments[si]
        if t1 <= seg_end:
            whole[key] = whole.get(key, 0) + delta
            continue
        span = t1 - t0
        cursor, sj = t0, si
        while True:
            s_end, s_key = segments[sj]
            upto = min(s_end, t1)
            if upto > cursor and delta:
                split[s_key] = split.get(s_key, 0) + Fraction(delta * (upto - cursor), span)
            if s_end >= t1:
                break
            cursor, sj = upto, sj + 1
    keys = [k for k in sorted({k for _e, k in segments}) if whole.get(k) or split.get(k)]
    exact_mwh = [Fraction(whole.get(k, 0)) + split.get(k, 0) for k in keys]
    energy_total = regs[-1] - regs[0]
    shown_mwh = allocate_units(energy_total, exact_mwh)

    cells: list[Fraction] = []
    for k, e in zip(keys, exact_mwh, strict=True):
        p = tariffs[k[0]].prices[k[1]]
        kwh = e / 1_000_000
        cells.append(kwh * Fraction(p.electricity))
        cells.append(kwh * Fraction(p.service))
    exact_total = sum(cells, Fraction(0))
    total = to_fen(exact_total, rounding=mode)
    fees = allocate_to_fen(total, cells)

    lines = []
    for n, (k, e) in enumerate(zip(keys, exact_mwh, strict=True)):
        spec = tariffs[k[0]]
        p = spec.prices[k[1]]
        lines.append(
            PricedLine(
                version_id=spec.version_id,
                period=k[1],
                energy_wh=(Decimal(shown_mwh[n]) / _MWH).quantize(Decimal("0.001")),
                electricity_price=p.electricity,
                service_price=p.service,
                electricity_fee=fees[2 * n],
                service_fee=fees[2 * n + 1],
                exact_energy_wh=e / 1000,
                exact_amount=cells[2 * n] + cells[2 * n + 1],
            )
        )
    return Pricing(
        energy_wh=(Decimal(energy_total) / _MWH).quantize(Decimal("0.001")),
        lines=tuple(lines),
        electricity_fee=sum(fees[0::2], Decimal("0.00")),
        service_fee=sum(fees[1::2], Decimal("0.00")),
        total=total,
        exact_total=exact_total,
        rounding=mode,
    )
