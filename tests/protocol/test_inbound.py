"""Every inbound action through a real gateway process over a real WebSocket."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal

import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from billing.models import (
    Bill,
    ChargingSession,
    MeterSample,
    OrphanStop,
    PaymentState,
    SessionTransition,
)
from orgs.models import CardStatus, MemberStatus
from protocol.models import Frame, MessageType
from protocol.simulator import (
    basic_auth_header,
    connected,
    iso,
    scenario_duplicate_stop,
    scenario_normal,
    scenario_offline_mid_session,
)
from stations.models import FirmwareRecord, HeartbeatSample, Pile, PileFault, StatusEvent

from . import world
from .conftest import wait_for

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


def run(coro):
    return asyncio.run(coro)


def test_boot_records_pile_and_firmware_history(gateway):
    pile = world.pile()

    async def boots():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            first = await sim.boot(firmware="10722")
            await sim.boot(firmware="10722")
            await sim.boot(firmware="2090100")
            return first

    answer = run(boots())
    assert (answer.status, answer.interval) == ("Accepted", 60)
    pile.refresh_from_db()
    assert (pile.vendor, pile.model, pile.firmware_version) == ("SimVendor", "SIM-DC-60", "2090100")
    assert pile.serial_number == f"SN{pile.code[-8:]}"
    assert list(
        FirmwareRecord.objects.filter(pile=pile).order_by("first_seen_at").values_list("version")
    ) == [("10722",), ("2090100",)]


def test_heartbeat_updates_last_seen_in_batches_with_bounded_history(gateway):
    pile = world.pile()

    async def beat():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.status(1, "Charging")
            return [await sim.heartbeat() for _ in range(5)]

    answers = run(beat())
    assert all(a.current_time.endswith("Z") for a in answers)
    # One history sample per pile per sampling period, not one per heartbeat.
    states = wait_for(
        lambda: list(HeartbeatSample.objects.filter(pile=pile).values_list("state", flat=True))
    )
    assert states == ["Charging"]
    # Written by the 0.2 s last-seen batch, so polled rather than slept for.
    pile = wait_for(
        lambda: Pile.objects.filter(pk=pile.pk, last_heartbeat_at__isnull=False).first()
    )
    assert pile.is_online is True


def test_status_notifications_keep_history_state_and_error_faults(gateway):
    pile = world.pile()

    async def statuses():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.status(1, "Charging")
            await sim.status(1, "Faulted", error_code="GroundFailure")
            await sim.status(1, "Available")
            await sim.status(2, "Available")  # a connector we did not know: created

    run(statuses())
    assert list(
        StatusEvent.objects.filter(pile=pile)
        .order_by("received_at", "pk")
        .values_list("connector_number", "status", "error_code")
    ) == [
        (1, "Charging", ""),
        (1, "Faulted", "GroundFailure"),
        (1, "Available", ""),
        (2, "Available", ""),
    ]
    fault = PileFault.objects.get(pile=pile)
    assert (fault.kind, fault.error_code, fault.ended_at is not None) == (
        "error",
        "GroundFailure",
        True,
    )
    assert list(pile.connectors.order_by("number").values_list("number", "status")) == [
        (1, "Available"),
        (2, "Available"),
    ]


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("member", "Accepted"),
        ("blocked_member", "Blocked"),
        ("card", "Accepted"),
        ("lost_card", "Blocked"),
        ("password", "Accepted"),
        ("unknown", "Invalid"),
        ("busy_member", "ConcurrentTx"),
        ("owing_member", "Blocked"),
        ("owing_card", "Blocked"),
    ],
)
def test_authorize_answers_by_member_and_card_state(gateway, kind, expected):
    st = world.station(password="8642")
    pile = world.pile(st)
    member = world.member(
        st.operator,
        status=MemberStatus.BLOCKED if kind == "blocked_member" else MemberStatus.ACTIVE,
    )
    tag = {
        "member": member.token,
        "blocked_member": member.token,
        "busy_member": member.token,
        "owing_member": member.token,
        "password": "8642",
        "unknown": "NOSUCHTAG",
    }.get(kind)
    if kind in ("card", "lost_card", "owing_card"):
        status = CardStatus.LOST if kind == "lost_card" else CardStatus.ACTIVE
        tag = world.card(st.operator, owner=member, status=status).number
    if kind.startswith("owing"):
        _owed_bill(st, member)
    if kind == "busy_member":
        other = world.pile(st)
        ChargingSession.objects.create(
            order_no="20261127000000000001",
            operator=st.operator,
            station=st,
            pile=other,
            connector=other.connectors.get(),
            id_tag=member.token,
            member=member,
            started_at=dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
            meter_start_wh=0,
        )

    async def authorize():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            return await sim.authorize(tag)

    assert run(authorize()) == expected


def test_a_charge_is_recorded_with_order_number_samples_and_journal(gateway):
    st = world.station()
    pile = world.pile(st)
    member = world.member(st.operator)
    sub = world.sub_operator(st.operator)
    st.sub_operators.add(sub)

    sim = run(scenario_normal(gateway.url, pile.code, pile.password, member.token))
    session = ChargingSession.objects.get(pile=pile)
    assert len(session.order_no) == 20 and session.order_no.isdigit()
    assert (session.state, session.channel, session.member_id, session.sub_operator_id) == (
        "stopped",
        "scan",
        member.pk,
        sub.pk,
    )
    assert session.meter_stop_wh - session.meter_start_wh == Decimal(4500)
    assert session.meter_stop_wh == Decimal(sim.meter_wh)
    assert MeterSample.objects.filter(session=session).count() == 3
    assert list(session.transitions.values_list("to_state", flat=True)) == [
        "started",
        "charging",
        "stopped",
    ]
    # Customer service's log search: every frame of the order, in and out.
    frames = Frame.objects.filter(order_no=session.order_no).order_by("at", "pk")
    assert [(f.direction, f.action) for f in frames] == [
        ("in", "StartTransaction"),
        ("out", "StartTransaction"),
        *[("in", "MeterValues"), ("out", "MeterValues")] * 3,
        ("in", "StopTransaction"),
        ("out", "StopTransaction"),
    ]
    boots = Frame.objects.filter(pile_code=pile.code, action="BootNotification")
    assert wait_for(lambda: boots.count() == 2)  # not awaited: written in the background


def test_start_transaction_replayed_after_reconnect_opens_one_session(gateway):
    pile = world.pile()
    member = world.member(pile.station.operator)
    at = dt.datetime.now(dt.UTC).replace(microsecond=0)

    async def replay():
        ids = []
        for _ in range(2):  # the pile did not get the answer, reconnects and resends
            async with connected(gateway.url, pile.code, pile.password) as sim:
                sim.meter_wh = 1000
                ids.append((await sim.start_tx(1, member.token, at=at)).transaction_id)
        return ids

    first, second = run(replay())
    assert first == second
    assert ChargingSession.objects.filter(pile=pile).count() == 1
    assert SessionTransition.objects.filter(session_id=first).count() == 1


def test_meter_values_out_of_order_and_repeated_are_stored_once(gateway):
    pile = world.pile()
    member = world.member(pile.station.operator)
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def values(tx, seconds, wh):
        return call.MeterValues(
            connector_id=1,
            transaction_id=tx,
            meter_value=[
                {
                    "timestamp": iso(t0 + dt.timedelta(seconds=seconds)),
                    "sampledValue": [{"value": str(wh), "unit": "kWh"}],
                }
            ],
        )

    async def charge():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            sim.meter_wh = 1000
            tx = (await sim.start_tx(1, member.token, at=t0)).transaction_id
            for seconds, kwh in [(120, "3.0"), (60, "2.0"), (120, "3.0"), (180, "4.5"), (60, "2")]:
                await sim.call(values(tx, seconds, kwh))
            return tx

    tx = run(charge())
    assert list(
        MeterSample.objects.filter(session_id=tx).order_by("at").values_list("energy_wh", flat=True)
    ) == [Decimal("2000.000"), Decimal("3000.000"), Decimal("4500.000")]
    session = ChargingSession.objects.get(pk=tx)
    assert session.last_sample_at == t0 + dt.timedelta(seconds=180)
    assert session.state == "charging"


def test_duplicate_stop_has_one_effect(gateway):
    pile = world.pile()
    member = world.member(pile.station.operator)
    run(scenario_duplicate_stop(gateway.url, pile.code, pile.password, member.token))
    session = ChargingSession.objects.get(pile=pile)
    assert session.state == "stopped"
    assert session.transitions.filter(to_state="stopped").count() == 1
    assert Frame.objects.filter(order_no=session.order_no, action="StopTransaction").count() == 4


def test_stop_delivered_after_reconnect_closes_the_session(gateway):
    pile = world.pile()
    member = world.member(pile.station.operator)
    sim = run(scenario_offline_mid_session(gateway.url, pile.code, pile.password, member.token))
    session = ChargingSession.objects.get(pile=pile)
    assert (session.state, session.meter_stop_wh) == ("stopped", Decimal(sim.meter_wh))
    assert session.meter_stop_wh - session.meter_start_wh == Decimal(5000)


def test_stop_of_unknown_transaction_is_kept_as_orphan(gateway):
    pile = world.pile()
    at = iso(dt.datetime.now(dt.UTC))
    stop = call.StopTransaction(
        meter_stop=5000, timestamp=at, transaction_id=987654, reason="PowerLoss", id_tag="X1"
    )

    async def stops():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            return [await sim.call(stop), await sim.call(stop)]

    run(stops())
    orphan = OrphanStop.objects.get(pile=pile)
    assert (orphan.protocol_ref, orphan.meter_stop_wh, orphan.reason, orphan.id_tag) == (
        "987654",
        Decimal(5000),
        "PowerLoss",
        "X1",
    )


def test_offline_queued_transactions_delivered_late_each_count_once(gateway):
    """A pile offline for two charges delivers start A, start B (A's stop lost), stop B,
    then resends everything: A is closed as superseded, B is stopped, nothing doubles."""
    pile = world.pile()
    member = world.member(pile.station.operator)
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)

    async def deliver():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            for _ in range(2):
                sim.meter_wh = 1000
                a = (await sim.start_tx(1, member.token, at=t0)).transaction_id
                sim.meter_wh = 9000
                b = await sim.start_tx(1, member.token, at=t0 + dt.timedelta(hours=1))
                sim.meter_wh = 15000
                await sim.call(sim.stop_payload(1, transaction_id=b.transaction_id))
            return a, b.transaction_id, b.id_tag_info["status"]

    a, b, status = run(deliver())
    assert status == "Accepted"
    assert ChargingSession.objects.filter(pile=pile).count() == 2
    first, second = ChargingSession.objects.get(pk=a), ChargingSession.objects.get(pk=b)
    assert (first.state, first.stop_reason, first.meter_stop_wh) == ("stopped", "Superseded", None)
    assert (second.state, second.meter_stop_wh) == ("stopped", Decimal(15000))


def test_vin_by_data_transfer_links_vehicle_and_attribution(gateway):
    st = world.station(password="1234")
    station_sub, fleet_sub = world.sub_operator(st.operator), world.sub_operator(st.operator)
    st.sub_operators.add(station_sub)
    vehicle = world.vehicle(
        st.operator, vin="LSVAU2180N2183294", dept=world.department(st.operator, fleet_sub)
    )
    pile = world.pile(st)

    async def charge():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            tx = (await sim.start_tx(1, "1234")).transaction_id
            data = json.dumps({"connectorId": 1, "vin": "LSVAU2180N2183294"})
            answer = await sim.call(call.DataTransfer(vendor_id="X", message_id="VIN", data=data))
            bad = await sim.call(call.DataTransfer(vendor_id="X", message_id="VIN", data="O0O"))
            other = await sim.call(call.DataTransfer(vendor_id="X", message_id="Price"))
            return tx, answer.status, bad.status, other.status

    tx, ok, bad, other = run(charge())
    assert (ok, bad, other) == ("Accepted", "Rejected", "UnknownMessageId")
    session = ChargingSession.objects.get(pk=tx)
    assert (session.channel, session.vin, session.vehicle_id) == (
        "password",
        "LSVAU2180N2183294",
        vehicle.pk,
    )
    assert (session.department_id, session.sub_operator_id) == (vehicle.department_id, fleet_sub.pk)


def test_vin_as_id_tag_and_card_attribute_to_the_fleet_before_the_station(gateway):
    st = world.station()
    station_sub, fleet_sub = world.sub_operator(st.operator), world.sub_operator(st.operator)
    st.sub_operators.add(station_sub)
    fleet = world.department(st.operator, fleet_sub)
    bus = world.vehicle(st.operator, vin="LGHXCAE28M6000001", dept=fleet)
    card = world.card(st.operator, owner=world.member(st.operator, is_virtual=True), veh=bus)
    pile = world.pile(st, connectors=2)

    async def charge():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            by_vin = await sim.start_tx(1, "LGHXCAE28M6000001")
            by_card = await sim.start_tx(2, card.number)
            return by_vin.transaction_id, by_card.transaction_id

    by_vin, by_card = run(charge())
    assert list(
        ChargingSession.objects.filter(pk__in=[by_vin, by_card])
        .order_by("connector__number")
        .values_list("channel", "vehicle_id", "department_id", "sub_operator_id")
    ) == [
        ("password", bus.pk, fleet.pk, fleet_sub.pk),
        ("card", bus.pk, fleet.pk, fleet_sub.pk),
    ]


def test_firmware_and_diagnostics_status_are_answered_and_journaled(gateway):
    pile = world.pile()

    async def notify():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.call(call.FirmwareStatusNotification(status="Installed"))
            await sim.call(call.DiagnosticsStatusNotification(status="Uploaded"))

    run(notify())
    answered = wait_for(
        lambda: (
            sorted(
                Frame.objects.filter(
                    pile_code=pile.code, message_type=MessageType.CALL_RESULT
                ).values_list("action", flat=True)
            )
            if Frame.objects.filter(
                pile_code=pile.code, message_type=MessageType.CALL_RESULT
            ).count()
            == 2
            else None
        )
    )
    assert answered == ["DiagnosticsStatusNotification", "FirmwareStatusNotification"]


@pytest.mark.parametrize(
    "credentials, reason",
    [
        (("right-code", "wrong-password"), "wrong password"),
        (None, "credentials missing"),
        (("unknown-code", "whatever"), "unknown pile code"),
    ],
)
def test_auth_refused_at_handshake_with_401_and_logged(gateway, credentials, reason):
    pile = world.pile()
    code = pile.code if credentials is None or credentials[0] == "right-code" else "4420999"
    headers = {} if credentials is None else basic_auth_header(code, credentials[1])

    async def attempt():
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(
                f"{gateway.url}/{code}", subprotocols=["ocpp1.6"], additional_headers=headers
            ):
                pass
        return refused.value.response.status_code

    assert run(attempt()) == 401
    frame = wait_for(lambda: Frame.objects.filter(pile_code=code, action="refused").first())
    assert frame.raw.startswith(reason)


def test_pile_without_credential_connects_without_password(gateway):
    pile = world.pile(password=None)

    async def boot():
        async with connected(gateway.url, pile.code) as sim:
            return (await sim.boot()).status

    assert run(boot()) == "Accepted"


def test_a_second_connection_replaces_the_first(gateway):
    pile = world.pile()

    async def twice():
        async with (
            connected(gateway.url, pile.code, pile.password) as first,
            connected(gateway.url, pile.code, pile.password) as second,
        ):
            await first._connection.wait_closed()
            answer = await second.heartbeat()
            return first._connection.close_reason, answer

    reason, answer = run(twice())
    assert reason == "replaced by a new connection"
    assert answer.current_time.endswith("Z")
    assert wait_for(lambda: Pile.objects.get(pk=pile.pk).is_online)  # by the last-seen batch


def _owed_bill(station, member) -> Bill:
    """A settled bill the member's wallet could not pay: arrears block the next start."""
    pile = world.pile(station)
    start = dt.datetime(2026, 11, 26, 8, tzinfo=dt.UTC)
    session = ChargingSession.objects.create(
        order_no=f"2026112608{member.pk:010d}",
        operator=station.operator,
        station=station,
        pile=pile,
        connector=pile.connectors.get(),
        id_tag=member.token,
        member=member,
        state="settled",
        started_at=start,
        stopped_at=start + dt.timedelta(hours=1),
        meter_start_wh=0,
        meter_stop_wh=10000,
    )
    return Bill.objects.create(
        session=session,
        order_no=session.order_no,
        operator=station.operator,
        station=station,
        channel="scan",
        member=member,
        current_type="AC",
        started_at=session.started_at,
        ended_at=session.stopped_at,
        duration_s=3600,
        energy_wh=Decimal(10000),
        electricity_fee=Decimal("6.40"),
        service_fee=Decimal("5.10"),
        total=Decimal("11.50"),
        rounding_mode="ROUND_DOWN",
        payment_state=PaymentState.OWED,
        settled_at=session.stopped_at,
    )


def test_a_pile_is_online_a_moment_after_it_connects_not_a_flush_period_later(own_gateway):
    """The last-seen batch is written every GATEWAY_SEEN_FLUSH_SECONDS (an hour here), and
    also a moment after a pile connects: a partner or a driver asking right after a boot
    finds it online."""
    gw = own_gateway(GATEWAY_SEEN_FLUSH_SECONDS="3600")
    pile = world.pile()
    assert Pile.objects.get(pk=pile.pk).is_online is False

    async def connect_and_wait():
        async with connected(gw.url, pile.code, pile.password) as sim:
            await sim.boot()
            return await asyncio.to_thread(
                wait_for, lambda: Pile.objects.get(pk=pile.pk).is_online, timeout=5
            )

    assert run(connect_and_wait()) is True
