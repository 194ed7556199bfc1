"""One scenario matrix over both pile protocols: the same charges (same energy, same
times) through real sockets to `rungateway` (OCPP 1.6J) and `runykc` (YKC 1.6) make the
same bills, to the fen."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import ChargingSession
from billing.services.settlement import bill_settle
from protocol import intents
from protocol import simulator as ocpp
from protocol.ykc import simulator as ykc_sim
from tests.billing.factories import tariffed_station

from .. import world
from ..conftest import wait_for
from .conftest import card, ykc_pile

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]

# DC peak: 1.05 electricity + 0.80 service per kWh; amounts truncated to the fen.
CASES = {
    # scenario: (energy Wh, electricity fee, service fee, total)
    "normal": ("4500", "4.72", "3.60", "8.32"),
    "full-then-app-stop": ("5500", "5.77", "4.40", "10.17"),
    "offline-mid-session": ("5000", "5.25", "4.00", "9.25"),
    "duplicate-stop": ("2500", "2.62", "2.00", "4.62"),
}
YKC_NAMES = {"duplicate-stop": "duplicate-record"}


def _station():
    """A station whose tariff is peak for 1.5 h either side of now, flat otherwise: a
    charge of a few seconds never crosses a period, whichever protocol carries it."""
    now = timezone.localtime(timezone.now(), dt.timezone(dt.timedelta(hours=8)))
    slot = now.hour * 2 + now.minute // 30
    peak = {(slot + k) % 48 for k in range(-3, 4)}
    schedule = "".join("1" if n in peak else "2" for n in range(48))
    return tariffed_station(schedule=schedule)


async def _stopping(play, session_of, *, stop: bool):
    """Play a scenario; for the app-stop one, stop its session from the app once the car
    is full (the pile reported its last sample)."""
    task = asyncio.create_task(play)
    if stop:
        session = await asyncio.to_thread(
            wait_for, lambda: session_of().filter(samples__soc=100).first(), timeout=20
        )
        result = await asyncio.to_thread(intents.session_stop_remote, session=session, timeout=10)
        assert result.outcome == "accepted"
    return await task


def _ocpp(gateway, scenario: str):
    pile = world.pile(_station())
    id_tag = world.member(pile.station.operator).token
    play = ocpp.SCENARIOS[scenario](gateway.url, pile.code, pile.password, id_tag)
    sessions = lambda: ChargingSession.objects.filter(pile=pile)  # noqa: E731
    asyncio.run(_stopping(play, sessions, stop=scenario == "full-then-app-stop"))
    return pile


def _ykc(ykc, scenario: str):
    pile = ykc_pile(_station())
    play = ykc_sim.SCENARIOS[YKC_NAMES.get(scenario, scenario)](
        ykc.url, pile.code, card(pile).number
    )
    sessions = lambda: ChargingSession.objects.filter(pile=pile)  # noqa: E731
    asyncio.run(_stopping(play, sessions, stop=scenario == "full-then-app-stop"))
    return pile


@pytest.mark.parametrize("protocol", ["ocpp", "ykc"])
@pytest.mark.parametrize("scenario", list(CASES))
def test_the_same_charge_makes_the_same_bill_over_both_protocols(gateway, ykc, protocol, scenario):
    pile = _ocpp(gateway, scenario) if protocol == "ocpp" else _ykc(ykc, scenario)
    [session] = ChargingSession.objects.filter(pile=pile)
    assert session.state == "stopped"
    bill = bill_settle(session_id=session.pk)
    energy, electricity, service, total = map(Decimal, CASES[scenario])
    assert (bill.energy_wh, bill.electricity_fee, bill.service_fee, bill.total) == (
        energy, electricity, service, total,
    )  # fmt: skip
    assert list(bill.lines.values_list("period", "energy_wh", "electricity_price")) == [
        (1, energy, Decimal("1.05000")),
    ]
