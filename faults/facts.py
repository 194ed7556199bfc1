"""Gather `SessionFacts` for the rules from the tables (one session, or many at once).

Keys a pile may report of its own in ``ChargingSession.pile_reported`` and that the rules
compare with the platform's: ``charging_seconds`` and ``occupancy_seconds``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from billing.models import ChargingSession, MeterSample
from billing.models.sessions import ACTIVE_STATES
from stations.models import Connector, PileFault, StatusEvent

from .models import UNRESOLVED_STATES, FaultCase, FaultSettings
from .rules import Period, Sample, SessionFacts, StatusChange, Thresholds

# Status history looked at before the start: enough to see the car being plugged in.
PLUG_IN_WINDOW = dt.timedelta(hours=2)
# After the stop: enough to see the unplug that ends the occupancy.
UNPLUG_WINDOW = dt.timedelta(hours=12)


def _int_or_none(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _watts(kw) -> Decimal | None:
    return Decimal(kw) * 1000 if kw is not None else None


_UNRESOLVED = "(" + ", ".join(f"'{state}'" for state in UNRESOLVED_STATES) + ")"

FACTS_SQL = f"""
SELECT
    p.session_id, ev.at, ev.status, ev.pile_time, ms.at, ms.energy_wh, ms.power_w,
    off.started_at, off.ended_at,
    (SELECT min(n.created_at) FROM {ChargingSession._meta.db_table} n
     WHERE n.connector_id = p.connector_id AND n.created_at > p.begin_at),
    (SELECT fc.codes FROM {FaultCase._meta.db_table} fc
     WHERE fc.session_id = p.session_id AND fc.state IN {_UNRESOLVED}),
    fs.id, fs.max_silence_minutes, fs.clock_skew_minutes, fs.max_duration_hours,
    fs.energy_tolerance_wh, fs.energy_tolerance_percent, fs.charging_time_tolerance_minutes,
    fs.occupancy_tolerance_minutes, fs.min_charging_for_energy_minutes,
    fs.power_tolerance_percent, fs.power_tolerance_wh, c.rated_power_kw
FROM unnest(%(session)s::bigint[], %(pile)s::bigint[], %(connector)s::bigint[],
            %(operator)s::bigint[], %(begin)s::timestamptz[], %(end)s::timestamptz[])
     AS p(session_id, pile_id, connector_id, operator_id, begin_at, end_at)
