"""Reads of the rollups, and the one visibility rule for them.

Rollup rows are seen exactly as the bills they sum (`billing.selectors.sessions_visible_to`):
operator-wide staff see their operator's; sub-operator staff see the rows attributed to
their sub-operator plus every row of a station they are authorised on.
"""

from __future__ import annotations

from django.db.models import Model, Q, QuerySet

from chargenet.scope import is_active_staff, staff_scoped
from stations.selectors import stations_visible_to

from .models import (
    BillDay,
    FaultDay,
    HourLoad,
    PileDay,
    ServiceFeeShare,
    StationBillDay,
    StationDayTotal,
)


def _as_bills_are(model: type[Model], staff) -> QuerySet:
    return staff_scoped(
        model,
        staff,
        for_sub_operator=lambda rows: rows.filter(
            Q(sub_operator_id=staff.sub_operator_id)
            | Q(station__in=stations_visible_to(staff).values("pk"))
        ),
    )


def bill_days_visible_to(staff) -> QuerySet[BillDay]:
    return _as_bills_are(BillDay, staff)


def station_bill_days_visible_to(staff) -> QuerySet[StationBillDay]:
    return _as_bills_are(StationBillDay, staff)


def station_day_totals_visible_to(staff) -> QuerySet[StationDayTotal] | None:
    """Station-day totals for staff who see whole stations only (operator-wide staff,
    superusers); None for sub-operator staff, who read `station_bill_days_visible_to`
    (they also see the bills attributed to them at other stations)."""
    if is_active_staff(staff) and not staff.is_superuser and staff.sub_operator_id is not None:
        return None
    return staff_scoped(StationDayTotal, staff)


def fault_days_visible_to(staff) -> QuerySet[FaultDay]:
    return _as_bills_are(FaultDay, staff)


def hour_loads_visible_to(staff) -> QuerySet[HourLoad]:
    return _as_bills_are(HourLoad, staff)


def pile_days_visible_to(staff) -> QuerySet[PileDay]:
    """Pile time is the station's: seen by whoever sees the station."""
    return PileDay.objects.filter(station__in=stations_visible_to(staff).values("pk"))


def fee_shares_visible_to(staff) -> QuerySet[ServiceFeeShare]:
    """Share rates: the operator's staff see them all, a sub-operator its own."""
    return staff_scoped(
        ServiceFeeShare,
        staff,
        for_sub_operator=lambda rows: rows.filter(sub_operator_id=staff.sub_operator_id),
    )
