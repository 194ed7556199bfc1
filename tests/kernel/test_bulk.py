"""`bulk_insert` and `row_insert` write every column and give each object its own
primary key."""

import datetime as dt

import pytest

from billing.models import ChargingSession, SessionState
from chargenet.bulk import bulk_insert, row_insert
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
