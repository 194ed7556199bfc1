"""Reads of sessions and bills, and the one visibility rule for them."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter

from django.db import connection
from django.db.models import Q, QuerySet

from chargenet.money import METER_STOP_RESOLUTION_WH
from chargenet.scope import staff_scoped
from orgs.selectors import members_visible_to
from stations.selectors import stations_visible_to

from .models import (
    Bill,
    ChargingSession,
    InvoiceRequest,
    LedgerEntry,
    Recharge,
    RefundRequest,
    SessionState,
    StationTariff,
    TariffPlan,
    TariffPrice,
    TariffVersion,
    Wallet,
)
from .pricing import PeriodPrice, TariffSpec, schedule_from_text


def sessions_visible_to(staff) -> QuerySet[ChargingSession]:
    """Sessions ``staff`` may see (DOMAIN.md, attribution): operator-wide staff see the
    operator's; sub-operator staff see the sessions attributed to their sub-operator plus
    every session at a station they are authorised on — live and history alike."""
    return staff_scoped(
        ChargingSession,
        staff,
        for_sub_operator=lambda sessions: sessions.filter(
            Q(sub_operator_id=staff.sub_operator_id)
            | Q(station__in=stations_visible_to(staff).values("pk"))
        ),
    )


def bills_visible_to(staff) -> QuerySet[Bill]:
    """Bills ``staff`` may see: exactly the bills of the sessions they may see."""
    return Bill.objects.filter(session__in=sessions_visible_to(staff).values("pk"))


def session_samples(session: ChargingSession) -> list[tuple[dt.datetime, Decimal]]:
    """The platform's meter readings of a session: the pile's start register, the sampled
    registers strictly between start and stop in time order, then the stop register.

    Start and stop keep their places even when the pile's clock put the stop before the
    start, so the pricing engine sees time going backwards (a time anomaly)."""
    samples = session.samples.filter(energy_wh__isnull=False).order_by("at")
    return session_points(session, list(samples.values_list("at", "energy_wh")))


def session_points(
    session: ChargingSession, samples: Sequence[tuple[dt.datetime, Decimal | None]]
) -> list[tuple[dt.datetime, Decimal]]:
    """`session_samples` from samples already read, (time, register) in time order (a
    batch reads them for many sessions in one query)."""
    points = [(session.started_at, session.meter_start_wh)]
    # In time order: the samples strictly between start and stop are one slice of them.
    first = bisect_right(samples, session.started_at, key=itemgetter(0))
    last = len(samples)
    if session.stopped_at is not None:
        last = bisect_left(samples, session.stopped_at, key=itemgetter(0))
    points += [sample[:2] for sample in samples[first:last] if sample[1] is not None]
    if session.stopped_at is not None and session.meter_stop_wh is not None:
        stop = session.meter_stop_wh
        # Samples above the whole-Wh stop by less than a Wh are the same reading with more
        # digits: read as the stop, so the bill is the pile's meterStop − meterStart.
        ceiling = stop + METER_STOP_RESOLUTION_WH
        points = [(t, stop if stop < e < ceiling else e) for t, e in points]
        points.append((session.stopped_at, stop))
    return points


def corrected_points(
    session: ChargingSession, *, start: dt.datetime, stop: dt.datetime, register: Decimal
) -> list[tuple[dt.datetime, Decimal]]:
    """The readings of a session as customer service corrected it: the start register, the
    platform's samples between start and stop that agree with the corrected figures (never
    below an earlier one, never above the stop register — a reset reading is left out),
    then the corrected stop register."""
    points = [(start, session.meter_start_wh)]
    for at, energy in (
        session.samples.filter(energy_wh__isnull=False, at__gt=start, at__lt=stop)
        .order_by("at")
        .values_list("at", "energy_wh")
    ):
        if points[-1][1] <= energy <= register:
            points.append((at, energy))
    points.append((stop, register))
    return points


def bill_samples(bill: Bill) -> list[tuple[dt.datetime, Decimal]]:
    """The readings ``bill`` was priced on, for its chart: the platform's
    (`session_samples`) or, once customer service repaired it, the corrected ones — the
    repair keeps the pile's record on the session as evidence and its corrections on the
    bill (start, end, energy)."""
    session = bill.session
    if not session.transitions.filter(to_state=SessionState.REPAIRED).exists():
        return session_samples(session)
    register = session.meter_start_wh + bill.energy_wh
    return corrected_points(session, start=bill.started_at, stop=bill.ended_at, register=register)


@dataclass(frozen=True)
class NotPriced:
    """Why a fault bill has no price, and the energy the pile reported all the same."""

    reason: str  # the pricing error's message, as settlement stored it
    pile_energy_wh: Decimal | None  # meterStop − meterStart; None without a stop register


def bill_not_priced(bill: Bill) -> NotPriced | None:
    """For a bill the platform could not price (its pricing failed or was refused: the
    bill carries the message), what the pile reported, so a page shows the pile's energy
    and the reason rather than a bare 0 Wh and 0.00 yuan. None for a priced bill."""
    if not bill.fault_detail:
        return None
    session = bill.session
    energy = None
    if session.meter_stop_wh is not None:
        energy = session.meter_stop_wh - session.meter_start_wh
    return NotPriced(reason=bill.fault_detail, pile_energy_wh=energy)


TARIFF_ROWS_SQL = f"""
SELECT a.station_id, a.effective_from, v.id, v.effective_from, v.schedule,
       p.current_type, p.period, p.electricity, p.service
