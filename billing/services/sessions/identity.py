"""Who an idTag stands for at a pile: the channel, the member, card or vehicle, the answer.

How a session's start is classified (the idTag the pile sends, checked in this order):

1. a member's charging token (``Member.token``)                → channel *scan*
2. an RFID card number (``Card.number``, 一卡一车)               → channel *card*
3. a partner tag ``P<partner id>-<reference>`` (`partner_id_tag`) → channel *partner*
4. the station's password (密码充电)                             → channel *password*
5. a 17-character VIN (idTag convention for VIN-start piles:
   they check the station password locally and send the car's VIN) → channel *password*

The VIN can also arrive during the session by DataTransfer (``messageId`` "VIN", see
`billing.services.sessions.vin.session_link_vin`); either way a known vehicle links the
session and its department.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.db import connection

from billing.models import Bill, Channel, ChargingSession, PaymentState
from billing.models.sessions import ACTIVE_STATES
from orgs.models import Card, CardStatus, Department, Member, MemberStatus, PartnerAccess, Vehicle
from orgs.validators import VIN_RE
from stations.models import Connector, Pile, Station

PARTNER_TAG_RE = re.compile(r"^P(\d{1,8})-(.+)$")


class AuthStatus:
    """OCPP 1.6 AuthorizationStatus values the platform answers with."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


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
        if _owes(identity.member.pk):
            # Arrears: no new session until the owed bill is paid (`member_start_allowed`
            # gives the driver the amount and the order).
            return Identity(**{**identity.__dict__, "status": AuthStatus.BLOCKED})
    return identity


def _owes(member_id: int) -> bool:
    return Bill.objects.filter(member_id=member_id, payment_state=PaymentState.OWED).exists()


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
        f"EXISTS (SELECT 1 FROM {Bill._meta.db_table} b WHERE b.member_id = m.id "
        "AND b.payment_state = 'owed'), "
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
    member_id, member_status, visible, department_id, busy, owes, connector_id, sub_id = row
    if not visible:
        status = AuthStatus.INVALID
    elif member_status != MemberStatus.ACTIVE:
        status = AuthStatus.BLOCKED
    elif busy:
        status = AuthStatus.CONCURRENT_TX
    elif owes:
        status = AuthStatus.BLOCKED
    else:
        status = AuthStatus.ACCEPTED
    return _MemberRow(member_id, status, department_id, connector_id, sub_id)
