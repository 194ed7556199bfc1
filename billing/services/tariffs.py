"""Tariff writes: plans, versions (immutable once billed), station assignments."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import Conflict, DomainError
from chargenet.events import event_publish
from chargenet.money import price

from ..events import STATION_TARIFF_CHANGED
from ..models import StationTariff, TariffPlan, TariffPrice, TariffVersion

CURRENT_TYPES = ("AC", "DC")
SLOT_MINUTES = 30


class TariffError(DomainError):
    code = "tariff_invalid"


class ScheduleError(TariffError):
    code = "tariff_schedule_invalid"


class TariffVersionInUse(Conflict):
    code = "tariff_version_in_use"


def _tariff_changed(*, station_ids, effective_from: dt.datetime, key: object) -> None:
    """Tell whoever holds something derived from these stations' tariff (piles' time-of-use
    power caps, YKC piles' billing models) that it changes at ``effective_from``."""
    station_ids = sorted(set(station_ids))
    if station_ids:
        event_publish(
            kind=STATION_TARIFF_CHANGED,
            key=key,
            payload={"station_ids": station_ids, "effective_from": effective_from.isoformat()},
        )


def _plan_station_ids(plan: TariffPlan) -> list[int]:
    """Stations assigned ``plan`` at some time (those that left it since recompute the
    same derived values from the tariff in force, which is harmless)."""
    return list(StationTariff.objects.filter(plan=plan).values_list("station_id", flat=True))


@dataclass(frozen=True)
class PeriodPrices:
    """Electricity and service price of one period, yuan/kWh (≤ 5 decimals)."""

    electricity: Decimal
    service: Decimal


# {"AC": [p0, p1, p2, p3], "DC": [p0, p1, p2, p3]}
Prices = Mapping[str, Sequence[PeriodPrices]]


