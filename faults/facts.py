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
from stations.models import PileFault, StatusEvent

from .rules import Period, Sample, SessionFacts, StatusChange

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


def session_facts(*, session: ChargingSession, now: dt.datetime | None = None) -> SessionFacts:
    """Everything the rules need about ``session``, read in a handful of queries."""
    now = now or timezone.now()
    connector_number = session.connector.number
    begin = session.created_at
    end = (session.stop_received_at or now) + UNPLUG_WINDOW
    samples = tuple(
        Sample(at=at, energy_wh=energy, power_w=power)
        for at, energy, power in MeterSample.objects.filter(session=session)
        .order_by("at")
        .values_list("at", "energy_wh", "power_w")
    )
    events = StatusEvent.objects.filter(pile_id=session.pile_id, connector_number=connector_number)
    before = (
        events.filter(received_at__lte=begin, received_at__gte=begin - PLUG_IN_WINDOW)
        .order_by("-received_at")
        .values_list("received_at", "status", "pile_time")[:2]
    )
    after = (
        events.filter(received_at__gt=begin, received_at__lte=min(end, now))
        .order_by("received_at")
        .values_list("received_at", "status", "pile_time")[:500]
    )
    statuses = tuple(
        StatusChange(received_at=r, status=s, pile_time=p)
        for r, s, p in [*reversed(before), *after]
    )
    offline = tuple(
        Period(start=s, end=e)
        for s, e in PileFault.objects.filter(
            pile_id=session.pile_id, kind=PileFault.Kind.OFFLINE, started_at__lte=min(end, now)
        )
        .exclude(ended_at__lt=begin - PLUG_IN_WINDOW)
        .values_list("started_at", "ended_at")
    )
    last_boot = session.pile.last_boot_at
    next_start = (
        ChargingSession.objects.filter(connector_id=session.connector_id, created_at__gt=begin)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    reported = session.pile_reported or {}
    return SessionFacts(
        started_at=session.started_at,
        start_received_at=begin,
        meter_start_wh=Decimal(session.meter_start_wh),
        now=now,
        stopped_at=session.stopped_at,
        stop_received_at=session.stop_received_at,
        meter_stop_wh=session.meter_stop_wh,
        samples=samples,
        statuses=statuses,
        offline=offline,
        boots=(last_boot,) if last_boot and last_boot > begin else (),
        next_start_received_at=next_start,
        pile_charging_seconds=_int_or_none(reported.get("charging_seconds")),
        pile_occupancy_seconds=_int_or_none(reported.get("occupancy_seconds")),
        max_power_w=_watts(session.pile.max_power_kw),
        active=session.state in ACTIVE_STATES,
        zone=session.station.zone,
    )


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
        """
        SELECT session_id, at, energy_wh, power_w FROM (
            SELECT session_id, at, energy_wh, power_w,
                   row_number() OVER (PARTITION BY session_id ORDER BY at DESC) AS n
            FROM billing_metersample WHERE session_id = ANY(%s) AND energy_wh IS NOT NULL
        ) last WHERE n <= %s ORDER BY session_id, at
        """,
        [ids, last_samples],
    ):
        samples[session_id].append(Sample(at=at, energy_wh=energy, power_w=power))
    statuses: dict[int, list[StatusChange]] = defaultdict(list)
    for session_id, received_at, status, pile_time in _fetch(
        """
        SELECT s.id, e.received_at, e.status, e.pile_time
        FROM billing_chargingsession s
        JOIN stations_connector c ON c.id = s.connector_id
        JOIN stations_statusevent e
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
