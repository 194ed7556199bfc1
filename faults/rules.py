"""The anomaly rules: pure functions over what is known of one session.

Nothing here touches the database. `faults.facts` gathers a `SessionFacts` from the tables
(samples, status history, offline records, boots); `detect` runs every rule and returns one
`Finding` per code, each with the reasons that made it fire, so customer service reads
*why* a bill is a fault, not just a number.

Two clocks meet here and are never mixed inside one figure:
- the pile's clock: StartTransaction/StopTransaction timestamps, status ``pile_time``;
- the platform's (gateway) clock: when a message was received, status ``received_at``.
"Pile values" are what the pile says; "platform values" are what the platform saw itself
(meter samples, status history). Codes 8/9/10 compare the two like with like.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import NamedTuple

from django.utils.translation import gettext_lazy as _

from chargenet.money import METER_STOP_RESOLUTION_WH

from .codes import FaultCode

# A connector in one of these states is in a session: charging, or plugged in and paused
# (SuspendedEV is "full, still plugged", 满电占桩 — still the same session until stopped).
IN_SESSION = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
CHARGING = "Charging"
# Plugged in: occupying the bay, whether a transaction runs or not.
OCCUPIED = IN_SESSION | {"Preparing", "Finishing"}
AVAILABLE = "Available"


@dataclass(frozen=True)
class Thresholds:
    """Operator-tunable limits (see `faults.models.FaultSettings` for the stored defaults)."""

    max_silence: dt.timedelta = dt.timedelta(minutes=30)
    clock_skew: dt.timedelta = dt.timedelta(minutes=10)
    max_duration: dt.timedelta = dt.timedelta(hours=24)
    energy_tolerance_wh: Decimal = Decimal(500)
    energy_tolerance_ratio: Decimal = Decimal("0.05")
    charging_time_tolerance: dt.timedelta = dt.timedelta(minutes=10)
    occupancy_tolerance: dt.timedelta = dt.timedelta(minutes=15)
    min_charging_for_energy: dt.timedelta = dt.timedelta(minutes=5)
    # Energy beyond power × duration × this ratio + the allowance below is not physical.
    power_tolerance_ratio: Decimal = Decimal("1.2")
    power_tolerance_wh: Decimal = Decimal(100)


class Sample(NamedTuple):
    # A tuple, not a dataclass: a settlement batch builds ~100 per session, and pricing
    # reads (at, energy_wh) from it as the pair it takes.
    at: dt.datetime
    energy_wh: Decimal | None
    power_w: Decimal | None = None


@dataclass(frozen=True)
class StatusChange:
    received_at: dt.datetime
    status: str
    pile_time: dt.datetime | None = None


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    end: dt.datetime | None = None

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        return self.start <= end and (self.end is None or self.end >= start)


@dataclass(frozen=True)
class SessionFacts:
    """Everything the rules may look at for one session. Times are aware datetimes."""

    started_at: dt.datetime  # pile clock
    start_received_at: dt.datetime  # platform clock
    meter_start_wh: Decimal
    now: dt.datetime
    stopped_at: dt.datetime | None = None  # pile clock; None while the stop never came
    stop_received_at: dt.datetime | None = None
    meter_stop_wh: Decimal | None = None
    samples: tuple[Sample, ...] = ()
    # The connector's status history around the session, the last one before the start
    # included (it says when the car was plugged in).
    statuses: tuple[StatusChange, ...] = ()
    offline: tuple[Period, ...] = ()
    boots: tuple[dt.datetime, ...] = ()  # BootNotifications received after the start
    next_start_received_at: dt.datetime | None = None  # a later transaction, same connector
    pile_charging_seconds: int | None = None  # when the pile reports its own figure
    pile_occupancy_seconds: int | None = None
    max_power_w: Decimal | None = None  # the pile's rated maximum, bounds unseen energy
    connector_power_w: Decimal | None = None  # the connector's rated power
    # False once the platform closed the session without a StopTransaction (superseded
    # by a new transaction, or swept as lost): the stop is known to be missing.
    active: bool = True
    zone: dt.tzinfo = dt.UTC  # the station's zone, for the explanations only

    def __post_init__(self) -> None:
        # Sorted once here, so the rules never re-sort (the sweep runs them by thousands).
        samples = tuple(
            sorted((s for s in self.samples if s.energy_wh is not None), key=itemgetter(0))
        )
        object.__setattr__(self, "energy_samples", samples)
        object.__setattr__(
            self, "statuses", tuple(sorted(self.statuses, key=lambda s: s.received_at))
        )


@dataclass(frozen=True)
class Reason:
    key: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    code: FaultCode
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Values:
    """One side of the side-by-side comparison (pile or platform)."""

    start: dt.datetime | None
    end: dt.datetime | None
    duration: dt.timedelta | None
    charging_time: dt.timedelta | None
    energy_wh: Decimal | None
    occupancy: dt.timedelta | None


@dataclass(frozen=True)
class Proposal:
    """A draft for a lost bill: where the session most likely ended, and its energy."""

    stopped_at: dt.datetime
    meter_stop_wh: Decimal
    energy_wh: Decimal
    basis: Reason


REASONS = {
    "connector_available": _(
        "The connector went back to Available at %(at)s but no StopTransaction arrived."
    ),
    "pile_rebooted": _("The pile rebooted at %(at)s during the session."),
    "new_transaction": _("A new transaction started on the same connector at %(at)s."),
    "silent": _("No meter values for %(minutes)s minutes (since %(at)s)."),
    "offline": _("The pile was offline from %(at)s."),
    "closed_without_stop": _("The session was closed without a StopTransaction from the pile."),
    "stop_before_start": _("The pile's stop time %(stop)s is before its start time %(start)s."),
    "start_in_future": _(
        "The pile's start time %(pile)s is %(minutes)s minutes ahead of the platform's "
        "clock (%(platform)s)."
    ),
    "stop_in_future": _(
        "The pile's stop time %(pile)s is %(minutes)s minutes ahead of the platform's "
        "clock (%(platform)s)."
    ),
    "start_clock_behind": _(
        "The pile's start time %(pile)s is %(minutes)s minutes behind the platform's clock "
        "(%(platform)s) and the pile was neither offline nor rebooted in between."
    ),
    "stop_clock_behind": _(
        "The pile's stop time %(pile)s is %(minutes)s minutes behind the platform's clock "
        "(%(platform)s) and the pile was neither offline nor rebooted in between."
    ),
    "zero_duration": _("The pile reported a session of zero duration."),
    "not_priced_future": _(
        "Not priced: the pile's time %(pile)s is more than %(max)s hours later than the "
        "platform received it (%(platform)s)."
    ),
    "not_priced_too_early": _(
        "Not priced: the pile's time %(pile)s is before %(earliest)s, when no pile could "
        "have charged on this platform."
    ),
    "not_priced_too_long": _(
        "Not priced: the session would last %(hours)s hours, more than the maximum of "
        "%(max)s hours."
    ),
    "too_long": _("The session lasted %(hours)s hours, more than the maximum of %(max)s hours."),
    "energy_mismatch": _(
        "The pile reported %(pile)s Wh, the platform's meter samples show %(platform)s Wh "
        "(difference %(diff)s Wh, tolerance %(tolerance)s Wh)."
    ),
    "charging_time_mismatch": _(
        "The pile reported %(pile)s minutes of charging, the platform's status history shows "
        "%(platform)s minutes (tolerance %(tolerance)s minutes)."
    ),
    "occupancy_mismatch": _(
        "The pile's occupancy is %(pile)s minutes, the platform's status history shows "
        "%(platform)s minutes (tolerance %(tolerance)s minutes)."
    ),
    "register_backwards": _(
        "The energy register went backwards at %(at)s: from %(before)s Wh to %(after)s Wh."
    ),
    "samples_after_stop": _(
        "Samples after the stop: the pile kept metering after its stop at %(stop)s "
        "(%(stop_wh)s Wh); its sample at %(at)s reads %(after)s Wh."
    ),
    "energy_beyond_power": _(
        "%(energy)s Wh in %(minutes)s minutes is more than the connector's %(kw)s kW can "
        "deliver (at most %(limit)s Wh with the tolerance)."
    ),
    "zero_energy_while_charging": _(
        "The pile reported zero energy while the connector was charging for %(minutes)s minutes."
    ),
    "tariff_missing": _("No tariff was in force for this station at %(at)s."),
    "partner_order_unacknowledged": _(
        "Partner %(partner)s did not acknowledge order %(order)s: %(attempts)s attempts until "
        "%(until)s (last error: %(error)s)."
    ),
    "partner_order_disputed": _(
        "Partner %(partner)s disputed order %(order)s (confirmation %(result)s)."
    ),
    "partner_reconciliation_dispute": _(
        "Partner %(partner)s disputes order %(order)s in the reconciliation of %(day)s: it "
        "counts %(power)s kWh and %(money)s yuan (reason %(reason)s)."
    ),
    # The pricing engine's own message, already in words a user understands.
    "pricing_error": "%(message)s",
    "proposal_from_status": _(
        "Stop proposed at %(at)s, when the connector left the session (status %(status)s); "
        "energy from the last meter sample before it."
    ),
    "proposal_from_offline": _(
        "Stop proposed at %(at)s, when the pile went offline; energy from the last meter "
        "sample before it."
    ),
    "proposal_from_sample": _("Stop and energy proposed from the last meter sample at %(at)s."),
    "proposal_from_start": _(
        "No meter sample or status after the start: stop proposed at the start, energy zero."
    ),
}


def explain(reason: Reason) -> str:
    """The reason in the active language."""
    template = REASONS.get(reason.key)
    if template is None:
        return reason.key
    return str(template) % reason.params


# --- small helpers -------------------------------------------------------------------


def _fmt(moment: dt.datetime, zone: dt.tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _minutes(delta: dt.timedelta) -> str:
    return str((Decimal(int(delta.total_seconds())) / 60).quantize(Decimal("0.1")))


def _ordered_samples(facts: SessionFacts) -> tuple[Sample, ...]:
    """The samples with an energy reading, in time order."""
    return facts.energy_samples


def _ordered_statuses(facts: SessionFacts) -> tuple[StatusChange, ...]:
    return facts.statuses


def status_intervals(
    statuses: Iterable[StatusChange], start: dt.datetime, end: dt.datetime
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """The connector's states as (status, from, to) intervals clipped to [start, end],
    by the platform's clock. The last status before ``start`` holds from ``start``."""
    ordered = list(statuses)  # in received order (SessionFacts sorts them)
    intervals = []
    for i, change in enumerate(ordered):
        begin = max(change.received_at, start)
        until = ordered[i + 1].received_at if i + 1 < len(ordered) else end
        until = min(until, end)
        if until > begin:
            intervals.append((change.status, begin, until))
    return intervals