LEFT JOIN {Connector._meta.db_table} c ON c.id = p.connector_id
LEFT JOIN LATERAL (
    SELECT array_agg(e.received_at ORDER BY e.received_at) AS at,
           array_agg(e.status ORDER BY e.received_at) AS status,
           array_agg(e.pile_time ORDER BY e.received_at) AS pile_time
    FROM (
        (SELECT e.received_at, e.status, e.pile_time FROM {StatusEvent._meta.db_table} e
         WHERE e.pile_id = p.pile_id AND e.connector_number = c.number
           AND e.received_at <= p.begin_at AND e.received_at >= p.begin_at - %(window)s
         ORDER BY e.received_at DESC LIMIT 2)
        UNION ALL
        (SELECT e.received_at, e.status, e.pile_time FROM {StatusEvent._meta.db_table} e
         WHERE e.pile_id = p.pile_id AND e.connector_number = c.number
           AND e.received_at > p.begin_at AND e.received_at <= p.end_at
         ORDER BY e.received_at LIMIT 500)
    ) e
) ev ON true
LEFT JOIN LATERAL (
    SELECT array_agg((extract(epoch FROM m.at) * 1000000)::bigint ORDER BY m.at) AS at,
           array_agg(m.energy_wh ORDER BY m.at) AS energy_wh,
           array_agg(m.power_w ORDER BY m.at) AS power_w
    FROM {MeterSample._meta.db_table} m WHERE m.session_id = p.session_id
) ms ON true
LEFT JOIN LATERAL (
    SELECT array_agg(f.started_at ORDER BY f.started_at) AS started_at,
           array_agg(f.ended_at ORDER BY f.started_at) AS ended_at
    FROM {PileFault._meta.db_table} f
    WHERE f.pile_id = p.pile_id AND f.kind = '{PileFault.Kind.OFFLINE}' AND f.started_at <= p.end_at
      AND (f.ended_at IS NULL OR f.ended_at >= p.begin_at - %(window)s)
) off ON true
LEFT JOIN {FaultSettings._meta.db_table} fs ON fs.operator_id = p.operator_id
"""

SETTINGS_COLUMNS = (
    "id",
    "max_silence_minutes",
    "clock_skew_minutes",
    "max_duration_hours",
    "energy_tolerance_wh",
    "energy_tolerance_percent",
    "charging_time_tolerance_minutes",
    "occupancy_tolerance_minutes",
    "min_charging_for_energy_minutes",
    "power_tolerance_percent",
    "power_tolerance_wh",
)


def session_facts_with_limits(
    *, session: ChargingSession, now: dt.datetime | None = None
) -> tuple[SessionFacts, Thresholds, list[int]]:
    """Everything the rules need about ``session``, its operator's thresholds and the codes
    of its unresolved fault case (if the sweep already made one), in ONE query."""
    return sessions_facts_with_limits(sessions=[session], now=now)[session.pk]


def sessions_facts_with_limits(
    *, sessions: Sequence[ChargingSession], now: dt.datetime | None = None
) -> dict[int, tuple[SessionFacts, Thresholds, list[int]]]:
    """`session_facts_with_limits` of many sessions (with station and pile loaded) in ONE
    query whatever their number: settlement runs this for every batch, its statement
    count matters. The facts carry every meter sample, so pricing reads them from here."""
    if not sessions:
        return {}
    now = now or timezone.now()
    ends = [min((s.stop_received_at or now) + UNPLUG_WINDOW, now) for s in sessions]
    rows = _fetch(
        FACTS_SQL,
        {
            "session": [s.pk for s in sessions],
            "pile": [s.pile_id for s in sessions],
            "connector": [s.connector_id for s in sessions],
            "operator": [s.operator_id for s in sessions],
            "begin": [s.created_at for s in sessions],
            "end": ends,
            "window": PLUG_IN_WINDOW,
        },
    )
    by_id = {row[0]: row for row in rows}
    out = {}
    for session in sessions:
        row = by_id[session.pk]
        ev_at, ev_status, ev_pile, ms_at, ms_energy, ms_power, off_start, off_end = row[1:9]
        next_start, open_codes = row[9:11]
        settings_row = dict(zip(SETTINGS_COLUMNS, row[11:-1], strict=True))
        limits = FaultSettings(**settings_row).thresholds() if settings_row["id"] else Thresholds()
        begin = session.created_at
        last_boot = session.pile.last_boot_at
        reported = session.pile_reported or {}
        facts = SessionFacts(
            started_at=session.started_at,
            start_received_at=begin,
            meter_start_wh=Decimal(session.meter_start_wh),
            now=now,
            stopped_at=session.stopped_at,
            stop_received_at=session.stop_received_at,
            meter_stop_wh=session.meter_stop_wh,
            samples=tuple(map(Sample, _times(ms_at), ms_energy or (), ms_power or ())),
            statuses=tuple(map(StatusChange, ev_at or (), ev_status or (), ev_pile or ())),
            offline=tuple(map(Period, off_start or (), off_end or ())),
            boots=(last_boot,) if last_boot and last_boot > begin else (),
            next_start_received_at=next_start,
            pile_charging_seconds=_int_or_none(reported.get("charging_seconds")),
            pile_occupancy_seconds=_int_or_none(reported.get("occupancy_seconds")),
            max_power_w=_watts(session.pile.max_power_kw),
            connector_power_w=_watts(row[-1]),
            active=session.state in ACTIVE_STATES,
            zone=session.station.zone,
        )
        out[session.pk] = (facts, limits, list(open_codes or []))
    return out


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _times(microseconds: list[int] | None) -> list[dt.datetime]:
    # Sample times come as microseconds since the epoch: a batch reads ~100 per session,
    # and an integer array loads several times faster than timestamps do.
    return [_EPOCH + dt.timedelta(microseconds=us) for us in microseconds or ()]


def session_facts(*, session: ChargingSession, now: dt.datetime | None = None) -> SessionFacts:
    """Everything the rules need about ``session`` (one query)."""
    return session_facts_with_limits(session=session, now=now)[0]


def _fetch(sql: str, params: Sequence) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def open_sessions_facts(
    *, rows: Iterable[dict], now: dt.datetime, last_samples: int = 3
) -> dict[int, SessionFacts]:
    """Facts for many open sessions at once, in three queries whatever their number.

    ``rows`` are dicts with id, pile_id, connector_id, connector_number, created_at,
    started_at, meter_start_wh, last_boot_at, next_start, time_zone (as the sweep selects
    them). Only the last few meter samples of each session are read: a lost bill needs the
    latest register, not the whole curve."""
    rows = list(rows)
    if not rows:
        return {}
    ids = [r["id"] for r in rows]
    samples: dict[int, list[Sample]] = defaultdict(list)
    for session_id, at, energy, power in _fetch(
        f"""
        SELECT session_id, at, energy_wh, power_w FROM (
            SELECT session_id, at, energy_wh, power_w,
                   row_number() OVER (PARTITION BY session_id ORDER BY at DESC) AS n
            FROM {MeterSample._meta.db_table}
            WHERE session_id = ANY(%s) AND energy_wh IS NOT NULL
        ) last WHERE n <= %s ORDER BY session_id, at
        """,
        [ids, last_samples],
    ):
        samples[session_id].append(Sample(at=at, energy_wh=energy, power_w=power))
    statuses: dict[int, list[StatusChange]] = defaultdict(list)
    for session_id, received_at, status, pile_time in _fetch(
        f"""
        SELECT s.id, e.received_at, e.status, e.pile_time
        FROM {ChargingSession._meta.db_table} s
        JOIN {Connector._meta.db_table} c ON c.id = s.connector_id
        JOIN {StatusEvent._meta.db_table} e
          ON e.pile_id = s.pile_id AND e.connector_number = c.number
         AND e.received_at > s.created_at - %s AND e.received_at <= %s
        WHERE s.id = ANY(%s)
        ORDER BY s.id, e.received_at
        """,
        [PLUG_IN_WINDOW, now, ids],
    ):
        statuses[session_id].append(StatusChange(received_at, status, pile_time))
    offline: dict[int, list[Period]] = defaultdict(list)
    earliest = min(r["created_at"] for r in rows) - PLUG_IN_WINDOW
    for pile_id, started_at, ended_at in (
        PileFault.objects.filter(
            pile_id__in={r["pile_id"] for r in rows}, kind=PileFault.Kind.OFFLINE
        )
        .exclude(ended_at__lt=earliest)
        .values_list("pile_id", "started_at", "ended_at")
    ):
        offline[pile_id].append(Period(started_at, ended_at))
    facts = {}
    for r in rows:
        boot = r["last_boot_at"]
        facts[r["id"]] = SessionFacts(
            started_at=r["started_at"],
            start_received_at=r["created_at"],
            meter_start_wh=Decimal(r["meter_start_wh"]),
            now=now,
            samples=tuple(samples.get(r["id"], ())),
            statuses=tuple(statuses.get(r["id"], ())),
            offline=tuple(offline.get(r["pile_id"], ())),
            boots=(boot,) if boot and boot > r["created_at"] else (),
            next_start_received_at=r["next_start"],
            zone=zoneinfo.ZoneInfo(r["time_zone"]) if r.get("time_zone") else dt.UTC,
        )
    return facts
