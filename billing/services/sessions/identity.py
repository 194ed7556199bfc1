"""Who a credential stands for at a pile: the channel, the member, card or vehicle, and
the core's decision (`AuthDecision`; adapters translate it into their protocol's words).

A `Credential` says what kind it is when the channel knows (a driver app starting a charge,
a partner order, a pile reporting a VIN). A token a driver presented at a pile often does
not say (kind *presented*): it is classified in this order —

1. a member's charging token (``Member.token``)                      → channel *scan*
2. an RFID card number (``Card.number``, 一卡一车)                     → channel *card*
3. a partner order ``P<partner id>-<reference>`` (`partner_credential`) → channel *partner*
4. the station's password (密码充电)                                   → channel *password*
5. a 17-character VIN (VIN-start piles check the station password
   locally and send the car's VIN)                                     → channel *password*

The VIN can also arrive during the session (`billing.services.sessions.vin.session_link_vin`);
either way a known vehicle links the session and its department.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import secrets
from dataclasses import dataclass

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import Bill, Channel, ChargingSession, PaymentState
from billing.models.sessions import ACTIVE_STATES
from chargenet.cursors import statement_run
from chargenet.sqltext import literal, literals
from orgs.models import Card, CardStatus, Department, Member, MemberStatus, Vehicle
from orgs.selectors import partner_enabled
from orgs.validators import VIN_RE
from stations.models import Connector, Pile, Reservation, ReservationState, Station

PARTNER_TAG_RE = re.compile(r"^P(\d{1,8})-(.+)$")


class CredentialKind(models.TextChoices):
    """What a charge is started, authorised or stopped for: the core's credential kinds
    (every channel and protocol adapter speaks these)."""

    MEMBER_TOKEN = "member_token", _("member token")
    CARD = "card", _("card")
    VIN = "vin", _("VIN")
    STATION_PASSWORD = "station_password", _("station password")
    PARTNER_ORDER = "partner_order", _("partner order")
    DRIVER_APP = "driver_app", _("driver app")  # the member's token, sent by the drivers' app
    # A token presented at a pile that does not say its kind (an OCPP idTag).
    PRESENTED = "presented", _("token presented at the pile")


@dataclass(frozen=True)
class Credential:
    """What starts, authorises or stops a charge, in the core's words."""

    kind: CredentialKind
    value: str


class AuthDecision(enum.StrEnum):
    """The core's answer to a credential (stored in ``ChargingSession.refused_as``)."""

    ACCEPTED = "accepted"
    BLOCKED = "blocked"
    EXPIRED = "expired"
    INVALID = "invalid"
    CONCURRENT = "concurrent"  # the member already has an active session
    RESERVED = "reserved"  # the connector is reserved for another driver


@dataclass(frozen=True)
class Identity:
    """Who a credential stands for at a pile, and the core's decision for it."""

    status: AuthDecision
    channel: str = Channel.UNKNOWN
    member: Member | None = None
    card: Card | None = None
    vehicle: Vehicle | None = None
    department: Department | None = None
    partner_id: int | None = None
    vin: str = ""
    active_session_id: int | None = None  # the member's other session (concurrent)


def partner_credential(*, partner_id: int, reference: str) -> Credential:
    """A partner's order as a credential; its value fits the 20 characters piles carry."""
    return Credential(CredentialKind.PARTNER_ORDER, f"P{partner_id}-{reference}"[:20])


def _member_status(member: Member) -> AuthDecision:
    if member.hidden_at is not None:
        return AuthDecision.INVALID
    if member.status != MemberStatus.ACTIVE:
        return AuthDecision.BLOCKED
    if _expired(member.expires_at):
        return AuthDecision.EXPIRED
    return AuthDecision.ACCEPTED


def _card_status(card: Card) -> AuthDecision:
    if card.hidden_at is not None:
        return AuthDecision.INVALID
    if card.status != CardStatus.ACTIVE:
        return AuthDecision.BLOCKED
    if _expired(card.expires_at):
        return AuthDecision.EXPIRED
    return _member_status(card.member)


def _expired(expires_at: dt.datetime | None) -> bool:
    """A member or card past its validity (``expires_at``) is answered *expired*."""
    return expires_at is not None and expires_at <= timezone.now()


def identify(*, pile: Pile, credential: Credential) -> Identity:
    """Resolve ``credential`` at ``pile`` (read only): the channel, the member/card/vehicle
    it names and the decision by their states. One active session per member."""
    operator_id = pile.station.operator_id
    identity = _identify(pile=pile, credential=credential, operator_id=operator_id)
    if identity.status == AuthDecision.ACCEPTED and identity.member is not None:
        active_id = (
            ChargingSession.objects.filter(member=identity.member, state__in=ACTIVE_STATES)
            .values_list("pk", flat=True)
            .first()
        )
        if active_id is not None:
            return Identity(**{**identity.__dict__, "status": AuthDecision.CONCURRENT,
                               "active_session_id": active_id})  # fmt: skip
        if _owes(identity.member.pk):
            # Arrears: no new session until the owed bill is paid (`member_start_allowed`
            # gives the driver the amount and the order).
            return Identity(**{**identity.__dict__, "status": AuthDecision.BLOCKED})
    return identity


