"""Template filters of the report pages: a cell shown by its column's kind."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import template
from django.urls import reverse
from django.utils import formats
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def cell(value, kind: str) -> str:
    """``value`` of a column of ``kind`` as the page shows it (the export keeps the value)."""
    if value is None or value == "":
        return "—" if kind not in ("text",) else ""
    if kind == "percent":
        return f"{Decimal(value):.2f}%"  # the percentage itself (the exports' convention)
    if kind == "kwh":
        return f"{Decimal(value):,.3f}"
    if kind == "yuan":
        return f"{Decimal(value):,.2f}"
    if kind == "int" and isinstance(value, int):
        return f"{value:,}"
    if kind == "datetime" and isinstance(value, dt.datetime):
        # On the clock the value carries (a bill's: its station's), as the export shows it.
        return formats.date_format(value, "Y-m-d H:i:s")
    return str(value)


def numeric(kind: str) -> bool:
    """Columns of these kinds are right-aligned."""
    return kind not in ("text", "date", "datetime")


def shown_cells(row, columns) -> list[tuple[str, bool]]:
    """(shown value, right-aligned) of each cell of a row (the page renders them as is)."""
    return [(cell(v, c.kind), numeric(c.kind)) for v, c in zip(row, columns, strict=True)]


def rows_html(rows: list[list[tuple[str, bool]]]) -> SafeString:
    """The table rows of ``shown_cells`` rows as HTML, escaped here: a template loop per
    cell took most of a report page's time (200 rows × 15 columns)."""
    out = []
    for row in rows:
        out.append("<tr>")
        for value, num in row:
            out.append('<td class="num">' if num else "<td>")
            out.append(escape(value))
            out.append("</td>")
        out.append("</tr>")
    return mark_safe("".join(out))  # every value escaped above


@register.inclusion_tag("admin/reports/dashboard_panel.html", takes_context=True)
def dashboard(context):
    """The home page's figures for the signed-in staff member (nothing for those who may
    not view bills)."""
    from reports.admin import may_view_reports
    from reports.dashboard import dashboard_for

    user = context["request"].user
    if not may_view_reports(user):
        return {"board": None}
    return {
        "board": dashboard_for(user),
        "reports_url": reverse("admin:reports_billday_changelist"),
    }