def _platform_end(facts: SessionFacts) -> dt.datetime:
    return facts.stop_received_at or facts.now


def platform_charging_time(facts: SessionFacts, states=IN_SESSION) -> dt.timedelta | None:
    """Time the platform saw the connector in ``states`` between start and stop."""
    if not facts.statuses:
        return None
    total = dt.timedelta(0)
    for status, begin, until in status_intervals(
        facts.statuses, facts.start_received_at, _platform_end(facts)
    ):
        if status in states:
            total += until - begin
    return total


def _occupancy(changes: list[tuple[dt.datetime, str]], start: dt.datetime) -> dt.timedelta | None:
    """From plug-in (the last non-occupied → occupied move at or before ``start``) to the
    first Available after it."""
    plugged = None
    for at, status in changes:
        if at <= start:
            if status in OCCUPIED and plugged is None:
                plugged = at
            elif status not in OCCUPIED:
                plugged = None
            continue
        if plugged is None:
            plugged = start
        if status == AVAILABLE:
            return at - plugged
    return None


def platform_occupancy(facts: SessionFacts) -> dt.timedelta | None:
    changes = [(s.received_at, s.status) for s in _ordered_statuses(facts)]
    return _occupancy(changes, facts.start_received_at)


def pile_occupancy(facts: SessionFacts) -> dt.timedelta | None:
    if facts.pile_occupancy_seconds is not None:
        return dt.timedelta(seconds=facts.pile_occupancy_seconds)
    statuses = _ordered_statuses(facts)
    if not statuses or any(s.pile_time is None for s in statuses):
        return None
    changes = sorted((s.pile_time, s.status) for s in statuses)
    return _occupancy(changes, facts.started_at)


