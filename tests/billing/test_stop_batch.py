"""`sessions_stop`: a batch's StopTransactions in one statement give what each message
alone gives (`session_stop`), row for row."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import ChargingSession, MeterSample, OrphanStop, SessionTransition
from billing.services import sessions
from billing.services.sessions.stop import sessions_stop
from chargenet.models import OutboxEvent
from tests.protocol import world

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.UTC)


def _world() -> tuple[list[dict], list]:
    """Nine stops, one of each kind a batch meets, and the piles they come from."""
    station = world.station()
    operator = station.operator
    piles = [world.pile(station) for _n in range(8)]
    driver = world.member(operator)
    card = world.card(operator, owner=world.member(operator))

    def session(n, **kw):
        return world.session(piles[n], started_at=T0, **kw)

    s0 = session(0)
    s1 = session(1, member=driver, id_tag=driver.token, state="charging")
    s2 = session(2)
    s4 = session(4, state="stopped", meter_stop_wh=500, stopped_at=T0)
    s5 = session(5, state="refused", refused_as="invalid")
    s6 = session(6, state="charging")
    s7 = session(7)

    def stop(n, ref, **more):
        at = T0 + dt.timedelta(minutes=30 + n)
        return dict(pile=piles[n], protocol_ref=ref, meter_stop_wh=Decimal(7000 + n),
                    stopped_at=at, **more)  # fmt: skip

    sample = sessions.Sample(at=T0 + dt.timedelta(minutes=20), energy_wh=Decimal("6500.5"))
    calls = [
        stop(0, s0.protocol_ref, reason="EVDisconnected"),
        stop(1, s1.protocol_ref, credential=world.presented(driver.token)),  # its own driver
        stop(2, s2.protocol_ref, credential=world.presented(card.number)),  # a card: identified
        stop(3, "424242", credential=world.presented("NOSUCHTAG")),  # unknown: an orphan
        stop(4, s4.protocol_ref),  # stopped already: a replay
        stop(5, s5.protocol_ref),  # refused, and energy on the register
        stop(6, s6.protocol_ref, samples=[sample, sample]),
        stop(0, s0.protocol_ref, reason="EVDisconnected"),  # the first, again
        stop(7, s7.protocol_ref, pile_reported={"duration_s": 1800}),
    ]
    return calls, piles


def _outcome(results, piles) -> dict:
    index = {p.pk: n for n, p in enumerate(piles)}
    rows = ChargingSession.objects.filter(pile__in=piles).order_by("pile_id")
    ids = [s.pk for s in rows]
    number = {s.pk: index[s.pile_id] for s in rows}
    return {
        "answers": [
            (
                number.get(r.session_id),
                bool(r.order_no),
                r.orphan_id is not None,
                r.replayed,
                r.settle_queued,
                r.status,
                r.samples_stored,
            )
            for r in results
        ],
        "sessions": [
            (
                index[s.pile_id],
                s.state,
                s.meter_stop_wh,
                s.stopped_at,
                s.stop_reason,
                s.stop_received_at is not None,
                s.pile_reported,
            )
            for s in rows
        ],
        "moves": sorted(
            (number[t.session_id], t.from_state, t.to_state, t.reason)
            for t in SessionTransition.objects.filter(session_id__in=ids)
        ),
        "samples": list(
            MeterSample.objects.filter(session_id__in=ids).values_list("at", "energy_wh")
        ),
        "stopped events": sorted(
            number[int(e.key)]
            for e in OutboxEvent.objects.filter(kind="session.stopped", key__in=map(str, ids))
        ),
        "orphans": list(
            OrphanStop.objects.filter(pile__in=piles).values_list("protocol_ref", "id_tag")
        ),
    }


def test_a_batch_of_stops_closes_what_each_stop_alone_closes():
    calls, piles = _world()
    alone = _outcome([sessions.session_stop(**call) for call in calls], piles)
    calls, piles = _world()
    with CaptureQueriesContext(connection) as ctx:
        results = sessions_stop(calls)
    together = _outcome(results, piles)
    assert together == alone
    accepted = sessions.AuthDecision.ACCEPTED
    assert alone["answers"] == [  # (pile, order number, orphan, replayed, settle, status, samples)
        (0, True, False, False, True, None, 0),
        (1, True, False, False, True, accepted, 0),
        (2, True, False, False, True, accepted, 0),
        (None, False, True, False, False, None, 0),
        (4, True, False, True, False, None, 0),
        (5, True, False, False, True, None, 0),
        (6, True, False, False, True, None, 1),
        (0, True, False, True, False, None, 0),
        (7, True, False, False, True, None, 0),
    ]
    assert alone["sessions"][0] == (
        0, "stopped", Decimal("7000.000"), T0 + dt.timedelta(minutes=30), "EVDisconnected",
        True, {},
    )  # fmt: skip
    assert alone["stopped events"] == [0, 1, 2, 5, 6, 7]
    assert alone["samples"] == [(T0 + dt.timedelta(minutes=20), Decimal("6500.500"))]
    # the stops of active sessions moved in one statement, the others followed alone
    moved = [q for q in ctx.captured_queries if "jsonb_array_elements" in q["sql"]]
    assert len(moved) == 3  # the sessions, the members presented (one is a card), samples


def test_the_common_stops_share_one_statement():
    station = world.station()
    piles = [world.pile(station) for _n in range(5)]
    opened = [world.session(p, started_at=T0) for p in piles]
    calls = [
        dict(pile=p, protocol_ref=s.protocol_ref, meter_stop_wh=100 * n, stopped_at=T0)
        for n, (p, s) in enumerate(zip(piles, opened, strict=True))
    ]
    with CaptureQueriesContext(connection) as ctx:
        results = sessions_stop(calls)
    statements = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1
    assert [r.session_id for r in results] == [s.pk for s in opened]
    stored = ChargingSession.objects.filter(pk__in=[s.pk for s in opened]).order_by("pk")
    assert [(s.state, s.meter_stop_wh, s.stop_reason) for s in stored] == [
        ("stopped", Decimal(100 * n), "Local") for n in range(5)
    ]


def test_the_samples_of_a_batch_of_stops_share_one_statement():
    station = world.station()
    piles = [world.pile(station) for _n in range(4)]
    opened = [world.session(p, started_at=T0) for p in piles]
    at = [T0 + dt.timedelta(minutes=m) for m in range(3)]
    MeterSample.objects.create(session=opened[2], at=at[1], energy_wh=Decimal("111"))
    carried = [
        # two moments, the first given twice (the last one given counts)
        [sessions.Sample(at=at[0], energy_wh=Decimal("10")),
         sessions.Sample(at=at[0], energy_wh=Decimal("12.5")),
         sessions.Sample(at=at[1], energy_wh=Decimal("20"), power_w=Decimal("7000"), soc=40)],
        [],  # none
        # one moment the session has already: kept as it was
        [sessions.Sample(at=at[1], energy_wh=Decimal("999")),
         sessions.Sample(at=at[2], energy_wh=Decimal("130"), context="Transaction.End")],
        [sessions.Sample(at=at[2], voltage_v=Decimal("380.5"), current_a=Decimal("16"))],
    ]  # fmt: skip
    calls = [
        dict(pile=p, protocol_ref=s.protocol_ref, meter_stop_wh=500, stopped_at=T0, samples=c)
        for p, s, c in zip(piles, opened, carried, strict=True)
    ]
    with CaptureQueriesContext(connection) as ctx:
        results = sessions_stop(calls)
    inserts = [q for q in ctx.captured_queries if q["sql"].startswith("INSERT INTO")]
    assert len(inserts) == 1 and "billing_metersample" in inserts[0]["sql"]
    assert [r.samples_stored for r in results] == [2, 0, 1, 1]
    number = {s.pk: n for n, s in enumerate(opened)}
    fields = ("session_id", "at", "energy_wh", "power_w", "current_a", "voltage_v", "soc",
              "context")  # fmt: skip
    stored = sorted(
        (number[row[0]], *row[1:])
        for row in MeterSample.objects.filter(session__in=opened).values_list(*fields)
    )
    assert stored == [
        (0, at[0], Decimal("12.500"), None, None, None, None, ""),
        (0, at[1], Decimal("20.000"), Decimal("7000.0"), None, None, 40, ""),
        (2, at[1], Decimal("111.000"), None, None, None, None, ""),
        (2, at[2], Decimal("130.000"), None, None, None, None, "Transaction.End"),
        (3, at[2], None, None, Decimal("16.00"), Decimal("380.50"), None, ""),
    ]


def test_a_replayed_stop_counts_only_the_samples_it_added():
    station = world.station()
    pile = world.pile(station)
    opened = world.session(pile, started_at=T0)
    at = [T0 + dt.timedelta(minutes=m) for m in range(2)]
    first = [sessions.Sample(at=at[0], energy_wh=Decimal("10"))]
    stop = dict(pile=pile, protocol_ref=opened.protocol_ref, meter_stop_wh=500, stopped_at=T0)
    assert sessions.session_stop(**stop, samples=first).samples_stored == 1
    again = [*first, sessions.Sample(at=at[1], energy_wh=Decimal("20"))]
    replayed = sessions.session_stop(**stop, samples=again)
    assert (replayed.replayed, replayed.samples_stored) == (True, 1)
    assert sessions.session_stop(**stop, samples=again).samples_stored == 0
    assert MeterSample.objects.filter(session=opened).count() == 2
