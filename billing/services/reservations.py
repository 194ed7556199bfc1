"""Reservations: a connector held for one driver until it expires (drivers reserve from
the app, staff from the back office). While it holds, only that driver's credentials start
a charge there (`sessions.start` asks `reservation_holding`); the driver's start ends it
(*used*). It ends too when cancelled, when its time is up (`reservations_expire`, beat) or
when the pile refuses to hold it. Every change is a ``reservation.changed`` event.

Adapters carry it to the pile (`protocol.reservations`): the core decides first, then the
pile is asked, outside this transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.events import RESERVATION_CHANGED
from billing.models import ChargingSession
from billing.models.sessions import ACTIVE_STATES
from billing.services.sessions.identity import (
    AuthDecision,
    Credential,
    CredentialKind,
    Identity,
    identify,
)
from chargenet.audit import audit_record
from chargenet.errors import DomainError
from chargenet.events import event_publish
from orgs.models import Member
from stations.models import Connector, Reservation, ReservationState

# How long a driver may hold a connector.
LONGEST = dt.timedelta(hours=2)


class ReservationRefused(DomainError):
    code = "reservation_refused"


def _published(reservation: Reservation) -> None:
    event_publish(
        kind=RESERVATION_CHANGED,
        key=reservation.pk,
        payload={
            "reservation_id": reservation.pk,
            "connector_id": reservation.connector_id,
            "station_id": reservation.connector.pile.station_id,
            "member_id": reservation.member_id,
            "state": reservation.state,
            "expires_at": reservation.expires_at.isoformat(),
        },
    )


@transaction.atomic
def reservation_create(
    *, connector: Connector, member: Member, expires_at: dt.datetime, acting_user=None
) -> Reservation:
    """Hold ``connector`` for ``member`` until ``expires_at`` (at most `LONGEST` ahead).
    Refused when the member may not charge at the pile now, the connector is charging or
    already reserved."""
    now = timezone.now()
    if not now < expires_at <= now + LONGEST:
        raise ReservationRefused(
            _("A reservation ends within the next %(hours)s hours.")
            % {"hours": int(LONGEST.total_seconds() // 3600)}
        )
    pile = connector.pile
    decision = identify(
        pile=pile, credential=Credential(CredentialKind.MEMBER_TOKEN, member.token)
    ).status
    if decision != AuthDecision.ACCEPTED:
        raise ReservationRefused(
            _("The member cannot charge now (%(decision)s).") % {"decision": decision}
        )
    if ChargingSession.objects.filter(connector=connector, state__in=ACTIVE_STATES).exists():
        raise ReservationRefused(_("The connector is charging."))
    reservations_expire(now=now, connector=connector)
    try:
        with transaction.atomic():
            reservation = Reservation.objects.create(
                connector=connector, member=member, id_tag=member.token, expires_at=expires_at
            )
    except IntegrityError as exc:  # reservation_one_active_per_connector
        raise ReservationRefused(_("The connector is already reserved.")) from exc
    if acting_user is not None:
        audit_record(
            actor=acting_user,
            action="reservation_create",
            obj=reservation,
            after={"connector": str(connector), "member": member.pk,
                   "expires_at": expires_at.isoformat()},
            operator_id=pile.station.operator_id,
        )  # fmt: skip
    _published(reservation)
    return reservation


@transaction.atomic
def reservation_end(
    *,
    reservation: Reservation,
    state: ReservationState,
    session_id: int | None = None,
    acting_user=None,
) -> Reservation:
    """End an active reservation: cancelled (by a person), refused (by the pile), used (by
    the driver's start), expired. Ending one that already ended changes nothing."""
    locked = Reservation.objects.select_for_update().select_related("connector__pile")
    reservation = locked.get(pk=reservation.pk)
    if reservation.state != ReservationState.ACTIVE:
        return reservation
    before = reservation.state
    reservation.state, reservation.ended_at = state, timezone.now()
    reservation.session_id = session_id
    reservation.save(update_fields=["state", "ended_at", "session_id"])
    if acting_user is not None:
        audit_record(
            actor=acting_user,
            action="reservation_end",
            obj=reservation,
            before={"state": before},
            after={"state": state},
            operator_id=reservation.connector.pile.station.operator_id,
        )
    _published(reservation)
    return reservation


def reservations_expire(*, now: dt.datetime | None = None, connector=None) -> int:
    """End the active reservations whose time is up (beat; and before a new one)."""
    now = now or timezone.now()
    due = Reservation.objects.filter(state=ReservationState.ACTIVE, expires_at__lte=now)
    if connector is not None:
        due = due.filter(connector=connector)
    ended = 0
    for reservation in due.order_by("pk"):
        reservation_end(reservation=reservation, state=ReservationState.EXPIRED)
        ended += 1
    return ended


def reservation_holding(*, connector_id: int, at: dt.datetime) -> Reservation | None:
    """The reservation holding the connector at ``at`` (locked: the start that uses it
    ends it in the same transaction)."""
    return (
        Reservation.objects.select_for_update()
        .filter(connector_id=connector_id, state=ReservationState.ACTIVE, expires_at__gt=at)
        .first()
    )


@dataclass(frozen=True)
class HeldReservation:
    reservation: Reservation
    usable: bool  # the start is its driver's: the start uses it; anyone else is refused


def reservation_for_start(
    *,
    connector: Connector,
    identity: Identity,
    id_tag: str,
    started_at: dt.datetime,
    reservation_id: int | None,
) -> HeldReservation | None:
    """The reservation a start on ``connector`` meets (the one holding the connector, or
    the one the pile named), and whether the start is its driver's."""
    held = reservation_holding(connector_id=connector.pk, at=started_at)
    if held is None and reservation_id:
        held = (
            Reservation.objects.select_for_update()
            .filter(pk=reservation_id, state=ReservationState.ACTIVE)
            .filter(connector__pile_id=connector.pile_id)
            .first()
        )
    if held is None:
        return None
    member = identity.member
    theirs = held.id_tag == id_tag or (member is not None and member.pk == held.member_id)
    return HeldReservation(held, theirs)


def reservations_active(
    *, station_id: int | None = None, member_id: int | None = None, connector_id: int | None = None
) -> QuerySet[Reservation]:
    """Reservations holding a connector now (for the live view and the drivers' API),
    soonest to end first; narrowed to a station, a member or a connector."""
    rows = Reservation.objects.filter(
        state=ReservationState.ACTIVE, expires_at__gt=timezone.now()
    ).select_related("connector__pile", "member")
    if station_id is not None:
        rows = rows.filter(connector__pile__station_id=station_id)
    if member_id is not None:
        rows = rows.filter(member_id=member_id)
    if connector_id is not None:
        rows = rows.filter(connector_id=connector_id)
    return rows.order_by("expires_at")