def platform_energy_wh(facts: SessionFacts) -> Decimal | None:
    """Energy from the platform's own samples: last register seen minus the start."""
    samples = [s for s in _ordered_samples(facts) if s.at >= facts.started_at]
    if facts.stopped_at is not None:
        samples = [s for s in samples if s.at <= max(facts.stopped_at, facts.started_at)]
    if not samples:
        return None
    return samples[-1].energy_wh - facts.meter_start_wh


def pile_values(facts: SessionFacts) -> Values:
    duration = facts.stopped_at - facts.started_at if facts.stopped_at else None
    if facts.pile_charging_seconds is not None:
        charging = dt.timedelta(seconds=facts.pile_charging_seconds)
    else:
        charging = duration
    energy = None
    if facts.meter_stop_wh is not None:
        energy = facts.meter_stop_wh - facts.meter_start_wh
    return Values(
        start=facts.started_at,
        end=facts.stopped_at,
        duration=duration,
        charging_time=charging,
        energy_wh=energy,
        occupancy=pile_occupancy(facts),
    )


def platform_values(facts: SessionFacts) -> Values:
    end = facts.stop_received_at
    return Values(
        start=facts.start_received_at,
        end=end,
        duration=end - facts.start_received_at if end else None,
        charging_time=platform_charging_time(facts),
        energy_wh=platform_energy_wh(facts),
        occupancy=platform_occupancy(facts),
    )


