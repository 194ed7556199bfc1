"""Stations for drivers: nearby search, a station's page (connectors' live state, today's
prices, opening hours, address), a connector, and a pile's QR code."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import Period
from billing.selectors import station_prices_today
from billing.services.reservations import reservations_active
from chargenet.api import Pagination
from stations.models import Connector, CurrentType, Station
from stations.public import (
    MAX_RADIUS_M,
    DriverState,
    connector_by_qr,
    connector_driver_state,
    connectors_open_to,
    station_open_at,
    stations_near,
    stations_open_to,
)

# --- output ----------------------------------------------------------------------------


class ConnectorCountsOut(serializers.Serializer):
    current_type = serializers.ChoiceField(choices=CurrentType.choices)
    total = serializers.IntegerField()
    free = serializers.IntegerField()


class NearbyStationOut(serializers.Serializer):
    id = serializers.IntegerField(source="station.pk")
    name = serializers.CharField(source="station.name")
    address = serializers.CharField(source="station.address")
    latitude = serializers.DecimalField(source="station.latitude", max_digits=9, decimal_places=6)
    longitude = serializers.DecimalField(source="station.longitude", max_digits=9, decimal_places=6)
    distance_m = serializers.IntegerField()
    connectors = ConnectorCountsOut(source="counts", many=True)


class NearbyPageOut(serializers.Serializer):
    count = serializers.IntegerField()
    results = NearbyStationOut(many=True)


class ConnectorOut(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    pile_code = serializers.CharField()
    current_type = serializers.ChoiceField(choices=CurrentType.choices)
    standard = serializers.CharField()
    rated_power_kw = serializers.DecimalField(max_digits=7, decimal_places=2, allow_null=True)
    state = serializers.ChoiceField(choices=DriverState.CHOICES)
    state_label = serializers.CharField()


def connector_data(connector: Connector, *, held: bool = False) -> dict:
    """``held``: another driver's reservation holds the connector (it shows *reserved*
    before the pile reports it so, unless the pile is offline or the connector in use)."""
    pile = connector.pile
    state = connector_driver_state(status=connector.status, pile_online=pile.is_online)
    if held and state in (DriverState.FREE, DriverState.PLUGGED):
        state = DriverState.RESERVED
    return {
        "id": connector.pk,
        "number": connector.number,
        "pile_code": pile.code,
        "current_type": pile.current_type,
        "standard": connector.standard,
        "rated_power_kw": connector.rated_power_kw,
        "state": state,
        "state_label": str(DriverState.LABELS[state]),
    }


class PeriodPriceOut(serializers.Serializer):
    start = serializers.CharField(help_text="HH:MM, station time")
    end = serializers.CharField(help_text="HH:MM, station time (24:00 = midnight)")
    period = serializers.IntegerField()
    period_label = serializers.CharField()
    electricity = serializers.DecimalField(max_digits=10, decimal_places=5)
    service = serializers.DecimalField(max_digits=10, decimal_places=5)
    total = serializers.DecimalField(max_digits=10, decimal_places=5)


class PricesOut(serializers.Serializer):
    plan = serializers.CharField()
    period_now = serializers.IntegerField(allow_null=True)
    ac = PeriodPriceOut(many=True)
    dc = PeriodPriceOut(many=True)


class OpeningWindowOut(serializers.Serializer):
    opens = serializers.TimeField(format="%H:%M")
    closes = serializers.TimeField(format="%H:%M")


class StationOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    address = serializers.CharField()
    city = serializers.CharField()
    latitude = serializers.DecimalField(max_digits=9, decimal_places=6)
    longitude = serializers.DecimalField(max_digits=9, decimal_places=6)
    open_now = serializers.BooleanField()
    opening_hours = OpeningWindowOut(many=True, help_text="Empty: open around the clock.")
    prices_today = PricesOut()
    connectors = ConnectorOut(many=True)


class ConnectorDetailOut(ConnectorOut):
    station_id = serializers.IntegerField()
    station_name = serializers.CharField()
    station_open_now = serializers.BooleanField()


def _hhmm(slot: int) -> str:
    return f"{slot // 2:02d}:{30 * (slot % 2):02d}"


def _period_rows(schedule: str, prices: list) -> list[dict]:
    """Contiguous half hours of one period as one row with its prices."""
    if not schedule or not prices:
        return []
    rows, start = [], 0
    for slot in range(1, 49):
        if slot == 48 or schedule[slot] != schedule[start]:
            period = int(schedule[start])
            price = prices[period]
            rows.append(
                {
                    "start": _hhmm(start),
                    "end": _hhmm(slot),
                    "period": period,
                    "period_label": str(Period(period).label),
                    "electricity": price.electricity,
                    "service": price.service,
                    "total": price.electricity + price.service,
                }
            )
            start = slot
    return rows


def station_data(station: Station, *, member) -> dict:
    now = timezone.now()
    [today] = station_prices_today(stations=[station], at=now)
    connectors = (
        connectors_open_to(member)
        .filter(pile__station=station)
        .select_related("pile")
        .order_by("pile__code", "number")
    )
    held = _held_by_others(member, station_id=station.pk)
    return {
        "id": station.pk,
        "name": station.name,
        "address": station.address,
        "city": station.city,
        "latitude": station.latitude,
        "longitude": station.longitude,
        "open_now": station_open_at(station=station, at=now),
        "opening_hours": list(station.opening_windows.all()),
        "prices_today": {
            "plan": today.plan_name,
            "period_now": today.period_now,
            "ac": _period_rows(today.schedule, today.prices.get("AC", [])),
            "dc": _period_rows(today.schedule, today.prices.get("DC", [])),
        },
        "connectors": [connector_data(c, held=c.pk in held) for c in connectors],
    }


def _held_by_others(member, **narrowed) -> set[int]:
    """The connectors (ids) another driver's reservation holds now."""
    held = reservations_active(**narrowed).exclude(member_id=member.pk)
    return set(held.values_list("connector_id", flat=True))


