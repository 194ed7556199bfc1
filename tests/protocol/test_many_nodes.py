"""Many nodes: two gateway processes behind a balancer and two Celery workers, piles
charging in a closed loop. One gateway is killed (-9): its piles reconnect through the
balancer to the other, replay what was never answered, remote commands still reach every
pile (the registry in Redis routes them), every answered stop is billed once, and the dead
node's registry entries expire."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis
from django.conf import settings
from ocpp.v16 import call
from websockets.exceptions import WebSocketException

from billing.models import Bill, ChargingSession
from billing.tasks import sessions_settle_pending_task
from protocol import routing
from protocol.services import send_command
from protocol.simulator import connected, iso

from . import world
from .conftest import ROOT, GatewayProcess, database_url, free_port, wait_for
from .test_never_lose import TcpProxy

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]
PILES = 4


class Balancer:
    """A TCP balancer (as haproxy/nginx would be): each connection goes to the next
    backend in turn that accepts it, so a dead backend's piles land on the live one."""

    def __init__(self, backends: list[int]):
        self.port = free_port()
        self._turn = itertools.cycle(range(len(backends)))
        self.backends = backends
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _addr = self._server.accept()
            except OSError:
                return
            first = next(self._turn)
            for i in range(len(self.backends)):
                port = self.backends[(first + i) % len(self.backends)]
                try:
                    upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                except OSError:
                    continue
                upstream.settimeout(None)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=TcpProxy._pipe, args=(a, b), daemon=True).start()
                break
            else:
                client.close()

    def close(self) -> None:
        self._server.close()


async def pile_life(url, pile, token, answered: list[int], done: asyncio.Event) -> None:
    """Charge, stop, charge again… until ``done``. A call the connection died under stays
    queued and is sent again first after reconnecting, as a pile does."""
    unanswered, tx, meter = None, None, 0
    while True:
        try:
            async with connected(url, pile.code, pile.password) as sim:
                sim._response_timeout = 10
                await sim.boot()
                while True:
                    if unanswered is None:
                        meter += 1000
                        now = iso(dt.datetime.now(dt.UTC))
                        if tx is None:
                            if done.is_set():
                                return
                            unanswered = call.StartTransaction(
                                connector_id=1, id_tag=token, meter_start=meter, timestamp=now
                            )
                        else:
                            unanswered = call.StopTransaction(
                                meter_stop=meter, timestamp=now, transaction_id=tx, reason="Local"
                            )
                    result = await sim.call(unanswered)
                    if isinstance(unanswered, call.StartTransaction):
                        tx = result.transaction_id
                    else:
                        answered.append(tx)
                        tx = None
                    unanswered = None
        except (OSError, TimeoutError, WebSocketException):
            await asyncio.sleep(0.3)  # the node is gone: reconnect (through the balancer)


def trigger_every_pile(piles) -> list[str]:
    return [
        send_command(
            pile=p.code, action="TriggerMessage", payload={"requestedMessage": "Heartbeat"}
        )["status"]
        for p in piles
    ]


def owners(client: redis.Redis, piles) -> list[str | None]:
    return [
        (routing.parse_owner(client.get(routing.pile_key(p.code))) or (None,))[0] for p in piles
    ]


@pytest.fixture
def workers():
    """Two Celery workers on a queue of this test's own."""
    queue = f"test-many-nodes-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_TASK_DEFAULT_QUEUE": queue}
    command = [sys.executable, "-m", "celery", "-A", "chargenet", "worker", "--pool", "solo",
               "-Q", queue, "-l", "WARNING"]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*command, "-n", f"{queue}-{n}@%h"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(2)
    ]
    yield queue
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(30)


