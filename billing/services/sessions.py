"""Sessions as piles open, feed and close them: authorize, start, meter, stop.

Every function here is idempotent, because piles resend: a StartTransaction replayed after
a reconnect returns the session it already opened (``session_start_idempotent``), meter
samples are unique per (session, time) so repeats and out-of-order batches store each
moment once, and a repeated StopTransaction changes nothing. The gateway answers a pile
only after these functions returned, i.e. after their transaction committed.

How a session's start is classified (the idTag the pile sends, checked in this order):

1. a member's charging token (``Member.token``)                → channel *scan*
2. an RFID card number (``Card.number``, 一卡一车)               → channel *card*
3. a partner tag ``P<partner id>-<reference>`` (`partner_id_tag`) → channel *partner*
4. the station's password (密码充电)                             → channel *password*
5. a 17-character VIN (idTag convention for VIN-start piles:
   they check the station password locally and send the car's VIN) → channel *password*

The VIN can also arrive during the session by DataTransfer (``messageId`` "VIN", see
`session_link_vin`); either way a known vehicle links the session and its department.

Attribution (DOMAIN.md): a known vehicle or card is attributed through its department's
sub-operator *before* the station's sub-operator; a station with several authorised
sub-operators attributes to the first by id.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import (
    Channel,
    ChargingSession,
    MeterSample,
    OrphanStop,
    SessionState,
    SessionTransition,
)
from billing.models.sessions import ACTIVE_STATES
from chargenet.errors import DomainError
from orgs.models import (
    Card,
    CardStatus,
    Department,
    Member,
    MemberStatus,
    PartnerAccess,
    SubOperator,
    Vehicle,
)
from orgs.validators import VIN_RE
from stations.models import Connector, Pile, Station
from stations.services.live import connector_for

logger = logging.getLogger(__name__)

PARTNER_TAG_RE = re.compile(r"^P(\d{1,8})-(.+)$")


class IllegalTransition(DomainError):
    code = "session_illegal_transition"


class AuthStatus:
    """OCPP 1.6 AuthorizationStatus values the platform answers with."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


# The explicit state table: from → allowed destinations. `session_transition` enforces it.
TRANSITIONS: dict[str, frozenset[str]] = {
    SessionState.STARTED: frozenset({SessionState.CHARGING, SessionState.STOPPED}),
    SessionState.CHARGING: frozenset({SessionState.STOPPED}),
    SessionState.STOPPED: frozenset({SessionState.SETTLED, SessionState.FAULT}),
    SessionState.FAULT: frozenset({SessionState.REPAIRED, SessionState.SETTLED}),
    SessionState.REPAIRED: frozenset({SessionState.SETTLED}),
    SessionState.SETTLED: frozenset(),
}


def session_transition(
    *,
    session: ChargingSession,
    to_state: str,
    actor=None,
    reason: str = "",
    also_save: tuple[str, ...] = (),
) -> ChargingSession:
    """Move ``session`` to ``to_state`` if the state table allows it, recording the move.

    Call inside a transaction holding the session row (``select_for_update``);
    ``also_save`` names other fields changed with the move, saved in the same UPDATE."""
    allowed = TRANSITIONS.get(session.state, frozenset())
    if to_state not in allowed:
        raise IllegalTransition(
            _("A session cannot move from “%(from)s” to “%(to)s”.")
            % {"from": session.state, "to": to_state},
            details={"from": session.state, "to": to_state},
        )
    SessionTransition.objects.create(
        session=session,
        from_state=session.state,
        to_state=to_state,
        actor=actor,
        reason=reason[:200],
    )
    session.state = to_state
    session.save(update_fields=["state", "updated_at", *also_save])
    return session


# --- Authorization -------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who an idTag stands for at a pile, and what the platform answers for it."""

    status: str
    channel: str = Channel.UNKNOWN
    member: Member | None = None
    card: Card | None = None
    vehicle: Vehicle | None = None
    department: Department | None = None
    partner_id: int | None = None
    vin: str = ""
    active_session_id: int | None = None  # the member's other session (ConcurrentTx)


def partner_id_tag(*, partner_id: int, reference: str) -> str:
    """The idTag a partner start sends to the pile (at most 20 characters)."""
    return f"P{partner_id}-{reference}"[:20]


