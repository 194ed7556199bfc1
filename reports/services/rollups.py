"""The one writer of the rollups: whole station-days recomputed from their bills.

A station-day is the unit: its rows are deleted and summed again from the bills that
started on that local day at that station, in ONE statement (one snapshot), under a
transaction-level advisory lock on the station-day, so two recomputations of the same day
never interleave (the second waits, then reads what the first could not see). The same
statement, with a date range instead of one station-day, is `rollups_rebuild`: a figure is
defined once.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction

from billing.models import Bill, BillLine, ChargingSession, PaymentState, Period, SessionState
from billing.models import SessionTransition as Transition
from stations.models import FirmwareRecord, Pile, Station

from ..models import BillDay, FaultDay, HourLoad, PileDay, StationBillDay, StationDayTotal

# A bill whose charging time is longer than this is counted in its first hour only (a
# fault bill may claim years); the load curve is a picture, the day's totals are exact.
LOAD_SPREAD_MAX_HOURS = 48


@dataclass(frozen=True)
class StationDay:
    station_id: int
    day: dt.date


def _t(model) -> str:
    return model._meta.db_table


def _facts_sql(where: str) -> str:
    """One row per bill selected by ``where`` (over ``b`` bills, ``st`` stations), with
    its local day, firmware, per-period energy and whether it was repaired."""
    periods = ", ".join(
        f"sum(l.energy_wh) FILTER (WHERE l.period = {p.value}) AS e{p.value}" for p in Period
    )
    return f"""
    facts AS (
        SELECT b.id, (b.started_at AT TIME ZONE st.time_zone)::date AS day,
               b.operator_id, b.station_id, b.sub_operator_id, b.department_id, b.channel,
               COALESCE((SELECT fr.version FROM {_t(FirmwareRecord)} fr
                          WHERE fr.pile_id = s.pile_id AND fr.first_seen_at <= b.started_at
                          ORDER BY fr.first_seen_at DESC LIMIT 1), p.firmware_version) AS firmware,
               s.pile_id, b.started_at, b.ended_at, b.duration_s, b.energy_wh,
               b.electricity_fee, b.service_fee, b.total, b.payment_state, b.fault_codes,
               (cardinality(b.fault_codes) > 0 AND EXISTS (
                   SELECT 1 FROM {_t(Transition)} tr
                    WHERE tr.session_id = b.session_id AND tr.to_state = '{SessionState.REPAIRED}'
               )) AS repaired
          FROM {_t(Bill)} b
          JOIN {_t(Station)} st ON st.id = b.station_id
          JOIN {_t(ChargingSession)} s ON s.id = b.session_id
          JOIN {_t(Pile)} p ON p.id = s.pile_id
         WHERE {where}
    ),
    lines AS (
        SELECT l.bill_id, {periods}
          FROM {_t(BillLine)} l JOIN facts f ON f.id = l.bill_id
         GROUP BY l.bill_id
    )"""


_ATTRIBUTED = "day, operator_id, station_id, sub_operator_id, department_id, channel, firmware"


_DEPARTMENTAL = "day, operator_id, station_id, sub_operator_id, department_id"


def _bill_figures(name: str, model, keys: str) -> str:
    """A CTE inserting the bills' sums (`_BillFigures`) into ``model``, grouped by ``keys``."""

    def paid(state: str) -> str:
        return f"COALESCE(sum(f.total) FILTER (WHERE f.payment_state = '{state}'), 0)"

    return f"""
    {name} AS (
        INSERT INTO {_t(model)} ({keys}, sessions, energy_wh, energy_sharp_wh,
            energy_peak_wh, energy_flat_wh, energy_valley_wh, electricity_fee, service_fee,
            total, paid, owed, unpaid, fault_waiting, fault_bills, repaired, recovered,
            charging_s)
        SELECT {keys}, count(*), sum(f.energy_wh),
               COALESCE(sum(l.e{Period.SHARP.value}), 0), COALESCE(sum(l.e{Period.PEAK.value}), 0),
               COALESCE(sum(l.e{Period.FLAT.value}), 0), COALESCE(sum(l.e{Period.VALLEY.value}), 0),
               sum(f.electricity_fee), sum(f.service_fee), sum(f.total),
               {paid(PaymentState.PAID)}, {paid(PaymentState.OWED)}, {paid(PaymentState.UNPAID)},
               {paid(PaymentState.FAULT)},
               count(*) FILTER (WHERE cardinality(f.fault_codes) > 0),
               count(*) FILTER (WHERE f.repaired),
               COALESCE(sum(f.total) FILTER (WHERE f.repaired), 0),
               sum(f.duration_s)
          FROM facts f LEFT JOIN lines l ON l.bill_id = f.id
         GROUP BY {keys}
        RETURNING 1
    ),"""