def test_a_killed_gateways_piles_move_to_the_other_and_nothing_is_lost(workers):
    station = world.station()
    piles = [world.pile(station) for _ in range(PILES)]
    tokens = [world.member(station.operator).token for _ in piles]
    env = {"CELERY_TASK_DEFAULT_QUEUE": workers, "GATEWAY_MAX_CALLS_PER_MINUTE": "100000"}
    first = GatewayProcess(node=f"gw-m1-{uuid.uuid4().hex[:6]}", env=env).start()
    second = GatewayProcess(node=f"gw-m2-{uuid.uuid4().hex[:6]}", env=env).start()
    balancer = Balancer([first.port, second.port])
    client = redis.Redis.from_url(settings.REDIS_URL)
    answered: list[int] = []

    async def play():
        done = asyncio.Event()
        lives = [
            asyncio.create_task(
                pile_life(f"ws://127.0.0.1:{balancer.port}/ocpp", p, t, answered, done)
            )
            for p, t in zip(piles, tokens, strict=True)
        ]
        await wait_async(lambda: len(answered) >= PILES)
        before = owners(client, piles)
        assert set(before) == {first.node, second.node}  # both nodes hold piles
        assert await asyncio.to_thread(trigger_every_pile, piles) == ["Accepted"] * PILES
        await asyncio.to_thread(first.kill)
        moved = len(answered)
        await wait_async(lambda: owners(client, piles) == [second.node] * PILES, timeout=60)
        await wait_async(lambda: len(answered) >= moved + PILES, timeout=60)
        assert await asyncio.to_thread(trigger_every_pile, piles) == ["Accepted"] * PILES
        done.set()
        await asyncio.wait_for(asyncio.gather(*lives), 60)
        return before

    try:
        before = asyncio.run(play())
    finally:
        balancer.close()
        first.kill()
        second.stop()
    # Every stop a pile got an answer for closed its session once, and is billed once.
    stopped = ChargingSession.objects.filter(pile__in=piles, stop_received_at__isnull=False)
    assert sorted(stopped.values_list("pk", flat=True)) == sorted(answered)
    assert len(set(answered)) == len(answered)
    # A stop answered in the instant before the kill may have had its settlement's send
    # die with the process (sends follow the answers: chargenet.celery.TasksSender); the
    # beat's settle sweep settles those, run here through the workers as beat would.
    sweeps = []

    def billed() -> bool:
        if Bill.objects.filter(session_id__in=answered).count() == len(answered):
            return True
        if not sweeps or time.monotonic() - sweeps[-1] > 5:
            sweeps.append(time.monotonic())
            sessions_settle_pending_task.apply_async(queue=workers)
        return False

    wait_for(billed, timeout=120)
    # The dead node's registry entries: none of its piles, its liveness gone.
    assert first.node in before
    assert first.node not in owners(client, piles)
    wait_for(lambda: not client.exists(routing.alive_key(first.node)),
             timeout=routing.ALIVE_TTL + 5)  # fmt: skip
    # Its command list is gone (-2) or expiring (0 in its last second), never kept (-1):
    # one read, not exists() then ttl(), between which it may expire.
    ttl = client.ttl(routing.command_key(first.node))
    assert ttl == -2 or 0 <= ttl <= routing.COMMAND_TTL


def test_registry_entries_expire_with_their_node(own_gateway):
    """A pile key is refreshed by the node holding the pile; once the node is gone (and
    the pile does not come back) the entry goes within PILE_TTL."""
    pile = world.pile()
    gw = own_gateway()
    client = redis.Redis.from_url(settings.REDIS_URL)

    async def play():
        async with connected(gw.url, pile.code, pile.password) as sim:
            await sim.boot()
            assert 0 < client.ttl(routing.pile_key(pile.code)) <= routing.PILE_TTL
            await asyncio.to_thread(gw.kill)

    asyncio.run(play())
    assert client.get(routing.pile_key(pile.code)).decode().startswith(f"{gw.node}|")
    assert 0 < client.ttl(routing.pile_key(pile.code)) <= routing.PILE_TTL


async def wait_async(predicate, *, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.1)
