"""Smart charging decisions: how much power each session may draw (issue 15).

A station's grid connection (`Station.power_limit_kw`) is shared among its active sessions:
equally, no session above what its connector (or pile) is rated for, what one cannot use
going to the others. In the tariff's sharp and peak periods the station's peak limit
(`Station.peak_power_limit_kw`) applies instead, when lower (time of use). Adapters send
the shares as charging profiles (`protocol.smart_charging`), when a session starts or stops
and when a period changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from billing.models import ChargingSession, Period
from billing.models.sessions import ACTIVE_STATES
from billing.selectors import tariff_specs_for
from stations.models import Pile, Station

HALF_HOUR = 1800
PEAK_PERIODS = (Period.SHARP, Period.PEAK)
# Outside the peak an unrated pile of a station without a limit is not limited: a limit
# above any pile's power (1 MW).
UNLIMITED_W = 1_000_000
# Sessions drawing power: started and not yet stopped, whether or not they have metered
# energy yet (``charging``); refused ones draw nothing.
DRAWING = tuple(ACTIVE_STATES)


@dataclass(frozen=True)
class PowerShare:
    """What one active session may draw now."""

    session_id: int
    pile_id: int
    connector_number: int
    limit_w: int


def _kw_to_w(kw: Decimal) -> int:
    return int(kw * 1000)


def station_peak_slots(*, station: Station, pile: Pile, at: dt.datetime) -> tuple[bool, ...]:
    """For each local half hour of the day in force at ``at``: is it a sharp or peak period
    of the station's tariff (for the pile's current type)? All False without a tariff."""
    specs = tariff_specs_for(station=station, current_type=pile.current_type, start=at, end=at)
    schedule = specs[-1].schedule if specs and not specs[-1].is_missing else ()
    return tuple(period in PEAK_PERIODS for period in schedule) or (False,) * 48


def station_limit_w(*, station: Station, at: dt.datetime | None = None) -> int | None:
    """The station's power limit in force at ``at`` (the peak limit in peak periods)."""
    at = at or timezone.now()
    limit = station.power_limit_kw
    peak = station.peak_power_limit_kw
    if peak is not None:
        pile = station.piles.first()
        local = timezone.localtime(at, station.zone)
        slot = (local.hour * 60 + local.minute) // 30
        if pile is not None and station_peak_slots(station=station, pile=pile, at=at)[slot]:
            limit = peak if limit is None else min(limit, peak)
    return _kw_to_w(limit) if limit is not None else None


def station_power_shares(*, station: Station, at: dt.datetime | None = None) -> list[PowerShare]:
    """Each active session's share of the station's limit now (none without a limit)."""
    limit = station_limit_w(station=station, at=at)
    if limit is None:
        return []
    sessions = list(
        ChargingSession.objects.filter(station=station, state__in=DRAWING)
        .select_related("connector", "pile")
        .order_by("pk")
    )
    caps = {}
    for s in sessions:
        rated = s.connector.rated_power_kw or s.pile.max_power_kw
        caps[s.pk] = _kw_to_w(rated) if rated is not None else limit
    shares: dict[int, int] = {}
    left, open_ids = limit, [s.pk for s in sessions]
    while open_ids:  # water filling: those capped below the equal share give the rest back
        equal = left // len(open_ids)
        capped = [pk for pk in open_ids if caps[pk] <= equal]
        if not capped:
            shares |= {pk: equal for pk in open_ids}
            break
        for pk in capped:
            shares[pk] = caps[pk]
            left -= caps[pk]
            open_ids.remove(pk)
    return [PowerShare(s.pk, s.pile_id, s.connector.number, shares[s.pk]) for s in sessions]


def pile_time_of_use_periods(*, pile: Pile, at: dt.datetime | None = None) -> list[tuple[int, int]]:
    """A daily schedule for ``pile`` (offsets in seconds from local midnight, limit in W):
    its share of the station's peak limit in peak half hours, its rated power otherwise.
    Empty when the station has no peak limit."""
    station = pile.station
    if station.peak_power_limit_kw is None:
        return []
    at = at or timezone.now()
    piles = station.piles.visible().count() or 1
    peak_w = _kw_to_w(station.peak_power_limit_kw) // piles
    normal_w = _kw_to_w(pile.max_power_kw) if pile.max_power_kw else None
    if station.power_limit_kw is not None:
        share = _kw_to_w(station.power_limit_kw) // piles
        normal_w = min(normal_w, share) if normal_w else share
    normal_w = normal_w or UNLIMITED_W
    periods: list[tuple[int, int]] = []
    for slot, peak in enumerate(station_peak_slots(station=station, pile=pile, at=at)):
        limit = min(peak_w, normal_w) if peak else normal_w
        if not periods or periods[-1][1] != limit:
            periods.append((slot * HALF_HOUR, limit))
    return periods
