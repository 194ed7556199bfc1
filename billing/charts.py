"""Small inline SVG pictures for the back office (no JavaScript, no CDN)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from .models import Period

PERIOD_COLOURS = {0: "#c0392b", 1: "#e67e22", 2: "#27ae60", 3: "#2e86c1"}
PERIOD_TINTS = {0: "#f5c6c1", 1: "#fbe0c3", 2: "#c9ecd5", 3: "#c8e1f3"}


def _hhmm(slot: int) -> str:
    return f"{slot // 2:02d}:{(slot % 2) * 30:02d}"


def schedule_bar(schedule: str) -> SafeString:
    """The day as 48 coloured half-hour slots, with the time and period on hover."""
    if not schedule:
        return format_html("<em>{}</em>", _("no tariff in force"))
    cells = format_html_join(
        "",
        '<span title="{}–{} {}" style="display:inline-block;width:9px;height:18px;'
        'background:{};border-right:1px solid #fff"></span>',
        (
            (
                _hhmm(slot),
                _hhmm(slot + 1) if slot < 47 else "24:00",
                Period(int(p)).label,
                PERIOD_COLOURS[int(p)],
            )
            for slot, p in enumerate(schedule)
        ),
    )
    return format_html('<span style="white-space:nowrap">{}</span>', cells)


def legend() -> SafeString:
    return format_html_join(
        " ",
        '<span style="display:inline-block;width:12px;height:12px;background:{}"></span> {}',
        ((PERIOD_COLOURS[p.value], p.label) for p in Period),
    )


def meter_chart(
    *,
    samples: list[tuple[dt.datetime, Decimal]],
    bands: list[tuple[dt.datetime, dt.datetime, int | None, int]],
    zone,
    width: int = 720,
    height: int = 220,
) -> SafeString:
    """Energy delivered (kWh) over the session, over coloured tariff-period bands.
    (Floats here are pixel positions only; no money or energy figure comes from them.)"""
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return format_html("<em>{}</em>", _("Not enough meter samples to draw."))
    left, bottom, top, right = 48, 28, 10, 10
    t0, t1 = samples[0][0], samples[-1][0]
    span = (t1 - t0).total_seconds()
    e0 = samples[0][1]
    top_kwh = max(float(max(e for _t, e in samples) - e0) / 1000, 0.001)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: dt.datetime) -> float:
        return left + plot_w * (t - t0).total_seconds() / span

    def y(e: Decimal) -> float:
        return top + plot_h * (1 - float(e - e0) / 1000 / top_kwh)

    rects = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
        (
            (
                f"{x(max(a, t0)):.1f}",
                top,
                f"{max(x(min(b, t1)) - x(max(a, t0)), 0):.1f}",
                plot_h,
                PERIOD_TINTS[period],
                f"{Period(period).label} {a.astimezone(zone):%H:%M}–{b.astimezone(zone):%H:%M}",
            )
            for a, b, _version, period in bands
        ),
    )
    points = " ".join(f"{x(t):.1f},{y(e):.1f}" for t, e in samples)
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="2" fill="#333"><title>{} {} kWh</title></circle>',
        (
            (
                f"{x(t):.1f}",
                f"{y(e):.1f}",
                f"{t.astimezone(zone):%Y-%m-%d %H:%M:%S}",
                (e - e0) / 1000,
            )
            for t, e in samples
        ),
    )
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        'aria-label="{label}" style="font:11px sans-serif;background:#fff">'
        "{rects}"
        '<polyline points="{points}" fill="none" stroke="#333" stroke-width="1.5"/>{dots}'
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/>'
        '<line x1="{l}" y1="{t}" x2="{l}" y2="{b}" stroke="#999"/>'
        '<text x="{l}" y="{tb}" >{start}</text>'
        '<text x="{r}" y="{tb}" text-anchor="end">{end}</text>'
        '<text x="4" y="{t2}">{kwh} kWh</text><text x="4" y="{b}">0</text>'
        "</svg>",
        w=width,
        h=height,
        label=_("Energy over time on the tariff periods"),
        rects=rects,
        points=points,
        dots=dots,
        l=left,
        r=width - right,
        b=top + plot_h,
        t=top,
        tb=height - 8,
        t2=top + 10,
        start=f"{t0.astimezone(zone):%m-%d %H:%M}",
        end=f"{t1.astimezone(zone):%m-%d %H:%M}",
        kwh=f"{top_kwh:.2f}",
    )
