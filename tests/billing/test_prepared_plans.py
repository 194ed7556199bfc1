"""The gateway's hot statements are planned once per connection, not per message.

A gateway prepares what it runs again and again (`protocol.db.statements_prepared`);
PostgreSQL keeps one generic plan for a prepared statement only when that plan is as good
as one made for the values, and plans it again on every execution otherwise. Measured
under `bench.gateway`, the re-planning of four statements cost the gateway's PostgreSQL
as much CPU as running them (`chargenet.sqltext`). PostgreSQL decides after five
executions: from the sixth on, each of these must run its generic plan.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor

from billing.models import ChargingSession, SessionState
from billing.services import sessions
from tests.protocol import world

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
RUNS = 8
HISTORY = 3000  # stopped sessions of the pile and member: an operator's months of them


@pytest.fixture
def prepared():
    """This test's connection as a gateway's: parameters bound on the server, every
    statement prepared from its first execution."""
    connection.ensure_connection()
    raw = connection.connection
    before = raw.cursor_factory, raw.prepare_threshold
    raw.cursor_factory, raw.prepare_threshold = ServerBindingCursor, 0
    yield
    with connection.cursor() as cursor:  # seen by psycopg, which forgets its statements
        cursor.execute("DEALLOCATE ALL")
    raw.cursor_factory, raw.prepare_threshold = before


def plans() -> dict[str, tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {statement: (generic, custom) for statement, generic, custom in cursor.fetchall()}


def history(pile, member) -> None:
    """A pile and a member with months of stopped sessions, and the table analysed: with
    the constants as parameters, the generic plans had to walk them all (the pile's by
    reference, the member's for an active one), and PostgreSQL kept planning afresh."""
    connector = pile.connectors.get()
    ChargingSession.objects.bulk_create(
        ChargingSession(
            order_no=f"20260101000000{i:06d}",
            operator_id=pile.station.operator_id,
            station_id=pile.station_id,
            pile=pile,
            connector=connector,
            protocol_ref=f"H{i}",
            id_tag=member.token,
            member=member,
            state=SessionState.STOPPED,
            started_at=T0 - dt.timedelta(hours=i + 1),
            meter_start_wh=0,
        )
        for i in range(HISTORY)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ChargingSession._meta.db_table}")


def test_a_charging_cycle_runs_generic_plans(prepared):
    station = world.station()
    member = world.member(station.operator)
    pile = world.pile(station)
    history(pile, member)
    for i in range(RUNS):
        at = T0 + dt.timedelta(hours=i)
        credential = sessions.Credential(sessions.CredentialKind.PRESENTED, member.token)
        assert sessions.session_authorize(pile=pile, credential=credential) == "accepted"
        start = sessions.session_start(
            pile=pile, connector_number=1, credential=credential, meter_start_wh=0, started_at=at
        )
        for minute in (1, 2):
            sample = sessions.Sample(
                at=at + dt.timedelta(minutes=minute), energy_wh=Decimal(minute * 1000)
            )
            sessions.session_meter_record(
                pile=pile, connector_number=1, protocol_ref=start.protocol_ref, samples=[sample]
            )
        stopped = sessions.session_stop(
            pile=pile, protocol_ref=start.protocol_ref, meter_stop_wh=3000, stopped_at=at
        )
        assert (stopped.session_id, stopped.settle_queued) == (start.session_id, True), i

    hot = {
        "member lookup": "SELECT msg.n, m.id, m.status",
        "meter values": 'SET "last_sample_at" = GREATEST',
        "stop": 'WHERE s."pile_id" = $1 AND s."protocol_ref" = $2',
    }
    found = {
        name: [counts for statement, counts in plans().items() if text in statement]
        for name, text in hot.items()
    }
    # (generic, custom): five custom plans while PostgreSQL weighs them, then generic.
    runs = {"member lookup": 2 * RUNS, "meter values": 2 * RUNS, "stop": RUNS}
    assert found == {name: [(count - 5, 5)] for name, count in runs.items()}
