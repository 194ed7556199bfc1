"""Live sessions (实时充电): every session in progress a staff member may see, with what it
has delivered so far and what it would cost now.

Visibility is the bills' rule (`billing.selectors.sessions_visible_to`, of which
`bills_visible_to` is the bills): a session attributed to a sub-operator shows to it here
exactly as its bill will. The amount so far is the pricing engine's price of the samples so
far — the same tariff rows, engine and rounding as settlement — and is an estimate until the
session is settled. A page of sessions costs a fixed number of queries: the sessions with
their rows, their samples, and the tariffs of their stations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _gettext
from django.utils.translation import gettext_lazy as _

from billing.models import ChargingSession, MeterSample
from billing.models.sessions import ACTIVE_STATES
from billing.pricing import PricingError, price_session
from billing.selectors import (
    session_points,
    sessions_visible_to,
    tariff_rows_for_stations,
    tariff_specs_from_rows,
)
from billing.services.reservations import reservations_active
from chargenet.money import wh_to_kwh
from stations.models import Reservation
from stations.selectors import reservations_visible_to, stations_visible_to

from .exports.registry import tabular_register
from .exports.tabular import Column, hms

RELATED = (
    "station",
    "pile",
    "connector",
    "operator",
    "member",
    "vehicle",
    "card",
    "partner",
    "sub_operator",
    "department",
)


def live_sessions_visible_to(staff) -> QuerySet[ChargingSession]:
    """The sessions in progress ``staff`` may see (the bills' visibility rule)."""
    return sessions_visible_to(staff).filter(state__in=ACTIVE_STATES)


@dataclass(frozen=True)
class LiveFilters:
    """What the live screen is narrowed to (all optional)."""

    station_id: int | None = None
    channel: str = ""
    search: str = ""  # an order number, a plate, a pile code or a card number

    @classmethod
    def from_query(cls, query) -> LiveFilters:
        station = str(query.get("station") or "")
        return cls(
            station_id=int(station) if station.isdigit() else None,
            channel=str(query.get("channel") or "")[:16],
            search=str(query.get("q") or "").strip()[:64],
        )

    def apply_reservations(self, reservations: QuerySet[Reservation]) -> QuerySet[Reservation]:
        """The station filter narrows the reservations too (the others name sessions)."""
        if self.station_id is not None:
            reservations = reservations.filter(connector__pile__station_id=self.station_id)
        return reservations

    def apply(self, sessions: QuerySet[ChargingSession]) -> QuerySet[ChargingSession]:
        if self.station_id is not None:
            sessions = sessions.filter(station_id=self.station_id)
        if self.channel:
            sessions = sessions.filter(channel=self.channel)
        if self.search:
            term = self.search
            sessions = sessions.filter(
                Q(order_no=term)
                | Q(pile__code=term)
                | Q(vehicle__plate__iexact=term)
                | Q(card__number=term)
            )
        return sessions

    def as_query(self) -> dict:
        query = {"station": self.station_id, "channel": self.channel, "q": self.search}
        return {key: value for key, value in query.items() if value}


@dataclass(frozen=True)
class LiveSession:
    """A session in progress as the screen shows it."""

    session: ChargingSession
    energy_wh: Decimal  # delivered so far (last register − start register)
    power_w: Decimal | None  # the latest sampled power
    soc: int | None  # the latest state of charge (%)
    last_sample_at: dt.datetime | None
    amount: Decimal | None  # the engine's price so far (estimated); None: not priceable
    not_priced: str  # why not, when amount is None
    duration_s: int

    @property
    def kwh(self) -> Decimal:
        return wh_to_kwh(self.energy_wh)


def live_sessions_read(
    *, sessions: QuerySet[ChargingSession], now: dt.datetime | None = None
) -> list[LiveSession]:
    """``sessions`` (a page of them) with their energy, power, SoC and amount so far, in
    three queries whatever their number."""
    now = now or timezone.now()
    sessions = list(sessions.select_related(*RELATED))
    if not sessions:
        return []
    samples: dict[int, list[tuple]] = {session.pk: [] for session in sessions}
    for row in (
        MeterSample.objects.filter(session_id__in=list(samples))
        .order_by("session_id", "at")
        .values_list("session_id", "at", "energy_wh", "power_w", "soc")
    ):
        samples[row[0]].append(row[1:])
    tariffs = tariff_rows_for_stations(station_ids={s.station_id for s in sessions}, until=now)
    return [
        _live(session, samples[session.pk], tariffs.get(session.station_id, []), now)
        for session in sessions
    ]


def _live(session: ChargingSession, samples: Sequence[tuple], tariffs, now) -> LiveSession:
    readings = [(at, energy) for at, energy, _power, _soc in samples if energy is not None]
    points = session_points(session, readings)
    power = next((p for _at, _e, p, _s in reversed(samples) if p is not None), None)
    soc = next((s for _at, _e, _p, s in reversed(samples) if s is not None), None)
    amount, not_priced = None, ""
    try:
        amount = live_session_price(session, points, tariffs).total
    except PricingError as error:
        not_priced = str(error)
    return LiveSession(
        session=session,
        energy_wh=points[-1][1] - points[0][1],
        power_w=power,
        soc=soc,
        last_sample_at=samples[-1][0] if samples else None,
        amount=amount,
        not_priced=not_priced,
        duration_s=max(0, int((now - session.started_at).total_seconds())),
    )


def live_session_price(session: ChargingSession, points, tariff_rows):
    """The engine's price of ``points`` (the samples so far), as settlement prices the
    stopped session: the station's tariff rows for the pile's current type, the station's
    zone, the operator's rounding."""
    times = [at for at, _energy in points]
    specs = tariff_specs_from_rows(
        tariff_rows, current_type=session.pile.current_type, start=min(times), end=max(times)
    )
    return price_session(
        samples=points,
        tariffs=specs,
        zone=session.station.time_zone,
        rounding=session.operator.rounding_mode,
    )


def live_cells(live: LiveSession) -> list:
    """One session's cells, in `LIVE_COLUMNS` order (typed: the export writes these)."""
    s = live.session
    vehicle = s.vehicle
    return [
        s.order_no,
        s.station.name,
        s.pile.code,
        s.connector.number,
        s.pile.get_protocol_display(),
        s.get_channel_display(),
        str(s.member) if s.member_id else "",
        vehicle.plate if vehicle else "",
        (vehicle.vin if vehicle and vehicle.vin else "") or s.vin,
        s.card.number if s.card_id else "",
        s.partner.name if s.partner_id else "",
        s.sub_operator.name if s.sub_operator_id else "",
        timezone.localtime(s.started_at, s.station.zone),
        hms(live.duration_s),
        live.kwh,
        None if live.power_w is None else (live.power_w / 1000).quantize(Decimal("0.1")),
        live.soc,
        live.amount,
    ]


LIVE_COLUMNS = [
    Column("order_no", _("order number"), "text"),
    Column("station", _("station"), "text"),
    Column("pile", _("pile"), "text"),
    Column("connector", _("connector"), "int"),
    Column("protocol", _("protocol"), "text"),
    Column("channel", _("channel"), "text"),
    Column("driver", _("driver"), "text"),
    Column("plate", _("plate"), "text"),
    Column("vin", _("VIN"), "text"),
    Column("card", _("card"), "text"),
    Column("partner", _("partner"), "text"),
    Column("sub_operator", _("sub-operator"), "text"),
    Column("started_at", _("start"), "datetime"),
    Column("duration", _("duration"), "text"),
    Column("energy", _("energy so far (kWh)"), "kwh"),
    Column("power", _("power (kW)"), "text"),
    Column("soc", _("SoC (%)"), "int"),
    Column("amount", _("amount so far, estimated (yuan)"), "yuan"),
]


class LiveSessionsTabular:
    """The live screen as an export (the sessions in progress at the moment of export)."""

    slug = "live_sessions"
    title = _("Live sessions")
    columns = LIVE_COLUMNS
    PAGE = 500

    def __init__(self, *, staff, filters: LiveFilters):
        self.staff = staff
        self.filters = filters
        self.filter_values = filters.as_query()
        self.sessions = filters.apply(live_sessions_visible_to(staff)).order_by("-started_at")

    def count(self) -> int:
        return self.sessions.count()

    def rows(self) -> Iterator[tuple]:
        ids = list(self.sessions.values_list("pk", flat=True))
        now = timezone.now()
        for start in range(0, len(ids), self.PAGE):
            page = ChargingSession.objects.filter(pk__in=ids[start : start + self.PAGE])
            for live in live_sessions_read(sessions=page.order_by("-started_at"), now=now):
                yield tuple(live_cells(live))

    def totals(self) -> tuple:
        return None

    def filters_used(self) -> list[tuple[str, str]]:
        used = []
        if self.filters.station_id is not None:
            station = stations_visible_to(self.staff).filter(pk=self.filters.station_id).first()
            used.append((_gettext("station"), str(station or self.filters.station_id)))
        if self.filters.channel:
            used.append((_gettext("channel"), self.filters.channel))
        if self.filters.search:
            used.append((_gettext("search"), self.filters.search))
        used.append((_gettext("exported by"), self.staff.get_username()))
        return used


# --- reservations (预约) ----------------------------------------------------------------


def live_reservations_visible_to(staff) -> QuerySet[Reservation]:
    """The reservations holding a connector now that ``staff`` may see: those at the
    stations they see (`stations.selectors.reservations_visible_to`), soonest to end
    first, with their station, pile, connector and driver (one query)."""
    return (
        reservations_active()
        .filter(pk__in=reservations_visible_to(staff).values("pk"))
        .select_related("connector__pile__station")
    )


def live_reservation_cells(reservation: Reservation, *, now: dt.datetime) -> list:
    """One reservation's cells, in `RESERVATION_COLUMNS` order."""
    pile = reservation.connector.pile
    zone = pile.station.zone
    return [
        pile.station.name,
        pile.code,
        reservation.connector.number,
        str(reservation.member),
        timezone.localtime(reservation.created_at, zone),
        timezone.localtime(reservation.expires_at, zone),
        max(0, int((reservation.expires_at - now).total_seconds() // 60)),
    ]


RESERVATION_COLUMNS = [
    Column("station", _("station"), "text"),
    Column("pile", _("pile"), "text"),
    Column("connector", _("connector"), "int"),
    Column("driver", _("driver"), "text"),
    Column("reserved_at", _("reserved at"), "datetime"),
    Column("expires_at", _("expires at"), "datetime"),
    Column("minutes_left", _("minutes left"), "int"),
]


tabular_register(
    LiveSessionsTabular.slug,
    lambda *, staff, filters: LiveSessionsTabular(
        staff=staff, filters=LiveFilters.from_query(filters)
    ),
)
