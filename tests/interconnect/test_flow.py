"""A partner charge end to end, everything over real sockets: the fake partner platform
(T/CEC 102, its own secrets) calls our web app; our web app asks a real gateway process;
a simulated OCPP 1.6 pile answers; the core opens, meters, stops and bills the session;
the outbox's consumers queue pushes, which the worker delivers to the fake platform, which
checks our signatures and acknowledges."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import pytest

from billing.models import Bill, ChargingSession, MeterSample
from billing.services.settlement import bill_settle
from chargenet.events import events_deliver_pending
from interconnect.models import Interconnection, PartnerOrder, Push, PushState
from interconnect.services.pushes import pushes_deliver_due
from interconnect.tasks import partner_order_dispatch_task
from protocol.models import Frame
from stations.models import Pile
from tests.protocol.clients import serving

from .conftest import partner_add, wait_for
from .world import network, operator_id

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


@contextlib.asynccontextmanager
async def booted(url: str, pile):
    async with serving(url, pile.code, pile.password) as sim:
        await sim.boot()
        yield sim


def deliver_events() -> None:
    """What the worker does after each commit: hand the outbox's events to consumers."""
    events_deliver_pending(older_than=dt.timedelta(0))


def dispatch_starts() -> list[bool]:
    """What the worker does after query_start_charge committed: ask the pile."""
    return [
        partner_order_dispatch_task(pk)
        for pk in PartnerOrder.objects.filter(dispatched=False).values_list("pk", flat=True)
    ]


def test_partner_charge_from_token_to_acknowledged_order(gateway, platform_for):
    net = network()
    pile = net.piles[0]
    credentials = partner_add(
        "--name", "滴滴", "--operator-id", operator_id(), "--base-url", "http://127.0.0.1:9/",
        "--operator", net.operator.code,
    )  # fmt: skip
    platform = platform_for(credentials)
    link = Interconnection.objects.get(operator_id_wire=credentials["OperatorID"])
    Interconnection.objects.filter(pk=link.pk).update(base_url=platform.url)
    connector_id = pile.code + "01"
    start = {"StartChargeSeq": "MA01H3BQ2A0000000001", "ConnectorID": connector_id, "QRCode": ""}

    async def charge():
        async with booted(gateway.url, pile) as sim:
            await sim.status(1, "Available")
            # Online is written by the gateway's next last-seen batch, not at the
            # handshake: a partner asking before it would be told the pile is offline.
            await asyncio.to_thread(
                wait_for, lambda: Pile.objects.filter(pk=pile.pk, is_online=True).exists()
            )
            assert platform.login().ret == 0
            stations = await asyncio.to_thread(
                platform.call, "query_stations_info", {"PageNo": 1, "PageSize": 10}
            )
            assert [s["StationID"] for s in stations.data["StationInfos"]] == [net.station.code]
            answer = await asyncio.to_thread(platform.call, "query_start_charge", start)
            assert (answer.ret, answer.data["SuccStat"], answer.data["StartChargeSeqStat"]) == (
                0, 0, 1,
            )  # fmt: skip
            # Answered before the pile was asked: the worker asks it after the commit.
            assert sim.remote_starts.empty()
            dispatched = asyncio.create_task(asyncio.to_thread(dispatch_starts))
            number, tag = await asyncio.wait_for(sim.remote_starts.get(), 10)
            assert await dispatched == [True]
            # The same start again: the same order, nothing sent to the pile.
            again = await asyncio.to_thread(platform.call, "query_start_charge", start)
            assert (again.data["SuccStat"], again.data["StartChargeSeqStat"]) == (0, 1)
            await sim.status(1, "Preparing")
            # Six minutes ago: 5 kWh since then is what a 60 kW pile can deliver.
            await sim.start_tx(number, tag, at=sim.now() - dt.timedelta(minutes=6))
            await sim.status(1, "Charging")
            await sim.meter(1, add_wh=5000, soc=60)
            await asyncio.to_thread(
                wait_for, lambda: MeterSample.objects.filter(soc=60, session__id_tag=tag).exists()
            )
            await asyncio.to_thread(deliver_events)  # the worker, after those commits
            status = await asyncio.to_thread(
                platform.call,
                "query_equip_charge_status",
                {"StartChargeSeq": start["StartChargeSeq"]},
            )
            stop = asyncio.create_task(
                asyncio.to_thread(
                    platform.call,
                    "query_stop_charge",
                    {"StartChargeSeq": start["StartChargeSeq"], "ConnectorID": connector_id},
                )
            )
            await asyncio.wait_for(sim.remote_stops.get(), 10)
            stopped = await stop
            await sim.stop_tx(1, reason="Remote")
            await sim.status(1, "Finishing")
            return tag, status, stopped

    tag, status, stopped = asyncio.run(charge())
    assert wait_for(lambda: sim_starts(pile) == 1)  # journaled in the background
    session = wait_for(
        lambda: ChargingSession.objects.filter(pile=pile, state="stopped", id_tag=tag).first()
    )
    assert (session.channel, session.partner_id) == ("partner", link.partner_id)
    assert (status.data["StartChargeSeqStat"], status.data["TotalPower"]) == (2, 5.0)
    assert (status.data["Soc"], status.data["ConnectorID"]) == (60, connector_id)
    assert (stopped.data["SuccStat"], stopped.data["StartChargeSeqStat"]) == (0, 3)

    bill = bill_settle(session_id=session.pk)
    deliver_events()
    assert pushes_deliver_due() == {"delivered": Push.objects.filter(interconnection=link).count()}

    order = PartnerOrder.objects.get(interconnection=link)
    assert (order.session_id, order.state, order.confirm_result) == (session.pk, "ended", 0)
    assert order.confirmed_at is not None
    (started,) = platform.pushes("notification_start_charge_result")
    assert (started["StartChargeSeq"], started["StartChargeSeqStat"]) == (
        start["StartChargeSeq"],
        2,
    )
    (ended,) = platform.pushes("notification_stop_charge_result")
    assert (ended["StartChargeSeqStat"], ended["SuccStat"]) == (4, 0)
    states = [
        p["ConnectorStatusInfo"]["Status"] for p in platform.pushes("notification_stationStatus")
    ]
    assert states == [1, 2, 3, 2]  # Available, Preparing, Charging, Finishing
    (info,) = platform.pushes("notification_charge_order_info")
    bill = Bill.objects.get(pk=bill.pk)
    assert (info["TotalPower"], bill.fault_codes) == (5.0, [])
    assert info["TotalMoney"] == float(bill.total)
    assert (info["TotalElecMoney"], info["TotalSeviceMoney"]) == (
        float(bill.electricity_fee), float(bill.service_fee),
    )  # fmt: skip
    assert sum(d["DetailPower"] for d in info["ChargeDetails"]) == 5.0
    # Delivered once: nothing is due any more, a second run sends nothing.
    assert pushes_deliver_due() == {}
    assert not Push.objects.filter(interconnection=link).exclude(state=PushState.DELIVERED)


def sim_starts(pile) -> int:
    return Frame.objects.filter(
        pile_code=pile.code, action="RemoteStartTransaction", direction="out"
    ).count()
