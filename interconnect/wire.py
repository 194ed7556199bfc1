"""Reads that answer partners, in the standard's words (selectors of the adapter): the
station, equipment and connector records, connector states, prices per period, a charge's
live status and a finished order with its per-period details. Wire words stop here; the
values come from the core (stations, tariffs, sessions, bills).

Identifiers: StationID is our station code, EquipmentID the pile code, ConnectorID the pile
code followed by the connector number in two digits.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from billing.models import Bill, ChargingSession
from billing.models.sessions import ACTIVE_STATES
from billing.pricing import PricingError, period_segments
from billing.selectors import tariff_specs_for
from chargenet.money import wh_to_kwh
from stations.models import Connector, ConnectorState, CurrentType, Pile, Station

from .codec import CHINA
from .models import ORDER_WIRE_STATE, Interconnection, PartnerOrder

# Connector states (the core's) → the standard's ConnectorStatus.
OFFLINE, FREE, OCCUPIED, CHARGING, RESERVED, FAULT = 0, 1, 2, 3, 4, 255
STATUS = {
    ConnectorState.UNKNOWN: OFFLINE,
    ConnectorState.AVAILABLE: FREE,
    ConnectorState.PREPARING: OCCUPIED,
    ConnectorState.SUSPENDED_EV: OCCUPIED,
    ConnectorState.SUSPENDED_EVSE: OCCUPIED,
    ConnectorState.FINISHING: OCCUPIED,
    ConnectorState.CHARGING: CHARGING,
    ConnectorState.RESERVED: RESERVED,
    ConnectorState.UNAVAILABLE: FAULT,
    ConnectorState.FAULTED: FAULT,
}
# EquipmentType: 1 DC, 2 AC. ConnectorType: 3 AC socket (GB/T), 4 DC gun (GB/T).
EQUIPMENT_TYPE = {CurrentType.DC: 1, CurrentType.AC: 2}
CONNECTOR_TYPE = {CurrentType.DC: 4, CurrentType.AC: 3}


def connector_status(*, state: str, pile_online: bool) -> int:
    """The standard's ConnectorStatus of a connector: 0 whenever its pile is offline."""
    if not pile_online:
        return OFFLINE
    return STATUS.get(state, OFFLINE)


def connector_wire_id(pile_code: str, number: int) -> str:
    return f"{pile_code}{number:02d}"


def connector_by_wire_id(
    link: Interconnection, wire_id: object, *, published_only: bool = True
) -> Connector | None:
    """The connector a ConnectorID names, on a station published to ``link`` (others:
    None, the same as an unknown one)."""
    if not isinstance(wire_id, str) or not wire_id.isdigit() or len(wire_id) not in (18, 22):
        return None
    connectors = Connector.objects.select_related("pile__station").filter(
        pile__code=wire_id[:-2],
        number=int(wire_id[-2:]),
        pile__hidden_at=None,
        pile__station__operator_id=link.operator_id,
    )
    if published_only:
        connectors = connectors.filter(
            pile__is_published=True, pile__station__in=link.stations.all()
        )
    return connectors.first()


def _num(value: Decimal | None, places: int = 2) -> float:
    return float(round(Decimal(value or 0), places))


def _time(at: dt.datetime | None) -> str:
    return timezone.localtime(at, CHINA).strftime("%Y-%m-%d %H:%M:%S") if at else ""


def published_stations(link: Interconnection) -> QuerySet[Station]:
    """The stations ``link`` may see: published to it, not hidden, with a published pile."""
    return (
        link.stations.filter(hidden_at=None, piles__is_published=True, piles__hidden_at=None)
        .distinct()
        .order_by("pk")
    )


def _piles_prefetch() -> Prefetch:
    piles = Pile.objects.filter(is_published=True, hidden_at=None).order_by("code")
    return Prefetch("piles", queryset=piles.prefetch_related("connectors"), to_attr="wire_piles")


def station_info(station: Station, operator_id_wire: str) -> dict:
    # Closed (5) when hidden or no pile is published any more (incremental queries tell
    # the partner so), with no equipment; else in use (50).
    in_use = bool(station.wire_piles) and station.hidden_at is None
    equipments = []
    for pile in station.wire_piles if in_use else []:
        connectors = [
            {
                "ConnectorID": connector_wire_id(pile.code, c.number),
                "ConnectorType": CONNECTOR_TYPE[pile.current_type],
                "VoltageUpperLimits": 750 if pile.current_type == CurrentType.DC else 220,
                "VoltageLowerLimits": 200 if pile.current_type == CurrentType.DC else 220,
                "Current": 0,
                "Power": _num(c.rated_power_kw, 1),
                "NationalStandard": 2,
            }
            for c in sorted(pile.connectors.all(), key=lambda c: c.number)
        ]
        equipments.append(
            {
                "EquipmentID": pile.code,
                "EquipmentType": EQUIPMENT_TYPE[pile.current_type],
                "Power": _num(pile.max_power_kw, 1),
                "ConnectorInfos": connectors,
            }
        )
    return {
        "StationID": station.code,
        "OperatorID": operator_id_wire,
        "EquipmentOwnerID": operator_id_wire,
        "StationName": station.name,
        "CountryCode": "CN",
        "AreaCode": station.region_code,
        "Address": station.address,
        "ServiceTel": "",
        "StationType": 1 if station.is_public else 50,
        "StationStatus": 50 if in_use else 5,
        "ParkNums": 0,
        "StationLng": _num(station.longitude, 6),
        "StationLat": _num(station.latitude, 6),
        "Construction": 255,
        "EquipmentInfos": equipments,
    }


