"""Fault statistics: per fault code × channel × firmware × station × day (any subset of
them): sessions, fault bills, rate, repaired, amount recovered. Grouped by channel over
2019-10 it is the operator's own analysis (滴滴 1,414 sessions / 335 lost, …)."""

from __future__ import annotations

from django.db.models import Sum
from django.utils.translation import gettext_lazy as _

from billing.models import Channel
from faults.codes import FaultCode

from ..exports.tabular import Column
from ..selectors import bill_days_visible_to, fault_days_visible_to
from .base import Report, ratio, yuan

# The dimensions one can group by: (filter key, rollup field, column).
DIMENSIONS = {
    "code": ("code", Column("code", _("fault code"), "text")),
    "channel": ("channel", Column("channel", _("channel"), "text")),
    "firmware": ("firmware", Column("firmware", _("firmware"), "text")),
    "station": ("station__name", Column("station", _("station"), "text")),
    "day": ("day", Column("day", _("day"), "date")),
}
DEFAULT_GROUPS = ("code", "channel", "firmware", "station", "day")
FIGURES = [
    Column("sessions", _("sessions"), "int"),
    Column("fault_bills", _("fault bills"), "int"),
    Column("rate", _("fault rate"), "percent"),
    Column("repaired", _("repaired"), "int"),
    Column("recovered", _("amount recovered (yuan)"), "yuan"),
]


class FaultStatistics(Report):
    slug = "faults"
    title = _("Fault statistics")

    def __init__(self, *, staff, filters):
        super().__init__(staff=staff, filters=filters)
        wanted = filters.extra.get("group_by") or DEFAULT_GROUPS
        self.groups = [g for g in DEFAULT_GROUPS if g in wanted] or list(DEFAULT_GROUPS)
        self.code = filters.extra.get("code")
        self.columns = [DIMENSIONS[g][1] for g in self.groups] + FIGURES

    def _label(self, group: str, value):
        if group == "code":
            return f"{value} {FaultCode(value).label}"
        if group == "channel":
            return Channel(value).label
        return value

    def _by_code(self) -> bool:
        """Fault figures per code come from the per-code rollup (a bill with two codes counts
        once under each); otherwise a fault bill counts once."""
        return "code" in self.groups or self.code is not None

    def _table(self):
        fields = [DIMENSIONS[g][0] for g in self.groups]
        session_fields = [f for f in fields if f != "code"]
        sessions = {
            tuple(row[f] for f in session_fields): row["n"]
            for row in self.filters.apply(bill_days_visible_to(self.staff))
            .values(*session_fields)
            .annotate(n=Sum("sessions"))
            .order_by()
        }
        if self._by_code():
            faults = self.filters.apply(fault_days_visible_to(self.staff))
            if self.code is not None:
                faults = faults.filter(code=self.code)
        else:
            faults = self.filters.apply(bill_days_visible_to(self.staff)).filter(fault_bills__gt=0)
        grouped = faults.values(*fields).annotate(
            f=Sum("fault_bills"), r=Sum("repaired"), m=Sum("recovered")
        )
        table = []
        for row in grouped.order_by(*fields):
            n = sessions.get(tuple(row[f] for f in session_fields), 0)
            table.append(
                (
                    *(self._label(g, row[f]) for g, f in zip(self.groups, fields, strict=True)),
                    n,
                    row["f"],
                    ratio(row["f"], n),
                    row["r"],
                    yuan(row["m"]),
                )
            )
        return table

    def rows(self):
        yield from self._table()

    def totals(self):
        sessions = self.filters.apply(bill_days_visible_to(self.staff)).aggregate(
            n=Sum("sessions"), f=Sum("fault_bills"), r=Sum("repaired"), m=Sum("recovered")
        )
        n = sessions["n"] or 0
        if self._by_code():  # per code, a bill may count under several codes: no bill total
            return None
        return (
            str(_("total")),
            *[""] * (len(self.groups) - 1),
            n,
            sessions["f"] or 0,
            ratio(sessions["f"] or 0, n),
            sessions["r"] or 0,
            yuan(sessions["m"]),
        )

    def chart(self):
        if len(self.groups) != 1:
            return None
        table = self._table()
        return {
            "x": [str(row[0]) for row in table],
            "series": [
                {"name": str(_("sessions")), "type": "bar", "axis": 0,
                 "data": [row[1] for row in table]},
                {"name": str(_("fault bills")), "type": "bar", "axis": 0,
                 "data": [row[2] for row in table]},
            ],
        }  # fmt: skip
