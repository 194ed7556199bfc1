"""StartTransaction: open the session (or return the one a replay opened) and attribute it.

Attribution (DOMAIN.md): a known vehicle or card is attributed through its department's
sub-operator *before* the station's sub-operator; a station with several authorised
sub-operators attributes to the first by id.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import Channel, ChargingSession, SessionState, SessionTransition
from billing.models.sessions import ACTIVE_STATES
from billing.services.sessions.identity import AuthStatus, _member_by_token, identify
from billing.services.sessions.settlement_queue import _queue_settlement
from billing.services.sessions.states import session_transition
from chargenet.errors import DomainError
from orgs.models import Department, SubOperator
from stations.models import Pile
from stations.services.live import connector_for


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

    A refused idTag (any answer but Accepted) is recorded as a ``refused`` session: the
    pile still needs its transaction id, and may charge anyway (then its meter values or
    stop make the session a bill, see `states`); a pile that obeys leaves nothing to bill
    and nothing for the lost-bill sweep. A replay gets the same id and the same answer.
    An older session still active on the connector is closed as superseded (its stop never
    came), which the settlement's fault rules see as a lost bill.
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
            if existing.refused_as:
                return StartResult(existing.pk, existing.order_no, existing.refused_as, True)
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
        refused = status != AuthStatus.ACCEPTED
        if refused:
            state = SessionState.REFUSED
        else:
            state = SessionState.STOPPED if late else SessionState.STARTED
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
            state=state,
            refused_as=status if refused else "",
            started_at=started_at,
            meter_start_wh=meter_start_wh,
        )
        first = SessionState.REFUSED if refused else SessionState.STARTED
        if refused:
            reason = f"start refused: {status}; {reason}".rstrip("; ")
        SessionTransition.objects.create(
            session=session, from_state="", to_state=first, reason=reason
        )
        if late and not refused:
            SessionTransition.objects.create(
                session=session,
                from_state=SessionState.STARTED,
                to_state=SessionState.STOPPED,
                reason="start delivered late while a newer session is active on the connector",
            )
        if superseded:
            _queue_settlement(superseded)
    return StartResult(session.pk, session.order_no, status, superseded_ids=tuple(superseded))


# The gateway's hot path for member-token starts (see `identity._member_by_token`).
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
