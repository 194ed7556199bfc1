"""Billed sessions for report tests: settled through billing and counted by the rollup
consumer, as in production."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from billing.models import ChargingSession, SessionState
from billing.services.settlement import bill_settle
from billing.services.tariffs import station_tariff_assign, tariff_plan_create
from billing.services.tariffs import tariff_version_create as version_create
from tests.billing.factories import DOMAIN_SCHEDULE, order_no, prices
from tests.events import events_delivered
from tests.world import world_rolled_back

SINCE = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)


def tariff(station) -> None:
    plan = tariff_plan_create(operator=station.operator, name=f"plan {station.code}")
    version_create(plan=plan, schedule=DOMAIN_SCHEDULE, prices=prices(), effective_from=SINCE)
    station_tariff_assign(station=station, plan=plan, effective_from=SINCE)


def billed(connector, *, start: dt.datetime, wh: int, minutes: int = 60, **session):
    """A session at ``connector`` from ``start``, ``wh`` delivered, settled into a bill."""
    station = connector.pile.station
    end = start + dt.timedelta(minutes=minutes)
    s = ChargingSession.objects.create(
        order_no=order_no(),
        operator=station.operator,
        station=station,
        pile=connector.pile,
        connector=connector,
        id_tag="TAG",
        state=SessionState.STOPPED,
        started_at=start,
        stopped_at=end,
        meter_start_wh=Decimal(0),
        meter_stop_wh=Decimal(wh),
        stop_received_at=end,
        **session,
    )
    ChargingSession.objects.filter(pk=s.pk).update(created_at=start)
    bill = bill_settle(session_id=s.pk)
    events_delivered()
    return bill


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """tests/world.py with bills on 2019-10-05 (Shanghai) at 10:00: "a1" at S1 (bound to X),
    "a2" at S2 attributed to X, "a3" at S2 not attributed, "b3" at S3 (operator B)."""
    from tests.faults.worked_example import at

    with world_rolled_back(django_db_blocker) as world:
        for name in ("s1", "s2", "s3"):
            tariff(world[name])
        start = at(2019, 10, 5, 10, 0)
        world.rows["a1"] = billed(
            world["c1"],
            start=start,
            wh=7000,
            channel="card",
            card=world["card_x"],
            department=world["dept_x"],
        )
        world.rows["a2"] = billed(
            world["c2"], start=start, wh=14000, channel="scan", sub_operator=world["sub_x"]
        )
        world.rows["a3"] = billed(
            world["c2"], start=start + dt.timedelta(hours=2), wh=3000, channel="scan"
        )
        world.rows["b3"] = billed(world["c3"], start=start, wh=5000, channel="partner")
        yield world