def _offline_between(facts: SessionFacts, start: dt.datetime, end: dt.datetime) -> Period | None:
    for period in sorted(facts.offline, key=lambda p: p.start):
        if period.overlaps(start, end):
            return period
    return None


# --- the rules -----------------------------------------------------------------------


def rule_bill_lost(facts: SessionFacts, limits: Thresholds) -> list[Finding]:
    """1 (or 2 when the pile was offline then): the stop never came and the session is
    evidently over."""
    if facts.stopped_at is not None:
        return []
    zone = facts.zone
    triggers: list[tuple[dt.datetime, Reason]] = []
    for change in _ordered_statuses(facts):
        if change.received_at > facts.start_received_at and change.status == AVAILABLE:
            at = change.received_at
            triggers.append((at, Reason("connector_available", {"at": _fmt(at, zone)})))
            break
    for boot in sorted(facts.boots):
        if boot > facts.start_received_at:
            triggers.append((boot, Reason("pile_rebooted", {"at": _fmt(boot, zone)})))
            break
    if facts.next_start_received_at and facts.next_start_received_at > facts.start_received_at:
        at = facts.next_start_received_at
        triggers.append((at, Reason("new_transaction", {"at": _fmt(at, zone)})))
    samples = _ordered_samples(facts)
    last_activity = max([facts.start_received_at] + [s.at for s in samples[-1:]])
    if facts.now - last_activity > limits.max_silence:
        triggers.append(
            (
                last_activity + limits.max_silence,
                Reason(
                    "silent",
                    {
                        "minutes": _minutes(facts.now - last_activity),
                        "at": _fmt(last_activity, zone),
                    },
                ),
            )
        )
    if not triggers and not facts.active:
        triggers.append((facts.now, Reason("closed_without_stop")))
    if not triggers:
        return []
    triggers.sort(key=lambda t: t[0])
    reasons = [reason for _at, reason in triggers]
    offline = _offline_between(facts, last_activity, triggers[0][0])
    if offline is not None:
        reasons.append(Reason("offline", {"at": _fmt(offline.start, zone)}))
        return [Finding(FaultCode.BILL_LOST_OFFLINE, tuple(reasons))]
    return [Finding(FaultCode.BILL_LOST, tuple(reasons))]


def _clock_reasons(
    facts: SessionFacts, limits: Thresholds, which: str, pile: dt.datetime, platform: dt.datetime
) -> list[Reason]:
    zone = facts.zone
    params = {"pile": _fmt(pile, zone), "platform": _fmt(platform, zone)}
    if pile - platform > limits.clock_skew:
        return [Reason(f"{which}_in_future", {**params, "minutes": _minutes(pile - platform)})]
    # Late delivery is normal after an offline period or a reboot (the pile queues its
    # transaction messages and sends them when it is back).
    explained = _offline_between(facts, pile, platform) is not None or any(
        pile <= boot <= platform for boot in facts.boots
    )
    if platform - pile > limits.clock_skew and not explained:
        return [Reason(f"{which}_clock_behind", {**params, "minutes": _minutes(platform - pile)})]
    return []


