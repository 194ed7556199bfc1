"""A start: open the session (or return the one a replay opened) and attribute it.

Attribution (DOMAIN.md): a known vehicle or card is attributed through its department's
sub-operator *before* the station's sub-operator; a station with several authorised
sub-operators attributes to the first by id.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import Channel, ChargingSession, SessionState
from billing.models.sessions import ACTIVE_STATES
from billing.services import reservations
from billing.services.sessions.batches import calls_run
from billing.services.sessions.identity import (
    AuthDecision,
    Credential,
    Identity,
    _member_by_token,
    _members_by_token,
    identify,
)
from billing.services.sessions.settlement_queue import _sessions_stopped
from billing.services.sessions.states import (
    session_open,
    session_transition,
    sessions_open,
    transition_check,
)
from chargenet.errors import DomainError
from orgs.models import Department, SubOperator
from stations.models import Pile, ReservationState
from stations.services.live import connector_for


@dataclass(frozen=True)
class StartResult:
    session_id: int
    order_no: str
    status: AuthDecision
    protocol_ref: str  # the transaction reference the pile is answered with
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
    credential: Credential,
    meter_start_wh: int | Decimal,
    started_at: dt.datetime,
    protocol_ref: str = "",
    reservation_id: int | None = None,
) -> StartResult:
    """Open the session of a start, or return the one a replay already opened.

    ``protocol_ref`` is the pile protocol's reference for the transaction when the pile
    chose it; where the platform numbers the transactions, the adapter passes none and the
    session's id becomes its reference — the numbering every session before references
    existed had, so stops still queued in piles find theirs, and no second counter exists.

    A refused credential (any decision but accepted) is recorded as a ``refused`` session:
    the pile still needs its transaction reference, and may charge anyway (then its meter
    values or stop make the session a bill, see `states`); a pile that obeys leaves nothing
    to bill and nothing for the lost-bill sweep. A replay gets the same reference and the
    same answer. A connector held by a reservation (`billing.services.reservations`)
    starts only for its driver, whose start ends it (so does a start naming it by
    ``reservation_id``); anyone else is refused as *reserved*. An older session still
    active on the connector is closed as superseded
    (its stop never came), which the settlement's fault rules see as a lost bill.
    """
    args = {
        "pile": pile,
        "connector_number": connector_number,
        "credential": credential,
        "meter_start_wh": Decimal(meter_start_wh),
        "started_at": started_at,
        "protocol_ref": protocol_ref[:64],
    }
    try:
        fast = None if reservation_id else _session_start_member(**args)
    except IntegrityError:
        fast = None  # a replay or a busy connector: the general path knows what to do
    if fast is not None:
        return fast
    for _attempt in range(5):
        try:
            return _session_start(**args, reservation_id=reservation_id)
        except IntegrityError as exc:
            constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", "")
            if constraint in (
                "session_start_idempotent",
                "session_protocol_ref_unique",
                f"{ChargingSession._meta.db_table}_order_no_key",  # Django's name for unique=True
            ):
                continue  # a concurrent replay won, or an order number collided: look again
            if constraint == "session_one_active_per_connector":
                continue  # a concurrent start on the connector: supersede it next time
            raise
    raise DomainError(_("The session could not be opened; the pile will retry."))


def _session_start(
    *,
    pile: Pile,
    connector_number: int,
    credential: Credential,
    meter_start_wh: Decimal,
    started_at: dt.datetime,
    protocol_ref: str,
    reservation_id: int | None = None,
) -> StartResult:
    id_tag = credential.value[:20]
    with transaction.atomic():
        connector = connector_for(pile=pile, number=connector_number)
        existing = ChargingSession.objects.filter(
            pile=pile, connector=connector, id_tag=id_tag, started_at=started_at
        ).first()
        if existing is None and protocol_ref:
            existing = ChargingSession.objects.filter(pile=pile, protocol_ref=protocol_ref).first()
        if existing is not None:
            ref = existing.protocol_ref
            if existing.refused_as:
                decision = AuthDecision(existing.refused_as)
                return StartResult(existing.pk, existing.order_no, decision, ref, True)
            status = identify(pile=pile, credential=credential).status
            if status == AuthDecision.CONCURRENT and existing.state in ACTIVE_STATES:
                status = AuthDecision.ACCEPTED  # the active session is this very one
            return StartResult(existing.pk, existing.order_no, status, ref, replayed=True)

        identity = identify(pile=pile, credential=credential)
        held = reservations.reservation_for_start(
            connector=connector,
            identity=identity,
            id_tag=id_tag,
            started_at=started_at,
            reservation_id=reservation_id,
        )
        if held is not None and not held.usable:
            identity = Identity(**{**identity.__dict__, "status": AuthDecision.RESERVED})
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
        if identity.status == AuthDecision.CONCURRENT and (
            identity.active_session_id not in superseded
        ):
            member, reason = None, "member already charging: recorded without the member"
        status = identity.status
        if status == AuthDecision.CONCURRENT and member is not None:
            status = AuthDecision.ACCEPTED  # its only active session was just superseded
        refused = status != AuthDecision.ACCEPTED
        first = SessionState.REFUSED if refused else SessionState.STARTED
        then = None
        if late and not refused:
            # Opened straight into its last state: it never was the live one.
            then = (
                SessionState.STOPPED,
                "start delivered late while a newer session is active on the connector",
            )
            transition_check(from_state=first, to_state=then[0])
        known_vehicle = identity.vehicle is not None or identity.card is not None
        session = ChargingSession(
            order_no=new_order_no(),
            operator_id=pile.station.operator_id,
            station_id=pile.station_id,
            pile=pile,
            connector=connector,
            protocol_ref=protocol_ref,
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
            state=then[0] if then else first,
            refused_as=status if refused else "",
            started_at=started_at,
            meter_start_wh=meter_start_wh,
        )
        if refused:
            reason = f"start refused: {status}; {reason}".rstrip("; ")
        key_as_text = None if protocol_ref else "protocol_ref"
        session_open(session, first, reason=reason, then=then, key_as_text=key_as_text)
        if held is not None and held.usable and not refused:
            reservations.reservation_end(
                reservation=held.reservation, state=ReservationState.USED, session_id=session.pk
            )
        if superseded:
            _sessions_stopped(superseded)
    ref = protocol_ref or str(session.pk)
    return StartResult(session.pk, session.order_no, status, ref, superseded_ids=tuple(superseded))


# The gateway's hot path for member-token starts (see `identity._member_by_token`).
def _session_start_member(
    *,
    pile: Pile,
    connector_number: int,
    credential: Credential,
    meter_start_wh: Decimal,
    started_at: dt.datetime,
    protocol_ref: str,
) -> StartResult | None:
    """The common start (an accepted member, a known and free connector, no replay) in
    two statements; None when the general path must decide. A conflict with a replay or
    a live session on the connector raises IntegrityError, which sends it there too."""
    with transaction.atomic():
        row = _member_by_token(pile=pile, credential=credential, connector_number=connector_number)
        if row is None or row.status != AuthDecision.ACCEPTED or row.connector_id is None:
            return None
        if row.reserved:
            return None  # whose reservation it is, the general path decides
        session = ChargingSession(
            order_no=new_order_no(),
            operator_id=pile.station.operator_id,
            station_id=pile.station_id,
            pile_id=pile.pk,
            connector_id=row.connector_id,
            protocol_ref=protocol_ref,
            channel=Channel.SCAN,
            id_tag=credential.value,
            member_id=row.member_id,
            department_id=row.department_id,
            sub_operator_id=row.station_sub_operator_id,
            state=SessionState.STARTED,
            started_at=started_at,
            meter_start_wh=meter_start_wh,
        )
        key_as_text = None if protocol_ref else "protocol_ref"
        session_open(session, SessionState.STARTED, key_as_text=key_as_text)
    ref = protocol_ref or str(session.pk)
    return StartResult(session.pk, session.order_no, AuthDecision.ACCEPTED, ref)


def sessions_start(calls: list[dict]) -> list[StartResult]:
    """`session_start` for many calls at once, as the gateway's group commit runs a
    batch's StartTransactions (`protocol.db`): the common start (`_session_start_member`'s)
    of the first start of each pile and each token in the batch, in two statements for
    all: the members' tokens, then the sessions (`states.sessions_open`). Any other start,
    and one the sessions' unique rules turn away (a replay, a busy connector), follows
    alone, in its order, as `session_start` decides it."""
    batched, piles, tokens = [], set(), set()
    for i, call in enumerate(calls):
        pile, token = call["pile"].pk, call["credential"].value
        if not call.get("reservation_id") and pile not in piles and token not in tokens:
            batched.append(i)
        piles.add(pile)  # a later start of the pile or the token waits for this one
        tokens.add(token)
    return calls_run(calls, batched, _starts_batch, session_start)


# The gateway's group commit gives a batch's StartTransactions to this, all at once.
session_start.many = sessions_start


def _starts_batch(calls: list[dict]) -> list[StartResult | None]:
    messages, orders = [], {}
    for n, (call, row) in enumerate(zip(calls, _members_by_token(calls), strict=True)):
        if row is None or row.status != AuthDecision.ACCEPTED or row.connector_id is None:
            continue
        if row.reserved:
            continue  # whose reservation it is, the general path decides
        pile = call["pile"]
        orders[n] = order_no = new_order_no()
        messages.append(
            [n, pile.pk, order_no, pile.station.operator_id, pile.station_id, row.connector_id,
             call.get("protocol_ref", "")[:64], call["credential"].value, row.member_id,
             row.department_id, row.station_sub_operator_id, call["started_at"].isoformat(),
             str(Decimal(call["meter_start_wh"]))]
        )  # fmt: skip
    if not messages:
        return [None] * len(calls)
    template = ChargingSession(channel=Channel.SCAN, state=SessionState.STARTED)
    with transaction.atomic():
        opened = dict(
            sessions_open(
                template, source=_STARTS_SOURCE, params=[json.dumps(messages)], columns=_STARTS
            )
        )
    results: list[StartResult | None] = []
    for n, call in enumerate(calls):
        session_id = opened.get(n)
        if session_id is None:
            results.append(None)
            continue
        ref = call.get("protocol_ref", "")[:64] or str(session_id)
        results.append(StartResult(session_id, orders[n], AuthDecision.ACCEPTED, ref))
    return results


# A batch's common starts as rows (`_starts_batch`'s messages), ordered by pile, each with
# a new key; the fields they fill (the others are the template's).
_STARTS_SOURCE = (
    "SELECT (e->>0)::int AS n, nextval(pg_get_serial_sequence("
    f"'{ChargingSession._meta.db_table}', 'id')) AS id, (e->>1)::bigint AS pile, "
    "(e->>2)::varchar AS order_no, (e->>3)::bigint AS operator, (e->>4)::bigint AS station, "
    "(e->>5)::bigint AS connector, (e->>6)::varchar AS ref, (e->>7)::varchar AS id_tag, "
    "(e->>8)::bigint AS member, (e->>9)::bigint AS department, "
    "(e->>10)::bigint AS sub_operator, (e->>11)::timestamptz AS started_at, "
    "(e->>12)::numeric AS meter_start_wh "
    "FROM jsonb_array_elements(%s::jsonb) AS e ORDER BY 3"
)
_STARTS_FILLED = ("order_no", "operator", "station", "pile", "connector", "id_tag", "member",
                  "department", "sub_operator", "started_at", "meter_start_wh")  # fmt: skip
_STARTS = {
    "id": "src.id",
    # The platform numbers the transactions where the pile does not: the session's key.
    "protocol_ref": "COALESCE(NULLIF(src.ref, ''), src.id::text)",
    **{name: f"src.{name}" for name in _STARTS_FILLED},
}


def _attribution(*, station, department: Department | None, known_vehicle: bool):
    if known_vehicle and department is not None and department.sub_operator_id:
        return department.sub_operator_id
    first = SubOperator.objects.filter(stations=station).order_by("pk").values("pk").first()
    return first["pk"] if first else None