def _owes(member_id: int) -> bool:
    return Bill.objects.filter(member_id=member_id, payment_state=PaymentState.OWED).exists()


def _identify(*, pile: Pile, credential: Credential, operator_id: int) -> Identity:
    kind, value = credential.kind, credential.value
    if kind == CredentialKind.PRESENTED:
        for resolve in _PRESENTED_ORDER:
            identity = resolve(pile=pile, value=value, operator_id=operator_id)
            if identity is not None:
                return identity
        return Identity(status=AuthDecision.INVALID)
    identity = _RESOLVERS[kind](pile=pile, value=value, operator_id=operator_id)
    return identity or Identity(status=AuthDecision.INVALID)


def _by_member_token(*, pile: Pile, value: str, operator_id: int) -> Identity | None:
    member = (
        Member.objects.filter(token=value, operator_id=operator_id)
        .select_related("department")
        .first()
    )
    if member is None:
        return None
    return Identity(
        status=_member_status(member),
        channel=Channel.SCAN,
        member=member,
        department=member.department,
    )


def _by_card(*, pile: Pile, value: str, operator_id: int) -> Identity | None:
    card = (
        Card.objects.filter(number=value, operator_id=operator_id)
        .select_related("member", "vehicle__department", "department")
        .first()
    )
    if card is None:
        return None
    status = _card_status(card)
    department = card.department or (card.vehicle.department if card.vehicle else None)
    return Identity(
        status=status,
        channel=Channel.CARD,
        member=card.member,
        card=card,
        vehicle=card.vehicle,
        department=department or card.member.department,
    )


def _by_partner_order(*, pile: Pile, value: str, operator_id: int) -> Identity | None:
    match = PARTNER_TAG_RE.fullmatch(value)
    if match is None:
        return None
    partner_id = int(match.group(1))
    enabled = partner_enabled(partner_id=partner_id, operator_id=operator_id)
    return Identity(
        status=AuthDecision.ACCEPTED if enabled else AuthDecision.BLOCKED,
        channel=Channel.PARTNER,
        partner_id=partner_id if enabled else None,
    )


def _by_station_password(*, pile: Pile, value: str, operator_id: int) -> Identity | None:
    # Read now, not from the pile object the gateway holds: staff may change it any time.
    password = Station.objects.filter(pk=pile.station_id).values_list("password", flat=True)
    password = password.first() or ""
    if password and secrets.compare_digest(password, value):
        return Identity(status=AuthDecision.ACCEPTED, channel=Channel.PASSWORD)
    return None


def _by_vin(*, pile: Pile, value: str, operator_id: int) -> Identity | None:
    if not VIN_RE.fullmatch(value):
        return None
    vehicle = (
        Vehicle.objects.filter(vin=value, operator_id=operator_id)
        .select_related("member", "department")
        .first()
    )
    if vehicle is None or vehicle.hidden_at is not None:
        return Identity(status=AuthDecision.INVALID, channel=Channel.PASSWORD, vin=value)
    status = _member_status(vehicle.member) if vehicle.member else AuthDecision.ACCEPTED
    return Identity(
        status=status,
        channel=Channel.PASSWORD,
        member=vehicle.member,
        vehicle=vehicle,
        department=vehicle.department,
        vin=value,
    )


_RESOLVERS = {
    CredentialKind.MEMBER_TOKEN: _by_member_token,
    CredentialKind.DRIVER_APP: _by_member_token,
    CredentialKind.CARD: _by_card,
    CredentialKind.PARTNER_ORDER: _by_partner_order,
    CredentialKind.STATION_PASSWORD: _by_station_password,
    CredentialKind.VIN: _by_vin,
}
_PRESENTED_ORDER = (_by_member_token, _by_card, _by_partner_order, _by_station_password, _by_vin)


def session_authorize(*, pile: Pile, credential: Credential) -> AuthDecision:
    """May ``credential`` charge at ``pile`` now?"""
    member = _member_by_token(pile=pile, credential=credential)
    if member is not None:
        return member.status
    return identify(pile=pile, credential=credential).status


def sessions_authorize(calls: list[dict]) -> list[AuthDecision]:
    """`session_authorize` for many calls at once, as the gateway's group commit runs a
    batch's Authorizes (`protocol.db`): the members' tokens in one statement; any other
    credential is identified alone."""
    members = _members_by_token(calls)
    return [
        member.status if member is not None else identify(**call).status
        for member, call in zip(members, calls, strict=True)
    ]


# The gateway's group commit gives a batch's Authorizes to this, all at once.
session_authorize.many = sessions_authorize


# --- The gateway's hot path -------------------------------------------------------------
# Member-token starts are most of the traffic and every query costs the gateway CPU (it
# holds the GIL while Django builds SQL). For them one hand-written query answers what
# `identify` + `_attribution` + `connector_for` ask in five; anything unusual (another
# credential kind, a refusal, a replay, a busy connector) goes the general ORM way, which
# stays the single authority on the rules.


