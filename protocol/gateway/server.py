"""The gateway process: WebSocket server, pile registry, command listener, background
writers (journal, last-seen batches, offline sweep).

Security profile 1 (HTTP Basic) is checked here at the handshake. Profile 2 (TLS) is
terminated in front of the gateway by a reverse proxy (nginx/HAProxy/a cloud load
balancer) that forwards ``wss://…/ocpp/<code>`` as plain ``ws://`` to ``rungateway`` on a
private address, passing the ``Authorization`` header and WebSocket upgrade through
(nginx: ``proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade;
proxy_set_header Connection "upgrade"; proxy_read_timeout 3600s;``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import http
import json
import logging
import os
import re
import signal
import socket
import sys
import uuid
from collections import deque

import redis.asyncio as aioredis
from django.conf import settings
from django.utils import timezone
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from stations.services import credentials as pile_credentials
from stations.services import live

from .. import routing
from ..db import DatabaseUnavailable, DbRunner
from ..journal import JournalWriter
from ..models import Direction, MessageType
from . import throttle
from .connection import PileConnection
from .refusals import RefusalLimiter

# How long after a pile connects its online state is written (see `_flush_seen_loop`).
CONNECTED_FLUSH_DELAY = 0.3
logger = logging.getLogger("protocol.gateway")

PATH_RE = re.compile(r"^/ocpp/([^/?#]{1,64})/?(?:\?.*)?$")
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, _sep, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


class Gateway:
    def __init__(self, *, host: str, port: int, node: str | None = None, reuse_port=False):
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self.node = node or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        self.db = DbRunner(settings.GATEWAY_DB_THREADS, groups=settings.GATEWAY_DB_GROUPS)
        self.journal: JournalWriter | None = None
        self.redis: aioredis.Redis | None = None
        self.connections: dict[str, PileConnection] = {}
        # Pile code → arrival times of its frames in the last minute (the flood limit).
        self._frame_windows: dict[str, deque[float]] = {}
        # Pile code → the stored credential it was last admitted with (see process_request).
        self.known_credentials: dict[str, str] = {}
        self.stopping = False
        self._seen: dict[int, object] = {}
        self._connected = asyncio.Event()  # a pile connected since the last flush
        # Write a pile's last-seen time at most this often (0: every batch). Piles that
        # heartbeat far more often than the offline sweep needs (YKC: every 10 s) would
        # otherwise rewrite thousands of pile rows a second.
        self.seen_write_seconds = 0.0
        self._seen_written: dict[int, float] = {}
        self._last_sample: dict[int, float] = {}
        self._heartbeats: dict[int, tuple[object, str]] = {}
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self.refusals = RefusalLimiter(settings.GATEWAY_REFUSED_JOURNAL_PER_MINUTE)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- handshake --------------------------------------------------------------------

    async def process_request(self, connection: ServerConnection, request: Request):
        match = PATH_RE.match(request.path)
        if not match:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Use /ocpp/<pile code>\n")
        code = match.group(1)
        peer = throttle.peer_address(connection, request)
        credentials = _basic_credentials(request)
        password = credentials[1] if credentials else None
        # Throttled before any database work: a guessing peer costs one Redis round trip.
        # A pile this node has admitted before, presenting that same credential, still
        # gets in (one HMAC, no database): strangers guessing at its code or sharing its
        # address (NAT, an APN) cannot lock it out.
        if await throttle.login_throttled(
            self.redis, code=code, peer=peer
        ) and not self._known_credential(code, password):
            logger.warning("throttled pile %r from %s", code, peer)
            response = connection.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "Try again later\n")
            response.headers["Retry-After"] = str(settings.GATEWAY_LOGIN_FAILURE_WINDOW)
            return response
        try:
            if credentials is not None and credentials[0] != code:
                login = live.PileLogin(None, "user name is not the pile code")
            else:
                login = await self.db.run(live.pile_login, code=code, password=password)
            if login.legacy is not None:
                login = await self._login_legacy(login.legacy, password)
        except DatabaseUnavailable:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "Try again later\n")
        if login.pile is None:
            await throttle.login_failed(self.redis, code=code, peer=peer)
            return self._refuse(connection, code, login.reason)
        self.known_credentials[code] = login.pile.credential_hash
        connection.pile = login.pile
        return None

    def frame_window(self, code: str) -> deque[float]:
        """The flood limit's window of a pile, kept across its connections to this node:
        a pile that floods, is closed and reconnects carries on where it was."""
        return self._frame_windows.setdefault(code, deque())

    def _known_credential(self, code: str, password: str | None) -> bool:
        """Whether ``password`` is the credential this node last admitted ``code`` with."""
        stored = self.known_credentials.get(code)
        if stored is None:
            return False
        if not stored:
            return password is None  # a pile without a credential
        return password is not None and pile_credentials.pile_credential_check(
            password=password, encoded=stored
        )

    async def _login_legacy(self, pile, password: str) -> live.PileLogin:
        """A legacy Django password hash: checked once in a thread that is not one of the
        database threads (it costs ~0.4 s of CPU, and hashlib releases the GIL), then
        upgraded to the keyed form so the pile's next login is cheap."""
        legacy = pile.credential_hash
        ok = await asyncio.to_thread(
            pile_credentials.pile_credential_check_legacy, password=password, encoded=legacy
        )
        if not ok:
            return live.PileLogin(None, "wrong password")
        await self.db.run(
            pile_credentials.pile_credential_upgrade,
            pile_id=pile.pk,
            legacy=legacy,
            password=password,
        )
        pile.credential_hash = pile_credentials.pile_credential_encode(password=password)
        return live.PileLogin(pile)

    def _refuse(self, connection: ServerConnection, code: str, reason: str) -> Response:
        peer = connection.remote_address[0] if connection.remote_address else "?"
        if self.refusals.admit(code=code, address=peer):
            logger.warning("refused pile %r from %s: %s", code, peer, reason)
            self.journal.add(
                pile_code=code[:64],
                direction=Direction.IN,
                message_type=MessageType.EVENT,
                action="refused",
                raw=f"{reason} (from {peer})",
                error_code="401",
            )
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="chargenet", charset="UTF-8"'
        return response

    # --- connections ------------------------------------------------------------------

    async def handler(self, websocket: ServerConnection) -> None:
        conn = PileConnection(pile=websocket.pile, websocket=websocket, gateway=self)
        await self._register(conn)
        try:
            await conn.start()
        except DatabaseUnavailable:
            await websocket.close(1011, "database unavailable")
        finally:
            await self._unregister(conn)

    async def _register(self, conn: PileConnection) -> None:
        old = self.connections.get(conn.code)
        self.connections[conn.code] = conn
        if old is not None:
            logger.info("%s: replaced by a new connection", conn.code)
            self._spawn(old._connection.close(1000, "replaced by a new connection"))
        previous = await self.redis.set(
            routing.pile_key(conn.code),
            routing.owner_value(self.node, conn.token),
            get=True,
            ex=routing.PILE_TTL,
        )
        owner = routing.parse_owner(previous)
        if owner is not None and owner[0] != self.node:
            await self._take_over(conn, *owner)
        self._event(conn.code, "connected", f"node {self.node}")
        # Online again: the next last-seen batch (`piles_seen`) marks it online and closes
        # its offline fault; no transaction per connection during a reconnect storm.
        self._seen_written.pop(conn.pile_id, None)
        self.seen(conn.pile_id)
        self._connected.set()

    async def _take_over(self, conn: PileConnection, node: str, token: str) -> None:
        """The pile was held by another node: kick its old connection there, or, when that
        node is gone (killed, its liveness expired), journal the disconnect it never could."""
        if await self.redis.exists(routing.alive_key(node)):
            kick = json.dumps({"kind": "kick", "pile": conn.code, "token": token})
            async with self.redis.pipeline(transaction=False) as pipe:
                routing.command_push(pipe, node, kick)
                await pipe.execute()
            self._spawn(self._check_kick_read(conn.code, node, kick))
            return
        self._event(conn.code, "disconnected", f"node {node} gone", node=node)

    async def _check_kick_read(self, code: str, node: str, kick: str) -> None:
        """A node killed moments ago still looks alive until its key expires, and piles
        reconnect within seconds: once it must have expired, a kick still unread in the
        node's list means the node was gone, so its disconnect is journaled now."""
        await asyncio.sleep(routing.ALIVE_TTL + 1)
        try:
            gone = not await self.redis.exists(routing.alive_key(node))
            unread = gone and await self.redis.lrem(routing.command_key(node), 1, kick)
        except Exception as exc:
            logger.warning("could not check node %s for %s: %s", node, code, exc)
            return
        if unread:
            self._event(code, "disconnected", f"node {node} gone", node=node)

    def _event(self, code: str, action: str, raw: str, **fields) -> None:
        """Journal a connection event of pile ``code``."""
        self.journal.add(
            pile_code=code,
            direction=Direction.IN,
            message_type=MessageType.EVENT,
            action=action,
            raw=raw,
            **fields,
        )

    async def _unregister(self, conn: PileConnection) -> None:
        conn.connection_lost()
        if self.connections.get(conn.code) is conn:
            del self.connections[conn.code]
            try:
                await self.redis.eval(
                    _RELEASE,
                    1,
                    routing.pile_key(conn.code),
                    routing.owner_value(self.node, conn.token),
                )
            except Exception:
                logger.warning("could not release %s in Redis", conn.code)
        self._event(conn.code, "disconnected", f"close code {conn._connection.close_code}")

    # --- last seen --------------------------------------------------------------------

    def seen(self, pile_id: int) -> None:
        self._seen[pile_id] = timezone.now()

    def heartbeat(self, pile_id: int, state: str) -> None:
        self._heartbeats[pile_id] = (timezone.now(), state)

    async def _flush_seen_loop(self) -> None:
        while True:
            # Every GATEWAY_SEEN_FLUSH_SECONDS, or a moment after a pile connects: it is
            # shown online (and its offline fault closed) at once, not up to a period
            # later, when a partner or a driver may already ask to start on it; the
            # moment gathers a reconnect storm into a few batches.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), settings.GATEWAY_SEEN_FLUSH_SECONDS)
                await asyncio.sleep(CONNECTED_FLUSH_DELAY)
            self._connected.clear()
            await self.flush_seen()

    async def flush_seen(self) -> None:
        if not self._seen:
            return
        seen, self._seen = self._seen, {}
        beats, self._heartbeats = self._heartbeats, {}
        now = asyncio.get_running_loop().time()
        if self.seen_write_seconds:
            written, every = self._seen_written, self.seen_write_seconds
            seen = {p: at for p, at in seen.items() if now - written.get(p, -1e9) >= every}
            written.update(dict.fromkeys(seen, now))
        every = settings.GATEWAY_HEARTBEAT_SAMPLE_SECONDS
        samples = []
        # The history samples heartbeats (with the pile state they carried), at most one
        # per pile per sampling period: bounded, whatever the heartbeat interval.
        for pile_id, (at, state) in beats.items():
            if now - self._last_sample.get(pile_id, -1e9) >= every:
                self._last_sample[pile_id] = now
                samples.append((pile_id, at, state))
        try:
            await self.db.run_alone(live.piles_seen, seen=seen, samples=samples)
        except Exception as exc:
            logger.warning("last-seen batch not written: %s", exc)
            for pile_id, at in seen.items():
                self._seen.setdefault(pile_id, at)
                self._seen_written.pop(pile_id, None)

    async def _sweep_loop(self) -> None:
        every = settings.GATEWAY_SWEEP_SECONDS
        if every <= 0:
            return
        while True:
            await asyncio.sleep(every)
            try:
                await self.db.run_alone(live.piles_sweep_offline)
            except Exception as exc:
                logger.warning("offline sweep failed: %s", exc)

    # --- Redis: node liveness and commands ----------------------------------------------

    async def _alive_loop(self) -> None:
        while True:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(routing.alive_key(self.node), "1", ex=routing.ALIVE_TTL)
                    pipe.expire(routing.command_key(self.node), routing.COMMAND_TTL)
                    # The registry entries of the piles held here live as long as the node.
                    for code in list(self.connections):
                        pipe.expire(routing.pile_key(code), routing.PILE_TTL)
                    await pipe.execute()
            except Exception as exc:
                logger.warning("Redis unavailable: %s", exc)
            await asyncio.sleep(routing.ALIVE_TTL / 3)

    async def _command_loop(self) -> None:
        listener = aioredis.Redis.from_url(settings.REDIS_URL)
        key = routing.command_key(self.node)
        while True:
            try:
                item = await listener.blpop([key], timeout=1)
            except Exception as exc:
                logger.warning("command listener: %s", exc)
                await asyncio.sleep(1)
                continue
            if item is None:
                continue
            try:
                command = json.loads(item[1])
            except ValueError:
                continue
            if command.get("kind") == "kick":
                conn = self.connections.get(command.get("pile"))
                if conn is not None and conn.token == command.get("token"):
                    logger.info("%s: taken over by another gateway node", conn.code)
                    self._spawn(conn._connection.close(1000, "connected elsewhere"))
            elif command.get("kind") == "call":
                self._spawn(self._execute(command))

    async def _execute(self, command: dict) -> None:
        remaining = command.get("expires", 0) - timezone.now().timestamp()
        if remaining <= 0:
            return  # the caller gave up already
        conn = self.connections.get(command["pile"])
        if conn is None:
            reply = {"outcome": "offline"}
        else:
            reply = await conn.call_pile(command["action"], command["payload"], remaining)
        key = routing.reply_key(command["id"])
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, json.dumps(reply))
            pipe.expire(key, routing.REPLY_TTL)
            await pipe.execute()

    # --- run --------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        # The event loop shares the GIL with the database threads; with the default 5 ms
        # switch interval every socket read/write can wait a whole slice behind a thread.
        sys.setswitchinterval(settings.GATEWAY_SWITCH_INTERVAL)
        loop = asyncio.get_running_loop()
        # Bounded and blocking: a reconnect storm waits for a Redis connection, not fails.
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
        ]
        async with serve(
            self.handler,
            self.host,
            self.port,
            subprotocols=["ocpp1.6"],
            process_request=self.process_request,
            max_size=settings.GATEWAY_MAX_FRAME_BYTES * 4,
            max_queue=64,
            compression=None,
            open_timeout=settings.GATEWAY_OPEN_TIMEOUT,
            ping_interval=None,  # piles heartbeat at the OCPP level
            reuse_port=self.reuse_port or None,
        ) as server:
            sockets = ", ".join(str(s.getsockname()) for s in server.sockets)
            logger.info("gateway %s listening on %s", self.node, sockets)
            print(f"gateway {self.node} listening on {sockets}", flush=True)
            if ready is not None:
                ready.set()
            await stop.wait()
            self.stopping = True
            logger.info("gateway %s stopping", self.node)
        for task in self._tasks:
            task.cancel()
        await self.flush_seen()
        await self.journal.close()
        with contextlib.suppress(Exception):
            await self.redis.delete(routing.alive_key(self.node))
        self.db.shutdown()
