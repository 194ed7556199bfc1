"""The pricing engine: meter samples + tariff versions → per-period energy, fees, total.

A pure function (no database, no clock): `price_session`. How it works:

1. Samples are (time, energy register in Wh). Between two consecutive samples the energy
   delivered is the register difference, assumed to flow evenly in (elapsed) time.
2. The session's time span is cut into *segments* wherever the tariff version in force
   changes or the station's local wall-clock time enters a half-hour slot of another
   period. Local time comes from the station's zone, so a DST day is priced by the clock
   on the wall: the jump itself is a segment boundary. (Assumes a zone changes offset on
   a local half-hour mark, true of every zone in use today.)
3. Energy of a sample pair lying inside one segment goes to that segment whole; a pair
   straddling boundaries is divided in proportion to the time spent in each segment.
   Computed as: energy of a segment = register interpolated (linearly in time) at its
   end minus at its start, so the work is per boundary, not per sample. Shares are
   exact (integers of mWh, a `Fraction` only at a boundary between two samples), so
   nothing is lost or invented by splitting and an interpolated sample changes nothing.
   Times are µs, energies mWh, prices 0.00001 yuan: integers all the way to the total.
4. A *line* is one (tariff version, period): its exact energy × its electricity and
   service prices. The total is the exact sum, brought to the fen ONCE by
   `chargenet.money.to_fen` with the operator's rounding mode (DOMAIN.md: truncation).
5. What the bill shows is allocated so that it adds up exactly (largest remainder,
   `chargenet.money.allocate_units`): each line's energy is whole mWh and the lines'
   energies add up to the register difference; the total in fen is split over the
   2 × lines fee cells (electricity, service of each line): every cell is its own exact
   amount rounded down to the fen, and the fen left to reach the total (fewer than the
   cells) go one each to the cells with the largest remainders, earlier cells first on
   ties (older version, sharper period, electricity before service). So a driver who
   recomputes a line (energy × price) gets each cell within a fen. Worked example
   (DOMAIN.md): exact 5.6576 + 4.5084 + 8.5734 + 14.289 = 33.0284 → total 33.02; floors
   5.65 + 4.50 + 8.57 + 14.28 = 33.00, the 2 fen left go to 14.289 (.009) and 4.5084
   (.0084): shown as 5.65 + 4.51 + 8.57 + 14.29.
6. Work is bounded: the engine walks at most `MAX_SEGMENTS` half-hour slots and version
   changes and refuses a longer session (`TooManySegments`) before walking it. Settlement
   decides implausible times and durations before pricing (`faults.rules.implausible_times`).
7. Times are compared as instants (µs since the epoch), never as wall clocks: two aware
   datetimes of one zone compare by wall clock in Python, ignoring ``fold``, so 02:10
   (second pass, after the autumn change) would look earlier than 02:30 (first pass).

No tariff in force at some moment of the session raises `TariffMissing` (the bill becomes
a fault bill, code 12) — never a default price.
"""

from __future__ import annotations

import datetime as dt
import operator
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from math import lcm
from zoneinfo import ZoneInfo

from django.utils.translation import gettext_lazy as _

from chargenet.errors import DomainError
from chargenet.money import (
    allocate_by_floor,
    allocate_units,
    fen_to_yuan,
    price,
    rounding_mode,
    to_fen,
)

PERIODS = 4  # p0 sharp, p1 peak, p2 flat, p3 valley
SLOTS_PER_DAY = 48
SLOT_SECONDS = 1800
US = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_US = dt.timedelta(microseconds=1)
_MWH = Decimal(1000)
_PRICE_UNITS = 100_000  # a price in units of 0.00001 yuan/kWh is an integer
_CELL_UNITS_PER_YUAN = 1_000_000 * _PRICE_UNITS  # mWh per kWh × price units per yuan
# The most half-hour slots and version changes one pricing walks: 100 days. Far beyond any
# real session (settlement makes one longer than the operator's maximum, 24 h by default,
# a fault bill before pricing), and walked in milliseconds: nothing makes pricing loop long.
MAX_SEGMENTS = 100 * SLOTS_PER_DAY


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


class TimesImplausible(PricingError):
    """Not priced: the session's times or duration cannot be real (a pile clock in the
    year 2999, a session of months). Raised by the engine's own bound (`TooManySegments`),
    or made by settlement when the fault rules decided so before pricing."""

    code = "times_implausible"


