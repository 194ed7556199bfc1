"""A session's timeline for customer service: status changes, heartbeats with their state,
meter samples, offline periods — as rows for a table and as an inline SVG chart.

"Customer service proves that energy was delivered by showing a session's heartbeats and
meter values over time" (DOMAIN.md): the chart draws the energy register as a line over
coloured status bands, with the heartbeats as ticks underneath.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from billing.models import MeterSample
from stations.models import ConnectorState, HeartbeatSample, PileFault, StatusEvent

BEFORE = dt.timedelta(minutes=30)
AFTER = dt.timedelta(minutes=60)
MAX_ROWS = 2000

STATUS_COLOURS = {
    "Available": "#c8c8c8",
    "Preparing": "#7fb3e6",
    "Charging": "#4caf50",
    "SuspendedEV": "#ffb74d",
    "SuspendedEVSE": "#ff8a65",
    "Finishing": "#9575cd",
    "Reserved": "#90a4ae",
    "Unavailable": "#616161",
    "Faulted": "#e53935",
}


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    kind: str  # status, heartbeat, sample, offline, start, stop
    label: str
    detail: str = ""
    energy_wh: Decimal | None = None
    status: str = ""  # the connector status code of a "status" entry (label is its words)


def _status_entry(at: dt.datetime, status: str, detail: str) -> Entry:
    """A status change, labelled in the reader's language (Charging → 充电中)."""
    label = str(ConnectorState(status).label) if status in ConnectorState.values else status
    return Entry(at, "status", label, detail, status=status)