FROM {StationTariff._meta.db_table} a
LEFT JOIN {TariffVersion._meta.db_table} v ON v.plan_id = a.plan_id
LEFT JOIN {TariffPrice._meta.db_table} p ON p.version_id = v.id
WHERE a.station_id = ANY(%s) AND a.effective_from <= %s
ORDER BY a.station_id, a.effective_from, v.effective_from
"""


def tariff_rows_for_stations(*, station_ids: Iterable[int], until: dt.datetime) -> dict:
    """The plan history and versions of many stations up to ``until``, in ONE query, as
    `tariff_specs_from_rows` takes them: {station id: [rows in time order]}. (SQL, not
    the ORM: compiling the three-table query cost more than running it, per session.)"""
    with connection.cursor() as cursor:
        cursor.execute(TARIFF_ROWS_SQL, [sorted(set(station_ids)), until])
        rows = cursor.fetchall()
    by_station: dict[int, list[tuple]] = {}
    for station_id, *row in rows:
        by_station.setdefault(station_id, []).append(tuple(row))
    return by_station


def tariff_specs_for(
    *, station, current_type: str, start: dt.datetime, end: dt.datetime
) -> list[TariffSpec]:
    """The tariff versions in force at ``station`` between ``start`` and ``end`` for the
    pile's current type, as the pricing engine takes them (oldest first). Combines the
    station's plan history with each plan's versions, in one query; empty when nothing
    is assigned. A switch to a plan with no version yet is a `TariffSpec.missing`."""
    rows = tariff_rows_for_stations(station_ids=[station.pk], until=end).get(station.pk, [])
    return tariff_specs_from_rows(rows, current_type=current_type, start=start, end=end)


def tariff_specs_from_rows(
    rows: Iterable[tuple], *, current_type: str, start: dt.datetime, end: dt.datetime
) -> list[TariffSpec]:
    """`tariff_specs_for` from one station's rows read already (rows after ``end`` are
    ignored, so one read up to the latest end serves every session of a batch)."""
    # {assignment from: {version id: [from, schedule, [4 prices]]}}, both in time order
    assignments: dict[dt.datetime, dict[int, list]] = {}
    for a_from, v_id, v_from, schedule, ct, period, electricity, service in rows:
        if a_from > end:
            continue
        versions = assignments.setdefault(a_from, {})
        if v_id is None or ct != current_type:
            continue
        version = versions.setdefault(v_id, [v_from, schedule, [None] * 4])
        version[2][period] = PeriodPrice(electricity, service)
    windows = list(assignments.items())
    # Only the last assignment starting at or before ``start`` matters, and the later ones.
    while len(windows) > 1 and windows[1][0] <= start:
        windows.pop(0)
    specs: list[TariffSpec] = []
    for n, (window_from, versions) in enumerate(windows):
        window_to = windows[n + 1][0] if n + 1 < len(windows) else None
        in_window = [
            (v_id, v)
            for v_id, v in versions.items()
            if (v[0] < window_to if window_to is not None else v[0] <= end)
        ]
        lower = max(window_from, start)
        while len(in_window) > 1 and in_window[1][1][0] <= lower:
            in_window.pop(0)
        if specs and (not in_window or in_window[0][1][0] > window_from):
            # The new plan has no version yet at the switch: nothing is in force there.
            specs.append(TariffSpec.missing(window_from))
        for v_id, (v_from, schedule, prices) in in_window:
            if None in prices:  # no prices for this current type: nothing is in force
                specs.append(TariffSpec.missing(max(v_from, window_from)))
                continue
            specs.append(
                TariffSpec(
                    effective_from=max(v_from, window_from),
                    schedule=schedule_from_text(schedule),
                    prices=tuple(prices),
                    version_id=v_id,
                )
            )
    return specs


def wallets_visible_to(staff) -> QuerySet[Wallet]:
    """Wallets of exactly the members ``staff`` may see (`members_visible_to`)."""
    return Wallet.objects.filter(member__in=members_visible_to(staff).values("pk"))


def tariff_plans_visible_to(staff) -> QuerySet[TariffPlan]:
    """The operator's plans; sub-operator staff see the plans of their stations."""
    return staff_scoped(
        TariffPlan,
        staff,
        for_sub_operator=lambda plans: plans.filter(
            assignments__station__in=stations_visible_to(staff).values("pk")
        ).distinct(),
    )


