"""The back office's home page (the admin index): today's and this month's figures, what
is live now, and the trends, for the staff member's own scope. Money and energy come from
the rollups (`reports.selectors`); live counts from the sessions, piles and fault desk."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models.sessions import ACTIVE_STATES
from billing.selectors import sessions_visible_to
from faults.codes import FaultCode
from faults.models import UNRESOLVED_STATES
from faults.selectors import fault_cases_visible_to, fault_code_counts
from stations.models import ConnectorState
from stations.selectors import piles_visible_to

from .selectors import (
    hour_loads_visible_to,
    station_bill_days_visible_to,
    station_day_totals_visible_to,
)
from .tables.base import kwh, ratio, yuan

TREND_DAYS = 30
RANKED_STATIONS = 5


@dataclass(frozen=True)
class Figures:
    sessions: int
    energy_kwh: Decimal
    electricity_fee: Decimal
    service_fee: Decimal
    total: Decimal


@dataclass(frozen=True)
class StationUse:
    name: str
    utilisation: Decimal | None  # % of charging time / (piles × 24 h × days)


@dataclass(frozen=True)
class Dashboard:
    today: Figures
    month: Figures
    in_progress: int
    piles_online: int
    piles_offline: int
    piles_faulted: int
    faults_waiting: list[tuple[FaultCode, int]]
    trend: dict  # chart spec: 30 days of energy (kWh) and revenue (yuan)
    load: dict  # chart spec: today's energy per hour (kWh)
    top: list[StationUse]
    bottom: list[StationUse]


_SUMS = {
    "n": Sum("sessions"),
    "e": Sum("energy_wh"),
    "fe": Sum("electricity_fee"),
    "fs": Sum("service_fee"),
    "t": Sum("total"),
}


def _figures(days: list[dict]) -> Figures:
    """The figures of some days' sums (rows of ``_SUMS``)."""

    def total(key):
        return sum((d[key] or 0 for d in days), start=0)

    return Figures(
        total("n"), kwh(total("e")), yuan(total("fe")), yuan(total("fs")), yuan(total("t"))
    )


def _day_rows(staff):
    """The rollup the dashboard sums: one row per station-day where the staff member sees
    whole stations, else the station rollup under the bills' visibility."""
    totals = station_day_totals_visible_to(staff)
    return totals if totals is not None else station_bill_days_visible_to(staff)


def _station_use(staff, first_day: dt.date, last_day: dt.date) -> list[StationUse]:
    piles = {
        r["station_id"]: (r["station__name"], r["n"])
        for r in piles_visible_to(staff)
        .visible()
        .values("station_id", "station__name")
        .annotate(n=Count("pk"))
    }
    charged = dict(
        _day_rows(staff)
        .filter(day__gte=first_day, day__lte=last_day, station_id__in=list(piles))
        .values("station_id")
        .annotate(s=Sum("charging_s"))
        .values_list("station_id", "s")
    )
    seconds = ((last_day - first_day).days + 1) * 86400
    uses = [
        StationUse(name, ratio(charged.get(sid, 0), n * seconds))
        for sid, (name, n) in piles.items()
    ]
    return sorted(uses, key=lambda u: (-(u.utilisation or 0), u.name))


def dashboard_for(staff, *, today: dt.date | None = None) -> Dashboard:
    today = today or timezone.localdate()
    zone = timezone.get_current_timezone()
    first = today - dt.timedelta(days=TREND_DAYS - 1)
    month_start = today.replace(day=1)
    # One pass over the rollups gives today, this month and the trend: the sums per day.
    trend = {
        r["day"]: r
        for r in _day_rows(staff)
        .filter(day__gte=min(first, month_start), day__lte=today)
        .values("day")
        .annotate(**_SUMS)
    }
    days = [first + dt.timedelta(days=i) for i in range(TREND_DAYS)]
    start = dt.datetime.combine(today, dt.time(), tzinfo=zone)
    load = {
        timezone.localtime(r["hour"], zone).hour: r["e"]
        for r in hour_loads_visible_to(staff)
        .filter(hour__gte=start, hour__lt=start + dt.timedelta(days=1))
        .values("hour")
        .annotate(e=Sum("energy_wh"))
    }
    piles = (
        piles_visible_to(staff)
        .visible()
        .aggregate(
            online=Count("pk", filter=Q(is_online=True)),
            offline=Count("pk", filter=Q(is_online=False)),
            faulted=Count("pk", filter=Q(connectors__status=ConnectorState.FAULTED), distinct=True),
        )
    )
    uses = _station_use(staff, first, today)
    return Dashboard(
        today=_figures([trend[today]] if today in trend else []),
        month=_figures([r for day, r in trend.items() if day >= month_start]),
        in_progress=sessions_visible_to(staff).filter(state__in=ACTIVE_STATES).count(),
        piles_online=piles["online"],
        piles_offline=piles["offline"],
        piles_faulted=piles["faulted"],
        faults_waiting=fault_code_counts(
            fault_cases_visible_to(staff).filter(state__in=UNRESOLVED_STATES)
        ),
        trend={
            "x": [d.strftime("%m-%d") for d in days],
            "series": [
                {
                    "name": str(_("energy (kWh)")),
                    "type": "bar",
                    "axis": 0,
                    "data": [float(kwh(trend[d]["e"])) if d in trend else 0 for d in days],
                },
                {
                    "name": str(_("revenue (yuan)")),
                    "type": "line",
                    "axis": 1,
                    "data": [float(trend[d]["t"]) if d in trend else 0 for d in days],
                },
            ],
        },
        load={
            "x": [f"{h:02d}:00" for h in range(24)],
            "series": [
                {
                    "name": str(_("energy (kWh)")),
                    "type": "line",
                    "axis": 0,
                    "data": [float(kwh(load.get(h, 0))) for h in range(24)],
                },
            ],
        },
        top=uses[:RANKED_STATIONS],
        bottom=list(reversed(uses[-RANKED_STATIONS:])) if len(uses) > RANKED_STATIONS else [],
    )
