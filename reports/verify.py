"""`manage.py reports_verify`: the rollups against the bills, summed again independently.

The rollups are written by one SQL statement (`reports.services.rollups`); this check sums
the bills through the ORM instead, per station × local day × sub-operator × department ×
channel (and per fault code), and lists every figure that differs. Every report sums
rollup rows of such groups under its filters, so when every group agrees, every report
total agrees with the sum of its bills for the same filter.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.db.models.functions import TruncDate

from billing.models import Bill, PaymentState, SessionState, SessionTransition

from .models import BillDay, FaultDay, StationBillDay

KEY = ("day", "station_id", "sub_operator_id", "department_id", "channel")
STATION_KEY = KEY[:-1]


@dataclass(frozen=True)
class Difference:
    group: tuple
    figure: str
    rollup: object
    bills: object

    def __str__(self) -> str:
        names = (*KEY, "code")
        where = " ".join(f"{name.removesuffix('_id')}={value}" for name, value in
                         zip(names, self.group, strict=False))  # fmt: skip
        return f"{where}: {self.figure} rollup={self.rollup} bills={self.bills}"


def _paid(state: str) -> Sum:
    return Sum("total", filter=Q(payment_state=state))


_FIGURES = {
    "sessions": Count("pk"),
    "energy_wh": Sum("energy_wh"),
    "electricity_fee": Sum("electricity_fee"),
    "service_fee": Sum("service_fee"),
    "total": Sum("total"),
    "paid": _paid(PaymentState.PAID),
    "owed": _paid(PaymentState.OWED),
    "unpaid": _paid(PaymentState.UNPAID),
    "fault_waiting": _paid(PaymentState.FAULT),
    "fault_bills": Count("pk", filter=~Q(fault_codes=[])),
    "repaired": Count("pk", filter=~Q(fault_codes=[]) & Q(was_repaired=True)),
    "recovered": Sum("total", filter=~Q(fault_codes=[]) & Q(was_repaired=True)),
}


def _prefixed(figures: dict) -> dict:
    """Annotation names apart from the field names they sum."""
    return {f"x_{name}": expression for name, expression in figures.items()}


def _zero(value):
    return Decimal(0) if value is None else value


def _bills(first_day: dt.date | None, last_day: dt.date | None):
    """The bills as (zone, queryset annotated with the local ``day``), zone by zone."""
    repaired = SessionTransition.objects.filter(
        session_id=OuterRef("session_id"), to_state=SessionState.REPAIRED
    )
    zones = Bill.objects.order_by().values_list("station__time_zone", flat=True).distinct()
    for zone in sorted(zones):
        bills = Bill.objects.filter(station__time_zone=zone).annotate(
            day=TruncDate("started_at", tzinfo=zoneinfo.ZoneInfo(zone)),
            was_repaired=Exists(repaired),
        )
        if first_day:
            bills = bills.filter(day__gte=first_day)
        if last_day:
            bills = bills.filter(day__lte=last_day)
        yield bills


def _in_range(rows, first_day, last_day):
    if first_day:
        rows = rows.filter(day__gte=first_day)
    if last_day:
        rows = rows.filter(day__lte=last_day)
    return rows


def _figures_differ(model, keys, first_day, last_day) -> list[Difference]:
    """The figures of ``model``'s groups (by ``keys``) that differ from their bills'."""
    expected = {}
    for bills in _bills(first_day, last_day):
        for row in bills.order_by().values(*keys).annotate(**_prefixed(_FIGURES)):
            expected[tuple(row[k] for k in keys)] = row
    found = {
        tuple(row[k] for k in keys): row
        for row in _in_range(model.objects.all(), first_day, last_day)
        .order_by()
        .values(*keys)
        .annotate(**_prefixed({name: Sum(name) for name in _FIGURES}))
    }
    differences = []
    for group in sorted(expected.keys() | found.keys(), key=str):
        want, have = expected.get(group, {}), found.get(group, {})
        for figure in _FIGURES:
            a, b = _zero(have.get(f"x_{figure}")), _zero(want.get(f"x_{figure}"))
            if a != b:
                differences.append(Difference(group, f"{model._meta.model_name}.{figure}", a, b))
    return differences


def rollups_verify(
    *, first_day: dt.date | None = None, last_day: dt.date | None = None
) -> list[Difference]:
    """Every rollup figure that differs from the sum of its bills (empty: all agree)."""
    differences = []
    for model, keys in ((BillDay, KEY), (StationBillDay, STATION_KEY)):
        differences += _figures_differ(model, keys, first_day, last_day)
    codes_expected: Counter = Counter()
    for bills in _bills(first_day, last_day):
        faulty = bills.exclude(fault_codes=[]).values_list(
            *KEY, "fault_codes", "payment_state", "was_repaired", "total"
        )
        for *key, codes, state, repaired, total in faulty:
            for code in codes:
                group = (*key, code)
                codes_expected[(group, "fault_bills")] += 1
                codes_expected[(group, "waiting")] += state == PaymentState.FAULT
                codes_expected[(group, "repaired")] += repaired
                codes_expected[(group, "recovered")] += total if repaired else Decimal(0)
    codes_found: Counter = Counter()
    fault_figures = ("fault_bills", "waiting", "repaired", "recovered")
    for row in (
        _in_range(FaultDay.objects.all(), first_day, last_day)
        .order_by()
        .values(*KEY, "code")
        .annotate(**_prefixed({name: Sum(name) for name in fault_figures}))
    ):
        group = tuple(row[k] for k in (*KEY, "code"))
        for figure in fault_figures:
            codes_found[(group, figure)] += row[f"x_{figure}"]
    groups = {group for group, _figure in [*codes_expected, *codes_found]}
    for group in sorted(groups, key=str):
        for figure in fault_figures:
            a, b = (
                _zero(codes_found.get((group, figure))),
                _zero(codes_expected.get((group, figure))),
            )
            if a != b:
                differences.append(Difference(group, figure, a, b))
    return differences
