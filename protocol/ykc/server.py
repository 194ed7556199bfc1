"""The YKC gateway process: a TCP server of YKC piles on the OCPP gateway's machinery.

`YkcGateway` is a `protocol.gateway.server.Gateway` with another transport: the pile
registry in Redis (so remote intents reach the node holding the pile, and a pile that
reconnects to another node replaces its old connection there), the command listener,
last-seen batches, the offline sweep and the frame journal are the same code; only the
server (plain TCP instead of WebSocket) and the connection (`YkcConnection`) differ.
YKC piles log in with a frame (0x01), not at a handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import sys
import uuid

import redis.asyncio as aioredis
from django.conf import settings
from django.utils import timezone

from stations.services import live

from .. import routing
from ..db import DatabaseUnavailable
from ..gateway.server import Gateway
from ..journal import JournalWriter
from .connection import YkcConnection

logger = logging.getLogger("protocol.ykc")

PORT = 27600
HEARTBEAT_SECONDS = 10  # piles heartbeat every 10 s (spec §6.3)
MISSED_HEARTBEATS = 3  # three missed: the link is down, the pile must log in again
# A pile's last-seen time is written at most this often: this gateway itself notices a
# silent pile (`_silence_loop`); the database's time only backs the global offline sweep.
SEEN_WRITE_SECONDS = 30.0
SHUTDOWN_SECONDS = 10.0  # how long connections get to unregister when the node stops


class YkcGateway(Gateway):
    def __init__(
        self,
        *,
        host: str,
        port: int = PORT,
        node: str | None = None,
        reuse_port: bool = False,
        idle_timeout: float = HEARTBEAT_SECONDS * MISSED_HEARTBEATS,
    ):
        node = node or f"ykc-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        super().__init__(host=host, port=port, node=node, reuse_port=reuse_port)
        self.idle_timeout = idle_timeout
        self.anonymous: set[YkcConnection] = set()  # connected, not logged in yet
        self.seen_write_seconds = SEEN_WRITE_SECONDS
        # Piles silent past ``idle_timeout`` (pile id → time of their last frame), taken
        # offline by the next last-seen flush; and piles whose link ended otherwise (pile id
        # → loop time of their last frame), offline once that is ``idle_timeout`` ago.
        self._silent: dict[int, dt.datetime] = {}
        self._departed: dict[int, float] = {}
        self._flush_lock = asyncio.Lock()
        self._handlers: set[asyncio.Task] = set()  # one per open TCP connection

    async def handle_pile(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        task = asyncio.current_task()
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            # Only at shutdown. Python 3.11's stream server asks a finished handler for its
            # exception(), which raises (and logs a traceback) for a cancelled one: end
            # quietly instead.
            pass
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        conn = YkcConnection(reader=reader, writer=writer, gateway=self)
        self.anonymous.add(conn)  # silent before logging in: closed as well
        try:
            await conn.start()
        except DatabaseUnavailable:
            conn.close("database unavailable")
        finally:
            self.anonymous.discard(conn)
            conn.close(conn._connection.close_code or "closed")
            if conn.registered:
                if not conn.went_silent and self.connections.get(conn.code) is conn:
                    heard = conn.heard_at
                    self._departed[conn.pile_id] = min(heard, asyncio.get_running_loop().time())
                await self._unregister(conn)
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _silence_loop(self) -> None:
        """Close the links of piles silent for ``idle_timeout`` (3 missed heartbeats): one
        pass over the connections a second instead of a timer on every read."""
        loop = asyncio.get_running_loop()
        every = min(1.0, self.idle_timeout / 4)
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            deadline = now - self.idle_timeout
            for conn in list(self.connections.values()) + list(self.anonymous):
                if conn.heard_at < deadline and not conn.closing:
                    conn.close(f"silent for {self.idle_timeout:g} s (heartbeats missed)")
                    if conn.registered:
                        conn.went_silent = True
                        self._went_silent(conn.pile_id, conn.heard_at, now)
            for pile_id, heard_at in list(self._departed.items()):
                if heard_at < deadline:
                    del self._departed[pile_id]
                    self._went_silent(pile_id, heard_at, now)
            if self._silent:
                self._spawn(self.flush_seen())

    def _went_silent(self, pile_id: int, heard_at: float, now: float) -> None:
        """Three heartbeats missed: the pile goes offline at once (`live.piles_went_silent`,
        the offline sweep's path), not when the global sweep comes by."""
        self._seen.pop(pile_id, None)
        self._heartbeats.pop(pile_id, None)
        self._silent[pile_id] = timezone.now() - dt.timedelta(seconds=now - heard_at)

    async def _register(self, conn) -> None:
        self._silent.pop(conn.pile_id, None)  # back before its offline was written
        self._departed.pop(conn.pile_id, None)
        await super()._register(conn)

    async def flush_seen(self) -> None:
        # One flush at a time: a pile's last sighting is written before it goes offline.
        async with self._flush_lock:
            await super().flush_seen()
            if not self._silent:
                return
            silent, self._silent = self._silent, {}
            try:
                await self.db.run_alone(live.piles_went_silent, silent=silent)
            except Exception as exc:
                logger.warning("offline piles not written: %s", exc)
                for pile_id, at in silent.items():
                    self._silent.setdefault(pile_id, at)

    async def run(self, ready: asyncio.Event | None = None) -> None:
        sys.setswitchinterval(settings.GATEWAY_SWITCH_INTERVAL)
        loop = asyncio.get_running_loop()
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=32, timeout=None
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.journal = JournalWriter(self.db, node=self.node)
        self.journal.start()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self._tasks = [
            asyncio.create_task(self._alive_loop()),
            asyncio.create_task(self._command_loop()),
            asyncio.create_task(self._flush_seen_loop()),
            asyncio.create_task(self._sweep_loop()),
            asyncio.create_task(self._silence_loop()),
        ]
        server = await asyncio.start_server(
            self.handle_pile, self.host, self.port, reuse_port=self.reuse_port or None, backlog=4096
        )
        async with server:
            sockets = ", ".join(str(s.getsockname()) for s in server.sockets)
            logger.info("YKC gateway %s listening on %s", self.node, sockets)
            print(f"ykc gateway {self.node} listening on {sockets}", flush=True)
            if ready is not None:
                ready.set()
            await stop.wait()
            self.stopping = True
            logger.info("YKC gateway %s stopping", self.node)
            for conn in list(self.connections.values()) + list(self.anonymous):
                conn.close("gateway stopping")
            # Let every connection unregister (Redis) and journal its end before the
            # background tasks stop and the loop cancels what is left.
            if self._handlers:
                await asyncio.wait(set(self._handlers), timeout=SHUTDOWN_SECONDS)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush_seen()
        await self.journal.close()
        with contextlib.suppress(Exception):
            await self.redis.delete(routing.alive_key(self.node))
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        self.db.shutdown()