def _member_status(member: Member) -> str:
    if member.hidden_at is not None:
        return AuthStatus.INVALID
    if member.status != MemberStatus.ACTIVE:
        return AuthStatus.BLOCKED
    return AuthStatus.ACCEPTED


def identify(*, pile: Pile, id_tag: str) -> Identity:
    """Resolve ``id_tag`` at ``pile`` (read only): the channel, the member/card/vehicle it
    names and the authorization status by their states. One active session per member."""
    operator_id = pile.station.operator_id
    identity = _identify(pile=pile, id_tag=id_tag, operator_id=operator_id)
    if identity.status == AuthStatus.ACCEPTED and identity.member is not None:
        active_id = (
            ChargingSession.objects.filter(member=identity.member, state__in=ACTIVE_STATES)
            .values_list("pk", flat=True)
            .first()
        )
        if active_id is not None:
            return Identity(**{**identity.__dict__, "status": AuthStatus.CONCURRENT_TX,
                               "active_session_id": active_id})  # fmt: skip
    return identity


def _identify(*, pile: Pile, id_tag: str, operator_id: int) -> Identity:
    member = (
        Member.objects.filter(token=id_tag, operator_id=operator_id)
        .select_related("department")
        .first()
    )
    if member is not None:
        return Identity(
            status=_member_status(member),
            channel=Channel.SCAN,
            member=member,
            department=member.department,
        )
    card = (
        Card.objects.filter(number=id_tag, operator_id=operator_id)
        .select_related("member", "vehicle__department", "department")
        .first()
    )
    if card is not None:
        status = AuthStatus.ACCEPTED
        if card.hidden_at is not None:
            status = AuthStatus.INVALID
        elif card.status != CardStatus.ACTIVE:
            status = AuthStatus.BLOCKED
        else:
            status = _member_status(card.member)
        department = card.department or (card.vehicle.department if card.vehicle else None)
        return Identity(
            status=status,
            channel=Channel.CARD,
            member=card.member,
            card=card,
            vehicle=card.vehicle,
            department=department or card.member.department,
        )
    match = PARTNER_TAG_RE.fullmatch(id_tag)
    if match:
        partner_id = int(match.group(1))
        enabled = PartnerAccess.objects.filter(
            partner_id=partner_id, operator_id=operator_id, enabled=True
        ).exists()
        return Identity(
            status=AuthStatus.ACCEPTED if enabled else AuthStatus.BLOCKED,
            channel=Channel.PARTNER,
            partner_id=partner_id if enabled else None,
        )
    # Read now, not from the pile object the gateway holds: staff may change it any time.
    password = Station.objects.filter(pk=pile.station_id).values_list("password", flat=True)
    password = password.first() or ""
    if password and secrets.compare_digest(password, id_tag):
        return Identity(status=AuthStatus.ACCEPTED, channel=Channel.PASSWORD)
    if VIN_RE.fullmatch(id_tag):
        vehicle = (
            Vehicle.objects.filter(vin=id_tag, operator_id=operator_id)
            .select_related("member", "department")
            .first()
        )
        if vehicle is None or vehicle.hidden_at is not None:
            return Identity(status=AuthStatus.INVALID, channel=Channel.PASSWORD, vin=id_tag)
        status = _member_status(vehicle.member) if vehicle.member else AuthStatus.ACCEPTED
        return Identity(
            status=status,
            channel=Channel.PASSWORD,
            member=vehicle.member,
            vehicle=vehicle,
            department=vehicle.department,
            vin=id_tag,
        )
    return Identity(status=AuthStatus.INVALID)


def session_authorize(*, pile: Pile, id_tag: str) -> str:
    """The OCPP Authorize answer for ``id_tag`` at ``pile``."""
    member = _member_by_token(pile=pile, id_tag=id_tag)
    if member is not None:
        return member.status
    return identify(pile=pile, id_tag=id_tag).status


# --- The gateway's hot path -------------------------------------------------------------
# Member-token starts are most of the traffic and every query costs the gateway CPU (it
# holds the GIL while Django builds SQL). For them one hand-written query answers what
# `identify` + `_attribution` + `connector_for` ask in five; anything unusual (another
# tag kind, a refusal, a replay, a busy connector) goes the general ORM way, which stays
# the single authority on the rules.


