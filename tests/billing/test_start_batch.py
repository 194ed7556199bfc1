"""`sessions_start` and `sessions_authorize`: a batch's StartTransactions and Authorizes
in a few statements give what each message alone gives (`session_start`,
`session_authorize`), row for row."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import ChargingSession, SessionTransition
from billing.services import sessions
from billing.services.sessions.identity import sessions_authorize
from billing.services.sessions.start import sessions_start
from chargenet.models import OutboxEvent
from orgs.models import MemberStatus
from stations.models import Reservation
from tests.protocol import world

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)


def _world() -> tuple[list[dict], list]:
    """Nine starts, one of each kind a batch meets, and the piles they come from."""
    station = world.station()
    operator = station.operator
    sub = world.sub_operator(operator)
    station.sub_operators.add(sub)
    piles = [world.pile(station) for _n in range(9)]
    member = lambda **kw: world.member(operator, **kw)  # noqa: E731
    a, b, blocked, d, e, f, g = (member() for _n in range(7))
    blocked.status = MemberStatus.BLOCKED
    blocked.save(update_fields=["status"])
    a.department = world.department(operator)
    a.save(update_fields=["department"])
    # pile 4: a session of e still active, its stop never came (superseded by d's start)
    world.session(piles[4], id_tag=e.token, member=e, started_at=T0 - dt.timedelta(hours=1))
    # pile 5: f's start already opened and stopped (a replay)
    world.session(piles[5], id_tag=f.token, member=f, started_at=T0, state="stopped")
    # pile 6: its connector reserved for g
    Reservation.objects.create(
        connector=piles[6].connectors.get(), member=g, id_tag=g.token,
        expires_at=T0 + dt.timedelta(days=3650),
    )  # fmt: skip

    def start(n, token, **more):
        return dict(pile=piles[n], connector_number=1, credential=world.presented(token),
                    meter_start_wh=1000 + n, started_at=T0, **more)  # fmt: skip

    calls = [
        start(0, a.token),  # accepted, with its department; the station's sub-operator
        start(1, b.token, protocol_ref="YKC0001"),  # the pile numbers its transaction
        start(2, "NOSUCHTAG"),  # refused: invalid
        start(3, a.token),  # a again, on another pile: already charging
        start(7, blocked.token),  # refused: blocked
        start(4, d.token),  # the connector still has e's session: superseded
        start(5, f.token),  # a replay of a stopped session
        start(6, d.token),  # the connector reserved for another member, d busy anyway
        start(8, g.token, reservation_id=999),  # names a reservation: decided alone
    ]
    return calls, piles


def _outcome(results, calls, piles) -> dict:
    index = {p.pk: n for n, p in enumerate(piles)}
    tag = {}  # a token by the first call presenting it (tokens differ from world to world)
    for n, call in enumerate(calls):
        tag.setdefault(call["credential"].value, n)
    ids = set(ChargingSession.objects.filter(pile__in=piles).values_list("pk", flat=True))
    rows = ChargingSession.objects.filter(pk__in=ids).order_by("pile_id", "started_at")
    answers = []
    for r in results:
        own = r.protocol_ref == str(r.session_id)
        answers.append((r.status, r.replayed, len(r.superseded_ids), own or r.protocol_ref))
    return {
        "answers": answers,
        "sessions": [
            (
                index[s.pile_id],
                s.channel,
                tag.get(s.id_tag, "other"),
                s.member is not None,
                s.department_id is not None,
                s.sub_operator_id is not None,
                s.state,
                s.refused_as,
                s.started_at,
                s.meter_start_wh,
                s.stop_reason,
                s.protocol_ref == str(s.pk) or s.protocol_ref,
                s.pile_reported,
            )
            for s in rows
        ],
        "moves": sorted(
            (index[t.session.pile_id], t.from_state, t.to_state, t.reason)
            for t in SessionTransition.objects.filter(session_id__in=ids).select_related("session")
        ),
        "events": sorted(
            (e.kind, e.payload.get("state", ""), e.key == str(e.payload["session_id"]))
            for e in OutboxEvent.objects.filter(kind__startswith="session.")
            if e.payload.get("session_id") in ids
        ),
    }


def test_a_batch_of_starts_opens_what_each_start_alone_opens():
    calls, piles = _world()
    alone = _outcome([sessions.session_start(**call) for call in calls], calls, piles)
    calls, piles = _world()
    with CaptureQueriesContext(connection) as ctx:
        results = sessions_start(calls)
    together = _outcome(results, calls, piles)
    assert together == alone
    # the batch's statement ran, for the starts the members' statement accepted; those
    # it turned away (busy connector, replay) followed alone
    opened = [q for q in ctx.captured_queries if "ON CONFLICT DO NOTHING RETURNING" in q["sql"]]
    assert len(opened) == 1
    accepted, concurrent = sessions.AuthDecision.ACCEPTED, sessions.AuthDecision.CONCURRENT
    assert alone["answers"] == [
        (accepted, False, 0, True),
        (accepted, False, 0, "YKC0001"),
        (sessions.AuthDecision.INVALID, False, 0, True),
        (concurrent, False, 0, True),
        (sessions.AuthDecision.BLOCKED, False, 0, True),
        (accepted, False, 1, True),
        (accepted, True, 0, True),
        (sessions.AuthDecision.RESERVED, False, 0, True),
        (accepted, False, 0, True),
    ]
    first = alone["sessions"][0]
    assert first == (
        0, "scan", 0, True, True, True, "started", "", T0,
        Decimal("1000.000"), "", True, {},
    )  # fmt: skip
    assert ("session.started", "started", True) in alone["events"]


def test_the_common_starts_share_two_statements():
    station = world.station()
    piles = [world.pile(station) for _n in range(5)]
    tokens = [world.member(station.operator).token for _p in piles]
    calls = [
        dict(pile=p, connector_number=1, credential=world.presented(token),
             meter_start_wh=Decimal("12.5"), started_at=T0)
        for p, token in zip(piles, tokens, strict=True)
    ]  # fmt: skip
    with CaptureQueriesContext(connection) as ctx:
        results = sessions_start(calls)
    statements = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 2
    opened = ChargingSession.objects.filter(pile__in=piles).order_by("pk")
    assert [s.pk for s in opened] == sorted(r.session_id for r in results)
    assert [(s.state, s.meter_start_wh, s.protocol_ref) for s in opened] == [
        ("started", Decimal("12.500"), str(s.pk)) for s in opened
    ]
    assert SessionTransition.objects.filter(session__in=opened, to_state="started").count() == 5
    assert (
        OutboxEvent.objects.filter(
            kind="session.started", key__in=[str(s.pk) for s in opened]
        ).count()
        == 5
    )


def test_a_batch_of_authorizes_answers_what_each_alone_answers():
    station = world.station()
    operator = station.operator
    pile = world.pile(station)
    busy, ok, blocked = (world.member(operator) for _n in range(3))
    blocked.status = MemberStatus.BLOCKED
    blocked.save(update_fields=["status"])
    world.session(world.pile(station), id_tag=busy.token, member=busy)
    card = world.card(operator, owner=ok)
    tokens = [ok.token, busy.token, blocked.token, "NOSUCHTAG", card.number, ok.token]
    calls = [dict(pile=pile, credential=world.presented(token)) for token in tokens]
    alone = [sessions.session_authorize(**call) for call in calls]
    with CaptureQueriesContext(connection) as ctx:
        together = sessions_authorize(calls)
    assert together == alone == [
        "accepted", "concurrent", "blocked", "invalid", "accepted", "accepted",
    ]  # fmt: skip
    # the members in one statement; the unknown tag and the card looked up alone
    members = [q for q in ctx.captured_queries if "jsonb_array_elements" in q["sql"]]
    assert len(members) == 1