def rule_time(facts: SessionFacts, limits: Thresholds) -> list[Finding]:
    """3: end before start, a pile timestamp far from the gateway's clock or in the future."""
    reasons: list[Reason] = []
    if facts.stopped_at is not None and facts.stopped_at < facts.started_at:
        reasons.append(
            Reason(
                "stop_before_start",
                {
                    "stop": _fmt(facts.stopped_at, facts.zone),
                    "start": _fmt(facts.started_at, facts.zone),
                },
            )
        )
    reasons += _clock_reasons(facts, limits, "start", facts.started_at, facts.start_received_at)
    if facts.stopped_at is not None and facts.stop_received_at is not None:
        reasons += _clock_reasons(facts, limits, "stop", facts.stopped_at, facts.stop_received_at)
    return [Finding(FaultCode.TIME_ANOMALY, tuple(reasons))] if reasons else []


# No session on this platform starts before this (OCPP 1.6, the piles' protocol, is of 2015):
# an earlier pile time is a clock that was never set.
EARLIEST_SESSION = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)


def _hours(delta: dt.timedelta) -> str:
    return str((Decimal(int(delta.total_seconds())) / 3600).quantize(Decimal("0.1")))


def implausible_times(
    facts: SessionFacts, limits: Thresholds, *, start: dt.datetime, end: dt.datetime
) -> list[Finding]:
    """Decided BEFORE pricing: is the span pricing would walk (``start``–``end``: the first
    and last meter reading it would price) one no real session has? Later than the platform
    received it by more than the operator's maximum duration (a clock only minutes ahead is
    still priced, and a time anomaly by `rule_time`), before `EARLIEST_SESSION`, or longer
    than that maximum. Then the session is not priced (it could make
    the engine walk centuries of half hours) and becomes a fault bill: 3 for the times,
    5 for the duration, each reason saying it was not priced and why."""
    zone = facts.zone
    received = max(facts.stop_received_at or facts.now, facts.start_received_at)
    max_hours = _num(Decimal(int(limits.max_duration.total_seconds())) / 3600)
    times: list[Reason] = []
    for moment in dict.fromkeys((start, end)):
        params = {"pile": _fmt(moment, zone)}
        if moment - received > limits.max_duration:
            params |= {"platform": _fmt(received, zone), "max": max_hours}
            times.append(Reason("not_priced_future", params))
        elif moment < EARLIEST_SESSION:
            times.append(
                Reason("not_priced_too_early", {**params, "earliest": _fmt(EARLIEST_SESSION, zone)})
            )
    findings = [Finding(FaultCode.TIME_ANOMALY, tuple(times))] if times else []
    if end - start > limits.max_duration:
        params = {"hours": _hours(end - start), "max": max_hours}
        findings.append(
            Finding(FaultCode.DURATION_ANOMALY, (Reason("not_priced_too_long", params),))
        )
    return findings


def rule_duration(facts: SessionFacts, limits: Thresholds) -> list[Finding]:
    """5: zero, or longer than the operator's maximum (negative is a time anomaly)."""
    if facts.stopped_at is None:
        return []
    duration = facts.stopped_at - facts.started_at
    if duration == dt.timedelta(0):
        return [Finding(FaultCode.DURATION_ANOMALY, (Reason("zero_duration"),))]
    if duration > limits.max_duration:
        max_hours = Decimal(int(limits.max_duration.total_seconds())) / 3600
        return [
            Finding(
                FaultCode.DURATION_ANOMALY,
                (Reason("too_long", {"hours": _hours(duration), "max": _num(max_hours)}),),
            )
        ]
    return []


def rule_energy_mismatch(facts: SessionFacts, limits: Thresholds) -> list[Finding]:
    """8: the pile's energy differs from the platform's meter samples beyond tolerance."""
    pile = pile_values(facts).energy_wh
    platform = platform_energy_wh(facts)
    if pile is None or platform is None or _register_backwards(facts):
        # A register that went backwards is energy lost (11); comparing it says nothing more.
        return []
    tolerance = max(limits.energy_tolerance_wh, limits.energy_tolerance_ratio * max(pile, platform))
    diff = abs(pile - platform)
    if diff <= tolerance:
        return []
    last = max(s.at for s in _ordered_samples(facts) if s.at >= facts.started_at)
    gap = (facts.stopped_at or facts.now) - last
    if pile > platform and gap > limits.charging_time_tolerance:
        # The samples stop well before the stop: the pile may have delivered more since.
        # Only more than the pile's power could deliver in that gap is a mismatch.
        if facts.max_power_w is None:
            return []
        possible = facts.max_power_w * Decimal(int(gap.total_seconds())) / 3600
        if pile - platform <= possible + tolerance:
            return []
    params = {
        "pile": _num(pile),
        "platform": _num(platform),
        "diff": _num(diff),
        "tolerance": _num(tolerance),
    }
    return [Finding(FaultCode.ENERGY_MISMATCH, (Reason("energy_mismatch", params),))]