@dataclass(frozen=True)
class _MemberRow:
    member_id: int
    status: AuthDecision
    department_id: int | None
    connector_id: int | None
    station_sub_operator_id: int | None
    reserved: bool = False  # the connector is held by a reservation (the general path decides)


_MEMBER_KINDS = (CredentialKind.MEMBER_TOKEN, CredentialKind.DRIVER_APP, CredentialKind.PRESENTED)


_SESSIONS = ChargingSession._meta.db_table
_THROUGH = Station.sub_operators.through._meta.db_table


def _member_sql(messages: str) -> str:
    """The statement that answers, for each row of ``messages`` (n, pile, number, station,
    token, operator: a credential presented at a connector, number 0 for none), who the
    member of that token is, their state, the connector's id, the station's first
    sub-operator and whether the connector is reserved; no row where no member has the
    token. Its first parameter is the time expiry is judged at, then those of
    ``messages``."""
    connectors = Connector._meta.db_table
    return (
        "SELECT msg.n, m.id, m.status, m.hidden_at IS NULL, m.department_id, "
        "m.expires_at IS NOT NULL AND m.expires_at <= %s, "
        f"EXISTS (SELECT 1 FROM {_SESSIONS} s WHERE s.member_id = m.id "
        f"AND s.state IN ({literals(ACTIVE_STATES)})), "
        f"EXISTS (SELECT 1 FROM {Bill._meta.db_table} b WHERE b.member_id = m.id "
        f"AND b.payment_state = {literal(PaymentState.OWED)}), "
        f"(SELECT c.id FROM {connectors} c WHERE c.pile_id = msg.pile AND c.number = msg.number), "
        f"(SELECT t.suboperator_id FROM {_THROUGH} t WHERE t.station_id = msg.station "
        "ORDER BY t.suboperator_id LIMIT 1), "
        f"EXISTS (SELECT 1 FROM {Reservation._meta.db_table} r JOIN {connectors} rc "
        "ON rc.id = r.connector_id WHERE rc.pile_id = msg.pile AND rc.number = msg.number "
        f"AND r.state = {literal(ReservationState.ACTIVE)}) "
        f"FROM {messages} JOIN {Member._meta.db_table} m "
        "ON m.token = msg.token AND m.operator_id = msg.operator"
    )


_MESSAGE_COLUMNS = "n, pile, number, station, token, operator"
# Built once: the gateway runs them on every Authorize, start and stop; a batch's
# Authorizes and starts take the second, the messages as one JSON parameter (arrays of
# values would cost psycopg Python for every element).
_MEMBER_SQL = _member_sql(
    "(SELECT 0, %s::bigint, %s::int, %s::bigint, %s::varchar, %s::bigint) "
    f"AS msg({_MESSAGE_COLUMNS})"
)
_MEMBERS_SQL = _member_sql(
    "(SELECT (e->>0)::int, (e->>1)::bigint, (e->>2)::int, (e->>3)::bigint, "
    f"(e->>4)::varchar, (e->>5)::bigint FROM jsonb_array_elements(%s::jsonb) AS e) "
    f"AS msg({_MESSAGE_COLUMNS})"
)


def _member_by_token(
    *, pile: Pile, credential: Credential, connector_number: int | None = None
) -> _MemberRow | None:
    if credential.kind not in _MEMBER_KINDS:
        return None
    params = [
        timezone.now(),
        pile.pk,
        connector_number or 0,
        pile.station_id,
        credential.value,
        pile.station.operator_id,
    ]
    row = statement_run(_MEMBER_SQL, params).fetchone()
    return None if row is None else _member_row(row)


def _members_by_token(calls: list[dict]) -> list[_MemberRow | None]:
    """`_member_by_token` for many calls (their ``pile``, ``credential`` and, if they
    name one, ``connector_number``) in one statement."""
    messages = [
        [n, call["pile"].pk, call.get("connector_number") or 0, call["pile"].station_id,
         call["credential"].value, call["pile"].station.operator_id]
        for n, call in enumerate(calls)
        if call["credential"].kind in _MEMBER_KINDS
    ]  # fmt: skip
    rows: dict[int, _MemberRow] = {}
    if messages:
        params = [timezone.now(), json.dumps(messages)]
        rows = {row[0]: _member_row(row) for row in statement_run(_MEMBERS_SQL, params)}
    return [rows.get(n) for n in range(len(calls))]


def _member_row(row: tuple) -> _MemberRow:
    """The decision on a row of `_member_sql`."""
    _n, member_id, member_status, visible, department_id, expired, busy, owes = row[:8]
    connector_id, sub_id, reserved = row[8:]
    if not visible:
        status = AuthDecision.INVALID
    elif member_status != MemberStatus.ACTIVE:
        status = AuthDecision.BLOCKED
    elif expired:
        status = AuthDecision.EXPIRED
    elif busy:
        status = AuthDecision.CONCURRENT
    elif owes:
        status = AuthDecision.BLOCKED
    else:
        status = AuthDecision.ACCEPTED
    return _MemberRow(member_id, status, department_id, connector_id, sub_id, reserved=reserved)
