"""Deploying protocol references loses no session a pile still holds a transactionId for:
every existing session's reference is its id, and stored refusals become decisions."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from billing.models import ChargingSession, OrphanStop
from tests.protocol import world

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("billing", "0008_session_refused")]
T0 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_sessions_and_orphan_stops_keep_their_transaction_ids():
    pile = world.pile(connectors=2)
    old = _migrate(BEFORE)
    Session = old.get_model("billing", "ChargingSession")
    Orphan = old.get_model("billing", "OrphanStop")
    common = {
        "operator_id": pile.station.operator_id,
        "station_id": pile.station_id,
        "pile_id": pile.pk,
        "meter_start_wh": 0,
    }
    connectors = list(pile.connectors.order_by("number").values_list("pk", flat=True))
    accepted = Session.objects.create(
        order_no="20261127100000000001", connector_id=connectors[0], id_tag="A",
        state="stopped", started_at=T0, **common,
    )  # fmt: skip
    refused = Session.objects.create(
        order_no="20261127100000000002", connector_id=connectors[1], id_tag="B",
        state="refused", refused_as="ConcurrentTx", started_at=T0, **common,
    )  # fmt: skip
    Orphan.objects.create(
        pile_id=pile.pk, transaction_id=987654, meter_stop_wh=5000, stopped_at=T0, received_at=T0
    )

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert dict(ChargingSession.objects.values_list("pk", "protocol_ref")) == {
        accepted.pk: str(accepted.pk),
        refused.pk: str(refused.pk),
    }
    assert ChargingSession.objects.get(pk=refused.pk).refused_as == "concurrent"
    assert list(OrphanStop.objects.values_list("pile_id", "protocol_ref")) == [(pile.pk, "987654")]