def rule_charging_time(facts: SessionFacts, limits: Thresholds) -> list[Finding]:
    """9: the pile's charging time differs from the platform's status history."""
    pile = pile_values(facts).charging_time
    platform = platform_charging_time(facts)
    if pile is None or platform is None or pile < dt.timedelta(0):
        return []
    if abs(pile - platform) <= limits.charging_time_tolerance:
        return []
    params = {
        "pile": _minutes(pile),
        "platform": _minutes(platform),
        "tolerance": _minutes(limits.charging_time_tolerance),
    }
    return [Finding(FaultCode.DURATION_MISMATCH, (Reason("charging_time_mismatch", params),))]


def rule_occupancy(facts: SessionFacts, limits: Thresholds) -> list[Finding]:
    """10: occupancy by the pile's account differs from the platform's (amount unaffected)."""
    pile = pile_occupancy(facts)
    platform = platform_occupancy(facts)
    if pile is None or platform is None:
        return []
    if abs(pile - platform) <= limits.occupancy_tolerance:
        return []
    params = {
        "pile": _minutes(pile),
        "platform": _minutes(platform),
        "tolerance": _minutes(limits.occupancy_tolerance),
    }
    return [Finding(FaultCode.OCCUPANCY_MISMATCH, (Reason("occupancy_mismatch", params),))]


def _stop_register_below(previous: Decimal, stop: Decimal) -> bool:
    # A stop less than a Wh below the sample before it is that reading sent as whole Wh.
    return previous - stop >= METER_STOP_RESOLUTION_WH


def _register_backwards(facts: SessionFacts) -> tuple[dt.datetime, Decimal, Decimal] | None:
    """Where the energy register first went down (time, before, after), if it did, up to
    the stop: samples after it are `_samples_after_stop`."""
    readings = [(s.at, s.energy_wh) for s in _before_stop(facts)]
    previous = facts.meter_start_wh
    for at, energy in readings:
        if energy < previous:
            return at, previous, energy
        previous = energy
    if facts.meter_stop_wh is not None and _stop_register_below(previous, facts.meter_stop_wh):
        # The stop register is the last reading, whatever the pile's stop clock says.
        return facts.stopped_at or facts.now, previous, facts.meter_stop_wh
    return None


def _before_stop(facts: SessionFacts) -> list[Sample]:
    return [
        s
        for s in _ordered_samples(facts)
        if s.at >= facts.started_at and (facts.stopped_at is None or s.at <= facts.stopped_at)
    ]


def _samples_after_stop(facts: SessionFacts) -> Sample | None:
    """The first sample stamped after the stop with clearly more energy (a Wh or more) than
    the stop register: the pile kept metering. Less is the same reading (a sample a few
    hundred ms after the stop, with decimals the whole-Wh stop does not carry)."""
    if facts.stopped_at is None or facts.meter_stop_wh is None:
        return None
    ceiling = facts.meter_stop_wh + METER_STOP_RESOLUTION_WH
    for s in _ordered_samples(facts):
        if s.at > facts.stopped_at and s.energy_wh >= ceiling:
            return s
    return None


def rule_energy_lost(facts: SessionFacts, limits: Thresholds) -> list[Finding]:
    """11: the register went backwards (a reset), the pile kept metering after its stop,
    or zero energy while the status history says the connector was charging."""
    zone = facts.zone
    reasons: list[Reason] = []
    backwards = _register_backwards(facts)
    if backwards is not None:
        at, before, after = backwards
        params = {"at": _fmt(at, zone), "before": _num(before), "after": _num(after)}
        reasons.append(Reason("register_backwards", params))
    after = _samples_after_stop(facts)
    if after is not None:
        params = {
            "stop": _fmt(facts.stopped_at, zone),
            "stop_wh": _num(facts.meter_stop_wh),
            "at": _fmt(after.at, zone),
            "after": _num(after.energy_wh),
        }
        reasons.append(Reason("samples_after_stop", params))
    pile_energy = pile_values(facts).energy_wh
    charging = platform_charging_time(facts, states={CHARGING})
    if pile_energy == 0 and charging is not None and charging >= limits.min_charging_for_energy:
        reasons.append(Reason("zero_energy_while_charging", {"minutes": _minutes(charging)}))
    return [Finding(FaultCode.ENERGY_LOST, tuple(reasons))] if reasons else []


