"""A pile client of any `SimulatedPile` subclass, connected with extra connect options
(e.g. ``local_addr`` to come from another address), serving the platform's calls."""

from __future__ import annotations

import asyncio
import contextlib
import json

import redis
from django.conf import settings
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from protocol import routing
from protocol.simulator import SimulatedPile, basic_auth_header


@contextlib.asynccontextmanager
async def serving(
    url: str,
    code: str,
    password: str,
    *,
    pile_class=SimulatedPile,
    registry_prefix: str | None = None,
    **options,
):
    async with ws_connect(
        f"{url}/{code}",
        subprotocols=["ocpp1.6"],
        additional_headers=basic_auth_header(code, password),
        open_timeout=10,
        ping_interval=None,
        **options,
    ) as ws:
        pile = pile_class(code, ws)
        task = asyncio.create_task(pile.start())
        try:
            await registered(code, prefix=registry_prefix)
            yield pile
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


async def registered(code: str, *, prefix: str | None = None, within: float = 10.0) -> None:
    """Wait until the gateway has registered the pile in Redis (it does so right after the
    handshake, asynchronously): a remote command sent before that finds it offline.
    ``prefix``: a gateway started with Redis keys of its own."""
    key = routing.pile_key(code, prefix)
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for _ in range(int(within / 0.02)):
            if await asyncio.to_thread(client.exists, key):
                return
            await asyncio.sleep(0.02)
    finally:
        client.close()
    raise AssertionError(f"pile {code} was not registered within {within} s")


@contextlib.asynccontextmanager
async def silent(url: str, code: str, password: str):
    """A pile that connects, is registered (one heartbeat answered), then answers nothing."""
    async with ws_connect(
        f"{url}/{code}",
        subprotocols=["ocpp1.6"],
        additional_headers=basic_auth_header(code, password),
    ) as ws:
        await ws.send(json.dumps([2, "b", "Heartbeat", {}]))
        await ws.recv()
        yield ws


class MaintainedPile(SimulatedPile):
    """A pile that takes firmware updates and diagnostics requests, keeping what it got."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.requests: list[tuple[str, dict]] = []

    @on(Action.update_firmware)
    async def on_update_firmware(self, **kwargs):
        self.requests.append(("UpdateFirmware", kwargs))
        return call_result.UpdateFirmware()

    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, **kwargs):
        self.requests.append(("GetDiagnostics", kwargs))
        return call_result.GetDiagnostics(file_name=f"diag-{self.id}.zip")
