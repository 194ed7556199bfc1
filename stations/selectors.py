"""Reads of the network, and the one visibility rule for stations.

Every staff-facing list, detail, filter choice, report and export of stations (and of
what hangs from them: piles, connectors, history) goes through `stations_visible_to`.
"""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Connector, Pile, Station


def stations_visible_to(staff) -> QuerySet[Station]:
    """Stations ``staff`` may see: all for a superuser, the operator's for operator-wide
    staff, those the sub-operator is authorised on for sub-operator staff, else none.
    Hidden stations are included; callers that list live stations add `.visible()`."""
    if staff is None or not getattr(staff, "is_authenticated", False) or not staff.is_active:
        return Station.objects.none()
    if staff.is_superuser:
        return Station.objects.all()
    if staff.operator_id is None:
        return Station.objects.none()
    stations = Station.objects.filter(operator_id=staff.operator_id)
    if staff.sub_operator_id is not None:
        stations = stations.filter(sub_operators=staff.sub_operator_id)
    return stations


def piles_visible_to(staff) -> QuerySet[Pile]:
    return Pile.objects.filter(station__in=stations_visible_to(staff))


def connectors_visible_to(staff) -> QuerySet[Connector]:
    return Connector.objects.filter(pile__station__in=stations_visible_to(staff))
