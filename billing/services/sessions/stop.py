"""A stop: close the session and queue its settlement; an unknown one is an orphan."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.events import SESSION_STOPPED
from billing.models import ChargingSession, OrphanStop, SessionState
from billing.models.sessions import ACTIVE_STATES
from billing.services.sessions.batches import calls_run
from billing.services.sessions.identity import (
    AuthDecision,
    Credential,
    _identify,
    _member_by_token,
    _MemberRow,
    _members_by_token,
)
from billing.services.sessions.meter import Sample, _store_samples, samples_insert
from billing.services.sessions.settlement_queue import _sessions_stopped
from billing.services.sessions.states import _transition, session_transition
from stations.models import Pile


@dataclass(frozen=True)
class StopResult:
    session_id: int | None
    order_no: str = ""
    orphan_id: int | None = None
    replayed: bool = False
    settle_queued: bool = False
    status: AuthDecision | None = None  # when the stop carried a credential
    samples_stored: int = 0
    notes: list[str] = field(default_factory=list)


def session_stop(
    *,
    pile: Pile,
    protocol_ref: str,
    meter_stop_wh: int | Decimal,
    stopped_at: dt.datetime,
    reason: str = "",
    credential: Credential | None = None,
    samples: list[Sample] | None = None,
    transaction_data: list | None = None,
    pile_reported: dict | None = None,
) -> StopResult:
    """Close the session the pile calls ``protocol_ref`` and queue its settlement on commit.

    Idempotent: a repeated stop changes nothing. A stop for a session already closed as
    superseded fills in the values the pile finally sent and queues settlement again
    (settlement is idempotent). The stop of a refused start is settled only if the pile
    charged (`_refused_stop`). An unknown reference becomes an `OrphanStop`, keeping the
    pile's own record of the samples (``transaction_data``) as it sent them.

    ``pile_reported``: what the pile says of the charge in its own record (per-period
    energy and amounts, its charging time: see `faults.facts`), kept on the session beside
    the platform's figures with the stop, once: a repeated stop does not change them."""
    samples = samples or []
    fast = None
    if not pile_reported:  # the pile's own figures are written on the general path below
        fast = _session_stop_active(
            pile=pile,
            protocol_ref=protocol_ref,
            meter_stop_wh=meter_stop_wh,
            stopped_at=stopped_at,
            reason=reason,
            credential=credential,
            samples=samples,
        )
    if fast is not None:
        return fast
    with transaction.atomic():
        session = (
            ChargingSession.objects.select_for_update()
            .filter(pile=pile, protocol_ref=protocol_ref)
            .first()
        )
        if session is None:
            orphan, _created = OrphanStop.objects.get_or_create(
                pile=pile,
                protocol_ref=protocol_ref[:64],
                stopped_at=stopped_at,
                defaults={
                    "id_tag": credential.value[:20] if credential else "",
                    "meter_stop_wh": Decimal(meter_stop_wh),
                    "reason": reason[:32],
                    "transaction_data": transaction_data or [],
                    "received_at": timezone.now(),
                },
            )
            return StopResult(None, orphan_id=orphan.pk, replayed=not _created)
        stored = _store_samples(session=session, samples=samples)
        if pile_reported and session.stop_received_at is None:
            session.pile_reported = {**session.pile_reported, **pile_reported}
            session.save(update_fields=["pile_reported", "updated_at"])
        # The credential's own state (its active session is this one: no concurrency check).
        operator_id = pile.station.operator_id
        status = (
            _identify(pile=pile, credential=credential, operator_id=operator_id).status
            if credential
            else None
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
            _sessions_stopped([session.pk])
            return StopResult(
                session.pk, session.order_no, settle_queued=True, status=status,
                samples_stored=stored,
            )  # fmt: skip
        if session.state == SessionState.REFUSED and session.stop_received_at is None:
            return _refused_stop(
                session, meter_stop_wh=meter_stop_wh, stopped_at=stopped_at, reason=reason,
                status=status, stored=stored,
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
                _sessions_stopped([session.pk])
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


def _refused_stop(
    session: ChargingSession, *, meter_stop_wh, stopped_at, reason: str, status, stored: int
) -> StopResult:
    """The stop of a refused start. Energy on the register means the pile charged anyway:
    the session is closed for settlement (billed, never debited: nobody agreed to pay).
    Without energy the pile obeyed: its stop is kept on the refused session, nothing to bill."""
    session.meter_stop_wh = Decimal(meter_stop_wh)
    session.stopped_at = stopped_at
    session.stop_reason = (reason or "Local")[:32]
    session.stop_received_at = timezone.now()
    fields = ("meter_stop_wh", "stopped_at", "stop_reason", "stop_received_at")
    if session.meter_stop_wh <= session.meter_start_wh:
        session.save(update_fields=[*fields, "updated_at"])
        return StopResult(session.pk, session.order_no, status=status, samples_stored=stored)
    session_transition(
        session=session,
        to_state=SessionState.STOPPED,
        reason="stop with energy after a refused start",
        also_save=fields,
    )
    _sessions_stopped([session.pk])
    return StopResult(
        session.pk, session.order_no, settle_queued=True, status=status, samples_stored=stored
    )


def _session_stop_active(
    *,
    pile: Pile,
    protocol_ref: str,
    meter_stop_wh,
    stopped_at: dt.datetime,
    reason: str,
    credential: Credential | None,
    samples: list[Sample],
) -> StopResult | None:
    """The common stop (an active session of this pile) as one statement that moves it
    through the state table and records the move; None (nothing changed) for replays,
    orphans and late stops."""
    now = timezone.now()
    with transaction.atomic():
        rows = _transition(
            match={"pile": pile.pk, "protocol_ref": protocol_ref},
            from_states=ACTIVE_STATES,
            to_state=SessionState.STOPPED,
            reason="stop",
            now=now,
            values={
                "meter_stop_wh": Decimal(meter_stop_wh),
                "stopped_at": stopped_at,
                "stop_reason": (reason or "Local")[:32],
                "stop_received_at": now,
            },
            returning=("order_no",),
            publish=SESSION_STOPPED,
        )
        if not rows:
            return None
        [(session_id, _from_state, order_no)] = rows
        stored = samples_insert({session_id: samples})[session_id]
        status = None
        if credential is not None:
            member = _member_by_token(pile=pile, credential=credential)
            status = _stop_status(pile, credential, member)
        _sessions_stopped([session_id], published=True)
    return StopResult(
        session_id, order_no, settle_queued=True, status=status, samples_stored=stored
    )


def _stop_status(pile: Pile, credential: Credential, member: _MemberRow | None) -> AuthDecision:
    """The credential of a stop, judged in its own state: the session it stops is its
    active one, so no concurrency check."""
    if member is not None:
        busy = member.status == AuthDecision.CONCURRENT
        return AuthDecision.ACCEPTED if busy else member.status
    operator_id = pile.station.operator_id
    return _identify(pile=pile, credential=credential, operator_id=operator_id).status


def sessions_stop(calls: list[dict]) -> list[StopResult]:
    """`session_stop` for many calls at once, as the gateway's group commit runs a batch's
    StopTransactions (`protocol.db`): the common stop (`_session_stop_active`'s) of each
    pile's first stop in the batch in one statement for all, their samples in one more,
    their credentials after; any other stop (a replay, an orphan, a late or refused one,
    one with the pile's own figures) follows alone, in its order, as `session_stop`
    decides."""
    batched, piles = [], set()
    for i, call in enumerate(calls):
        if not call.get("pile_reported") and call["pile"].pk not in piles:
            batched.append(i)
        piles.add(call["pile"].pk)  # a later stop of the pile waits for this one
    return calls_run(calls, batched, _stops_batch, session_stop)


# The gateway's group commit gives a batch's StopTransactions to this, all at once.
session_stop.many = sessions_stop


def _stops_batch(calls: list[dict]) -> list[StopResult | None]:
    now = timezone.now()
    messages = [
        [n, call["pile"].pk, call["protocol_ref"], str(Decimal(call["meter_stop_wh"])),
         call["stopped_at"].isoformat(), (call.get("reason") or "Local")[:32]]
        for n, call in enumerate(calls)
    ]  # fmt: skip
    with transaction.atomic():
        rows = _transition(
            match={"pile": "pile", "protocol_ref": "ref"},
            messages=(_STOPS_SOURCE, [json.dumps(messages)]),
            row_values=("meter_stop_wh", "stopped_at", "stop_reason"),
            from_states=ACTIVE_STATES,
            to_state=SessionState.STOPPED,
            reason="stop",
            now=now,
            values={"stop_received_at": now},
            returning=("order_no",),
            publish=SESSION_STOPPED,
        )
        if not rows:
            return [None] * len(calls)
        stopped = {n: (session_id, order_no) for n, session_id, _was, order_no in rows}
        with_credential = [n for n in stopped if calls[n].get("credential") is not None]
        members = _members_by_token([calls[n] for n in with_credential])
        statuses = dict(zip(with_credential, members, strict=True))
        stored = samples_insert(
            {session_id: calls[n].get("samples") or [] for n, (session_id, _o) in stopped.items()}
        )
        results: list[StopResult | None] = []
        for n, call in enumerate(calls):
            if n not in stopped:
                results.append(None)
                continue
            session_id, order_no = stopped[n]
            status = None
            if n in statuses:
                status = _stop_status(call["pile"], call["credential"], statuses[n])
            results.append(
                StopResult(session_id, order_no, settle_queued=True, status=status,
                           samples_stored=stored[session_id])
            )  # fmt: skip
        _sessions_stopped(
            [session_id for session_id, _order_no in stopped.values()], published=True
        )
    return results


# A batch's common stops as rows (`_stops_batch`'s messages).
_STOPS_SOURCE = (
    "SELECT (e->>0)::int AS n, (e->>1)::bigint AS pile, (e->>2)::varchar AS ref, "
    "(e->>3)::numeric AS meter_stop_wh, (e->>4)::timestamptz AS stopped_at, "
    "(e->>5)::varchar AS stop_reason FROM jsonb_array_elements(%s::jsonb) AS e"
)
