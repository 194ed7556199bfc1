"""The same bills without a protocol: each charging scenario is driven once through the
core's commands alone (no OCPP, no gateway) and once through the real gateway over OCPP
1.6 with the same inputs, and both make the same bills.

A scenario is what a pile reports, in the core's terms: starts, meter readings and stops,
each stamped with the pile's time (seconds after the scenario's start) and a register in
Wh, delivered in the order listed (which need not be the order of their times)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
from ocpp.v16 import call

from billing.models import Bill, ChargingSession
from billing.services import sessions
from billing.services.wallet import wallet_recharge
from chargenet.celery import app as celery_app
from protocol.simulator import connected, iso
from stations.models import PileFault
from tests.billing.factories import tariffed_station
from tests.protocol import world
from tests.protocol.conftest import wait_for

pytestmark = [
    pytest.mark.gateway,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("gateway_quiet_after"),
]


@dataclass(frozen=True)
class Start:
    tx: str  # the scenario's name for the transaction
    at: int
    wh: int


@dataclass(frozen=True)
class Meter:
    tx: str
    at: int
    wh: int


@dataclass(frozen=True)
class Stop:
    tx: str
    at: int
    wh: int


NORMAL = [Start("a", 0, 100_000), Meter("a", 10, 102_000), Meter("a", 20, 104_000),
          Meter("a", 30, 106_000), Stop("a", 30, 106_000)]  # fmt: skip
SCENARIOS = {
    "normal": (NORMAL, 0),
    "duplicate stop": ([*NORMAL, Stop("a", 30, 106_000)], 0),
    # Queued while the pile was offline two hours ago, sent when it came back: the stop
    # first, then the readings, newest first.
    "offline-queued": (
        [
            Start("a", 0, 100_000),
            Stop("a", 1800, 112_000),
            Meter("a", 1200, 108_000),
            Meter("a", 600, 104_000),
        ],
        -7200,
    ),
    # The meter board restarted mid-session: the register drops to 100 Wh.
    "register reset": (
        [
            Start("a", 0, 100_000),
            Meter("a", 10, 104_000),
            Meter("a", 20, 100),
            Meter("a", 30, 600),
            Stop("a", 40, 600),
        ],
        0,
    ),
    # The pile rebooted and lost its transaction: a new start on the connector, no stop.
    "reboot without stop": (
        [
            Start("a", 0, 100_000),
            Meter("a", 10, 103_000),
            Meter("a", 20, 106_000),
            Start("b", 40, 106_000),
            Meter("b", 50, 108_000),
            Meter("b", 60, 110_000),
            Stop("b", 60, 110_000),
        ],
        0,
    ),
}


@pytest.fixture(scope="module")
def gateway(settling_gateway):
    return settling_gateway


def _pile_with_driver(station, t0: dt.datetime, offline: bool):
    pile = world.pile(station)  # unrated: its seconds-long charges are not a power anomaly
    member = world.member(station.operator)
    wallet_recharge(member=member, amount=Decimal("100.00"), reference=f"WX{member.pk}")
    if offline:  # what the sweep recorded while the pile was away
        PileFault.objects.create(
            pile=pile,
            kind=PileFault.Kind.OFFLINE,
            started_at=t0 + dt.timedelta(seconds=60),
            ended_at=t0 + dt.timedelta(seconds=5400),
        )
    return pile, member


def _through_the_core(pile, member, steps, t0):
    refs: dict[str, str] = {}
    credential = sessions.Credential(sessions.CredentialKind.MEMBER_TOKEN, member.token)
    for step in steps:
        at = t0 + dt.timedelta(seconds=step.at)
        if isinstance(step, Start):
            started = sessions.session_start(
                pile=pile, connector_number=1, credential=credential,
                meter_start_wh=step.wh, started_at=at,
            )  # fmt: skip
            refs[step.tx] = started.protocol_ref
        elif isinstance(step, Meter):
            sessions.session_meter_record(
                pile=pile, connector_number=1, protocol_ref=refs[step.tx],
                samples=[sessions.Sample(at=at, energy_wh=Decimal(step.wh))],
            )  # fmt: skip
        else:
            sessions.session_stop(
                pile=pile, protocol_ref=refs[step.tx], meter_stop_wh=step.wh, stopped_at=at,
                reason="Local",
            )  # fmt: skip


async def _over_ocpp(url, pile, member, steps, t0):
    ids: dict[str, int] = {}
    async with connected(url, pile.code, pile.password) as sim:
        for step in steps:
            at = iso(t0 + dt.timedelta(seconds=step.at))
            if isinstance(step, Start):
                started = await sim.call(
                    call.StartTransaction(
                        connector_id=1, id_tag=member.token, meter_start=step.wh, timestamp=at
                    )
                )
                ids[step.tx] = started.transaction_id
            elif isinstance(step, Meter):
                register = {"value": str(step.wh), "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh"}  # fmt: skip
                await sim.call(
                    call.MeterValues(
                        connector_id=1,
                        transaction_id=ids[step.tx],
                        meter_value=[{"timestamp": at, "sampledValue": [register]}],
                    )
                )
            else:
                await sim.call(
                    call.StopTransaction(
                        meter_stop=step.wh, timestamp=at, transaction_id=ids[step.tx],
                        reason="Local",
                    )
                )  # fmt: skip


def _bills(pile) -> list[dict]:
    """The pile's bills in the order of their sessions, without what differs by nature
    (ids, order numbers, wall-clock times)."""
    bills = Bill.objects.filter(session__pile=pile).order_by("session__started_at")
    return [
        {
            "energy_wh": bill.energy_wh,
            "electricity_fee": bill.electricity_fee,
            "service_fee": bill.service_fee,
            "total": bill.total,
            "fault_codes": sorted(bill.fault_codes),
            "payment_state": bill.payment_state,
            "lines": sorted(
                bill.lines.values_list(
                    "tariff_version_id", "period", "energy_wh", "electricity_fee", "service_fee"
                )
            ),
        }
        for bill in bills
    ]


# What each scenario must come to (energy Wh, fault codes, payment state per bill).
EXPECTED = {
    "normal": [(Decimal(6000), [], "paid")],
    "duplicate stop": [(Decimal(6000), [], "paid")],
    "offline-queued": [(Decimal(12000), [], "paid")],
    "register reset": [(Decimal(0), [11], "fault")],
    "reboot without stop": [(Decimal(6000), [1], "fault"), (Decimal(4000), [], "paid")],
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_core_and_ocpp_make_the_same_bills(gateway, name):
    steps, base = SCENARIOS[name]
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=base - 60)
    station = tariffed_station(since=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    offline = base < 0
    core_pile, core_member = _pile_with_driver(station, t0, offline)
    wire_pile, wire_member = _pile_with_driver(station, t0, offline)
    # As the gateway process settles (Celery eager): right after the commit.
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        _through_the_core(core_pile, core_member, steps, t0)
    finally:
        celery_app.conf.task_always_eager = eager
    asyncio.run(_over_ocpp(gateway.url, wire_pile, wire_member, steps, t0))

    core = _bills(core_pile)
    sessions_made = ChargingSession.objects.filter(pile=wire_pile).count()
    assert sessions_made == len(core)
    wait_for(lambda: Bill.objects.filter(session__pile=wire_pile).count() == len(core))
    assert _bills(wire_pile) == core
    assert [(b["energy_wh"], b["fault_codes"], b["payment_state"]) for b in core] == EXPECTED[name]