def stations_info(
    link: Interconnection, *, page: int, page_size: int, since: dt.datetime | None = None
) -> dict:
    """query_stations_info: one page of the published stations, in a fixed number of
    queries (count, stations, piles, connectors). With ``since`` (the partner's
    LastQueryTime) only the stations of ``link`` whose details changed after it
    (`Station.details_changed_at`), published or not any more; the window starts earlier
    by the clock skew we accept and a minute, so neither the partner's clock nor a change
    committed just after it was stamped is missed (a repeat is harmless)."""
    if since is None:
        stations = published_stations(link)
    else:
        margin = dt.timedelta(seconds=settings.INTERCONNECT_CLOCK_SKEW_SECONDS + 60)
        stations = link.stations.filter(details_changed_at__gt=since - margin).order_by("pk")
    total = stations.count()
    page_count = max(1, -(-total // page_size))
    page = min(max(page, 1), page_count)
    rows = stations[(page - 1) * page_size : page * page_size].prefetch_related(_piles_prefetch())
    operator_id_wire = settings.INTERCONNECT_OPERATOR_ID
    return {
        "PageNo": page,
        "PageCount": page_count,
        "ItemSize": total,
        "StationInfos": [station_info(s, operator_id_wire) for s in rows],
    }


def stations_status(link: Interconnection, station_codes: list[str]) -> dict:
    stations = published_stations(link).filter(code__in=station_codes[:50])
    infos = []
    for station in stations.prefetch_related(_piles_prefetch()):
        infos.append(
            {
                "StationID": station.code,
                "ConnectorStatusInfos": [
                    {
                        "ConnectorID": connector_wire_id(pile.code, c.number),
                        "Status": connector_status(state=c.status, pile_online=pile.is_online),
                    }
                    for pile in station.wire_piles
                    for c in sorted(pile.connectors.all(), key=lambda c: c.number)
                ],
            }
        )
    return {"Total": len(infos), "StationStatusInfos": infos}


def station_stats(link: Interconnection, station_code: str, start: dt.date, end: dt.date):
    """query_station_stats: energy of the station's bills between the two days (local),
    per pile and connector. None when the station is not published to ``link``."""
    station = published_stations(link).filter(code=station_code).first()
    if station is None:
        return None
    since = dt.datetime.combine(start, dt.time(), CHINA)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), CHINA)
    bills = Bill.objects.filter(station=station, started_at__gte=since, started_at__lt=until)
    by_connector: dict[tuple[str, int], Decimal] = {}
    for code, number, wh in bills.values_list(
        "session__pile__code", "session__connector__number", "energy_wh"
    ):
        by_connector[(code, number)] = by_connector.get((code, number), Decimal(0)) + wh
    piles: dict[str, list] = {}
    for (code, number), wh in sorted(by_connector.items()):
        piles.setdefault(code, []).append((number, wh))
    return {
        "StationStats": {
            "StationID": station.code,
            "StartTime": start.isoformat(),
            "EndTime": end.isoformat(),
            "StationElectricity": _num(wh_to_kwh(sum(by_connector.values(), Decimal(0))), 3),
            "EquipmentStatsInfos": [
                {
                    "EquipmentID": code,
                    "EquipmentElectricity": _num(wh_to_kwh(sum(w for _, w in rows)), 3),
                    "ConnectorStatsInfos": [
                        {
                            "ConnectorID": connector_wire_id(code, number),
                            "ConnectorElectricity": _num(wh_to_kwh(wh), 3),
                        }
                        for number, wh in rows
                    ],
                }
                for code, rows in piles.items()
            ],
        }
    }


def business_policy(connector: Connector, *, at: dt.datetime | None = None) -> list[dict] | None:
    """The prices in force now at the connector's station for its pile's current type,
    one entry per stretch of the day (StartTime HHmmss); None without a tariff."""
    at = at or timezone.now()
    pile = connector.pile
    specs = tariff_specs_for(station=pile.station, current_type=pile.current_type, start=at, end=at)
    if not specs or specs[-1].is_missing:
        return None
    spec = specs[-1]
    policies, previous = [], None
    for slot, period in enumerate(spec.schedule):
        if period == previous:
            continue
        previous = period
        prices = spec.prices[period]
        policies.append(
            {
                "StartTime": f"{slot // 2:02d}{30 * (slot % 2):02d}00",
                "ElecPrice": _num(prices.electricity, 4),
                "SevicePrice": _num(prices.service, 4),
            }
        )
    return policies


