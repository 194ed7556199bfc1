"""Small builders for the fault-desk tests (rows written through the ORM, on real Postgres)."""

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from billing.models import ChargingSession, MeterSample
from orgs.models import Member, Operator
from stations.models import Connector, Pile, Station, StatusEvent

_seq = itertools.count(1)

T0 = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Asia/Shanghai


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def operator(db):
    return Operator.objects.create(code="zs", name="Zhongshan Charging")


@pytest.fixture
def station(operator):
    return Station.objects.create(
        operator=operator,
        code="ST1",
        name="Torch Park",
        address="1 Torch Rd",
        city="Zhongshan",
        latitude=Decimal("22.5"),
        longitude=Decimal("113.4"),
    )


@pytest.fixture
def make_connector(station):
    def make(*, firmware="2090100"):
        pile = Pile.objects.create(
            station=station,
            code=f"4420010002{next(_seq):010d}",
            current_type="DC",
            max_power_kw=Decimal(60),
            firmware_version=firmware,
            is_online=True,
        )
        return Connector.objects.create(pile=pile, number=1, standard="GB/T DC")

    return make


@pytest.fixture
def make_member(operator):
    def make(*, openid=None):
        n = next(_seq)
        return Member.objects.create(
            operator=operator, phone=f"138{n:08d}", wechat_openid=openid, token=f"T{n:09d}"
        )

    return make


@pytest.fixture
def make_session(operator, make_connector, make_member):
    """An open DC session created by the gateway at T0 with samples every 10 minutes."""

    def make(*, connector=None, member=True, created=T0, samples=((10, 4000), (30, 11000)), **kw):
        connector = connector or make_connector()
        n = next(_seq)
        session = ChargingSession.objects.create(
            order_no=f"20261101100000{n:06d}",
            operator=operator,
            station=connector.pile.station,
            pile=connector.pile,
            connector=connector,
            channel="scan",
            id_tag=f"TAG{n}",
            member=make_member(openid=f"openid-{n}") if member is True else member,
            state=kw.pop("state", "charging"),
            started_at=kw.pop("started_at", created),
            meter_start_wh=Decimal(1000),
            **kw,
        )
        ChargingSession.objects.filter(pk=session.pk).update(created_at=created)
        MeterSample.objects.bulk_create(
            MeterSample(session=session, at=at(m), energy_wh=Decimal(wh)) for m, wh in samples
        )
        if samples:
            last = at(max(m for m, _ in samples))
            ChargingSession.objects.filter(pk=session.pk).update(last_sample_at=last)
        session.refresh_from_db()
        return session

    return make


@pytest.fixture
def status(db):
    def add(connector, minutes, state, *, pile_minutes=None):
        return StatusEvent.objects.create(
            pile=connector.pile,
            connector_number=connector.number,
            status=state,
            received_at=at(minutes),
            pile_time=at(minutes if pile_minutes is None else pile_minutes),
        )

    return add