class TooManySegments(TimesImplausible):
    code = "too_many_segments"


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
    # (electricity, service) per period in 0.00001 yuan/kWh, exact integers.
    price_units: tuple[tuple[int, int], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

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
        units = []
        for p in self.prices:
            units.append(
                (int(price(p.electricity) * _PRICE_UNITS), int(price(p.service) * _PRICE_UNITS))
            )
        object.__setattr__(self, "price_units", tuple(units))
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
    return (t - _EPOCH) // _ONE_US


def _check_samples(samples) -> tuple[list[dt.datetime], list[Decimal]]:
    """Check samples without converting them one by one: aware times that never go
    backwards, exact energies (Decimal or int) never negative, never dropping. The
    valid case costs a few C-speed list operations; only a bad one is looked at closely."""
    energies = [e for _t, e in samples]
    if not {type(e) for e in energies} <= {Decimal, int}:
        raise PricingError(_("Energy must be exact (Decimal), not a float."))
    if any(t.tzinfo is None for t, _e in samples):
        raise PricingError(_("Meter sample times must carry their time zone."))
    # As instants (UTC): same-zone aware datetimes compare by wall clock, ignoring fold.
    times = [t.astimezone(dt.UTC) for t, _e in samples]
    ordered = times == sorted(times) and energies == sorted(energies)
    if not (ordered and all(map(operator.lt, times, times[1:]))):
        _find_backwards(times, samples)
    if energies[0] < 0:
        raise NegativeEnergy(_("An energy register cannot be negative."))
    return times, energies


def _mwh(wh: Decimal | int) -> int:
    m = wh * _MWH
    i = int(m)
    if i != m:
        raise PricingError(
            _("Energy registers are kept to 0.001 Wh; got %(value)s Wh.") % {"value": wh}
        )
    return i


def _find_backwards(times: list[dt.datetime], samples) -> None:
    regs = [e for _t, e in samples]
    for i in range(1, len(times)):
        if times[i] < times[i - 1] or (times[i] == times[i - 1] and regs[i] != regs[i - 1]):
            raise TimeReversed(
                _("Meter sample times go backwards at %(time)s: a stop before its start?")
                % {"time": samples[i][0].isoformat()}
            )
        if regs[i] < regs[i - 1]:
            if regs[i] < 0:
                raise NegativeEnergy(_("An energy register cannot be negative."))
            raise RegisterBackwards(
                _("The energy register goes backwards at %(time)s (%(before)s → %(after)s Wh).")
                % {
                    "time": samples[i][0].isoformat(),
                    "before": samples[i - 1][1],
                    "after": samples[i][1],
                }
            )


def _tariff_missing(at_us: int, zone: ZoneInfo):
    at = dt.datetime.fromtimestamp(at_us // US, tz=zone)
    raise TariffMissing(
        _("No tariff is in force at %(time)s (station time); the bill needs one.")
        % {"time": at.strftime("%Y-%m-%d %H:%M:%S")}
    )


def _too_many_segments(start: int, end: int, zone: ZoneInfo):
    def local(us: int) -> str:
        return dt.datetime.fromtimestamp(us // US, tz=zone).strftime("%Y-%m-%d %H:%M:%S")

    raise TooManySegments(
        _(
            "Not priced: the session runs from %(start)s to %(end)s (station time), longer "
            "than the %(days)s days the pricing engine prices."
        )
        % {"start": local(start), "end": local(end), "days": MAX_SEGMENTS // SLOTS_PER_DAY}
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
    # Bounded before walking: a segment per half hour begun, plus one per version change.
    changes = sum(1 for f in froms if start < f < end)
    if -((start - end) // (SLOT_SECONDS * US)) + changes > MAX_SEGMENTS:
        _too_many_segments(start, end, zone)
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
    rounding: str | None = None,
) -> Pricing:
    """Price one session. ``samples`` are (aware time, energy register Wh) in time order;
    ``tariffs`` the versions for the pile's current type, oldest first; ``zone`` the
    station's time zone; ``rounding`` the operator's mode (None: money.py's configured
    default). Raises a `PricingError` subclass (nothing is priced) on a register going
    backwards, negative energy, time going backwards or no tariff in force."""
    mode = rounding_mode(rounding)
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    if not samples:
        raise PricingError(_("A session needs at least one meter sample to be priced."))
    times, energies = _check_samples(samples)
    first, last = _us(times[0]), _us(times[-1])
    first_mwh, last_mwh = _mwh(energies[0]), _mwh(energies[-1])
    segments = _segments(first, last, tariffs, zone)

    # Energy in a segment = the register, interpolated linearly in time between samples,
    # at its end minus at its start. That is the proportional split, done once per
    # segment boundary instead of once per sample pair; exact (a Fraction only where a
    # boundary falls between two samples). Only the samples around a boundary are read.
    def register_at(t: int) -> int | Fraction:
        i = bisect_left(times, _EPOCH + dt.timedelta(microseconds=t))
        t1, r1 = _us(times[i]), _mwh(energies[i])
        if t1 == t:
            return r1
        t0, r0 = _us(times[i - 1]), _mwh(energies[i - 1])
        return r0 + Fraction((r1 - r0) * (t - t0), t1 - t0)

    energy: dict[tuple[int, int], int | Fraction] = {}
    seg_start, reg_start = first, first_mwh
    for seg_end, key in segments:
        reg_end = last_mwh if seg_end >= last else register_at(seg_end)
        if seg_end > seg_start:
            energy[key] = energy.get(key, 0) + (reg_end - reg_start)
        seg_start, reg_start = seg_end, reg_end
    keys = [k for k in sorted(energy) if energy[k]]
    # Integers from here on: energies over a common denominator, prices in 0.00001 yuan.
    denominator = lcm(*(energy[k].denominator for k in keys)) if keys else 1
    scaled = [energy[k].numerator * (denominator // energy[k].denominator) for k in keys]
    energy_total = last_mwh - first_mwh
    shown_mwh = allocate_units(energy_total, scaled)

    cells: list[int] = []  # in yuan / (denominator × 10^11): mWh × 0.00001 yuan/kWh
    for k, e in zip(keys, scaled, strict=True):
        electricity, service = tariffs[k[0]].price_units[k[1]]
        cells.append(e * electricity)
        cells.append(e * service)
    unit = denominator * _CELL_UNITS_PER_YUAN
    exact_total = Fraction(sum(cells), unit)
    total = to_fen(exact_total, rounding=mode)
    # Each cell its exact amount rounded down to the fen, the fen left to the total to the
    # largest remainders: every cell within a fen of what a driver recomputes.
    fees = [
        fen_to_yuan(f)
        for f in allocate_by_floor(int(total * 100), [Fraction(c * 100, unit) for c in cells])
    ]

    lines = []
    for n, k in enumerate(keys):
        spec = tariffs[k[0]]
        p = spec.prices[k[1]]
        lines.append(
            PricedLine(
                version_id=spec.version_id,
                period=k[1],
                energy_wh=Decimal(shown_mwh[n]).scaleb(-3),
                electricity_price=p.electricity,
                service_price=p.service,
                electricity_fee=fees[2 * n],
                service_fee=fees[2 * n + 1],
                exact_energy_wh=Fraction(scaled[n], denominator * 1000),
                exact_amount=Fraction(cells[2 * n] + cells[2 * n + 1], unit),
            )
        )
    return Pricing(
        energy_wh=Decimal(energy_total).scaleb(-3),
        lines=tuple(lines),
        electricity_fee=sum(fees[0::2], Decimal("0.00")),
        service_fee=sum(fees[1::2], Decimal("0.00")),
        total=total,
        exact_total=exact_total,
        rounding=mode,
    )


def period_segments(
    *, start: dt.datetime, end: dt.datetime, tariffs: Sequence[TariffSpec], zone: ZoneInfo | str
) -> list[tuple[dt.datetime, dt.datetime, int | None, int]]:
    """(from, to, version id, period) stretches between ``start`` and ``end``, as the
    engine cuts them (for charts). Raises `TariffMissing` like pricing does."""
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    first, last = _us(start), _us(end)
    out = []
    cursor = first
    for seg_end, (vkey, period) in _segments(first, last, tariffs, zone):
        out.append(
            (
                _EPOCH + dt.timedelta(microseconds=cursor),
                _EPOCH + dt.timedelta(microseconds=seg_end),
                tariffs[vkey].version_id,
                period,
            )
        )
        cursor = seg_end
    return out