def connector_detail_data(connector: Connector, *, member) -> dict:
    station = connector.pile.station
    held = bool(_held_by_others(member, connector_id=connector.pk))
    return {
        **connector_data(connector, held=held),
        "station_id": station.pk,
        "station_name": station.name,
        "station_open_now": station_open_at(station=station, at=timezone.now()),
    }


# --- views -----------------------------------------------------------------------------


class CoordinateField(serializers.FloatField):
    """Degrees, kept to 7 decimals (about a centimetre): a finer position means nothing,
    and a value as small as 5e-324 underflows PostgreSQL's arithmetic (a 500 before)."""

    def to_internal_value(self, data):
        return round(super().to_internal_value(data), 7) + 0.0  # + 0.0: no "-0.0"


class NearbyIn(serializers.Serializer):
    lat = CoordinateField(min_value=-90, max_value=90)
    lng = CoordinateField(min_value=-180, max_value=180)
    radius = serializers.IntegerField(
        min_value=1, max_value=MAX_RADIUS_M, default=5000, help_text="metres"
    )
    current_type = serializers.ChoiceField(choices=CurrentType.choices, required=False)
    free_only = serializers.BooleanField(default=False)
    limit = serializers.IntegerField(min_value=1, max_value=Pagination.max_limit, default=20)
    offset = serializers.IntegerField(min_value=0, max_value=100_000, default=0)


class NearbyView(APIView):
    @extend_schema(parameters=[NearbyIn], responses=NearbyPageOut, operation_id="stations_nearby")
    def get(self, request):
        query = NearbyIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        args = dict(query.validated_data)
        args["radius_m"] = args.pop("radius")
        total, page = stations_near(member=request.user.member, **args)
        return Response(NearbyPageOut({"count": total, "results": page}).data)


class StationView(APIView):
    @extend_schema(responses=StationOut, operation_id="station_detail")
    def get(self, request, station_id: int):
        station = get_object_or_404(
            stations_open_to(request.user.member).prefetch_related("opening_windows"),
            pk=station_id,
        )
        return Response(StationOut(station_data(station, member=request.user.member)).data)


def _connectors(member):
    return (
        connectors_open_to(member)
        .select_related("pile__station")
        .prefetch_related("pile__station__opening_windows")
    )


class ConnectorView(APIView):
    @extend_schema(responses=ConnectorDetailOut, operation_id="connector_detail")
    def get(self, request, connector_id: int):
        connector = get_object_or_404(_connectors(request.user.member), pk=connector_id)
        return Response(
            ConnectorDetailOut(connector_detail_data(connector, member=request.user.member)).data
        )


class ScanIn(serializers.Serializer):
    code = serializers.CharField(
        max_length=300, help_text="The QR content, or a pile code and connector number."
    )


class ScanView(APIView):
    """Which connector a scanned QR code (or a typed pile code + number) names."""

    @extend_schema(parameters=[ScanIn], responses=ConnectorDetailOut, operation_id="connector_scan")
    def get(self, request):
        query = ScanIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = connector_by_qr(member=request.user.member, content=query.validated_data["code"])
        connector = get_object_or_404(_connectors(request.user.member), pk=getattr(found, "pk", 0))
        return Response(
            ConnectorDetailOut(connector_detail_data(connector, member=request.user.member)).data
        )
