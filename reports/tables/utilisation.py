"""Pile utilisation and availability per pile × day: charging hours / 24 h (`PileDay`),
online % and offline episodes (`PileFault` offline records clipped to the day), and the
station's network outages (`StationOutage`) that day.

A pile's time belongs to its station: the sub-operator filter keeps the piles of the
stations the sub-operator is authorised on (as sub-operator staff see them); department
and channel say nothing about a pile's availability and are disabled on the page."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from stations.models import PileFault, StationOutage
from stations.selectors import piles_visible_to

from ..exports.tabular import Column
from ..selectors import pile_days_visible_to
from .base import Report, ratio

DAY_S = 86400


def _overlaps(rows, start: dt.datetime, end: dt.datetime):
    return rows.filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start), started_at__lt=end)


def _clip_by_day(spans, first_day, last_day, zone, now):
    """{day: (seconds covered, episodes starting or running that day)} of (start, end) spans."""
    out = defaultdict(lambda: [0, 0])
    day = first_day
    while day <= last_day:
        start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
        end = start + dt.timedelta(days=1)
        for s, e in spans:
            e = e or now
            overlap = (min(e, end) - max(s, start)).total_seconds()
            if overlap > 0:
                out[day][0] += overlap
                out[day][1] += 1
        day += dt.timedelta(days=1)
    return out


class PileUtilisation(Report):
    slug = "utilisation"
    title = _("Pile utilisation and availability")
    honoured = ("station", "sub_operator")
    columns = [
        Column("day", _("day"), "date"),
        Column("station", _("station"), "text"),
        Column("pile", _("pile"), "text"),
        Column("sessions", _("sessions"), "int"),
        Column("charging_hours", _("charging hours"), "text"),
        Column("utilisation", _("utilisation (charging / 24 h)"), "percent"),
        Column("online", _("online (%)"), "percent"),
        Column("offline_episodes", _("offline episodes"), "int"),
        Column("outages", _("network outages (count)"), "int"),
    ]

    def _piles(self):
        piles = piles_visible_to(self.staff)
        if self.filters.station is not None:
            piles = piles.filter(station=self.filters.station)
        if self.filters.sub_operator is not None:
            piles = piles.filter(station__sub_operators=self.filters.sub_operator)
        return piles

    def _table(self):
        """Row by row, pile by pile (a page takes its first rows without working out the
        other piles: a month of 5,000 piles is 155,000 rows)."""
        f, now = self.filters, timezone.now()
        piles = list(self._piles().select_related("station").order_by("station__code", "code"))
        charged = {
            (r["pile_id"], r["day"]): r
            for r in f.days(pile_days_visible_to(self.staff).filter(pile__in=piles)).values(
                "pile_id", "day", "sessions", "charging_s"
            )
        }
        zones = {p.station.time_zone for p in piles}
        window = {}
        for z in zones:
            window[z] = f.window(zoneinfo.ZoneInfo(z))
        offline, outages = defaultdict(list), defaultdict(list)
        for z, (start, end) in window.items():
            for fault in _overlaps(
                PileFault.objects.filter(
                    kind=PileFault.Kind.OFFLINE,
                    pile__in=[p for p in piles if p.station.time_zone == z],
                ),
                start,
                end,
            ).values_list("pile_id", "started_at", "ended_at"):
                offline[fault[0]].append(fault[1:])
            for outage in _overlaps(
                StationOutage.objects.filter(
                    station__in={p.station_id for p in piles if p.station.time_zone == z}
                ),
                start,
                end,
            ).values_list("station_id", "started_at", "ended_at"):
                outages[outage[0]].append(outage[1:])
        per_station = {}
        for pile in piles:
            tz = zoneinfo.ZoneInfo(pile.station.time_zone)
            down = _clip_by_day(offline[pile.pk], f.first_day, f.last_day, tz, now)
            if pile.station_id not in per_station:
                per_station[pile.station_id] = _clip_by_day(
                    outages[pile.station_id], f.first_day, f.last_day, tz, now
                )
            day = f.first_day
            while day <= f.last_day:
                c = charged.get((pile.pk, day), {"sessions": 0, "charging_s": 0})
                seconds = min(c["charging_s"], DAY_S)
                yield (
                    day,
                    pile.station.name,
                    pile.code,
                    c["sessions"],
                    f"{seconds / 3600:.2f}",
                    ratio(seconds, DAY_S),
                    ratio(DAY_S - min(down[day][0], DAY_S), DAY_S),
                    down[day][1],
                    per_station[pile.station_id][day][1],
                )
                day += dt.timedelta(days=1)

    def rows(self):
        yield from self._table()
