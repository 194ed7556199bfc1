"""Outbound commands: `send_command` from this (web/worker-like) process reaches a pile
held by another gateway process, routed through Redis."""

from __future__ import annotations

import asyncio

import pytest

from billing.models import ChargingSession
from protocol.models import Frame
from protocol.services import (
    CommandInvalid,
    CommandRejected,
    CommandTimeout,
    PileOffline,
    send_command,
)
from protocol.simulator import connected, scenario_full_then_app_stop
from stations.models import Connector, StatusEvent

from . import world
from .clients import silent
from .conftest import wait_for

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


async def command_through(gateway, pile, action, payload, **kwargs):
    async with connected(gateway.url, pile.code, pile.password) as sim:
        await sim.boot()
        result = await asyncio.to_thread(
            send_command, pile=pile, action=action, payload=payload, timeout=5
        )
        return sim, result


@pytest.mark.parametrize(
    "action, payload, expected",
    [
        ("RemoteStartTransaction", {"idTag": "T1", "connectorId": 1}, {"status": "Accepted"}),
        ("Reset", {"type": "Soft"}, {"status": "Accepted"}),
        ("UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"}),
        ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}, {"status": "Accepted"}),
        (
            "ChangeConfiguration",
            {"key": "HeartbeatInterval", "value": "120"},
            {"status": "Accepted"},
        ),
        (
            "GetConfiguration",
            {"key": ["HeartbeatInterval"]},
            {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]},
        ),
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "Accepted"}),
        ("ClearCache", {}, {"status": "Accepted"}),
    ],
)
def test_every_command_reaches_the_pile_through_the_node_holding_it(
    second_gateway, action, payload, expected
):
    pile = world.pile()
    sim, result = asyncio.run(command_through(second_gateway, pile, action, payload))
    assert result == expected
    if action == "RemoteStartTransaction":
        assert sim.remote_starts.get_nowait() == (1, "T1")
    out, answer = wait_for(
        lambda: (
            frames
            if len(frames := list(Frame.objects.filter(pile_code=pile.code, action=action))) == 2
            else None
        )
    )
    assert {(f.direction, f.message_type, f.node) for f in (out, answer)} == {
        ("out", 2, second_gateway.node),
        ("in", 3, second_gateway.node),
    }


def test_remote_stop_and_refusals(second_gateway):
    pile = world.pile()
    member = world.member(pile.station.operator)

    async def charge_and_stop():
        async with connected(second_gateway.url, pile.code, pile.password) as sim:
            tx = (await sim.start_tx(1, member.token)).transaction_id
            stopped = await asyncio.to_thread(
                send_command,
                pile=pile,
                action="RemoteStopTransaction",
                payload={"transactionId": tx},
            )
            with pytest.raises(CommandRejected) as refused:
                await asyncio.to_thread(
                    send_command,
                    pile=pile.code,
                    action="RemoteStopTransaction",
                    payload={"transactionId": tx + 1000},
                )
            return stopped, await sim.remote_stops.get(), tx, str(refused.value)

    stopped, queued, tx, message = asyncio.run(charge_and_stop())
    assert (stopped, queued) == ({"status": "Accepted"}, tx)
    assert message == f"Pile {pile.code} answered Rejected to RemoteStopTransaction."


def test_offline_pile_and_invalid_commands_raise_clear_errors(second_gateway):
    pile = world.pile()
    with pytest.raises(PileOffline) as offline:
        send_command(pile=pile, action="Reset", payload={"type": "Soft"}, timeout=2)
    assert str(offline.value) == f"Pile {pile.code} is offline: it is not connected to any gateway."
    with pytest.raises(CommandInvalid):
        send_command(pile=pile, action="UpdateFirmware", payload={})
    with pytest.raises(CommandInvalid) as invalid:
        send_command(pile=pile, action="Reset", payload={"type": "Sideways"})
    assert str(invalid.value).startswith("The Reset command is not valid OCPP 1.6")


def test_a_pile_that_does_not_answer_times_out(second_gateway):
    pile = world.pile()

    async def unanswered():
        async with silent(second_gateway.url, pile.code, pile.password):
            with pytest.raises(CommandTimeout) as late:
                await asyncio.to_thread(
                    send_command, pile=pile, action="ClearCache", payload={}, timeout=1
                )
            return str(late.value)

    assert asyncio.run(unanswered()) == f"Pile {pile.code} did not answer ClearCache within 1 s."


def test_a_pile_moving_to_another_node_is_taken_over(gateway, second_gateway):
    pile = world.pile()

    async def move():
        async with connected(gateway.url, pile.code, pile.password) as on_a:
            await on_a.boot()
            async with connected(second_gateway.url, pile.code, pile.password) as on_b:
                await on_b.boot()
                await asyncio.wait_for(on_a._connection.wait_closed(), 5)
                result = await asyncio.to_thread(
                    send_command, pile=pile, action="ClearCache", payload={}, timeout=5
                )
                return on_a._connection.close_reason, result

    reason, result = asyncio.run(move())
    assert (reason, result) == ("connected elsewhere", {"status": "Accepted"})
    out = wait_for(
        lambda: (
            Frame.objects.filter(pile_code=pile.code, action="ClearCache", direction="out")
            .values_list("node", flat=True)
            .first()
        )
    )
    assert out == second_gateway.node


def test_full_still_plugged_then_stop_from_the_phone_then_unplug(second_gateway):
    """满电占桩: the car is full, the driver presses stop in WeChat, then unplugs."""
    pile = world.pile()
    member = world.member(pile.station.operator)

    async def play():
        scenario = asyncio.create_task(
            scenario_full_then_app_stop(second_gateway.url, pile.code, pile.password, member.token)
        )
        await asyncio.to_thread(
            wait_for,
            lambda: Connector.objects.filter(pile=pile, status="SuspendedEV").exists(),
        )
        session = await asyncio.to_thread(ChargingSession.objects.get, pile=pile)
        await asyncio.to_thread(
            send_command,
            pile=pile,
            action="RemoteStopTransaction",
            payload={"transactionId": session.pk},
        )
        return await scenario

    asyncio.run(play())
    session = ChargingSession.objects.get(pile=pile)
    assert (session.state, session.stop_reason) == ("stopped", "Remote")
    assert list(
        StatusEvent.objects.filter(pile=pile).order_by("received_at", "pk").values_list("status")
    ) == [("Preparing",), ("Charging",), ("SuspendedEV",), ("Finishing",), ("Available",)]
