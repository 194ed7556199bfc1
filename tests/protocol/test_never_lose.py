"""Never lose, never double: a gateway killed between a StopTransaction and its answer,
and a database that goes away and comes back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from decimal import Decimal

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection

from billing.models import ChargingSession, MeterSample, SessionTransition
from protocol import routing
from protocol.models import Frame, MessageType
from protocol.services import CommandTimeout, send_command
from protocol.simulator import connected

from . import world
from .conftest import GatewayProcess, database_url, free_port, wait_for

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


async def _wait_until_blocked_on_lock(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as probe:
        for _ in range(200):
            cursor = await probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            if (await cursor.fetchone())[0]:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the gateway never blocked on the session row")


def test_gateway_killed_between_stop_and_its_answer_then_replayed(own_gateway):
    pile = world.pile()
    member = world.member(pile.station.operator)
    first = own_gateway()
    dsn = database_url()

    async def play():
        async with connected(first.url, pile.code, pile.password) as sim:
            sim._response_timeout = 3
            tx = (await sim.start_tx(1, member.token)).transaction_id
            await sim.meter(1, add_wh=4000)
            stop = sim.stop_payload(1)
            # Hold the session row so the gateway's stop is in flight, not committed.
            async with await psycopg.AsyncConnection.connect(dsn) as lock:
                await lock.execute(
                    "SELECT id FROM billing_chargingsession WHERE id = %s FOR UPDATE", [tx]
                )
                pending = asyncio.create_task(sim.call(stop))
                await _wait_until_blocked_on_lock(dsn)
                await asyncio.to_thread(first.kill)
                with pytest.raises(TimeoutError):
                    await pending  # the pile never got an answer
                await lock.rollback()
        second = await asyncio.to_thread(own_gateway)
        async with connected(second.url, pile.code, pile.password) as again:
            await again.boot()
            answer = await again.call(stop)  # the pile replays its queued stop
            return tx, answer, sim.meter_wh

    tx, answer, meter_wh = asyncio.run(play())
    assert answer.id_tag_info is None
    session = ChargingSession.objects.get(pk=tx)
    assert (session.state, session.meter_stop_wh) == ("stopped", Decimal(meter_wh))
    assert SessionTransition.objects.filter(session=session, to_state="stopped").count() == 1
    replayed = Frame.objects.filter(order_no=session.order_no, action="StopTransaction")
    assert sorted(replayed.values_list("direction", flat=True)) == ["in", "out"]


class TcpProxy:
    """A TCP forwarder to PostgreSQL that the test can cut and restore."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self.open = threading.Event()
        self.open.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _addr = self._server.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open.clear()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns = []

    def restore(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.cut()
        self._server.close()


def test_database_outage_leaves_transactions_unanswered_then_serves_again(own_gateway):
    pile = world.pile()
    member = world.member(pile.station.operator)
    s = connection.settings_dict
    proxy = TcpProxy((s.get("HOST") or "127.0.0.1", int(s.get("PORT") or 5432)))
    via_proxy = database_url().replace(
        f"@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/", f"@127.0.0.1:{proxy.port}/"
    )
    gw = own_gateway(DATABASE_URL=via_proxy, DB_CONNECT_TIMEOUT="2")

    async def play():
        async with connected(gw.url, pile.code, pile.password) as sim:
            tx = (await sim.start_tx(1, member.token)).transaction_id
            sim.meter_wh += 2500
            values = sim.meter_payload(1, tx)
            proxy.cut()
            sim._response_timeout = 4
            with pytest.raises(TimeoutError):
                await sim.call(values)  # not committed, so not answered
            beat = await sim.heartbeat()  # the gateway itself keeps serving
            proxy.restore()
            sim._response_timeout = 30
            await sim.call(values)  # the pile retries: answered now, stored once
            await sim.call(values)
            await sim.stop_tx(1)
            # The frames kept while the database was away are written now it is back.
            unanswered = Frame.objects.filter(
                pile_code=pile.code, action="MeterValues", error_code="NotAnswered"
            )
            await asyncio.to_thread(wait_for, unanswered.exists)
            return tx, beat

    try:
        tx, beat = asyncio.run(play())
    finally:
        proxy.close()
    assert beat.current_time.endswith("Z")
    assert MeterSample.objects.filter(session_id=tx).count() == 1
    assert ChargingSession.objects.get(pk=tx).state == "stopped"
    unanswered = wait_for(
        lambda: Frame.objects.filter(
            pile_code=pile.code, action="MeterValues", error_code="NotAnswered"
        ).count()
    )
    assert unanswered == 1


async def connected_then_killed(gateway: GatewayProcess, pile) -> None:
    """The pile boots on ``gateway``, which is then killed (SIGKILL) with the pile on it."""
    async with connected(gateway.url, pile.code, pile.password) as sim:
        await sim.boot()
        # Connection events are journaled in the next batch, not awaited: let it come.
        await asyncio.to_thread(
            wait_for, Frame.objects.filter(pile_code=pile.code, action="connected").exists
        )
        await asyncio.to_thread(gateway.kill)


def test_a_killed_gateway_is_journaled_gone_and_its_command_list_expires(own_gateway):
    pile = world.pile()
    first, second = own_gateway(), own_gateway()
    client = redis.Redis.from_url(settings.REDIS_URL)
    commands = routing.command_key(first.node)

    async def play():
        await connected_then_killed(first, pile)
        # Until its liveness expires the dead node still looks alive: a command is pushed
        # onto its list, which nobody reads any more.
        with pytest.raises(CommandTimeout):
            await asyncio.to_thread(
                send_command, pile=pile, action="Reset", payload={"type": "Soft"}, timeout=0.2
            )
        client.delete(routing.alive_key(first.node))  # as ALIVE_TTL later
        async with connected(second.url, pile.code, pile.password) as again:
            await again.boot()

    asyncio.run(play())
    assert 0 < client.ttl(commands) <= routing.COMMAND_TTL
    assert client.llen(commands) == 1  # the command; no kick for a node that is gone
    events = wait_for(
        lambda: (
            rows
            if len(
                rows := list(
                    Frame.objects.filter(pile_code=pile.code, message_type=MessageType.EVENT)
                    .order_by("at", "pk")
                    .values_list("action", "node", "raw")
                )
            )
            == 4
            else None
        )
    )
    assert [row[:2] for row in events] == [
        ("connected", first.node),
        ("disconnected", first.node),
        ("connected", second.node),
        ("disconnected", second.node),
    ]
    assert events[1][2] == f"node {first.node} gone"


def test_a_pile_back_before_the_dead_node_expired_still_gets_its_disconnect(own_gateway):
    pile = world.pile()
    first, second = own_gateway(), own_gateway()

    async def play():
        await connected_then_killed(first, pile)
        # Back at once: the dead node still looks alive, so it is sent a kick it never reads.
        async with connected(second.url, pile.code, pile.password) as again:
            await again.boot()
            events = Frame.objects.filter(pile_code=pile.code, action="disconnected")
            return await asyncio.to_thread(
                wait_for,
                lambda: list(events.values_list("node", "raw")),
                timeout=routing.ALIVE_TTL + 10,
            )

    assert asyncio.run(play()) == [(first.node, f"node {first.node} gone")]