def _minutes(text: str) -> int:
    try:
        hours, minutes = (int(x) for x in text.split(":"))
    except ValueError:
        raise ScheduleError(
            _("“%(time)s” is not a time of day such as 08:00.") % {"time": text}
        ) from None
    if not (0 <= hours <= 24 and minutes in (0, 30)) or (hours == 24 and minutes):
        raise ScheduleError(
            _("%(time)s: schedule times are on the hour or half hour, 00:00 to 24:00.")
            % {"time": text}
        )
    return hours * 60 + minutes


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def schedule_from_ranges(ranges: Sequence[tuple[str, str, int]]) -> str:
    """[("00:00", "08:00", 3), ("08:00", "14:00", 2), …] → the 48-digit schedule.

    Ranges are [start, end) local times; "24:00" ends the day. The day must be covered
    exactly once: a gap or an overlap is rejected naming the time where it happens.
    """
    slots: list[int | None] = [None] * 48
    for start_text, end_text, period in ranges:
        if period not in (0, 1, 2, 3):
            raise ScheduleError(
                _("A period is 0 (sharp) to 3 (valley); got %(p)s.") % {"p": period}
            )
        start, end = _minutes(start_text), _minutes(end_text)
        if end <= start:
            raise ScheduleError(
                _("%(start)s–%(end)s: a range ends after it starts (use 24:00 for midnight).")
                % {"start": start_text, "end": end_text}
            )
        for slot in range(start // SLOT_MINUTES, end // SLOT_MINUTES):
            if slots[slot] is not None:
                raise ScheduleError(
                    _("The schedule overlaps at %(time)s: two ranges cover it.")
                    % {"time": _hhmm(slot * SLOT_MINUTES)}
                )
            slots[slot] = period
    for slot, period in enumerate(slots):
        if period is None:
            raise ScheduleError(
                _("The schedule has a gap at %(time)s: every half hour needs a period.")
                % {"time": _hhmm(slot * SLOT_MINUTES)}
            )
    return "".join(str(p) for p in slots)


def schedule_to_ranges(schedule: str) -> list[tuple[str, str, int]]:
    ranges: list[tuple[str, str, int]] = []
    start = 0
    for slot in range(1, 49):
        if slot == 48 or schedule[slot] != schedule[start]:
            ranges.append(
                (_hhmm(start * SLOT_MINUTES), _hhmm(slot * SLOT_MINUTES), int(schedule[start]))
            )
            start = slot
    return ranges


def _check_schedule(schedule: str | Sequence[tuple[str, str, int]]) -> str:
    if isinstance(schedule, str):
        if len(schedule) != 48 or any(c not in "0123" for c in schedule):
            raise ScheduleError(_("A day schedule has 48 half-hour slots, each period 0 to 3."))
        return schedule
    return schedule_from_ranges(schedule)


def _check_prices(prices: Prices) -> list[TariffPrice]:
    rows = []
    if set(prices) != set(CURRENT_TYPES):
        raise TariffError(_("A tariff version has prices for both AC and DC."))
    for current_type in CURRENT_TYPES:
        periods = prices[current_type]
        if len(periods) != 4:
            raise TariffError(
                _("%(type)s needs a price for each of the four periods.") % {"type": current_type}
            )
        for period, p in enumerate(periods):
            rows.append(
                TariffPrice(
                    current_type=current_type,
                    period=period,
                    electricity=price(p.electricity),
                    service=price(p.service),
                )
            )
    return rows


def _version_snapshot(version: TariffVersion) -> dict:
    return {
        "effective_from": version.effective_from,
        "schedule": version.schedule,
        "prices": {
            f"{p.current_type}p{p.period}": [str(p.electricity), str(p.service)]
            for p in version.prices.all()
        },
    }


@transaction.atomic
def tariff_plan_create(*, operator, name: str, actor=None) -> TariffPlan:
    name = name.strip()
    if not name:
        raise TariffError(_("A tariff plan needs a name."))
    if TariffPlan.objects.filter(operator=operator, name=name).exists():
        raise TariffError(_("A tariff plan named “%(name)s” exists already.") % {"name": name})
    plan = TariffPlan.objects.create(operator=operator, name=name)
    audit_record(actor=actor, action="tariff_plan_create", obj=plan, after={"name": name})
    return plan


@transaction.atomic
def tariff_version_create(
    *,
    plan: TariffPlan,
    schedule: str | Sequence[tuple[str, str, int]],
    prices: Prices,
    effective_from: dt.datetime | None = None,
    actor=None,
    note: str = "",
) -> TariffVersion:
    """A new version of ``plan``. The plan's first version may start at any time (setting
    up, importing history); a later one — a price change — starts now or in the future,
    so no bill already priced is ever re-priced."""
    now = timezone.now()
    effective_from = effective_from or now
    if timezone.is_naive(effective_from):
        raise TariffError(_("The effective-from time must carry its time zone."))
    schedule_text = _check_schedule(schedule)
    rows = _check_prices(prices)
    TariffPlan.objects.select_for_update().get(pk=plan.pk)
    if plan.versions.exists() and effective_from < now - dt.timedelta(minutes=1):
        raise TariffError(
            _("A price change takes effect now or later, not at %(time)s in the past.")
            % {"time": timezone.localtime(effective_from).strftime("%Y-%m-%d %H:%M")}
        )
    try:
        with transaction.atomic():
            version = TariffVersion.objects.create(
                plan=plan,
                effective_from=effective_from,
                schedule=schedule_text,
                note=note,
                created_by=actor if getattr(actor, "pk", None) else None,
            )
    except IntegrityError:
        raise TariffError(
            _("The plan has a version starting at that time already; pick another time.")
        ) from None
    for row in rows:
        row.version = version
    TariffPrice.objects.bulk_create(rows)
    audit_record(
        actor=actor,
        action="tariff_version_create",
        obj=version,
        after=_version_snapshot(version),
        operator_id=plan.operator_id,
    )
    _tariff_changed(
        station_ids=_plan_station_ids(plan), effective_from=effective_from, key=f"plan:{plan.pk}"
    )
    return version


@transaction.atomic
def tariff_version_update(
    *,
    version: TariffVersion,
    schedule: str | Sequence[tuple[str, str, int]] | None = None,
    prices: Prices | None = None,
    actor=None,
) -> TariffVersion:
    """Correct a version no bill has used yet; a billed version is history, not editable."""
    version = TariffVersion.objects.select_for_update().get(pk=version.pk)
    if version.bill_lines.exists() or version.bills.exists():
        raise TariffVersionInUse(
            _(
                "Bills were priced with this tariff version, so it cannot change; create a new "
                "version effective now or later instead."
            )
        )
    before = _version_snapshot(version)
    if schedule is not None:
        version.schedule = _check_schedule(schedule)
        version.save(update_fields=["schedule"])
    if prices is not None:
        rows = _check_prices(prices)
        version.prices.all().delete()
        for row in rows:
            row.version = version
        TariffPrice.objects.bulk_create(rows)
    audit_record(
        actor=actor,
        action="tariff_version_update",
        obj=version,
        before=before,
        after=_version_snapshot(version),
        operator_id=version.plan.operator_id,
    )
    _tariff_changed(
        station_ids=_plan_station_ids(version.plan),
        effective_from=version.effective_from,
        key=f"plan:{version.plan_id}",
    )
    return version


@transaction.atomic
def station_tariff_assign(
    *, station, plan: TariffPlan, effective_from: dt.datetime | None = None, actor=None
) -> StationTariff:
    """From ``effective_from`` (default now) ``station`` uses ``plan``. The first
    assignment may be back-dated; a change starts now or later."""
    if plan.operator_id != station.operator_id:
        raise TariffError(_("A station can only use a tariff plan of its own operator."))
    now = timezone.now()
    effective_from = effective_from or now
    history = StationTariff.objects.select_for_update().filter(station=station)
    if history.exists() and effective_from < now - dt.timedelta(minutes=1):
        raise TariffError(
            _("A station's tariff changes now or later, not at %(time)s in the past.")
            % {"time": timezone.localtime(effective_from).strftime("%Y-%m-%d %H:%M")}
        )
    assignment, created = StationTariff.objects.get_or_create(
        station=station,
        effective_from=effective_from,
        defaults={"plan": plan, "assigned_by": actor if getattr(actor, "pk", None) else None},
    )
    if not created:
        raise TariffError(_("The station has a tariff change at that time already."))
    audit_record(
        actor=actor,
        action="station_tariff_assign",
        obj=assignment,
        after={"plan": plan.pk, "effective_from": effective_from},
        operator_id=station.operator_id,
    )
    _tariff_changed(station_ids=[station.pk], effective_from=effective_from, key=station.pk)
    return assignment
