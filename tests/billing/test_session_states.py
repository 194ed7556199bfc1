"""Every write of a session's state goes through the state table, batch or single, and
the gateway's commands stay as few statements as they were."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import ChargingSession, SessionTransition
from billing.services import sessions
from billing.services.repair import sessions_mark_lost
from chargenet.models import OutboxEvent
from tests.protocol import world

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def _start(pile, member, connector=1):
    return sessions.session_start(
        pile=pile,
        connector_number=connector,
        credential=sessions.Credential(sessions.CredentialKind.MEMBER_TOKEN, member.token),
        meter_start_wh=1000,
        started_at=T0,
    )


def _states(*ids):
    return dict(ChargingSession.objects.filter(pk__in=ids).values_list("pk", "state"))


def test_an_illegal_batch_move_is_refused_and_changes_nothing():
    pile = world.pile(connectors=2)
    op = pile.station.operator
    a, b = _start(pile, world.member(op)), _start(pile, world.member(op), connector=2)
    ChargingSession.objects.filter(pk=b.session_id).update(state="settled")
    moves = SessionTransition.objects.count()
    with pytest.raises(sessions.IllegalTransition) as refused:
        sessions.sessions_transition(
            session_ids=[a.session_id, b.session_id],
            from_states=["started", "settled"],
            to_state="charging",
            reason="test",
            now=T0,
        )
    assert refused.value.details == {"from": "settled", "to": "charging"}
    assert _states(a.session_id, b.session_id) == {a.session_id: "started", b.session_id: "settled"}
    assert SessionTransition.objects.count() == moves


def test_a_batch_moves_the_sessions_still_in_an_allowed_state_in_one_statement():
    pile = world.pile(connectors=3)
    op = pile.station.operator
    a, b, c = (_start(pile, world.member(op), connector=n) for n in (1, 2, 3))
    ChargingSession.objects.filter(pk=b.session_id).update(state="charging")
    ChargingSession.objects.filter(pk=c.session_id).update(state="stopped")  # raced the sweep
    with CaptureQueriesContext(connection) as statements:
        moved = sessions_mark_lost(
            session_ids=[a.session_id, b.session_id, c.session_id], reason="lost", now=T0
        )
    assert len(statements) == 2  # the move, then its session.stopped events in one INSERT
    assert moved == {a.session_id: "started", b.session_id: "charging"}
    assert _states(a.session_id, b.session_id, c.session_id) == dict.fromkeys(
        (a.session_id, b.session_id, c.session_id), "stopped"
    )
    assert list(
        SessionTransition.objects.filter(to_state="stopped")
        .order_by("session_id")
        .values_list("session_id", "from_state", "reason")
    ) == [(a.session_id, "started", "lost"), (b.session_id, "charging", "lost")]
    assert set(
        ChargingSession.objects.filter(pk__in=[a.session_id, b.session_id]).values_list(
            "stop_reason", flat=True
        )
    ) == {"Lost"}


def test_a_batch_records_each_session_s_own_reason():
    pile = world.pile(connectors=2)
    op = pile.station.operator
    a, b = _start(pile, world.member(op)), _start(pile, world.member(op), connector=2)
    ids = [a.session_id, b.session_id]
    sessions.sessions_transition(
        session_ids=ids, from_states=["started"], to_state="stopped", reason="stop", now=T0
    )
    moved = sessions.sessions_transition(
        session_ids=ids,
        from_states=["stopped"],
        to_state="fault",
        reason={a.session_id: "fault codes 1", b.session_id: "fault codes 9,10"},
        now=T0,
    )
    assert moved == {a.session_id: "stopped", b.session_id: "stopped"}
    assert list(
        SessionTransition.objects.filter(to_state="fault")
        .order_by("session_id")
        .values_list("session_id", "reason")
    ) == [(a.session_id, "fault codes 1"), (b.session_id, "fault codes 9,10")]


def test_a_session_opens_only_in_a_first_state():
    pile = world.pile()
    start = _start(pile, world.member(pile.station.operator))
    with pytest.raises(sessions.IllegalTransition):
        sessions.session_open(ChargingSession(), "settled")
    assert SessionTransition.objects.filter(session_id=start.session_id).count() == 1


def test_a_start_older_than_the_live_session_opens_stopped_through_the_table():
    pile = world.pile()
    op = pile.station.operator
    live = _start(pile, world.member(op))
    late = sessions.session_start(
        pile=pile,
        connector_number=1,
        credential=sessions.Credential(
            sessions.CredentialKind.MEMBER_TOKEN, world.member(op).token
        ),
        meter_start_wh=500,
        started_at=T0 - dt.timedelta(hours=1),
    )
    assert _states(live.session_id, late.session_id) == {
        live.session_id: "started",
        late.session_id: "stopped",
    }
    assert late.protocol_ref == str(late.session_id)
    assert list(
        SessionTransition.objects.filter(session_id=late.session_id).values_list(
            "from_state", "to_state"
        )
    ) == [("", "started"), ("started", "stopped")]


def test_a_session_cannot_open_with_a_move_the_table_forbids():
    pile = world.pile()
    start = _start(pile, world.member(pile.station.operator))
    with pytest.raises(sessions.IllegalTransition):
        sessions.session_open(ChargingSession(), "started", then=("settled", "no"))
    assert SessionTransition.objects.filter(session_id=start.session_id).count() == 1


def _statements(run) -> int:
    """Statements a command sends, savepoints aside (they only nest the test's transaction)."""
    with CaptureQueriesContext(connection) as ctx:
        run()
    return sum(1 for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"])


def test_the_gateway_commands_cost_no_more_statements_than_before_references():
    """Before protocol references: start 3, meter 2 (+3 when energy first flows), stop 3
    with samples. Now: start 2 (the member; the session with its first state and its
    session.started event), meter 1 (with the move to charging when energy first flows),
    stop 2 with samples (the move with its session.stopped event; the samples)."""
    pile = world.pile()
    member = world.member(pile.station.operator)
    starts = []
    assert _statements(lambda: starts.append(_start(pile, member))) == 2
    (start,) = starts
    assert start.protocol_ref == str(start.session_id)
    sample = sessions.Sample(at=T0 + dt.timedelta(minutes=5), energy_wh=Decimal(1000))
    meter = {"pile": pile, "connector_number": 1, "protocol_ref": start.protocol_ref}
    assert _statements(lambda: sessions.session_meter_record(**meter, samples=[sample])) == 1
    flowing = sessions.Sample(at=T0 + dt.timedelta(minutes=10), energy_wh=Decimal(2000))
    assert _statements(lambda: sessions.session_meter_record(**meter, samples=[flowing])) == 1
    last = sessions.Sample(at=T0 + dt.timedelta(minutes=15), energy_wh=Decimal(3000))
    stop = {"pile": pile, "protocol_ref": start.protocol_ref, "stopped_at": last.at}
    assert (
        _statements(lambda: sessions.session_stop(**stop, meter_stop_wh=3000, samples=[last])) == 2
    )
    assert list(
        OutboxEvent.objects.filter(key=str(start.session_id))
        .order_by("pk")
        .values_list("kind", "payload")
    ) == [
        ("session.started", {"session_id": start.session_id, "state": "started"}),
        ("session.stopped", {"session_id": start.session_id}),
    ]
    assert list(
        SessionTransition.objects.filter(session_id=start.session_id).values_list(
            "from_state", "to_state"
        )
    ) == [("", "started"), ("started", "charging"), ("charging", "stopped")]