def charge_status(order: PartnerOrder) -> dict:
    """query_equip_charge_status / notification_equip_charge_status."""
    session: ChargingSession | None = order.session
    connector = order.connector
    data = {
        "StartChargeSeq": order.start_charge_seq,
        "StartChargeSeqStat": ORDER_WIRE_STATE[order.state],
        "ConnectorID": connector_wire_id(connector.pile.code, connector.number),
        "ConnectorStatus": connector_status(
            state=connector.status, pile_online=connector.pile.is_online
        ),
        "CurrentA": 0,
        "VoltageA": 0,
        "Soc": 0,
        "StartTime": _time(session.started_at if session else None),
        "EndTime": _time(timezone.now()),
        "TotalPower": 0.0,
        "ElecMoney": 0.0,
        "SeviceMoney": 0.0,
        "TotalMoney": 0.0,
    }
    if session is None:
        return data
    bill = Bill.objects.filter(session=session).first()
    if bill is not None:
        data.update(
            EndTime=_time(bill.ended_at),
            TotalPower=_num(wh_to_kwh(bill.energy_wh), 3),
            ElecMoney=_num(bill.electricity_fee),
            SeviceMoney=_num(bill.service_fee),
            TotalMoney=_num(bill.total),
        )
        return data
    last = session.samples.exclude(energy_wh=None).order_by("-at").first()
    if last is not None:
        data["TotalPower"] = _num(wh_to_kwh(max(last.energy_wh - session.meter_start_wh, 0)), 3)
        data["CurrentA"] = _num(last.current_a, 1)
        data["VoltageA"] = _num(last.voltage_v, 1)
        data["Soc"] = last.soc or 0
        data["EndTime"] = _time(last.at)
    if session.state not in ACTIVE_STATES and session.stopped_at:
        data["EndTime"] = _time(session.stopped_at)
    return data


def order_info(order: PartnerOrder, bill: Bill) -> dict:
    """notification_charge_order_info: the bill with one detail per (tariff version,
    period) line, its times the first and last stretch of that period in the session."""
    connector = order.connector
    stretches: dict[tuple[int | None, int], list[dt.datetime]] = {}
    try:
        specs = tariff_specs_for(
            station=bill.station,
            current_type=bill.current_type,
            start=bill.started_at,
            end=bill.ended_at,
        )
        for start, end, version_id, period in period_segments(
            start=bill.started_at, end=bill.ended_at, tariffs=specs, zone=bill.station.zone
        ):
            times = stretches.setdefault((version_id, period), [start, end])
            times[0], times[1] = min(times[0], start), max(times[1], end)
    except PricingError:
        pass  # a bill repaired by hand: details carry the bill's own times
    details = []
    for line in bill.lines.all():
        start, end = stretches.get(
            (line.tariff_version_id, line.period), (bill.started_at, bill.ended_at)
        )
        details.append(
            {
                "DetailStartTime": _time(start),
                "DetailEndTime": _time(end),
                "ElecPrice": _num(line.electricity_price, 4),
                "SevicePrice": _num(line.service_price, 4),
                "DetailPower": _num(wh_to_kwh(line.energy_wh), 3),
                "DetailElecMoney": _num(line.electricity_fee),
                "DetailSeviceMoney": _num(line.service_fee),
            }
        )
    return {
        "StartChargeSeq": order.start_charge_seq,
        "ConnectorID": connector_wire_id(connector.pile.code, connector.number),
        "StartTime": _time(bill.started_at),
        "EndTime": _time(bill.ended_at),
        "TotalPower": _num(wh_to_kwh(bill.energy_wh), 3),
        "TotalElecMoney": _num(bill.electricity_fee),
        "TotalSeviceMoney": _num(bill.service_fee),
        "TotalMoney": _num(bill.total),
        "StopReason": 0,
        "SumPeriod": len(details),
        "ChargeDetails": details,
    }


def day_orders(link: Interconnection, day: dt.date) -> list[dict]:
    """check_charge_orders: the partner's orders whose bill started on ``day`` (local)."""
    since = dt.datetime.combine(day, dt.time(), CHINA)
    bills = Bill.objects.filter(
        session__partner_order__interconnection=link,
        started_at__gte=since,
        started_at__lt=since + dt.timedelta(days=1),
    ).order_by("started_at")
    return [
        {
            "StartChargeSeq": seq,
            "TotalPower": _num(wh_to_kwh(wh), 3),
            "TotalMoney": _num(total),
        }
        for seq, wh, total in bills.values_list(
            "session__partner_order__start_charge_seq", "energy_wh", "total"
        )
    ]
