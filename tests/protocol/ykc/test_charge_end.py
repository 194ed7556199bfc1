"""The end of a YKC charge through a real `runykc` process: the charge end (0x19) moves
the connector to finishing while the session waits for its record (0x3B, which alone
makes the bill); a remote start whose answer (0x33) comes after the intent gave up still
opens its session when the pile says it started."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from billing.models import Bill, ChargingSession, SessionState
from protocol import intents
from protocol.adapters import Outcome
from protocol.models import Frame
from protocol.ykc import codec, simulator
from protocol.ykc.simulator import YkcPile, parse_url
from stations.models import Connector, ConnectorState

from ..conftest import wait_for
from .conftest import card, ykc_pile

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


def charge_end(yp: YkcPile, gun: int) -> codec.ChargeEnd:
    return codec.ChargeEnd(
        serial=yp.charges[gun]["serial"], pile_code=yp.code, gun=gun, soc=100,
        cell_min_voltage=Decimal("3.90"), cell_max_voltage=Decimal("4.10"),
        battery_min_temperature=25, battery_max_temperature=31, charging_minutes=42,
        output_energy=Decimal("3.0"), charger_number=1,
    )  # fmt: skip


def test_a_charge_end_shows_the_connector_finishing_and_the_record_makes_the_bill(ykc):
    pile = ykc_pile()
    number = card(pile).number

    async def play():
        async with simulator.connected(*parse_url(ykc.url), pile.code) as yp:
            await yp.start_by_card(1, number)
            await yp.meter(1, add_kwh=Decimal("3.0"))
            await yp.send(charge_end(yp, 1))
            await yp.heartbeat(1)  # answered after the 0x19 was taken
            session = await asyncio.to_thread(ChargingSession.objects.get, pile=pile)
            connector = await asyncio.to_thread(Connector.objects.get, pile=pile, number=1)
            billed = await asyncio.to_thread(Bill.objects.filter(session=session).count)
            ended = (session.state, connector.status, billed)
            await yp.stop(1)
            return ended

    state, status, billed = asyncio.run(play())
    # Ended, not billed: only the record (0x3B) closes the session and makes the bill.
    assert (state, status, billed) == (SessionState.CHARGING, ConnectorState.FINISHING, 0)
    frame = Frame.objects.get(pile_code=pile.code, action="0x19 ChargeEnd")
    session = ChargingSession.objects.get(pile=pile)
    assert frame.order_no == session.order_no and frame.error_code == ""
    assert (session.state, session.meter_stop_wh) == (SessionState.STOPPED, Decimal(3000))


class SlowToAnswerPile(YkcPile):
    """Starts charging at once, but its answer to the remote start comes late."""

    answer_after = 3.0

    async def on_RemoteStart(self, body: codec.RemoteStart):
        answer = await super().on_RemoteStart(body)
        await asyncio.sleep(self.answer_after)
        return answer


def test_a_late_remote_start_answer_still_opens_the_session(ykc):
    pile = ykc_pile()
    number = card(pile).number
    connector = pile.connectors.get()

    async def play():
        slow = SlowToAnswerPile(pile.code)
        async with simulator.connected(*parse_url(ykc.url), pile.code, pile=slow) as yp:
            started = await asyncio.to_thread(
                intents.connector_start, connector=connector, credential_value=number,
                credential_kind="card", timeout=1.5,
            )  # fmt: skip
            remote = await yp.remote_starts.get()
            yp.begin(1, remote.serial, card=remote.physical_card)
            session = await asyncio.to_thread(
                wait_for, lambda: ChargingSession.objects.filter(pile=pile).first()
            )
            await yp.meter(1, add_kwh=Decimal(2))
            await yp.stop(1)
            return started, remote, session

    started, remote, opened = asyncio.run(play())
    assert started.outcome == Outcome.TIMEOUT
    assert opened.protocol_ref == remote.serial
    late = Frame.objects.get(pile_code=pile.code, action="0x33 RemoteStartAnswer")
    assert (late.error_code, late.payload["result"]) == ("Late", 1)
    session = ChargingSession.objects.get(pile=pile)
    assert (session.state, session.meter_stop_wh) == (SessionState.STOPPED, Decimal(2000))
