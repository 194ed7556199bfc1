"""`sessions_meter_record`: a batch's MeterValues in one statement give what each message
alone gives (`session_meter_record`), row for row."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import ChargingSession, MeterSample, SessionTransition
from billing.services import sessions
from billing.services.sessions.meter import sessions_meter_record
from tests.protocol import world

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def _charges(count: int, *, refused: int | None = None) -> list:
    """``count`` piles, each with a session started at 1,000 Wh (the ``refused``-th one
    refused: its credential is unknown)."""
    starts = []
    for n in range(count):
        pile = world.pile()
        token = "NOSUCHTAG" if n == refused else world.member(pile.station.operator).token
        start = sessions.session_start(
            pile=pile,
            connector_number=1,
            credential=sessions.Credential(sessions.CredentialKind.PRESENTED, token),
            meter_start_wh=1000,
            started_at=T0,
        )
        starts.append((pile, start))
    return starts


def _sample(minute: int, wh, **more) -> sessions.Sample:
    return sessions.Sample(at=T0 + dt.timedelta(minutes=minute), energy_wh=Decimal(wh), **more)


def _messages(starts) -> list[dict]:
    (a, sa), (b, sb), (c, sc), (d, _sd) = starts
    return [
        # energy: started → charging
        dict(pile=a, connector_number=1, protocol_ref=sa.protocol_ref,
             samples=[_sample(1, "1500.5", power_w=Decimal("7.2"), soc=40,
                              context="Sample.Periodic")]),
        # no energy yet: stays started; two samples, one moment given twice (the last wins)
        dict(pile=b, connector_number=1, protocol_ref=sb.protocol_ref,
             samples=[_sample(1, 1000), _sample(2, 1000, voltage_v=Decimal(230)),
                      _sample(2, 1000, voltage_v=Decimal(231))]),
        # the refused session the pile charges anyway: live, through sessions_transition
        dict(pile=c, connector_number=1, protocol_ref=sc.protocol_ref, samples=[_sample(1, 2000)]),
        # a reference this pile never had: nothing stored
        dict(pile=d, connector_number=1, protocol_ref="999999", samples=[_sample(1, 3000)]),
        # the second message of the first session, in the same batch: after the first
        dict(pile=a, connector_number=1, protocol_ref=sa.protocol_ref,
             samples=[_sample(1, 1600), _sample(3, 2500)]),
        # clock-aligned values, no reference: the session active on the connector
        dict(pile=d, connector_number=1, protocol_ref=None, samples=[_sample(4, 1000)]),
        # the pile's own meter (connector 0): no session
        dict(pile=b, connector_number=0, protocol_ref=None, samples=[_sample(5, 1)]),
    ]  # fmt: skip


def _stored(starts) -> dict:
    ids = [start.session_id for _pile, start in starts]
    return {
        "sessions": list(
            ChargingSession.objects.filter(pk__in=ids)
            .order_by("pk")
            .values_list("state", "last_sample_at")
        ),
        "moves": list(
            SessionTransition.objects.filter(session_id__in=ids)
            .order_by("session_id", "id")
            .values_list("from_state", "to_state", "reason")
        ),
        "samples": list(
            MeterSample.objects.filter(session_id__in=ids)
            .order_by("session_id", "at")
            .values_list("at", "energy_wh", "power_w", "voltage_v", "soc", "context")
        ),
    }


def _result(result, starts) -> tuple:
    index = {start.session_id: n for n, (_pile, start) in enumerate(starts)}
    return index.get(result.session_id), bool(result.order_no), result.stored


def test_a_batch_stores_what_each_message_alone_stores():
    alone_starts = _charges(4, refused=2)
    alone = [
        _result(sessions.session_meter_record(**message), alone_starts)
        for message in _messages(alone_starts)
    ]
    batch_starts = _charges(4, refused=2)
    together = [
        _result(result, batch_starts) for result in sessions_meter_record(_messages(batch_starts))
    ]
    assert together == alone == [
        (0, True, 1), (1, True, 2), (2, True, 1), (None, False, 0),
        (0, True, 1), (3, True, 1), (None, False, 0),
    ]  # fmt: skip
    expected = _stored(alone_starts)
    assert _stored(batch_starts) == expected
    assert [state for state, _at in expected["sessions"]] == [
        "charging", "started", "charging", "started",
    ]  # fmt: skip
    assert expected["samples"][0] == (
        T0 + dt.timedelta(minutes=1), Decimal("1500.500"), Decimal("7.200"), None, 40,
        "Sample.Periodic",
    )  # fmt: skip
    # the moment given twice in one message: the last given
    assert (T0 + dt.timedelta(minutes=2), Decimal("1000.000"), None, Decimal("231.000"), None,
            "") in expected["samples"]  # fmt: skip


def test_the_messages_that_name_their_session_share_one_statement():
    starts = _charges(4)
    messages = [
        dict(pile=pile, connector_number=1, protocol_ref=start.protocol_ref,
             samples=[_sample(1, 1500)])
        for pile, start in starts
    ]  # fmt: skip
    with CaptureQueriesContext(connection) as ctx:
        results = sessions_meter_record(messages)
    assert [r.session_id for r in results] == [start.session_id for _pile, start in starts]
    statements = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1
    assert all(s.state == "charging" for s in ChargingSession.objects.all())