def station_tariffs_visible_to(staff) -> QuerySet[StationTariff]:
    return StationTariff.objects.filter(station__in=stations_visible_to(staff).values("pk"))


@dataclass(frozen=True)
class StationPriceToday:
    station: object
    plan_name: str
    schedule: str  # 48 digits, "" when no tariff is in force
    prices: dict  # {"AC": [PeriodPrice × 4], "DC": [...]}
    period_now: int | None


def station_prices_today(*, stations, at: dt.datetime) -> list[StationPriceToday]:
    """For each station, the tariff in force at ``at``: its day schedule, AC/DC prices
    and the period the station's clock is in now. Two queries for any number of
    stations (tariff rows, then the plans assigned)."""
    stations = list(stations)
    station_ids = [station.pk for station in stations]
    rows = tariff_rows_for_stations(station_ids=station_ids, until=at)
    plan_names: dict[int, str] = {}
    for station_id, plan_name in (
        StationTariff.objects.filter(station_id__in=station_ids, effective_from__lte=at)
        .order_by("station_id", "-effective_from")
        .distinct("station_id")
        .values_list("station_id", "plan__name")
    ):
        plan_names[station_id] = plan_name
    out = []
    for station in stations:
        specs = {
            ct: tariff_specs_from_rows(rows.get(station.pk, []), current_type=ct, start=at, end=at)
            for ct in ("AC", "DC")
        }
        ac = specs["AC"][-1] if specs["AC"] and not specs["AC"][-1].is_missing else None
        dc = specs["DC"][-1] if specs["DC"] and not specs["DC"][-1].is_missing else None
        if ac is None or ac.effective_from > at:
            out.append(StationPriceToday(station, "", "", {}, None))
            continue
        local = at.astimezone(station.zone)
        out.append(
            StationPriceToday(
                station=station,
                plan_name=plan_names.get(station.pk, ""),
                schedule="".join(map(str, ac.schedule)),
                prices={"AC": list(ac.prices), "DC": list(dc.prices) if dc else []},
                period_now=ac.schedule[(local.hour * 60 + local.minute) // 30],
            )
        )
    return out


# ---- wallet money: recharges, balance refunds, invoices --------------------------------


def recharges_visible_to(staff) -> QuerySet[Recharge]:
    """Recharges of exactly the members ``staff`` may see (`members_visible_to`)."""
    return Recharge.objects.filter(member__in=members_visible_to(staff).values("pk"))


def refund_requests_visible_to(staff) -> QuerySet[RefundRequest]:
    return RefundRequest.objects.filter(member__in=members_visible_to(staff).values("pk"))


def invoices_visible_to(staff) -> QuerySet[InvoiceRequest]:
    return InvoiceRequest.objects.filter(member__in=members_visible_to(staff).values("pk"))


def member_ledger(member) -> QuerySet[LedgerEntry]:
    """A driver's own ledger, newest first (with the bills' order numbers)."""
    return (
        LedgerEntry.objects.filter(wallet__member=member)
        .select_related("bill")
        .order_by("-created_at", "-pk")
    )


def member_recharges(member) -> QuerySet[Recharge]:
    return Recharge.objects.filter(member=member).order_by("-created_at", "-pk")


def member_refund_requests(member) -> QuerySet[RefundRequest]:
    return RefundRequest.objects.filter(member=member).order_by("-created_at", "-pk")


def member_invoices(member) -> QuerySet[InvoiceRequest]:
    return (
        InvoiceRequest.objects.filter(member=member)
        .prefetch_related("items")
        .order_by("-created_at", "-pk")
    )
