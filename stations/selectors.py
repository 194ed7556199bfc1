"""Reads of the network, and the one visibility rule for stations.

Every staff-facing list, detail, filter choice, report and export of stations (and of
what hangs from them: piles, connectors, history) goes through `stations_visible_to`.
"""

from __future__ import annotations

from django.db.models import QuerySet

from chargenet.scope import staff_scoped

from .models import ConfigurationSetting, Connector, Pile, Station


def stations_visible_to(staff) -> QuerySet[Station]:
    """Stations ``staff`` may see: all for a superuser, the operator's for operator-wide
    staff, those the sub-operator is authorised on for sub-operator staff, else none.
    Hidden stations are included; callers that list live stations add `.visible()`."""
    return staff_scoped(
        Station,
        staff,
        for_sub_operator=lambda stations: stations.filter(sub_operators=staff.sub_operator_id),
    )


def piles_visible_to(staff) -> QuerySet[Pile]:
    return Pile.objects.filter(station__in=stations_visible_to(staff))


def connectors_visible_to(staff) -> QuerySet[Connector]:
    return Connector.objects.filter(pile__station__in=stations_visible_to(staff))


def pile_configuration_desired(*, pile: Pile) -> dict[str, str]:
    """The configuration ``pile`` should have: its station's keys, overridden by its own."""
    rows = ConfigurationSetting.objects.filter(station_id=pile.station_id) | (
        ConfigurationSetting.objects.filter(pile=pile)
    )
    desired: dict[str, str] = {}
    rows = rows.order_by("pile_id").values_list("station_id", "key", "value")
    for station_id, key, value in rows:
        if station_id is None or key not in desired:
            desired[key] = value
    return desired
