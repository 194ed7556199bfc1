"""Factories for billing tests (kept apart from tests/factories.py, owned by orgs)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import factory

from billing.models import ChargingSession, MeterSample, SessionState
from billing.services.tariffs import (
    PeriodPrices,
    schedule_from_ranges,
    station_tariff_assign,
    tariff_plan_create,
    tariff_version_create,
)
from orgs.models import Member, Operator, Staff, SubOperator
from stations.models import Connector, Pile, Station

_order = itertools.count(1)

# DOMAIN.md: peak 14–17 & 19–22, flat 8–14 & 17–19 & 22–24, valley 0–8.
DOMAIN_SCHEDULE = schedule_from_ranges(
    [
        ("00:00", "08:00", 3),
        ("08:00", "14:00", 2),
        ("14:00", "17:00", 1),
        ("17:00", "19:00", 2),
        ("19:00", "22:00", 1),
        ("22:00", "24:00", 2),
    ]
)


def prices(ac=None, dc=None) -> dict:
    """AC/DC prices; default AC is DOMAIN.md's (flat 0.64+0.51, valley 0.33+0.55)."""
    ac = ac or [("1.10", "0.60"), ("0.98", "0.60"), ("0.64", "0.51"), ("0.33", "0.55")]
    dc = dc or [("1.20", "0.80"), ("1.05", "0.80"), ("0.70", "0.70"), ("0.38", "0.60")]
    return {
        "AC": [PeriodPrices(Decimal(e), Decimal(s)) for e, s in ac],
        "DC": [PeriodPrices(Decimal(e), Decimal(s)) for e, s in dc],
    }


class OperatorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Operator

    code = factory.Sequence(lambda n: f"op{n}")
    name = factory.Sequence(lambda n: f"Operator {n}")


class SubOperatorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SubOperator

    operator = factory.SubFactory(OperatorFactory)
    code = factory.Sequence(lambda n: f"sub{n}")
    name = factory.Sequence(lambda n: f"Sub-operator {n}")


class StationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Station

    operator = factory.SubFactory(OperatorFactory)
    code = factory.Sequence(lambda n: f"ST{n}")
    name = factory.Sequence(lambda n: f"Station {n}")
    address = "1 Xingzhong Road"
    city = "Zhongshan"
    latitude = Decimal("22.5")
    longitude = Decimal("113.4")


class PileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pile

    station = factory.SubFactory(StationFactory)
    code = factory.Sequence(lambda n: f"4420010002{n:010d}")
    current_type = "AC"


class ConnectorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connector

    pile = factory.SubFactory(PileFactory)
    number = 1
    standard = Connector.Standard.GBT_AC


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member

    operator = factory.SubFactory(OperatorFactory)
    phone = factory.Sequence(lambda n: f"139{n:08d}")
    nickname = factory.Sequence(lambda n: f"driver{n}")
    token = factory.Sequence(lambda n: f"TOKEN{n:08d}")


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Staff

    username = factory.Sequence(lambda n: f"staff{n}")
    operator = factory.SubFactory(OperatorFactory)
    is_staff = True


def order_no() -> str:
    return f"20190906232613{next(_order):06d}"


def tariffed_station(*, zone="Asia/Shanghai", since=None, schedule=DOMAIN_SCHEDULE, **kw):
    """A station with a plan (one version since ``since``) assigned since ``since``."""
    since = since or dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    station = StationFactory(time_zone=zone, **kw)
    plan = tariff_plan_create(operator=station.operator, name=f"plan {station.code}")
    tariff_version_create(plan=plan, schedule=schedule, prices=prices(), effective_from=since)
    station_tariff_assign(station=station, plan=plan, effective_from=since)
    return station


def stopped_session(
    *,
    station,
    samples: list[tuple[dt.datetime, str]],
    member=None,
    current_type="AC",
    state=SessionState.STOPPED,
    **kw,
) -> ChargingSession:
    """A stopped session whose start/stop registers are the first/last sample and whose
    sampled registers are the ones between."""
    pile = PileFactory(station=station, current_type=current_type)
    connector = ConnectorFactory(pile=pile)
    (t0, e0), (t1, e1) = samples[0], samples[-1]
    session = ChargingSession.objects.create(
        order_no=order_no(),
        operator=station.operator,
        station=station,
        pile=pile,
        connector=connector,
        id_tag="TAG",
        member=member,
        state=state,
        started_at=t0,
        stopped_at=t1,
        meter_start_wh=Decimal(e0),
        meter_stop_wh=Decimal(e1),
        stop_received_at=max(t0, t1),
        **kw,
    )
    # The gateway received the start when the pile sent it (the fault rules compare the
    # pile's clock with the platform's: a 2019 start received today is a time anomaly).
    ChargingSession.objects.filter(pk=session.pk).update(created_at=t0)
    session.created_at = t0
    MeterSample.objects.bulk_create(
        MeterSample(session=session, at=t, energy_wh=Decimal(e)) for t, e in samples[1:-1]
    )
    return session