@dataclass(frozen=True)
class _MemberRow:
    member_id: int
    status: str
    department_id: int | None
    connector_id: int | None
    station_sub_operator_id: int | None


def _member_by_token(
    *, pile: Pile, id_tag: str, connector_number: int | None = None
) -> _MemberRow | None:
    sessions_table = ChargingSession._meta.db_table
    through = Station.sub_operators.through._meta.db_table
    sql = (
        "SELECT m.id, m.status, m.hidden_at IS NULL, m.department_id, "
        f"EXISTS (SELECT 1 FROM {sessions_table} s WHERE s.member_id = m.id "
        "AND s.state IN ('started', 'charging')), "
        f"(SELECT c.id FROM {Connector._meta.db_table} c WHERE c.pile_id = %s AND c.number = %s), "
        f"(SELECT t.suboperator_id FROM {through} t WHERE t.station_id = %s "
        "ORDER BY t.suboperator_id LIMIT 1) "
        f"FROM {Member._meta.db_table} m WHERE m.token = %s AND m.operator_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [pile.pk, connector_number or 0, pile.station_id, id_tag, pile.station.operator_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    member_id, member_status, visible, department_id, busy, connector_id, sub_id = row
    if not visible:
        status = AuthStatus.INVALID
    elif member_status != MemberStatus.ACTIVE:
        status = AuthStatus.BLOCKED
    elif busy:
        status = AuthStatus.CONCURRENT_TX
    else:
        status = AuthStatus.ACCEPTED
    return _MemberRow(member_id, status, department_id, connector_id, sub_id)


def _session_start_member(
    *,
    pile: Pile,
    connector_number: int,
    id_tag: str,
    meter_start_wh: Decimal,
    started_at: dt.datetime,
) -> StartResult | None:
    """The common start (an accepted member, a known and free connector, no replay) in
    three statements; None when the general path must decide. A conflict with a replay or
    a live session on the connector raises IntegrityError, which sends it there too."""
    with transaction.atomic():
        row = _member_by_token(pile=pile, id_tag=id_tag, connector_number=connector_number)
        if row is None or row.status != AuthStatus.ACCEPTED or row.connector_id is None:
            return None
        session = ChargingSession.objects.create(
            order_no=new_order_no(),
            operator_id=pile.station.operator_id,
            station_id=pile.station_id,
            pile_id=pile.pk,
            connector_id=row.connector_id,
            channel=Channel.SCAN,
            id_tag=id_tag,
            member_id=row.member_id,
            department_id=row.department_id,
            sub_operator_id=row.station_sub_operator_id,
            state=SessionState.STARTED,
            started_at=started_at,
            meter_start_wh=meter_start_wh,
        )
        SessionTransition.objects.create(
            session_id=session.pk, from_state="", to_state=SessionState.STARTED
        )
    return StartResult(session.pk, session.order_no, AuthStatus.ACCEPTED)


def _attribution(*, station, department: Department | None, known_vehicle: bool):
    if known_vehicle and department is not None and department.sub_operator_id:
        return department.sub_operator_id
    first = SubOperator.objects.filter(stations=station).order_by("pk").values("pk").first()
    return first["pk"] if first else None


# --- Start ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartResult:
    session_id: int
    order_no: str
    status: str  # the idTagInfo status answered to the pile
    replayed: bool = False
    superseded_ids: tuple[int, ...] = ()


def new_order_no(now: dt.datetime | None = None) -> str:
    """20 digits: yyyyMMddHHmmss (local time of creation) + 6 random digits."""
    local = timezone.localtime(now or timezone.now())
    return f"{local:%Y%m%d%H%M%S}{secrets.randbelow(10**6):06d}"


def session_start(
    *,
    pile: Pile,
    connector_number: int,
    id_tag: str,
    meter_start_wh: int | Decimal,
    started_at: dt.datetime,
    reservation_id: int | None = None,
) -> StartResult:
    """Open the session for a StartTransaction, or return the one a replay already opened.

    A transaction the pile reports is always recorded, even with a refused idTag (the pile
    may have charged offline); the answer status tells the pile to stop. An older session
    still active on the connector is closed as superseded (its stop never came), which
    the settlement's fault rules see as a lost bill.
    """
    try:
        fast = _session_start_member(
            pile=pile,
            connector_number=connector_number,
            id_tag=id_tag,
            meter_start_wh=Decimal(meter_start_wh),
            started_at=started_at,
        )
    except IntegrityError:
        fast = None  # a replay or a busy connector: the general path knows what to do
    if fast is not None:
        return fast
    for _attempt in range(5):
        try:
            return _session_start(
                pile=pile,
                connector_number=connector_number,
                id_tag=id_tag,
                meter_start_wh=Decimal(meter_start_wh),
                started_at=started_at,
            )
        except IntegrityError as exc:
            constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", "")
            if constraint in ("session_start_idempotent", "billing_chargingsession_order_no_key"):
                continue  # a concurrent replay won, or an order number collided: look again
            if constraint == "session_one_active_per_connector":
                continue  # a concurrent start on the connector: supersede it next time
            raise
    raise DomainError(_("The session could not be opened; the pile will retry."))


def _session_start(
    *,
    pile: Pile,
    connector_number: int,
    id_tag: str,
    meter_start_wh: Decimal,
    started_at: dt.datetime,
) -> StartResult:
    with transaction.atomic():
        connector = connector_for(pile=pile, number=connector_number)
        existing = ChargingSession.objects.filter(
            pile=pile, connector=connector, id_tag=id_tag, started_at=started_at
        ).first()
        if existing is not None:
            status = identify(pile=pile, id_tag=id_tag).status
            if status == AuthStatus.CONCURRENT_TX and existing.state in ACTIVE_STATES:
                status = AuthStatus.ACCEPTED  # the active session is this very one
            return StartResult(existing.pk, existing.order_no, status, replayed=True)

        identity = identify(pile=pile, id_tag=id_tag)
        superseded: list[int] = []
        late = False
        active = (
            ChargingSession.objects.select_for_update()
            .filter(connector=connector, state__in=ACTIVE_STATES)
            .first()
        )
        if active is not None:
            if active.started_at <= started_at:
                active.stop_reason = "Superseded"
                session_transition(
                    session=active,
                    to_state=SessionState.STOPPED,
                    reason="a new transaction started on the connector; its stop never came",
                    also_save=("stop_reason",),
                )
                superseded.append(active.pk)
            else:
                late = True  # an offline-queued start older than the live session
        member = identity.member
        reason = ""
        if identity.status == AuthStatus.CONCURRENT_TX and (
            identity.active_session_id not in superseded
        ):
            member, reason = None, "member already charging: recorded without the member"
        status = identity.status
        if status == AuthStatus.CONCURRENT_TX and member is not None:
            status = AuthStatus.ACCEPTED  # its only active session was just superseded
        known_vehicle = identity.vehicle is not None or identity.card is not None
        session = ChargingSession.objects.create(
            order_no=new_order_no(),
            operator_id=pile.station.operator_id,
            station_id=pile.station_id,
            pile=pile,
            connector=connector,
            channel=identity.channel,
            id_tag=id_tag,
            member=member,
            vehicle=identity.vehicle,
            card=identity.card,
            department=identity.department,
            sub_operator_id=_attribution(
                station=pile.station, department=identity.department, known_vehicle=known_vehicle
            ),
            partner_id=identity.partner_id,
            vin=identity.vin,
            state=SessionState.STOPPED if late else SessionState.STARTED,
            started_at=started_at,
            meter_start_wh=meter_start_wh,
        )
        SessionTransition.objects.create(
            session=session, from_state="", to_state=SessionState.STARTED, reason=reason
        )
        if late:
            SessionTransition.objects.create(
                session=session,
                from_state=SessionState.STARTED,
                to_state=SessionState.STOPPED,
                reason="start delivered late while a newer session is active on the connector",
            )
        if superseded:
            _queue_settlement(superseded)
    return StartResult(session.pk, session.order_no, status, superseded_ids=tuple(superseded))


# --- Meter values -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One sampled moment, already converted to platform units."""

    at: dt.datetime
    energy_wh: Decimal | None = None
    power_w: Decimal | None = None
    current_a: Decimal | None = None
    voltage_v: Decimal | None = None
    soc: int | None = None
    context: str = ""


_UNIT_FACTORS = {"Wh": 1, "kWh": 1000, "W": 1, "kW": 1000, "A": 1, "V": 1, "Percent": 1}
_MEASURANDS = {
    "Energy.Active.Import.Register": "energy_wh",
    "Power.Active.Import": "power_w",
    "Current.Import": "current_a",
    "Voltage": "voltage_v",
    "SoC": "soc",
}


def samples_from_ocpp(meter_values: Iterable[dict]) -> list[Sample]:
    """Convert OCPP ``meterValue`` entries (camelCase, as on the wire) to samples.

    Unknown measurands are ignored; for per-phase values the first one sent is kept;
    a value that is not a number is skipped (the frame journal keeps the original)."""
    samples = []
    for entry in meter_values:
        at = _parse_time(entry.get("timestamp"))
        if at is None:
            continue
        fields: dict = {}
        context = ""
        for value in entry.get("sampledValue", []):
            measurand = value.get("measurand", "Energy.Active.Import.Register")
            name = _MEASURANDS.get(measurand)
            if name is None or name in fields:
                continue
            try:
                number = Decimal(str(value.get("value"))) * _UNIT_FACTORS.get(
                    value.get("unit", "Wh" if name == "energy_wh" else ""), 1
                )
            except (InvalidOperation, TypeError):
                continue
            if not number.is_finite():
                continue
            fields[name] = int(number) if name == "soc" else number
            context = context or value.get("context", "")
        samples.append(Sample(at=at, context=context[:32], **fields))
    return samples


def _parse_time(value) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class MeterResult:
    session_id: int | None
    order_no: str
    stored: int


def session_meter_record(
    *,
    pile: Pile,
    connector_number: int,
    transaction_id: int | None,
    samples: list[Sample],
) -> MeterResult:
    """Store meter samples against their session (idempotent, any order).

    Without a transaction id (clock-aligned samples) they go to the session active on the
    connector, if any; samples of no known session are only in the frame journal.

    This is the gateway's most frequent write, so it is two statements, not an ORM
    round of select-modify-save: an UPDATE that finds and locks the session (and moves
    its last-sample time forward), then one INSERT … ON CONFLICT DO NOTHING."""
    latest = max((s.at for s in samples), default=None)
    table = ChargingSession._meta.db_table
    returning = "RETURNING id, order_no, state, meter_start_wh"
    with transaction.atomic(), connection.cursor() as cursor:
        if transaction_id is not None:
            cursor.execute(
                f"UPDATE {table} SET last_sample_at = GREATEST(last_sample_at, %s), "
                f"updated_at = now() WHERE id = %s AND pile_id = %s {returning}",
                [latest, transaction_id, pile.pk],
            )
        elif connector_number > 0:
            cursor.execute(
                f"UPDATE {table} SET last_sample_at = GREATEST(last_sample_at, %s), "
                f"updated_at = now() WHERE pile_id = %s AND state IN ('started', 'charging') "
                f"AND connector_id = (SELECT id FROM {Connector._meta.db_table} "
                f"WHERE pile_id = %s AND number = %s) {returning}",
                [latest, pile.pk, pile.pk, connector_number],
            )
        row = cursor.fetchone() if cursor.description else None
        if row is None:
            return MeterResult(None, "", 0)
        session_id, order_no, state, meter_start_wh = row
        stored = _insert_samples(cursor, session_id=session_id, samples=samples)
        if state == SessionState.STARTED and any(
            s.energy_wh is not None and s.energy_wh > meter_start_wh for s in samples
        ):
            session = ChargingSession.objects.get(pk=session_id)
            session_transition(
                session=session, to_state=SessionState.CHARGING, reason="energy delivered"
            )
    return MeterResult(session_id, order_no, stored)


_SAMPLE_COLUMNS = ("session_id", "at", "energy_wh", "power_w", "current_a", "voltage_v", "soc",
                   "context")  # fmt: skip


def _insert_samples(cursor, *, session_id: int, samples: list[Sample]) -> int:
    unique = list({s.at: s for s in samples}.values())
    if not unique:
        return 0
    values, params = [], []
    for s in unique:
        values.append("(%s, %s, %s, %s, %s, %s, %s, %s)")
        params += [session_id, s.at, s.energy_wh, s.power_w, s.current_a, s.voltage_v, s.soc,
                   s.context]  # fmt: skip
    cursor.execute(
        f"INSERT INTO {MeterSample._meta.db_table} ({', '.join(_SAMPLE_COLUMNS)}) "
        f"VALUES {', '.join(values)} ON CONFLICT (session_id, at) DO NOTHING",
        params,
    )
    return cursor.rowcount


def _store_samples(*, session: ChargingSession, samples: list[Sample]) -> int:
    if not samples:
        return 0
    rows = [
        MeterSample(
            session=session,
            at=s.at,
            energy_wh=s.energy_wh,
            power_w=s.power_w,
            current_a=s.current_a,
            voltage_v=s.voltage_v,
            soc=s.soc,
            context=s.context,
        )
        for s in {s.at: s for s in samples}.values()
    ]
    created = MeterSample.objects.bulk_create(rows, ignore_conflicts=True)
    latest = max(s.at for s in samples)
    if session.last_sample_at is None or latest > session.last_sample_at:
        session.last_sample_at = latest
        session.save(update_fields=["last_sample_at", "updated_at"])
    if session.state == SessionState.STARTED and any(
        s.energy_wh is not None and s.energy_wh > session.meter_start_wh for s in samples
    ):
        session_transition(
            session=session, to_state=SessionState.CHARGING, reason="energy delivered"
        )
    return len(created)


# --- VIN --------------------------------------------------------------------------------


def session_link_vin(
    *, pile: Pile, connector_number: int, vin: str, transaction_id: int | None = None
) -> int | None:
    """Link the VIN a pile reported (DataTransfer) to its session: the vehicle, its
    department and, through it, the attributed sub-operator. Returns the session id."""
    if not VIN_RE.fullmatch(vin or ""):
        raise DomainError(
            _("A VIN is 17 characters, digits and capital letters without I, O or Q."),
            code="vin_invalid",
        )
    with transaction.atomic():
        qs = ChargingSession.objects.select_for_update().filter(pile=pile)
        if transaction_id is not None:
            session = qs.filter(pk=transaction_id).first()
        else:
            session = qs.filter(connector__number=connector_number, state__in=ACTIVE_STATES).first()
        if session is None:
            return None
        session.vin = vin
        fields = ["vin", "updated_at"]
        vehicle = (
            Vehicle.objects.filter(vin=vin, operator_id=session.operator_id)
            .select_related("department")
            .first()
        )
        if vehicle is not None and session.vehicle_id is None:
            session.vehicle = vehicle
            fields.append("vehicle")
            if vehicle.department is not None:
                session.department = vehicle.department
                fields.append("department")
                if vehicle.department.sub_operator_id:
                    session.sub_operator_id = vehicle.department.sub_operator_id
                    fields.append("sub_operator")
        session.save(update_fields=fields)
    return session.pk


# --- Stop -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StopResult:
    session_id: int | None
    order_no: str = ""
    orphan_id: int | None = None
    replayed: bool = False
    settle_queued: bool = False
    status: str | None = None  # idTagInfo status when the pile sent an idTag
    samples_stored: int = 0
    notes: list[str] = field(default_factory=list)


def session_stop(
    *,
    pile: Pile,
    transaction_id: int,
    meter_stop_wh: int | Decimal,
    stopped_at: dt.datetime,
    reason: str = "",
    id_tag: str = "",
    samples: list[Sample] | None = None,
    transaction_data: list | None = None,
) -> StopResult:
    """Close the session of a StopTransaction and queue its settlement on commit.

    Idempotent: a repeated stop changes nothing. A stop for a session already closed as
    superseded fills in the values the pile finally sent and queues settlement again
    (settlement is idempotent). An unknown transaction id becomes an `OrphanStop`."""
    samples = samples or []
    fast = _session_stop_active(
        pile=pile,
        transaction_id=transaction_id,
        meter_stop_wh=meter_stop_wh,
        stopped_at=stopped_at,
        reason=reason,
        id_tag=id_tag,
        samples=samples,
    )
    if fast is not None:
        return fast
    with transaction.atomic():
        session = (
            ChargingSession.objects.select_for_update().filter(pk=transaction_id, pile=pile).first()
        )
        if session is None:
            orphan, _created = OrphanStop.objects.get_or_create(
                pile=pile,
                transaction_id=transaction_id,
                stopped_at=stopped_at,
                defaults={
                    "id_tag": id_tag,
                    "meter_stop_wh": Decimal(meter_stop_wh),
                    "reason": reason[:32],
                    "transaction_data": transaction_data or [],
                    "received_at": timezone.now(),
                },
            )
            return StopResult(None, orphan_id=orphan.pk, replayed=not _created)
        stored = _store_samples(session=session, samples=samples)
        # The tag's own state (its active session is this one: no ConcurrentTx check).
        operator_id = pile.station.operator_id
        status = (
            _identify(pile=pile, id_tag=id_tag, operator_id=operator_id).status if id_tag else None
        )
        if session.state in ACTIVE_STATES:
            session.meter_stop_wh = Decimal(meter_stop_wh)
            session.stopped_at = stopped_at
            session.stop_reason = (reason or "Local")[:32]
            session.stop_received_at = timezone.now()
            session_transition(
                session=session,
                to_state=SessionState.STOPPED,
                reason="stop",
                also_save=("meter_stop_wh", "stopped_at", "stop_reason", "stop_received_at"),
            )
            _queue_settlement([session.pk])
            return StopResult(
                session.pk, session.order_no, settle_queued=True, status=status,
                samples_stored=stored,
            )  # fmt: skip
        if session.meter_stop_wh is None and session.stop_received_at is None:
            # Closed as superseded (or late) before its stop arrived: keep what it says.
            session.meter_stop_wh = Decimal(meter_stop_wh)
            session.stopped_at = stopped_at
            session.stop_received_at = timezone.now()
            if session.state == SessionState.STOPPED:
                session.stop_reason = (reason or "Local")[:32]
                fields = ["meter_stop_wh", "stopped_at", "stop_received_at", "stop_reason"]
                session.save(update_fields=[*fields, "updated_at"])
                _queue_settlement([session.pk])
                return StopResult(
                    session.pk, session.order_no, settle_queued=True, status=status,
                    samples_stored=stored,
                )  # fmt: skip
            # Already billed as a lost bill: keep the late values beside it for the desk.
            session.pile_reported = {
                **session.pile_reported,
                "late_stop": {
                    "meter_stop_wh": str(meter_stop_wh),
                    "stopped_at": stopped_at.isoformat(),
                    "reason": reason,
                },
            }
            session.save(update_fields=["pile_reported", "updated_at"])
        return StopResult(
            session.pk, session.order_no, replayed=True, status=status, samples_stored=stored
        )


def _session_stop_active(
    *,
    pile: Pile,
    transaction_id: int,
    meter_stop_wh,
    stopped_at: dt.datetime,
    reason: str,
    id_tag: str,
    samples: list[Sample],
) -> StopResult | None:
    """The common stop (an active session of this pile) as one UPDATE that also reads the
    state it leaves; None (nothing changed) for replays, orphans and late stops."""
    table = ChargingSession._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"WITH old AS (SELECT id, state FROM {table} WHERE id = %s AND pile_id = %s "
            "AND state IN ('started', 'charging') FOR UPDATE) "
            f"UPDATE {table} AS s SET meter_stop_wh = %s, stopped_at = %s, stop_reason = %s, "
            "stop_received_at = now(), state = 'stopped', updated_at = now() "
            "FROM old WHERE s.id = old.id RETURNING s.order_no, old.state",
            [transaction_id, pile.pk, Decimal(meter_stop_wh), stopped_at, (reason or "Local")[:32]],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        order_no, from_state = row
        stored = _insert_samples(cursor, session_id=transaction_id, samples=samples)
        SessionTransition.objects.create(
            session_id=transaction_id,
            from_state=from_state,
            to_state=SessionState.STOPPED,
            reason="stop",
        )
        status = None
        if id_tag:
            member = _member_by_token(pile=pile, id_tag=id_tag)
            if member is not None:
                busy = member.status == AuthStatus.CONCURRENT_TX
                status = AuthStatus.ACCEPTED if busy else member.status
            else:
                operator_id = pile.station.operator_id
                status = _identify(pile=pile, id_tag=id_tag, operator_id=operator_id).status
        _queue_settlement([transaction_id])
    return StopResult(
        transaction_id, order_no, settle_queued=True, status=status, samples_stored=stored
    )


def _queue_settlement(session_ids: list[int]) -> None:
    from billing import tasks

    for session_id in session_ids:
        # robust: a broker hiccup after commit must not turn a committed stop into an error
        transaction.on_commit(lambda sid=session_id: tasks.session_settle.delay(sid), robust=True)
