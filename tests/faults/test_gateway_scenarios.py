"""Each fault code produced through the real gateway: a `manage.py rungateway` process on a
free port, a simulated pile over a real WebSocket, settlement run by the gateway's own
post-commit task (Celery eager in that process), the sweep run as the beat would."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from ocpp.v16 import call

from billing.models import Bill, ChargingSession, LedgerEntry, PaymentState, Wallet
from billing.services.repair import BillCorrections
from billing.services.settlement import bill_settle
from billing.services.tariffs import schedule_from_ranges
from billing.services.wallet import wallet_recharge
from faults.models import FaultCase, Notification
from faults.services.sweep import lost_bills_sweep
from orgs.models import MemberStatus
from protocol.intents import session_stop_remote
from protocol.simulator import (
    connected,
    iso,
    scenario_clock_skew,
    scenario_duplicate_stop,
    scenario_full_then_app_stop,
    scenario_normal,
)
from stations.models import Connector, Pile, StatusEvent
from stations.services.live import piles_sweep_offline
from tests.billing.factories import StaffFactory, tariffed_station
from tests.events import events_delivered
from tests.faults.races import repair_at_once
from tests.protocol import world
from tests.protocol.conftest import wait_for

pytestmark = [
    pytest.mark.gateway,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("gateway_quiet_after"),
]


@pytest.fixture(scope="module")
def gateway(settling_gateway):
    return settling_gateway


@pytest.fixture
def network():
    station = tariffed_station(since=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    # No power rating: the simulated pile delivers kWh in milliseconds, which a rated pile
    # cannot (code 13); `rated_7kw` is a pile with a rating.
    pile = world.pile(station)
    member = world.member(station.operator, wechat_openid=f"o-{uuid.uuid4().hex[:8]}")
    wallet_recharge(member=member, amount=Decimal("100.00"), reference=f"WX{member.pk}")
    return station, pile, member


def run(coro):
    return asyncio.run(coro)


def settled(pile) -> Bill:
    return wait_for(lambda: Bill.objects.filter(session__pile=pile).first(), timeout=15)


def session_of(pile) -> ChargingSession:
    return wait_for(lambda: ChargingSession.objects.filter(pile=pile).first())


def case_codes(session) -> list[int]:
    case = FaultCase.objects.filter(session=session).first()
    return case.codes if case else []


def test_normal_session_is_charged_and_the_driver_told_once(gateway, network):
    _station, pile, member = network
    run(scenario_normal(gateway.url, pile.code, pile.password, member.token))
    bill = settled(pile)
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.PAID, [])
    assert bill.energy_wh == Decimal("4500.000")
    notification = wait_for(lambda: Notification.objects.filter(session=bill.session).first())
    assert (notification.kind, notification.payload["energy_kwh"]) == ("charge_finished", "4.50")
    assert notification.payload["amount"] == str(bill.total)


def test_full_still_plugged_stop_from_phone_then_unplug_is_no_fault(gateway, network):
    _station, pile, member = network

    def phone_stop():
        try:
            session = session_of(pile)
            wait_for(lambda: StatusEvent.objects.filter(pile=pile, status="SuspendedEV").exists())
            # The driver's phone asks the core to stop; the pile's adapter translates.
            answer = session_stop_remote(session=session, timeout=10)
            assert answer.outcome == "accepted"
        finally:
            connection.close()

    async def both():
        stopper = asyncio.create_task(asyncio.to_thread(phone_stop))
        await scenario_full_then_app_stop(
            gateway.url, pile.code, pile.password, member.token, wait_stop=15
        )
        await stopper

    run(both())
    bill = settled(pile)
    session = bill.session
    assert session.stop_reason == "Remote"
    assert (bill.payment_state, bill.fault_codes, case_codes(session)) == (
        PaymentState.PAID,
        [],
        [],
    )
    assert Notification.objects.get(session=session).kind == "charge_finished"


def test_duplicate_stop_settles_and_charges_once(gateway, network):
    _station, pile, member = network
    run(scenario_duplicate_stop(gateway.url, pile.code, pile.password, member.token))
    bill = settled(pile)
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.PAID, [])
    assert LedgerEntry.objects.filter(bill=bill, kind="charge").count() == 1
    assert Notification.objects.filter(session=bill.session).count() == 1


def test_clock_skew_is_a_time_anomaly(gateway, network):
    _station, pile, member = network
    run(scenario_clock_skew(gateway.url, pile.code, pile.password, member.token))
    bill = settled(pile)
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [3])
    case = FaultCase.objects.get(session=bill.session)
    assert [r["key"] for r in case.findings[0]["reasons"]] == ["start_in_future", "stop_in_future"]
    assert Notification.objects.get(session=bill.session).kind == "being_checked"
    assert LedgerEntry.objects.filter(bill=bill).count() == 0


def test_energy_mismatch_is_code_8(gateway, network):
    _station, pile, member = network

    async def overreporting_pile():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.boot()
            await sim.start_tx(1, member.token)
            await sim.status(1, "Charging")
            await sim.meter(1, add_wh=3000)
            sim.meter_wh += 20000  # the stop register claims 20 kWh nobody saw flow
            await sim.stop_tx(1)
            await sim.status(1, "Available")

    run(overreporting_pile())
    bill = settled(pile)
    assert bill.fault_codes == [8]
    (finding,) = FaultCase.objects.get(session=bill.session).findings
    assert finding["reasons"][0]["params"]["diff"] == "20000"


def test_register_reset_is_energy_lost(gateway, network):
    _station, pile, member = network

    async def resetting_pile():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.boot()
            await sim.start_tx(1, member.token)
            await sim.status(1, "Charging")
            await sim.meter(1, add_wh=4000)
            sim.meter_wh = 100  # the meter board restarted
            await sim.meter(1, add_wh=500)
            await sim.stop_tx(1)
            await sim.status(1, "Available")

    run(resetting_pile())
    bill = settled(pile)
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [11])
    (finding,) = FaultCase.objects.get(session=bill.session).findings
    assert finding["reasons"][0]["key"] == "register_backwards"


def test_bill_lost_after_reconnect_is_code_1_then_repaired_once(gateway, network):
    station, pile, member = network

    async def rebooting_pile():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.boot()
            await sim.status(1, "Preparing")
            await sim.start_tx(1, member.token)
            await sim.status(1, "Charging")
            await sim.meter(1, add_wh=3000)
            await sim.meter(1, add_wh=3000)
            meter = sim.meter_wh
        # the pile rebooted: its transaction is gone, no StopTransaction ever comes
        async with connected(gateway.url, pile.code, pile.password) as again:
            await again.boot()
            await again.status(1, "Available")
        return meter

    meter = run(rebooting_pile())
    session = session_of(pile)
    wait_for(lambda: StatusEvent.objects.filter(pile=pile, status="Available").exists())
    result = lost_bills_sweep()
    assert dict(result.by_code) == {1: 1}
    case = FaultCase.objects.get(session=session)
    assert [r["key"] for r in case.findings[0]["reasons"]] == [
        "connector_available",
        "pile_rebooted",
    ] or [r["key"] for r in case.findings[0]["reasons"]] == ["pile_rebooted", "connector_available"]
    assert Decimal(case.proposal["meter_stop_wh"]) == meter
    bill = bill_settle(session_id=session.pk)  # what the queued settlement does
    events_delivered()  # what the worker does after its commit
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [1])
    assert Notification.objects.get(session=session).kind == "being_checked"

    agents = [StaffFactory(operator=station.operator, username=f"cs{i}") for i in (1, 2)]
    corrections = BillCorrections(
        reason="pile rebooted; stop from the last meter sample",
        stopped_at=dt.datetime.fromisoformat(case.proposal["stopped_at"]),
        meter_stop_wh=Decimal(case.proposal["meter_stop_wh"]),
    )
    outcomes = repair_at_once(session=session, corrections=corrections, agents=agents)
    assert sorted(o == "won" for o in outcomes.values()) == [False, True]
    bill.refresh_from_db()
    assert bill.payment_state == PaymentState.PAID
    assert bill.energy_wh == Decimal("6000.000")
    assert LedgerEntry.objects.filter(bill=bill, kind="charge").count() == 1
    assert list(case.actions.values_list("kind", flat=True)) == ["detect", "repair"]


def test_bill_lost_while_offline_is_code_2(gateway, network):
    _station, pile, member = network

    async def vanishing_pile():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.boot()
            await sim.start_tx(1, member.token)
            await sim.status(1, "Charging")
            await sim.meter(1, add_wh=2000)
        # the 4G link drops and the pile is never heard from again

    run(vanishing_pile())
    session = session_of(pile)
    wait_for(lambda: session.samples.exists())
    # The gateway marks the pile online through its batched last-seen writes.
    wait_for(lambda: Pile.objects.filter(pk=pile.pk, is_online=True).exists())
    later = timezone.now() + dt.timedelta(minutes=10)
    assert piles_sweep_offline(now=later) == [pile.pk]
    result = lost_bills_sweep(now=timezone.now() + dt.timedelta(minutes=45))
    assert dict(result.by_code) == {2: 1}
    case = FaultCase.objects.get(session=session)
    assert [r["key"] for r in case.findings[0]["reasons"]] == ["silent", "offline"]
    bill = bill_settle(session_id=session.pk)
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [2])


def test_a_refused_start_the_pile_obeyed_is_recorded_refused_and_never_a_lost_bill(
    gateway, network
):
    _station, pile, _member = network

    async def obeying_pile():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.boot()
            await sim.status(1, "Preparing")
            at = sim.now()
            first = await sim.start_tx(1, "NOSUCHTAG", at=at)
            replay = await sim.start_tx(1, "NOSUCHTAG", at=at)  # its answer was lost
            await sim.status(1, "Available")  # obeyed: no charge, and never a stop
            return first, replay

    first, replay = run(obeying_pile())
    session = session_of(pile)
    assert (first.transaction_id, first.id_tag_info) == (session.pk, {"status": "Invalid"})
    assert (replay.transaction_id, replay.id_tag_info) == (session.pk, {"status": "Invalid"})
    assert (session.state, session.refused_as) == ("refused", "invalid")
    assert ChargingSession.objects.filter(pile=pile).count() == 1
    wait_for(lambda: StatusEvent.objects.filter(pile=pile, status="Available").exists())
    # As the beat runs it, long after: connector back to Available, pile silent.
    result = lost_bills_sweep(now=timezone.now() + dt.timedelta(hours=2))
    assert (result.candidates, result.lost) == (0, 0)
    session.refresh_from_db()
    assert session.state == "refused"
    assert not FaultCase.objects.filter(session=session).exists()
    assert not Bill.objects.filter(session=session).exists()


def test_a_refused_start_the_pile_charged_anyway_is_billed_never_debited(gateway):
    # Flat all day: the amount does not depend on when the test runs.
    station = tariffed_station(
        since=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        schedule=schedule_from_ranges([("00:00", "24:00", 2)]),
    )
    pile = world.pile(station)  # unrated: the simulated pile's kWh come in milliseconds
    member = world.member(station.operator, status=MemberStatus.BLOCKED)
    wallet_recharge(member=member, amount=Decimal("100.00"), reference=f"WX{member.pk}")

    async def disobeying_pile():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.boot()
            await sim.status(1, "Preparing")
            answer = await sim.start_tx(1, member.token)
            await sim.status(1, "Charging")  # ignores the refusal
            await sim.meter(1, add_wh=1500)
            await sim.meter(1, add_wh=3000)
            await sim.stop_tx(1)
            await sim.status(1, "Available")
            return answer

    answer = run(disobeying_pile())
    assert answer.id_tag_info == {"status": "Blocked"}
    bill = settled(pile)
    # DC flat 0.70 + 0.70 yuan/kWh × 4.5 kWh; nobody agreed to pay: unpaid, not debited.
    assert (bill.payment_state, bill.fault_codes, bill.energy_wh, bill.total) == (
        PaymentState.UNPAID,
        [],
        Decimal("4500.000"),
        Decimal("6.30"),
    )
    assert list(bill.session.transitions.values_list("to_state", flat=True)) == [
        "refused",
        "charging",
        "stopped",
        "settled",
    ]
    assert LedgerEntry.objects.filter(bill=bill).count() == 0
    member.wallet.refresh_from_db()
    assert member.wallet.balance == Decimal("100.00")


# ---- implausible input from a pile (issue 8) ---------------------------------------------


def energy_sample(transaction_id: int, at: dt.datetime, wh: str):
    return call.MeterValues(
        connector_id=1,
        transaction_id=transaction_id,
        meter_value=[
            {
                "timestamp": iso(at),
                "sampledValue": [
                    {"value": wh, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                ],
            }
        ],
    )


def stop(transaction_id: int, at: dt.datetime | str, meter_stop: int):
    return call.StopTransaction(
        meter_stop=meter_stop,
        timestamp=at if isinstance(at, str) else iso(at),
        transaction_id=transaction_id,
        reason="Local",
    )


async def charge(url, pile, member, *, ago=0, samples=(), stop_after=None, stop_wh: int):
    """Start at 100000 Wh, stamped ``ago`` seconds before now (within the allowed clock
    difference); send ``samples`` ((seconds after the start, register)); stop with
    ``stop_wh``, ``stop_after`` seconds after the start (or the ISO text a pile sends)."""
    async with connected(url, pile.code, pile.password) as sim:
        sim.meter_wh = 100_000
        await sim.boot()
        started = sim.now() - dt.timedelta(seconds=ago)
        tx = (await sim.start_tx(1, member.token, at=started)).transaction_id
        await sim.status(1, "Charging")
        for seconds, wh in samples:
            await sim.call(energy_sample(tx, started + dt.timedelta(seconds=seconds), wh))
        if stop_after is None:
            stopped = sim.now()
        elif isinstance(stop_after, str):
            stopped = stop_after
        else:
            stopped = started + dt.timedelta(seconds=stop_after)
        await sim.call(stop(tx, stopped, stop_wh))
        await sim.status(1, "Available")


@pytest.fixture
def flat(network):
    # One price all day (DC flat, 0.70 + 0.70 yuan/kWh): exact amounts whatever the hour.
    domain_priced, pile, member = network
    station = tariffed_station(
        since=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        schedule="2" * 48,
        operator=domain_priced.operator,
    )
    Pile.objects.filter(pk=pile.pk).update(station=station)
    pile.refresh_from_db()
    return station, pile, member


@pytest.fixture
def rated_7kw(flat):
    station, pile, member = flat
    Pile.objects.filter(pk=pile.pk).update(max_power_kw=Decimal(7))
    Connector.objects.filter(pile=pile).update(rated_power_kw=Decimal(7))
    return station, pile, member


def test_a_stop_in_2999_is_a_time_anomaly_fault_bill_and_its_page_answers(
    gateway, rated_7kw, client, django_assert_max_num_queries
):
    _station, pile, member = rated_7kw
    run(charge(gateway.url, pile, member, stop_after="2999-01-01T00:00:00Z", stop_wh=101_000))
    bill = settled(pile)
    # 3 and 5 not priced; 9 as well: the pile's 973 years of charging are not the platform's.
    assert (bill.payment_state, bill.fault_codes, bill.total) == (
        PaymentState.FAULT,
        [3, 5, 9],
        Decimal("0.00"),
    )
    # Stored in the gateway's language (zh-hans), as the engine's messages are.
    assert bill.fault_detail.startswith(
        "未计价：充电桩时间 2999-01-01 08:00:00 比平台收到它的时间（"
    ) and bill.fault_detail.endswith("超过最长 24 小时。")
    assert LedgerEntry.objects.filter(bill=bill).count() == 0
    # The bill page draws no tariff bands over 973 years: the engine refuses the walk.
    staff = StaffFactory(operator=pile.station.operator)
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["billing", "faults"])
    )
    client.force_login(staff)
    with django_assert_max_num_queries(30):
        page = client.get(reverse("admin:billing_bill_change", args=[bill.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert (
        "The pile reported 1000.000 Wh (its meterStop − meterStart); the platform did not "
        f"price it. {bill.fault_detail}</p>"
    ) in html
    assert "<rect" not in html and "<polyline" in html
    case = FaultCase.objects.get(session=bill.session)
    page = client.get(reverse("admin:faults_faultcase_change", args=[case.pk]))
    assert page.status_code == 200
    assert "The pile reported 1000.000 Wh" in page.content.decode()


@pytest.mark.parametrize("stop_wh", [350_000, 90_000_000_000])
def test_energy_beyond_the_connector_power_is_a_fault_bill_never_a_charge(
    gateway, rated_7kw, stop_wh
):
    # 250 kWh (or 9×10^10 Wh) in seconds on a 7 kW connector.
    _station, pile, member = rated_7kw
    run(charge(gateway.url, pile, member, stop_wh=stop_wh))
    bill = settled(pile)
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [13])
    # Not priced either (decided before pricing): no nine-digit amount, even unpaid.
    assert (bill.energy_wh, bill.total, bill.lines.count()) == (Decimal(0), Decimal(0), 0)
    # (in the gateway's language; the seconds it took vary, the energy and power do not)
    assert f"分钟内充电 {stop_wh - 100_000} Wh，超过该充电枪 7 kW 所能输出" in bill.fault_detail
    assert LedgerEntry.objects.filter(bill=bill).count() == 0
    assert Wallet.objects.get(member=member).balance == Decimal("100.00")
    (finding,) = FaultCase.objects.get(session=bill.session).findings
    assert [r["key"] for r in finding["reasons"]] == ["energy_beyond_power"]  # once
    assert finding["reasons"][0]["params"]["kw"] == "7"


def test_a_whole_wh_stop_below_decimal_samples_is_charged_normally(gateway, flat):
    # Samples carry decimals, meterStop is whole Wh: a stop of 101000 after a sample of
    # 101000.41 is the same reading, and so is a sample 300 ms after the stop. The bill is
    # the pile's meterStop − meterStart: 1000 Wh × 1.40 = 1.40 yuan.
    _station, pile, member = flat
    samples = [(60, "100600.25"), (119, "101000.41"), (120.3, "101000.41")]
    run(charge(gateway.url, pile, member, ago=121, samples=samples, stop_after=120, stop_wh=101000))
    bill = settled(pile)
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.PAID, [])
    assert (bill.energy_wh, bill.total) == (Decimal("1000.000"), Decimal("1.40"))
    assert LedgerEntry.objects.get(bill=bill, kind="charge").amount == Decimal("-1.40")


def test_a_pile_metering_after_its_stop_is_named_so(gateway, flat):
    _station, pile, member = flat
    samples = [(60, "100600"), (180, "101500")]  # a minute after the stop, 500 Wh more
    run(
        charge(gateway.url, pile, member, ago=200, samples=samples, stop_after=120, stop_wh=101_000)
    )
    bill = settled(pile)
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [11])
    (finding,) = FaultCase.objects.get(session=bill.session).findings
    assert [r["key"] for r in finding["reasons"]] == ["samples_after_stop"]
