"""`bulk_insert` and `row_insert` write every column and give each object its own
primary key."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import Channel, ChargingSession, SessionState
from chargenet.bulk import bulk_insert, row_insert, row_insert_statement
from orgs.models import Operator
from tests.protocol import world


@pytest.mark.django_db
def test_bulk_insert_sets_each_objects_own_key():
    operators = [Operator(code=f"op-{n}", name=f"Operator {n}") for n in range(5)]
    bulk_insert(operators, unique_field="code")
    stored = dict(Operator.objects.values_list("code", "pk"))
    assert {op.code: op.pk for op in operators} == stored
    assert len(set(stored.values())) == 5
    assert [op._state.adding for op in operators] == [False] * 5


@pytest.mark.django_db
def test_row_insert_stores_the_new_key_as_text_in_the_same_row():
    """A session whose platform numbers its transactions has its id as its reference from
    the insert on, and the next insert draws the next key from the same sequence."""
    world_pile = world.pile()
    sessions = []
    for n in range(2):
        session = ChargingSession(
            order_no=f"2026112900000000000{n}",
            operator_id=world_pile.station.operator_id,
            station_id=world_pile.station_id,
            pile=world_pile,
            connector=world_pile.connectors.get(),
            id_tag="TAG",
            state=SessionState.STOPPED,
            started_at=dt.datetime(2026, 11, 29, n, tzinfo=dt.UTC),
            meter_start_wh=0,
        )
        row_insert(session, key_as_text="protocol_ref")
        sessions.append(session)
    stored = list(ChargingSession.objects.order_by("pk").values_list("pk", "protocol_ref"))
    assert stored == [(s.pk, str(s.pk)) for s in sessions]
    assert [s.protocol_ref for s in sessions] == [str(s.pk) for s in sessions]
    assert sessions[1].pk > sessions[0].pk
    plain = Operator(code="plain", name="Plain")
    row_insert(plain)
    assert Operator.objects.get(code="plain").pk == plain.pk


NAIVE = dt.datetime(2026, 11, 29, 8)  # noqa: DTZ001 - what a careless caller passes


@pytest.mark.django_db
def test_row_insert_sends_what_django_would_store_in_every_column():
    """The attributes read as they are (`_reader`) and those Django prepares give the
    values ``save()`` would store, whatever their type."""
    pile = world.pile()
    session = ChargingSession(
        order_no=20261129000000000001,  # an int in a CharField: Django makes it text
        operator_id=pile.station.operator_id,
        station_id=pile.station_id,
        pile=pile,
        connector=pile.connectors.get(),
        id_tag="TAG",
        channel=Channel.SCAN,  # a choices member, not a str
        state=SessionState.STARTED,
        started_at=NAIVE,  # Django makes it aware, in the current time zone
        stopped_at=dt.datetime(2026, 11, 29, 9, tzinfo=dt.UTC),
        meter_start_wh=12,
        pile_reported={"energy": "1.5"},
    )
    fields = [f for f in ChargingSession._meta.concrete_fields if not f.primary_key]
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        _sql, values = row_insert_statement(session)
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        django = [f.get_db_prep_save(f.pre_save(session, True), connection) for f in fields]
    stored = dict(zip([f.name for f in fields], values, strict=True))
    expected = dict(zip([f.name for f in fields], django, strict=True))
    # auto_now reads the clock on each call; a JSON value is wrapped in an adapter anew
    apart = ("created_at", "updated_at", "pile_reported")
    assert {k: v for k, v in stored.items() if k not in apart} == {
        k: v for k, v in expected.items() if k not in apart
    }
    assert stored["pile_reported"].obj == expected["pile_reported"].obj == {"energy": "1.5"}
    assert stored["order_no"] == "20261129000000000001"
    assert stored["started_at"] == timezone.make_aware(NAIVE)
    assert type(stored["channel"]) is type(expected["channel"])
