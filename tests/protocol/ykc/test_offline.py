"""Three missed heartbeats take a YKC pile offline at once (the offline sweep's path:
fault record from the last frame, ``pile.offline`` event, connectors shown offline), over
a real `runykc` process with a heartbeat allowance shortened to 1.5 s; the global sweep
(180 s) is not what does it."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from django.utils import timezone

from chargenet.models import OutboxEvent
from protocol.ykc import simulator
from protocol.ykc.simulator import parse_url
from stations.events import PILE_OFFLINE
from stations.models import Connector, Pile, PileFault
from stations.public import DriverState, connector_driver_state

from ..conftest import wait_for
from .conftest import ykc_pile

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


def offline(pile: Pile) -> PileFault | None:
    return PileFault.objects.filter(pile=pile, kind=PileFault.Kind.OFFLINE).first()


def test_a_silent_pile_goes_offline_after_three_missed_heartbeats(own_ykc):
    gateway = own_ykc(idle_timeout=1.5)
    pile = ykc_pile()

    async def play():
        async with simulator.connected(*parse_url(gateway.url), pile.code) as yp:
            last = await heartbeats_until(yp, lambda: Pile.objects.get(pk=pile.pk).is_online)
            await asyncio.wait_for(yp._task, 10)  # silent: closed by the platform
            return last

    last_frame = asyncio.run(play())
    fault = wait_for(lambda: offline(pile), timeout=10)
    pile.refresh_from_db()
    assert pile.is_online is False
    assert fault.ended_at is None
    # The fault starts at the pile's last frame (the heartbeat's answer came before it).
    assert abs(fault.started_at - last_frame) < dt.timedelta(seconds=1)
    assert pile.last_heartbeat_at == fault.started_at
    event = OutboxEvent.objects.get(kind=PILE_OFFLINE, key=str(pile.pk))
    assert event.payload["pile_id"] == pile.pk
    assert event.payload["station_id"] == pile.station_id
    connector = Connector.objects.get(pile=pile, number=1)
    assert connector_driver_state(status=connector.status, pile_online=pile.is_online) == (
        DriverState.OFFLINE
    )


def test_a_pile_whose_link_dropped_goes_offline_once_its_heartbeats_are_missed(own_ykc):
    gateway = own_ykc(idle_timeout=1.5)
    pile = ykc_pile()

    async def play():
        async with simulator.connected(*parse_url(gateway.url), pile.code) as yp:
            await yp.heartbeat(1)
        # the TCP link is gone: nothing to be silent on, the heartbeats are still missed

    asyncio.run(play())
    assert wait_for(lambda: offline(pile), timeout=10) is not None
    assert Pile.objects.get(pk=pile.pk).is_online is False
    assert OutboxEvent.objects.filter(kind=PILE_OFFLINE, key=str(pile.pk)).count() == 1


def test_a_pile_back_within_its_allowance_stays_online_and_back_later_is_online_again(own_ykc):
    gateway = own_ykc(idle_timeout=1.5)
    pile = ykc_pile()
    host_port = parse_url(gateway.url)

    async def reconnect_quickly():
        async with simulator.connected(*host_port, pile.code) as yp:
            await yp.heartbeat(1)
        async with simulator.connected(*host_port, pile.code) as yp:
            for _ in range(4):  # heartbeats keep it online past the allowance
                await asyncio.sleep(0.5)
                await yp.heartbeat(1)

    asyncio.run(reconnect_quickly())
    assert offline(pile) is None
    assert wait_for(lambda: offline(pile), timeout=10) is not None  # now silent for good

    fault = offline(pile)

    async def back():
        async with simulator.connected(*host_port, pile.code) as yp:
            # a last-seen flush a moment after it connects marks it online
            await heartbeats_until(yp, lambda: PileFault.objects.get(pk=fault.pk).ended_at)

    asyncio.run(back())
    fault.refresh_from_db()
    assert fault.ended_at is not None


async def heartbeats_until(yp, shown, *, timeout: float = 20.0) -> dt.datetime:
    """Heartbeat every 0.3 s, well within the 1.5 s allowance, until ``shown()`` is true
    (the platform writes what it shows in a background flush, later on a slow machine);
    returns the time of the last heartbeat."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await yp.heartbeat(1)
        last = timezone.now()
        if await asyncio.to_thread(shown):
            return last
        assert asyncio.get_running_loop().time() < deadline, "not shown in time"
        await asyncio.sleep(0.3)