def session_window(session, *, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    now = now or timezone.now()
    begin = min(session.started_at, session.created_at) - BEFORE
    ends = [session.stopped_at, session.stop_received_at, session.last_sample_at]
    end = max([t for t in ends if t] or [session.created_at]) + AFTER
    return begin, min(max(end, begin + AFTER), max(now, begin + AFTER))


def session_timeline(*, session, now: dt.datetime | None = None) -> list[Entry]:
    """Everything that happened at the session's connector around it, in time order."""
    begin, end = session_window(session, now=now)
    number = session.connector.number
    entries = [
        Entry(session.created_at, "start", _("StartTransaction received"), session.order_no),
    ]
    if session.started_at != session.created_at:
        entries.append(Entry(session.started_at, "start", _("start (pile clock)")))
    if session.stopped_at:
        entries.append(
            Entry(session.stopped_at, "stop", _("stop (pile clock)"), session.stop_reason)
        )
    if session.stop_received_at:
        entries.append(Entry(session.stop_received_at, "stop", _("StopTransaction received")))
    for received_at, status, error_code, pile_time in (
        StatusEvent.objects.filter(
            pile_id=session.pile_id,
            connector_number__in=[0, number],
            received_at__range=(begin, end),
        )
        .order_by("received_at")
        .values_list("received_at", "status", "error_code", "pile_time")[:MAX_ROWS]
    ):
        detail = error_code if error_code and error_code != "NoError" else ""
        if pile_time and abs(pile_time - received_at) > dt.timedelta(minutes=1):
            detail = " ".join(
                filter(None, [detail, _("pile time %(t)s") % {"t": _local(pile_time)}])
            )
        entries.append(_status_entry(received_at, status, detail))
    for at, state in (
        HeartbeatSample.objects.filter(pile_id=session.pile_id, at__range=(begin, end))
        .order_by("at")
        .values_list("at", "state")[:MAX_ROWS]
    ):
        entries.append(Entry(at, "heartbeat", _("heartbeat"), state))
    for at, energy, power in (
        MeterSample.objects.filter(session=session)
        .order_by("at")
        .values_list("at", "energy_wh", "power_w")[:MAX_ROWS]
    ):
        detail = f"{power} W" if power is not None else ""
        entries.append(Entry(at, "sample", _("meter sample"), detail, energy_wh=energy))
    for started, ended in (
        PileFault.objects.filter(
            pile_id=session.pile_id, kind=PileFault.Kind.OFFLINE, started_at__lte=end
        )
        .exclude(ended_at__lt=begin)
        .values_list("started_at", "ended_at")
    ):
        entries.append(Entry(started, "offline", _("pile offline")))
        if ended:
            entries.append(Entry(ended, "online", _("pile back online")))
    return sorted(entries, key=lambda e: (e.at, e.kind))


def _local(at: dt.datetime) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S")


def timeline_svg(entries: list[Entry], *, width: int = 960) -> SafeString:
    """The timeline as an inline SVG (no script, no external asset)."""
    if not entries:
        return mark_safe("")
    t0 = entries[0].at
    t1 = max(entries[-1].at, t0 + dt.timedelta(minutes=1))
    left, right = 60, width - 20
    span = (t1 - t0).total_seconds()

    def x(at: dt.datetime) -> float:
        return round(left + (at - t0).total_seconds() / span * (right - left), 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="260" '
        f'viewBox="0 0 {width} 260" role="img" class="fault-timeline" '
        f'aria-label="{escape(_("session timeline"))}">',
        f'<rect x="{left}" y="10" width="{right - left}" height="150" fill="#fafafa" '
        'stroke="#ddd"/>',
    ]
    # Status bands: each status holds until the next one.
    statuses = [e for e in entries if e.kind == "status"]
    for i, entry in enumerate(statuses):
        until = statuses[i + 1].at if i + 1 < len(statuses) else t1
        colour = STATUS_COLOURS.get(entry.status, "#b0bec5")
        parts.append(
            f'<rect x="{x(entry.at)}" y="170" width="{max(x(until) - x(entry.at), 1)}" '
            f'height="22" fill="{colour}"><title>{escape(entry.label)} {_local(entry.at)}'
            "</title></rect>"
        )
    # Offline periods as a red hatch over the chart.
    offline_since = None
    for entry in entries:
        if entry.kind == "offline":
            offline_since = entry.at
        elif entry.kind == "online" and offline_since is not None:
            wide = max(x(entry.at) - x(offline_since), 1)
            parts.append(
                f'<rect x="{x(offline_since)}" y="10" width="{wide}" height="150" '
                f'fill="#e53935" fill-opacity="0.12"><title>{escape(_("offline"))}</title></rect>'
            )
            offline_since = None
    if offline_since is not None:
        parts.append(
            f'<rect x="{x(offline_since)}" y="10" width="{max(right - x(offline_since), 1)}" '
            f'height="150" fill="#e53935" fill-opacity="0.12"/>'
        )
    # Heartbeats: ticks, dark when the pile said it was charging (state 3).
    for entry in entries:
        if entry.kind == "heartbeat":
            colour = "#2e7d32" if entry.detail in ("3", "Charging") else "#78909c"
            parts.append(
                f'<line x1="{x(entry.at)}" y1="200" x2="{x(entry.at)}" y2="214" '
                f'stroke="{colour}" stroke-width="2"><title>{escape(entry.label)} '
                f"{escape(entry.detail)} {_local(entry.at)}</title></line>"
            )
    # Energy register line.
    samples = [e for e in entries if e.kind == "sample" and e.energy_wh is not None]
    if samples:
        low = min(e.energy_wh for e in samples)
        high = max(e.energy_wh for e in samples)
        scale = (high - low) or Decimal(1)

        def y(energy: Decimal) -> float:
            return round(float(150 - (energy - low) / scale * 130), 1)

        points = " ".join(f"{x(e.at)},{y(e.energy_wh)}" for e in samples)
        parts.append(f'<polyline points="{points}" fill="none" stroke="#1565c0" stroke-width="2"/>')
        for e in samples:
            parts.append(
                f'<circle cx="{x(e.at)}" cy="{y(e.energy_wh)}" r="2.5" fill="#1565c0">'
                f"<title>{_local(e.at)} {e.energy_wh} Wh</title></circle>"
            )
        parts.append(f'<text x="4" y="24" font-size="10">{high} Wh</text>')
        parts.append(f'<text x="4" y="150" font-size="10">{low} Wh</text>')
    # Start / stop markers.
    for entry in entries:
        if entry.kind in ("start", "stop"):
            colour = "#2e7d32" if entry.kind == "start" else "#c62828"
            parts.append(
                f'<line x1="{x(entry.at)}" y1="10" x2="{x(entry.at)}" y2="195" stroke="{colour}" '
                f'stroke-dasharray="4 3"><title>{escape(entry.label)} {_local(entry.at)}'
                "</title></line>"
            )
    parts.append(f'<text x="{left}" y="232" font-size="11">{_local(t0)}</text>')
    parts.append(f'<text x="{right}" y="232" font-size="11" text-anchor="end">{_local(t1)}</text>')
    legend_x = left
    for label, colour in [
        (_("energy register"), "#1565c0"),
        (_("charging"), STATUS_COLOURS["Charging"]),
        (_("full, still plugged"), STATUS_COLOURS["SuspendedEV"]),
        (_("offline"), "#e53935"),
        (_("heartbeat (charging)"), "#2e7d32"),
    ]:
        parts.append(
            f'<rect x="{legend_x}" y="242" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="251" font-size="11">{escape(label)}</text>'
        )
        legend_x += 30 + 7 * len(label)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every text above is escaped or a number


def pile_timeline(*, pile, begin: dt.datetime, end: dt.datetime) -> list[Entry]:
    """A pile's health over any period: every connector's status changes, heartbeats with
    their state, offline periods, and the sessions started and stopped on it."""
    from billing.models import ChargingSession

    entries = []
    for received_at, number, status, error_code in (
        StatusEvent.objects.filter(pile=pile, received_at__range=(begin, end))
        .order_by("received_at")
        .values_list("received_at", "connector_number", "status", "error_code")[:MAX_ROWS]
    ):
        detail = error_code if error_code and error_code != "NoError" else ""
        entries.append(_status_entry(received_at, status, f"#{number} {detail}".strip()))
    for at, state in (
        HeartbeatSample.objects.filter(pile=pile, at__range=(begin, end))
        .order_by("at")
        .values_list("at", "state")[:MAX_ROWS]
    ):
        entries.append(Entry(at, "heartbeat", _("heartbeat"), state))
    for started, ended in (
        PileFault.objects.filter(pile=pile, kind=PileFault.Kind.OFFLINE, started_at__lte=end)
        .exclude(ended_at__lt=begin)
        .values_list("started_at", "ended_at")
    ):
        entries.append(Entry(max(started, begin), "offline", _("pile offline")))
        if ended and ended <= end:
            entries.append(Entry(ended, "online", _("pile back online")))
    for order_no, created, stopped in (
        ChargingSession.objects.filter(pile=pile, created_at__lte=end)
        .exclude(stop_received_at__lt=begin)
        .values_list("order_no", "created_at", "stop_received_at")[:MAX_ROWS]
    ):
        if created >= begin:
            entries.append(Entry(created, "start", _("StartTransaction received"), order_no))
        if stopped and stopped <= end:
            entries.append(Entry(stopped, "stop", _("StopTransaction received"), order_no))
    return sorted(entries, key=lambda e: (e.at, e.kind))
