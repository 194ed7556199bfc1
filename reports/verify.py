"""`manage.py reports_verify`: the rollups against the bills, summed again independently.

`rollups_verify`: the rollups are written by one SQL statement (`reports.services.rollups`);
this check sums the bills through the ORM instead, per station × local day × sub-operator
× department × channel (and per fault code), and lists every figure that differs. Every report sums
rollup rows of such groups under its filters, so when every group agrees, every report
total agrees with the sum of its bills for the same filter.

`reports_verify`: then each report itself (`reports.tables.REPORTS`), built as the back
office builds it, shows totals equal to its bills (or recharge orders) summed here in
Python, unfiltered and per channel and per sub-operator.
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
from chargenet.money import to_fen

from .models import BillDay, FaultDay, StationBillDay, StationDayTotal

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
    for model, keys in (
        (BillDay, KEY),
        (StationBillDay, STATION_KEY),
        (StationDayTotal, ("day", "station_id")),
    ):
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


@dataclass(frozen=True)
class ReportDifference:
    report: str
    filters: str
    figure: str
    report_value: object
    bills: object

    def __str__(self) -> str:
        return (
            f"{self.report} [{self.filters}]: {self.figure} report={self.report_value} "
            f"bills={self.bills}"
        )


def _bill_sums(
    operator_id, filters, first_day, last_day, *, where=None, rate_of=None, by_station=False
) -> dict:
    """The bills of ``operator_id`` on the filters' local days matching the filters, summed
    again here (not through the rollups): what each report's totals must be. With
    ``by_station`` the sub-operator filter keeps the bills of its stations (a pile's time is
    its station's), else the bills attributed to it."""
    sums = Counter()
    share_by_sub: Counter = Counter()
    for bills in _bills(first_day, last_day):
        bills = bills.filter(where or Q(), operator_id=operator_id)
        if filters.station is not None:
            bills = bills.filter(station=filters.station)
        if filters.sub_operator is not None:
            sub = "station__sub_operators" if by_station else "sub_operator"
            bills = bills.filter(**{sub: filters.sub_operator})
        if filters.department is not None:
            bills = bills.filter(department=filters.department)
        if filters.channel:
            bills = bills.filter(channel=filters.channel)
        for row in bills.values_list(
            "energy_wh", "duration_s", "electricity_fee", "service_fee", "total",
            "payment_state", "fault_codes", "was_repaired", "sub_operator_id", "day",
        ).iterator(chunk_size=5000):  # fmt: skip
            energy, duration, fee_e, fee_s, total, state, codes, repaired, sub, day = row
            sums["sessions"] += 1
            sums["energy"] += energy
            sums["duration_s"] += duration
            sums["electricity_fee"] += fee_e
            sums["service_fee"] += fee_s
            sums["total"] += total
            sums[state] += total
            sums["fault_bills"] += bool(codes)
            sums["repaired"] += bool(codes) and repaired
            sums["recovered"] += total if codes and repaired else Decimal(0)
            if rate_of is not None and sub is not None:
                share_by_sub[sub] += fee_s * rate_of(sub, day)
    sums["share"] = sum((to_fen(s) for s in share_by_sub.values()), start=Decimal("0.00"))
    return sums


def _expected(slug: str, operator_id, filters, first_day, last_day) -> dict:
    """{column key: the value the report's totals must show}, from the bills (or the
    recharge orders) alone."""
    from .tables.base import kwh, yuan

    if slug == "recharges":
        return _recharge_sums(operator_id, filters)
    where = Q()
    if slug == "cards":
        where = Q(session__card__isnull=False)
    if slug == "statement":
        where = Q(sub_operator__isnull=False)
    rate_of = _share_rates(operator_id) if slug == "statement" else None
    s = _bill_sums(operator_id, filters, first_day, last_day, where=where, rate_of=rate_of,
                   by_station=slug == "utilisation")  # fmt: skip
    figures = {
        "sessions": s["sessions"],
        "energy": kwh(s["energy"]),
        "duration_s": s["duration_s"],
        "electricity_fee": yuan(s["electricity_fee"]),
        "service_fee": yuan(s["service_fee"]),
        "total": yuan(s["total"]),
        "paid": yuan(s[PaymentState.PAID]),
        "owed": yuan(s[PaymentState.OWED]),
        "fault_bills": s["fault_bills"],
        "repaired": s["repaired"],
        "recovered": yuan(s["recovered"]),
        "share": s["share"],
    }
    wanted = {
        "daily": ("sessions", "energy", "electricity_fee", "service_fee", "total", "paid",
                  "owed"),
        "detail": ("duration_s", "energy", "electricity_fee", "service_fee", "total"),
        "cards": ("sessions", "energy", "total"),
        "faults": ("sessions", "fault_bills", "repaired", "recovered"),
        "statement": ("sessions", "energy", "electricity_fee", "service_fee", "total",
                      "share"),
        "utilisation": ("sessions",),
    }[slug]  # fmt: skip
    return {name: figures[name] for name in wanted}


def _share_rates(operator_id):
    from .models import ServiceFeeShare

    rates: dict[int, list] = {}
    for share in ServiceFeeShare.objects.filter(operator_id=operator_id).order_by(
        "-effective_from"
    ):
        rates.setdefault(share.sub_operator_id, []).append((share.effective_from, share.rate))

    def rate_of(sub_operator_id, day):
        return next((r for since, r in rates.get(sub_operator_id, []) if since <= day), 0)

    return rate_of


def _recharge_sums(operator_id, filters) -> dict:
    from billing.models import Recharge, RechargeRefund, RechargeRefundState, RechargeState

    start, end = filters.window()
    orders = Recharge.objects.filter(
        member__operator_id=operator_id, created_at__gte=start, created_at__lt=end
    )
    if filters.sub_operator is not None:
        orders = orders.filter(member__department__sub_operator=filters.sub_operator)
    if filters.department is not None:
        orders = orders.filter(member__department=filters.department)
    if filters.channel:
        orders = orders.filter(channel=filters.channel)
    s: Counter = Counter()
    for amount, state in orders.values_list("amount", "state"):
        s["count"] += 1
        s["amount"] += amount
        s["credited"] += amount if state == RechargeState.PAID else 0
        s["pending"] += amount if state == RechargeState.PENDING else 0
    for amount in RechargeRefund.objects.filter(
        recharge__in=orders, state=RechargeRefundState.SUCCESS
    ).values_list("amount", flat=True):
        s["refunded"] += amount
    return {k: Decimal(s[k]).quantize(Decimal("0.01")) if k != "count" else s[k]
            for k in ("count", "amount", "credited", "pending", "refunded")}  # fmt: skip


def _report_figures(report) -> dict:
    """{column key: total} as the report shows it: its totals row, or its rows summed
    (a report without a totals row, like utilisation)."""
    keys = [c.key for c in report.columns]
    totals = report.totals()
    if totals is None:
        summed: Counter = Counter()
        for row in report.rows():
            for key, value in zip(keys, row, strict=True):
                if isinstance(value, int | Decimal) and not isinstance(value, bool):
                    summed[key] += value
        return dict(summed)
    return dict(zip(keys, totals, strict=True))


def reports_verify(
    *, first_day: dt.date | None = None, last_day: dt.date | None = None
) -> list[ReportDifference]:
    """Every report's totals, built as the back office builds them for an operator-wide
    account, against the bills (or recharge orders) summed here — over the whole range and
    again per channel and per sub-operator, so the filters are checked too."""
    from orgs.models import Operator, Staff

    from .filters import Filters
    from .tables import REPORTS

    first_day = (
        first_day
        or Bill.objects.order_by("started_at").values_list("started_at", flat=True).first()
    )
    if first_day is None:
        return []
    if isinstance(first_day, dt.datetime):
        first_day = (first_day - dt.timedelta(days=1)).date()
    last_day = last_day or dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    differences = []
    for operator in Operator.objects.order_by("pk"):
        staff = Staff(operator_id=operator.pk, is_active=True, is_staff=True)
        variants = [Filters(first_day=first_day, last_day=last_day)]
        variants += [
            Filters(first_day=first_day, last_day=last_day, sub_operator=sub)
            for sub in operator.sub_operators.order_by("pk")
        ]
        for slug, report_class in REPORTS.items():
            channels = [c for c, _label in report_class.channel_choices]
            for filters in variants + [
                Filters(first_day=first_day, last_day=last_day, channel=c) for c in channels
            ]:
                if filters.sub_operator is not None and "sub_operator" not in report_class.honoured:
                    continue
                if filters.channel and "channel" not in report_class.honoured:
                    continue
                if slug == "faults":
                    filters = Filters(**{**filters.__dict__, "extra": {"group_by": ["channel"]}})
                report = report_class(staff=staff, filters=filters)
                shown = _report_figures(report)
                expected = _expected(slug, operator.pk, filters, first_day, last_day)
                for figure, want in expected.items():
                    have = shown.get(figure, 0)
                    if have != want:
                        used = ", ".join(f"{k}={v}" for k, v in filters.used(
                            report_class.channel_choices)[2:]) or "all"  # fmt: skip
                        differences.append(
                            ReportDifference(f"{operator.code}/{slug}", used, figure, have, want)
                        )
    return differences