def rule_energy_beyond_power(facts: SessionFacts, limits: Thresholds) -> list[Finding]:
    """13: more energy than the connector (or the pile, when smaller or the only one
    known) can deliver in the session's time: never charged (a meter or firmware fault;
    250 kWh in 20 s on a 7 kW pile). The time is the longer of the pile's and the
    platform's accounts, the energy the larger of the pile's and the samples'."""
    powers = [p for p in (facts.connector_power_w, facts.max_power_w) if p]
    if facts.stopped_at is None or not powers:
        return []
    energies = [e for e in (pile_values(facts).energy_wh, platform_energy_wh(facts)) if e]
    durations = [facts.stopped_at - facts.started_at]
    if facts.stop_received_at is not None:
        durations.append(facts.stop_received_at - facts.start_received_at)
    duration = max(max(durations), dt.timedelta(0))
    if not energies:
        return []
    power, energy = min(powers), max(energies)
    seconds = Decimal(int(duration.total_seconds()))
    limit = power * seconds / 3600 * limits.power_tolerance_ratio + limits.power_tolerance_wh
    if energy <= limit:
        return []
    params = {
        "energy": _num(energy),
        "minutes": _minutes(duration),
        "kw": _num(power / 1000),
        "limit": _num(limit.quantize(Decimal("0.001"))),
    }
    return [Finding(FaultCode.ENERGY_IMPLAUSIBLE, (Reason("energy_beyond_power", params),))]


RULES = (
    rule_bill_lost,
    rule_time,
    rule_duration,
    rule_energy_mismatch,
    rule_charging_time,
    rule_occupancy,
    rule_energy_lost,
    rule_energy_beyond_power,
)


def detect(facts: SessionFacts, limits: Thresholds | None = None) -> list[Finding]:
    """Every rule over ``facts``; one finding per code, ordered by code."""
    limits = limits or Thresholds()
    findings: list[Finding] = []
    for rule in RULES:
        findings += rule(facts, limits)
    return sorted(findings, key=lambda f: f.code)


def propose_lost_bill(facts: SessionFacts) -> Proposal:
    """A draft stop and energy for a session whose StopTransaction never came.

    The stop is when the connector left the session by the status history (Finishing,
    Available, …), or when the pile went offline, whichever came first; failing both, the
    last meter sample. The energy is the last register read at or before that stop (never
    below the start register)."""
    zone = facts.zone
    candidates: list[tuple[dt.datetime, Reason]] = []
    in_session = False
    for change in _ordered_statuses(facts):
        if change.received_at < facts.start_received_at:
            in_session = change.status in IN_SESSION
            continue
        if change.status in IN_SESSION:
            in_session = True
        elif in_session or change.status == AVAILABLE:
            at = change.received_at
            candidates.append(
                (
                    at,
                    Reason("proposal_from_status", {"at": _fmt(at, zone), "status": change.status}),
                )
            )
            break
    for period in sorted(facts.offline, key=lambda p: p.start):
        if period.start >= facts.start_received_at:
            at = period.start
            candidates.append((at, Reason("proposal_from_offline", {"at": _fmt(at, zone)})))
            break
    samples = [s for s in _ordered_samples(facts) if s.at >= facts.started_at]
    if candidates:
        stop, basis = min(candidates, key=lambda c: c[0])
        before = [s for s in samples if s.at <= stop]
    elif samples:
        stop = samples[-1].at
        basis = Reason("proposal_from_sample", {"at": _fmt(stop, zone)})
        before = samples
    else:
        stop, basis, before = facts.started_at, Reason("proposal_from_start"), []
    register = max([facts.meter_start_wh] + [s.energy_wh for s in before[-1:]])
    return Proposal(
        stopped_at=stop,
        meter_stop_wh=register,
        energy_wh=register - facts.meter_start_wh,
        basis=basis,
    )
