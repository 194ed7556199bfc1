"""整车充电消费日报表 (daily charging consumption) and 结算单 (monthly statement per
sub-operator), both sums of `BillDay` rows."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from functools import cached_property

from django.db.models import Sum
from django.utils.translation import gettext_lazy as _

from chargenet.money import to_fen

from ..exports.tabular import Column
from ..selectors import (
    bill_days_visible_to,
    fee_shares_visible_to,
    station_bill_days_visible_to,
    station_day_totals_visible_to,
)
from .base import Report, kwh, yuan

ENERGY = ("energy_wh", "energy_sharp_wh", "energy_peak_wh", "energy_flat_wh", "energy_valley_wh")
MONEY = ("electricity_fee", "service_fee", "total", "paid", "owed")


class DailyConsumption(Report):
    slug = "daily"
    title = _("Daily charging consumption")
    columns = [
        Column("day", _("day"), "date"),
        Column("station", _("station"), "text"),
        Column("sub_operator", _("sub-operator"), "text"),
        Column("department", _("department"), "text"),
        Column("sessions", _("sessions"), "int"),
        Column("energy", _("energy (kWh)"), "kwh"),
        Column("energy_sharp", _("sharp (kWh)"), "kwh"),
        Column("energy_peak", _("peak (kWh)"), "kwh"),
        Column("energy_flat", _("flat (kWh)"), "kwh"),
        Column("energy_valley", _("valley (kWh)"), "kwh"),
        Column("electricity_fee", _("electricity fee (yuan)"), "yuan"),
        Column("service_fee", _("service fee (yuan)"), "yuan"),
        Column("total", _("total (yuan)"), "yuan"),
        Column("paid", _("paid (yuan)"), "yuan"),
        Column("owed", _("owed (yuan)"), "yuan"),
    ]
    FIGURES = ("sessions", *ENERGY, *MONEY)

    def _rows(self):
        # Per channel only when a channel is asked for: the station rollup is far smaller.
        if self.filters.channel:
            return self.filters.apply(bill_days_visible_to(self.staff))
        return self.filters.apply(station_bill_days_visible_to(self.staff))

    @staticmethod
    def _figures(row: dict) -> tuple:
        return (
            row["s_sessions"] or 0,
            *(kwh(row[f"s_{name}"]) for name in ENERGY),
            *(yuan(row[f"s_{name}"]) for name in MONEY),
        )

    def _grouped(self):
        return (
            self._rows()
            .values("day", "station__name", "sub_operator__name", "department__name")
            .annotate(**{f"s_{n}": Sum(n) for n in self.FIGURES})
            .order_by("day", "station__name", "sub_operator__name", "department__name")
        )

    def _row(self, row: dict) -> tuple:
        return (
            row["day"],
            row["station__name"],
            row["sub_operator__name"] or "",
            row["department__name"] or "",
            *self._figures(row),
        )

    def rows(self):
        for row in self._grouped().iterator(chunk_size=2000):
            yield self._row(row)

    def page_rows(self, n: int) -> list[tuple]:
        # LIMIT in the query: the database keeps the first n groups instead of sorting a
        # month of station-days (tens of thousands on a busy network) for the cursor.
        return [self._row(row) for row in self._grouped()[:n]]

    @cached_property
    def _days(self) -> list[dict]:
        """The figures per day: the chart, and summed (exactly: Decimals) the totals, in one
        pass over the rollups."""
        rows = self._rows()
        f = self.filters
        totals = station_day_totals_visible_to(self.staff)
        if totals is not None and not (f.sub_operator or f.department or f.channel):
            rows = totals.filter(day__gte=f.first_day, day__lte=f.last_day)
            if f.station is not None:
                rows = rows.filter(station=f.station)
        return list(
            rows.values("day").annotate(**{f"s_{n}": Sum(n) for n in self.FIGURES}).order_by("day")
        )

    def totals(self):
        summed = {
            f"s_{n}": sum((d[f"s_{n}"] or 0 for d in self._days), start=0) for n in self.FIGURES
        }
        return (str(_("total")), "", "", "", *self._figures(summed))

    def chart(self):
        days = self._days
        return {
            "x": [str(d["day"]) for d in days],
            "series": [
                {"name": str(_("energy (kWh)")), "type": "bar", "axis": 0,
                 "data": [float(kwh(d["s_energy_wh"])) for d in days]},
                {"name": str(_("total (yuan)")), "type": "line", "axis": 1,
                 "data": [float(d["s_total"]) for d in days]},
            ],
        }  # fmt: skip


class MonthlyStatement(Report):
    """Per sub-operator: energy and fees of the bills attributed to it, and its share of
    the service fee at the rate in force on each day (rates are versioned by day)."""

    slug = "statement"
    title = _("Monthly statement per sub-operator")
    columns = [
        Column("sub_operator", _("sub-operator"), "text"),
        Column("sessions", _("sessions"), "int"),
        Column("energy", _("energy (kWh)"), "kwh"),
        Column("electricity_fee", _("electricity fee (yuan)"), "yuan"),
        Column("service_fee", _("service fee (yuan)"), "yuan"),
        Column("total", _("total (yuan)"), "yuan"),
        Column("rates", _("share rate"), "text"),
        Column("share", _("service-fee share due (yuan)"), "yuan"),
    ]

    def _statement(self) -> list[tuple]:
        # Per channel only when a channel is asked for (the station rollup has none).
        rows = (
            bill_days_visible_to(self.staff)
            if self.filters.channel
            else station_bill_days_visible_to(self.staff)
        )
        days = (
            self.filters.apply(rows)
            .filter(sub_operator__isnull=False)
            .values("sub_operator_id", "sub_operator__name", "day")
            .annotate(
                sessions=Sum("sessions"),
                energy=Sum("energy_wh"),
                fee_e=Sum("electricity_fee"),
                fee_s=Sum("service_fee"),
                fee_t=Sum("total"),
            )
            .order_by("sub_operator__name", "day")
        )
        rates = defaultdict(list)  # newest first: the first not after a day is in force
        for share in fee_shares_visible_to(self.staff).order_by("-effective_from"):
            rates[share.sub_operator_id].append((share.effective_from, share.rate))
        statement: dict[int, dict] = {}
        for row in days:
            line = statement.setdefault(
                row["sub_operator_id"],
                {"name": row["sub_operator__name"], "sums": [0, 0, 0, 0, 0], "share": Decimal(0),
                 "rates": []},
            )  # fmt: skip
            for i, key in enumerate(("sessions", "energy", "fee_e", "fee_s", "fee_t")):
                line["sums"][i] += row[key]
            rate = next((r for since, r in rates[row["sub_operator_id"]] if since <= row["day"]), 0)
            # Exact until the statement's last step: rounded once, to the fen.
            line["share"] += row["fee_s"] * rate
            if rate not in line["rates"]:
                line["rates"].append(rate)
        return [
            (
                line["name"],
                line["sums"][0],
                kwh(line["sums"][1]),
                yuan(line["sums"][2]),
                yuan(line["sums"][3]),
                yuan(line["sums"][4]),
                " / ".join(f"{r * 100:.2f}%" for r in line["rates"]),
                to_fen(line["share"]),
            )
            for line in statement.values()
        ]

    def rows(self):
        yield from self._statement()

    def totals(self):
        lines = self._statement()
        summed = [sum((line[i] for line in lines), start=0) for i in range(1, 6)]
        return (
            str(_("total")),
            *summed,
            "",
            sum((line[7] for line in lines), start=Decimal("0.00")),
        )
