"""Reads of sessions and bills, and the one visibility rule for them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Q, QuerySet

from stations.selectors import stations_visible_to

from .models import Bill, ChargingSession, StationTariff, TariffVersion
from .pricing import PeriodPrice, TariffSpec, schedule_from_text


def sessions_visible_to(staff) -> QuerySet[ChargingSession]:
    """Sessions ``staff`` may see (DOMAIN.md, attribution): operator-wide staff see the
    operator's; sub-operator staff see the sessions attributed to their sub-operator plus
    every session at a station they are authorised on — live and history alike."""
    if staff is None or not getattr(staff, "is_authenticated", False) or not staff.is_active:
        return ChargingSession.objects.none()
    if staff.is_superuser:
        return ChargingSession.objects.all()
    if staff.operator_id is None:
        return ChargingSession.objects.none()
    sessions = ChargingSession.objects.filter(operator_id=staff.operator_id)
    if staff.sub_operator_id is not None:
        sessions = sessions.filter(
            Q(sub_operator_id=staff.sub_operator_id)
            | Q(station__in=stations_visible_to(staff).values("pk"))
        )
    return sessions


def bills_visible_to(staff) -> QuerySet[Bill]:
    """Bills ``staff`` may see: exactly the bills of the sessions they may see."""
    return Bill.objects.filter(session__in=sessions_visible_to(staff).values("pk"))


def session_samples(session: ChargingSession) -> list[tuple[dt.datetime, Decimal]]:
    """The platform's meter readings of a session: the pile's start register, the sampled
    registers strictly between start and stop in time order, then the stop register.

    Start and stop keep their places even when the pile's clock put the stop before the
    start, so the pricing engine sees time going backwards (a time anomaly)."""
    samples = session.samples.filter(energy_wh__isnull=False, at__gt=session.started_at)
    if session.stopped_at is not None:
        samples = samples.filter(at__lt=session.stopped_at)
    points = [(session.started_at, session.meter_start_wh)]
    points += list(samples.order_by("at").values_list("at", "energy_wh"))
    if session.stopped_at is not None and session.meter_stop_wh is not None:
        points.append((session.stopped_at, session.meter_stop_wh))
    return points


def tariff_specs_for(
    *, station, current_type: str, start: dt.datetime, end: dt.datetime
) -> list[TariffSpec]:
    """The tariff versions in force at ``station`` between ``start`` and ``end`` for the
    pile's current type, as the pricing engine takes them (oldest first). Combines the
    station's plan history with each plan's versions; empty when nothing is assigned."""
    assignments = list(
        StationTariff.objects.filter(station=station, effective_from__lte=end).order_by(
            "effective_from"
        )
    )
    # Only the last assignment starting at or before ``start`` matters, and the later ones.
    while len(assignments) > 1 and assignments[1].effective_from <= start:
        assignments.pop(0)
    specs: list[TariffSpec] = []
    for n, assignment in enumerate(assignments):
        window_from = assignment.effective_from
        versions = TariffVersion.objects.filter(plan_id=assignment.plan_id)
        if n + 1 < len(assignments):
            versions = versions.filter(effective_from__lt=assignments[n + 1].effective_from)
        else:
            versions = versions.filter(effective_from__lte=end)
        versions = list(versions.order_by("effective_from").prefetch_related("prices"))
        lower = max(window_from, start)
        while len(versions) > 1 and versions[1].effective_from <= lower:
            versions.pop(0)
        if specs and (not versions or versions[0].effective_from > window_from):
            # The new plan has no version yet at the switch: nothing is in force there.
            specs.append(TariffSpec.missing(window_from))
        for version in versions:
            prices = sorted(
                (p for p in version.prices.all() if p.current_type == current_type),
                key=lambda p: p.period,
            )
            specs.append(
                TariffSpec(
                    effective_from=max(version.effective_from, window_from),
                    schedule=schedule_from_text(version.schedule),
                    prices=tuple(PeriodPrice(p.electricity, p.service) for p in prices),
                    version_id=version.pk,
                )
            )
    return specs
