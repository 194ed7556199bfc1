"""Reads of the network, and the one visibility rule for stations.

Every staff-facing list, detail, filter choice, report and export of stations (and of
what hangs from them: piles, connectors, history) goes through `stations_visible_to`.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from chargenet.scope import staff_scoped

from .models import (
    ChargingProfile,
    ConfigurationSetting,
    Connector,
    FirmwareCampaign,
    FirmwareCampaignPile,
    MaintenanceReport,
    Pile,
    Reservation,
    Station,
)


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


# --- OCPP 1.6 feature profiles (issue 15): what hangs from visible piles and stations ---


def reservations_visible_to(staff) -> QuerySet[Reservation]:
    return Reservation.objects.filter(connector__pile__in=piles_visible_to(staff))


def charging_profiles_visible_to(staff) -> QuerySet[ChargingProfile]:
    return ChargingProfile.objects.filter(pile__in=piles_visible_to(staff))


def maintenance_reports_visible_to(staff) -> QuerySet[MaintenanceReport]:
    return MaintenanceReport.objects.filter(pile__in=piles_visible_to(staff))


def configuration_settings_visible_to(staff) -> QuerySet[ConfigurationSetting]:
    stations = stations_visible_to(staff)
    return ConfigurationSetting.objects.filter(
        Q(station__in=stations) | Q(pile__station__in=stations)
    )


def firmware_campaigns_visible_to(staff) -> QuerySet[FirmwareCampaign]:
    """Campaigns are the operator's: operator-wide staff see them all, sub-operator staff
    those over at least one of their piles (and of each, only their piles:
    `firmware_campaign_targets` with ``piles=piles_visible_to(staff)``)."""
    return staff_scoped(
        FirmwareCampaign,
        staff,
        for_sub_operator=lambda rows: rows.filter(
            pk__in=FirmwareCampaignPile.objects.filter(pile__in=piles_visible_to(staff)).values(
                "campaign_id"
            )
        ),
    )
