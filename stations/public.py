"""The network as a driver sees it: the stations open to a member, nearby search, whether
a station is open now, each connector's state in a driver's words, and a pile's QR code.

Reads only. A driver sees the published piles of their operator's stations that are open
to the public, or bound to the driver's department (a fleet's private depot).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Window
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext_lazy as _

from orgs.models import Member

from .models import Connector, ConnectorState, Pile, Station

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180
MAX_RADIUS_M = 50_000


class DriverState:
    """A connector's state as the driver's page shows it."""

    FREE = "free"  # nothing plugged, ready
    PLUGGED = "plugged"  # a car is plugged in, no charge yet: start now
    BUSY = "busy"  # charging or finishing
    RESERVED = "reserved"
    OUT_OF_SERVICE = "out_of_service"  # faulted, unavailable, never reported
    OFFLINE = "offline"  # the pile is not connected to the platform

    LABELS = {
        FREE: _("free"),
        PLUGGED: _("plugged in"),
        BUSY: _("in use"),
        RESERVED: _("reserved"),
        OUT_OF_SERVICE: _("out of service"),
        OFFLINE: _("offline"),
    }
    CHOICES = list(LABELS)


_BY_CONNECTOR_STATE = {
    ConnectorState.AVAILABLE: DriverState.FREE,
    ConnectorState.PREPARING: DriverState.PLUGGED,
    ConnectorState.CHARGING: DriverState.BUSY,
    ConnectorState.SUSPENDED_EV: DriverState.BUSY,
    ConnectorState.SUSPENDED_EVSE: DriverState.BUSY,
    ConnectorState.FINISHING: DriverState.BUSY,
    ConnectorState.RESERVED: DriverState.RESERVED,
}


def connector_driver_state(*, status: str, pile_online: bool) -> str:
    if not pile_online:
        return DriverState.OFFLINE
    return _BY_CONNECTOR_STATE.get(status, DriverState.OUT_OF_SERVICE)


def _open_to(member: Member) -> Q:
    public = Q(is_public=True)
    if member.department_id:
        bound = Station.departments.through.objects.filter(
            station_id=OuterRef("pk"), department_id=member.department_id
        )
        public |= Q(Exists(bound))
    return public


def stations_open_to(member: Member) -> QuerySet[Station]:
    """The stations ``member`` may see and charge at (those with a published pile)."""
    published = Pile.objects.filter(
        station=OuterRef("pk"), is_published=True, hidden_at__isnull=True
    )
    return (
        Station.objects.filter(operator_id=member.operator_id, hidden_at__isnull=True)
        .filter(_open_to(member))
        .filter(Exists(published))
    )


def piles_open_to(member: Member) -> QuerySet[Pile]:
    return Pile.objects.filter(
        station__in=stations_open_to(member).values("pk"), is_published=True, hidden_at__isnull=True
    )


def connectors_open_to(member: Member) -> QuerySet[Connector]:
    return Connector.objects.filter(pile__in=piles_open_to(member).values("pk"))


@dataclass(frozen=True)
class ConnectorCounts:
    current_type: str
    total: int
    free: int  # free or plugged in (a driver can start there now)


@dataclass(frozen=True)
class NearbyStation:
    station: Station
    distance_m: int
    counts: list[ConnectorCounts]


def _distance_sql(lat: float, lng: float) -> RawSQL:
    """Great-circle (haversine) metres from (lat, lng) to the station."""
    return RawSQL(
        "2 * %s * asin(sqrt(power(sin(radians(latitude - %s) / 2), 2) + cos(radians(%s)) "
        "* cos(radians(latitude)) * power(sin(radians(longitude - %s) / 2), 2)))",
        (EARTH_RADIUS_M, lat, lat, lng),
    )


def _startable() -> Q:
    return Q(
        pile__is_online=True,
        status__in=[ConnectorState.AVAILABLE, ConnectorState.PREPARING],
    )


def stations_near(
    *,
    member: Member,
    lat: float,
    lng: float,
    radius_m: int,
    current_type: str = "",
    free_only: bool = False,
    offset: int = 0,
    limit: int = 20,
) -> tuple[int, list[NearbyStation]]:
    """Stations within ``radius_m`` of (lat, lng), nearest first: (how many in all, the
    page). ``current_type`` keeps stations with a pile of that type; ``free_only`` those
    with a connector (of that type) a driver can start on now. Three queries: count, page,
    the page's connector counts. A bounding box on the (latitude, longitude) index keeps
    the distance computation to the stations near."""
    radius_m = min(radius_m, MAX_RADIUS_M)
    dlat = radius_m / METRES_PER_DEGREE
    dlng = radius_m / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    stations = stations_open_to(member).filter(
        latitude__gte=Decimal(str(round(lat - dlat, 6))),
        latitude__lte=Decimal(str(round(lat + dlat, 6))),
        longitude__gte=Decimal(str(round(lng - dlng, 6))),
        longitude__lte=Decimal(str(round(lng + dlng, 6))),
    )
    connectors = Connector.objects.filter(
        pile__station=OuterRef("pk"), pile__is_published=True, pile__hidden_at__isnull=True
    )
    if current_type:
        connectors = connectors.filter(pile__current_type=current_type)
        stations = stations.filter(Exists(connectors))
    if free_only:
        stations = stations.filter(Exists(connectors.filter(_startable())))
    stations = stations.annotate(distance_m=_distance_sql(lat, lng)).filter(
        distance_m__lte=radius_m
    )
    # The page and the total in one query (COUNT(*) OVER ()); a page past the end counts.
    page = list(
        stations.annotate(total=Window(Count("pk"))).order_by("distance_m", "pk")[
            offset : offset + limit
        ]
    )
    total = page[0].total if page else (stations.count() if offset else 0)
    counts: dict[int, list[ConnectorCounts]] = {station.pk: [] for station in page}
    rows = (
        Connector.objects.filter(
            pile__station__in=[station.pk for station in page],
            pile__is_published=True,
            pile__hidden_at__isnull=True,
        )
        .values("pile__station_id", "pile__current_type")
        .annotate(total=Count("pk"), free=Count("pk", filter=_startable()))
        .order_by("pile__station_id", "pile__current_type")
    )
    for row in rows:
        counts[row["pile__station_id"]].append(
            ConnectorCounts(row["pile__current_type"], row["total"], row["free"])
        )
    return total, [
        NearbyStation(station, round(station.distance_m), counts[station.pk]) for station in page
    ]


def station_open_at(*, station: Station, at: dt.datetime) -> bool:
    """Is ``station`` open at ``at`` (its opening windows, in its own time zone)? A station
    without windows is open around the clock. Uses prefetched ``opening_windows``."""
    windows = list(station.opening_windows.all())
    if not windows:
        return True
    local = at.astimezone(station.zone)
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for w in windows for start, end in w.minutes())


# A pile's QR code: its 16- or 20-digit code and the connector number, as printed on the
# pile ("<code>-<n>", "<code>#<n>", "<code>/<n>", or a URL ending so); one-connector piles
# may print the bare code.
_QR_RE = re.compile(r"(?<!\d)(\d{20}|\d{16})(?!\d)(?:\s*[-#/_]\s*0*(\d{1,2}))?")


def connector_by_qr(*, member: Member, content: str) -> Connector | None:
    """The connector a scanned QR code (or a typed pile code and number) names, among
    those ``member`` may use; None when nothing matches."""
    found = _QR_RE.findall(content or "")
    if not found:
        return None
    code, number = found[-1]
    connectors = connectors_open_to(member).filter(pile__code=code).select_related("pile")
    if number:
        return connectors.filter(number=int(number)).first()
    only = list(connectors[:2])
    return only[0] if len(only) == 1 else None
