"""A pile client of any `SimulatedPile` subclass, connected with extra connect options
(e.g. ``local_addr`` to come from another address), serving the platform's calls."""

from __future__ import annotations

import asyncio
import contextlib
import json

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from protocol.simulator import SimulatedPile, basic_auth_header


@contextlib.asynccontextmanager
async def serving(url: str, code: str, password: str, *, pile_class=SimulatedPile, **options):
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
            yield pile
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task


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