def _insert_sql() -> str:
    return (
        _bill_figures("bill_days", BillDay, _ATTRIBUTED)
        + _bill_figures("station_days", StationBillDay, _DEPARTMENTAL)
        + _bill_figures("station_totals", StationDayTotal, "day, operator_id, station_id")
        + f"""
    fault_days AS (
        INSERT INTO {_t(FaultDay)} ({_ATTRIBUTED}, code, fault_bills, waiting, repaired,
            recovered)
        SELECT {_ATTRIBUTED}, c.code, count(*),
               count(*) FILTER (WHERE f.payment_state = '{PaymentState.FAULT}'),
               count(*) FILTER (WHERE f.repaired),
               COALESCE(sum(f.total) FILTER (WHERE f.repaired), 0)
          FROM facts f CROSS JOIN LATERAL unnest(f.fault_codes) AS c(code)
         GROUP BY {_ATTRIBUTED}, c.code
        RETURNING 1
    ),
    pile_days AS (
        INSERT INTO {_t(PileDay)} (day, operator_id, station_id, pile_id, sessions, charging_s)
        SELECT day, operator_id, station_id, pile_id, count(*), sum(duration_s)
          FROM facts GROUP BY day, operator_id, station_id, pile_id
        RETURNING 1
    ),
    hour_loads AS (
        INSERT INTO {_t(HourLoad)} (day, operator_id, station_id, sub_operator_id, hour,
            energy_wh)
        SELECT f.day, f.operator_id, f.station_id, f.sub_operator_id, h.hour,
               sum(CASE WHEN NOT f.spread THEN f.energy_wh
                        ELSE f.energy_wh * extract(epoch FROM
                             least(h.hour + interval '1 hour', f.ended_at)
                             - greatest(h.hour, f.started_at))
                             / extract(epoch FROM f.ended_at - f.started_at) END)
          FROM (SELECT *, (ended_at > started_at AND ended_at - started_at
                           <= interval '{LOAD_SPREAD_MAX_HOURS} hours') AS spread
                  FROM facts) f
         CROSS JOIN LATERAL generate_series(
               date_trunc('hour', f.started_at),
               CASE WHEN f.spread THEN f.ended_at - interval '1 microsecond'
                    ELSE f.started_at END,
               interval '1 hour') AS h(hour)
         GROUP BY f.day, f.operator_id, f.station_id, f.sub_operator_id, h.hour
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM bill_days), (SELECT count(*) FROM fault_days)"""
    )


ROLLUPS = (BillDay, StationBillDay, StationDayTotal, FaultDay, PileDay, HourLoad)


def _lock(station_id: int, day: dt.date) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext('reports.station_day'), hashtext(%s))",
            [f"{station_id}:{day.isoformat()}"],
        )


def _local_bounds(day: dt.date, zone: str) -> tuple[dt.datetime, dt.datetime]:
    tz = zoneinfo.ZoneInfo(zone)
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return start, end


@transaction.atomic
def rollups_recompute(*, station_days: Iterable[StationDay]) -> int:
    """Recompute the rollups of each station-day from its bills (idempotent: the rows are
    replaced by the sums of what is there now). Returns how many station-days."""
    wanted = sorted(set(station_days), key=lambda sd: (sd.station_id, sd.day))
    zones = dict(
        Station.objects.filter(pk__in={sd.station_id for sd in wanted}).values_list(
            "pk", "time_zone"
        )
    )
    for sd in wanted:  # locks in one order: two recomputations never wait on each other
        _lock(sd.station_id, sd.day)
    for sd in wanted:
        if sd.station_id not in zones:
            continue
        start, end = _local_bounds(sd.day, zones[sd.station_id])
        for model in ROLLUPS:
            model.objects.filter(station_id=sd.station_id, day=sd.day).delete()
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH"
                + _facts_sql("b.station_id = %s AND b.started_at >= %s AND b.started_at < %s")
                + ","
                + _insert_sql(),
                [sd.station_id, start, end],
            )
    return len(wanted)


def station_day_of(*, station_id: int, started_at: dt.datetime, zone: str) -> StationDay:
    return StationDay(station_id, started_at.astimezone(zoneinfo.ZoneInfo(zone)).date())


@transaction.atomic
def rollups_rebuild(*, first_day: dt.date, last_day: dt.date) -> tuple[int, int]:
    """Recompute every station's rollups of the local days ``first_day``..``last_day`` from
    the bills, in one statement. Returns (daily bill rows, fault rows) written."""
    with connection.cursor() as cursor:
        # Recomputations of single station-days wait for the rebuild (and vice versa).
        cursor.execute("LOCK TABLE " + ", ".join(_t(m) for m in ROLLUPS) + " IN EXCLUSIVE MODE")
    for model in ROLLUPS:
        model.objects.filter(day__gte=first_day, day__lte=last_day).delete()
    # Any zone is within a day of UTC: the UTC window is widened by one day each side (for
    # the index), the local day decides.
    start = dt.datetime.combine(first_day - dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(last_day + dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC)
    where = (
        "b.started_at >= %s AND b.started_at < %s "
        "AND (b.started_at AT TIME ZONE st.time_zone)::date BETWEEN %s AND %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH" + _facts_sql(where) + "," + _insert_sql(), [start, end, first_day, last_day]
        )
        bill_rows, fault_rows = cursor.fetchone()
    return bill_rows, fault_rows
