"""A pile simulator on the `ocpp` library's ChargePoint client, for tests, `make run` and
benchmarks. It answers the platform's commands like a pile (RemoteStart/Stop, Reset, …)
and plays scenarios:

- ``normal``: boot, plug in, authorize, charge with meter values, stop, unplug
- ``full-then-app-stop``: the car is full (SuspendedEV, 满电占桩), the platform stops the
  charge remotely (the driver pressed stop on the phone), then the car is unplugged
- ``offline-mid-session``: the connection drops during the charge; the StopTransaction
  is queued and delivered after reconnecting
- ``duplicate-stop``: the StopTransaction is sent twice
- ``clock-skew``: the pile's clock is two hours ahead
- ``demo``: charge in a loop forever with realistic meter values (used by `make run`)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import random

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect as ws_connect

logger = logging.getLogger("protocol.simulator")
# The library logs every frame at INFO: too loud for hundreds of simulated piles.
logging.getLogger("ocpp").setLevel(logging.WARNING)


def iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class SimulatedPile(ChargePoint):
    """A pile: sends what a pile sends and answers what a pile answers."""

    def __init__(
        self,
        code: str,
        connection,
        *,
        skew: dt.timedelta = dt.timedelta(0),
        power_w: int = 7000,
    ):
        super().__init__(code, connection, response_timeout=30)
        self.skew = skew
        self.power_w = power_w  # what the demo charges at most: the pile's rated power
        self.meter_wh = random.randint(100_000, 900_000)
        self.config = {"HeartbeatInterval": "60", "MeterValueSampleInterval": "60"}
        self.remote_starts: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self.remote_stops: asyncio.Queue[int] = asyncio.Queue()
        self.resets: list[str] = []
        self.transactions: dict[int, int] = {}  # connector → transaction id

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.skew

    # --- what the platform asks -----------------------------------------------------------

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag, connector_id=None, **kwargs):
        await self.remote_starts.put((connector_id or 1, id_tag))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id, **kwargs):
        if transaction_id not in self.transactions.values():
            return call_result.RemoteStopTransaction(status="Rejected")
        await self.remote_stops.put(transaction_id)
        return call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.reset)
    async def on_reset(self, type, **kwargs):
        self.resets.append(type)
        return call_result.Reset(status="Accepted")

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id, **kwargs):
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id, type, **kwargs):
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.change_configuration)
    async def on_change_configuration(self, key, value, **kwargs):
        if key not in self.config:
            return call_result.ChangeConfiguration(status="NotSupported")
        self.config[key] = value
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.get_configuration)
    async def on_get_configuration(self, key=None, **kwargs):
        wanted = key or list(self.config)
        known = [
            {"key": k, "readonly": False, "value": self.config[k]}
            for k in wanted
            if k in self.config
        ]
        unknown = [k for k in wanted if k not in self.config]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.trigger_message)
    async def on_trigger(self, requested_message, connector_id=None, **kwargs):
        if requested_message not in ("Heartbeat", "StatusNotification", "BootNotification"):
            return call_result.TriggerMessage(status="NotImplemented")
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.clear_cache)
    async def on_clear_cache(self, **kwargs):
        return call_result.ClearCache(status="Accepted")

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id, **kwargs):
        return call_result.DataTransfer(status="Accepted")

    # --- what a pile sends --------------------------------------------------------------

    async def boot(self, *, firmware: str = "11536"):
        return await self.call(
            call.BootNotification(
                charge_point_vendor="SimVendor",
                charge_point_model="SIM-DC-60",
                charge_point_serial_number=f"SN{self.id[-8:]}",
                firmware_version=firmware,
            )
        )

    async def heartbeat(self):
        return await self.call(call.Heartbeat())

    async def status(self, connector: int, status: str, error_code: str = "NoError"):
        return await self.call(
            call.StatusNotification(
                connector_id=connector,
                error_code=error_code,
                status=status,
                timestamp=iso(self.now()),
            )
        )

    async def authorize(self, id_tag: str) -> str:
        result = await self.call(call.Authorize(id_tag=id_tag))
        return result.id_tag_info["status"]

    async def start_tx(self, connector: int, id_tag: str, *, at: dt.datetime | None = None):
        result = await self.call(
            call.StartTransaction(
                connector_id=connector,
                id_tag=id_tag,
                meter_start=self.meter_wh,
                timestamp=iso(at or self.now()),
            )
        )
        self.transactions[connector] = result.transaction_id
        return result

    def meter_payload(self, connector: int, transaction_id: int | None, *, soc: int = 50):
        return call.MeterValues(
            connector_id=connector,
            transaction_id=transaction_id,
            meter_value=[
                {
                    "timestamp": iso(self.now()),
                    "sampledValue": [
                        {
                            "value": str(self.meter_wh),
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                            "context": "Sample.Periodic",
                        },
                        {"value": "7000", "measurand": "Power.Active.Import", "unit": "W"},
                        {"value": "32.0", "measurand": "Current.Import", "unit": "A"},
                        {"value": "220.0", "measurand": "Voltage", "unit": "V"},
                        {"value": str(soc), "measurand": "SoC", "unit": "Percent"},
                    ],
                }
            ],
        )

    async def meter(self, connector: int, *, add_wh: int = 1000, soc: int = 50):
        self.meter_wh += add_wh
        return await self.call(
            self.meter_payload(connector, self.transactions.get(connector), soc=soc)
        )

    def stop_payload(self, connector: int, *, reason: str = "Local", transaction_id=None):
        return call.StopTransaction(
            meter_stop=self.meter_wh,
            timestamp=iso(self.now()),
            transaction_id=transaction_id or self.transactions[connector],
            reason=reason,
        )

    async def stop_tx(self, connector: int, *, reason: str = "Local"):
        result = await self.call(self.stop_payload(connector, reason=reason))
        self.transactions.pop(connector, None)
        return result


def basic_auth_header(code: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{code}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def connected(base_url: str, code: str, password: str | None = None, **kwargs):
    """Open a pile connection and serve the platform's calls while the block runs."""
    headers = basic_auth_header(code, password) if password is not None else {}
    async with ws_connect(
        f"{base_url.rstrip('/')}/{code}",
        subprotocols=["ocpp1.6"],
        additional_headers=headers,
        open_timeout=10,
        ping_interval=None,
    ) as ws:
        pile = SimulatedPile(code, ws, **kwargs)
        task = asyncio.create_task(pile.start())
        try:
            yield pile
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


# --- scenarios -----------------------------------------------------------------------------


async def scenario_normal(base_url, code, password, id_tag, *, connector=1, samples=3, **kw):
    async with connected(base_url, code, password, **kw) as pile:
        await pile.boot()
        await pile.status(connector, "Available")
        await pile.authorize(id_tag)
        await pile.status(connector, "Preparing")
        await pile.start_tx(connector, id_tag)
        await pile.status(connector, "Charging")
        for i in range(samples):
            await pile.meter(connector, add_wh=1500, soc=40 + 10 * i)
        await pile.stop_tx(connector)
        await pile.status(connector, "Finishing")
        await pile.status(connector, "Available")
        return pile


async def scenario_full_then_app_stop(
    base_url, code, password, id_tag, *, connector=1, wait_stop=30.0, **kw
):
    async with connected(base_url, code, password, **kw) as pile:
        await pile.boot()
        await pile.status(connector, "Preparing")
        await pile.start_tx(connector, id_tag)
        await pile.status(connector, "Charging")
        await pile.meter(connector, add_wh=5000, soc=95)
        await pile.meter(connector, add_wh=500, soc=100)
        await pile.status(connector, "SuspendedEV")  # full, still plugged (满电占桩)
        try:
            await asyncio.wait_for(pile.remote_stops.get(), wait_stop)
            reason = "Remote"
        except TimeoutError:
            reason = "EVDisconnected"
        await pile.stop_tx(connector, reason=reason)
        await pile.status(connector, "Finishing")
        await pile.status(connector, "Available")  # unplugged
        return pile


async def scenario_offline_mid_session(base_url, code, password, id_tag, *, connector=1, **kw):
    async with connected(base_url, code, password, **kw) as pile:
        await pile.boot()
        await pile.start_tx(connector, id_tag)
        await pile.meter(connector, add_wh=2000)
        transaction_id = pile.transactions[connector]
    # offline: the charge goes on, the stop is queued
    pile.meter_wh += 3000
    queued_stop = pile.stop_payload(connector, transaction_id=transaction_id)
    async with connected(base_url, code, password, **kw) as again:
        again.meter_wh = pile.meter_wh
        await again.boot()
        await again.call(queued_stop)
        await again.status(connector, "Available")
        again.transactions = {}
        return again


async def scenario_duplicate_stop(base_url, code, password, id_tag, *, connector=1, **kw):
    async with connected(base_url, code, password, **kw) as pile:
        await pile.boot()
        await pile.start_tx(connector, id_tag)
        await pile.meter(connector, add_wh=2500)
        stop = pile.stop_payload(connector)
        await pile.call(stop)
        await pile.call(stop)  # a pile that did not see the first answer resends
        pile.transactions.pop(connector, None)
        return pile


async def scenario_clock_skew(base_url, code, password, id_tag, **kw):
    kw.setdefault("skew", dt.timedelta(hours=2))
    return await scenario_normal(base_url, code, password, id_tag, **kw)


async def scenario_demo(base_url, code, password, id_tag, *, connector=1, forever=True, **kw):
    """Keep a pile alive: boot, heartbeat, and charge in a loop with realistic values;
    answers remote starts/stops. Reconnects when the gateway goes away."""
    while True:
        try:
            async with connected(base_url, code, password, **kw) as pile:
                await pile.boot()
                await pile.status(connector, "Available")
                while True:
                    await _demo_charge(pile, connector, id_tag)
                    if not forever:
                        return pile
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            if not forever:
                raise
            logger.info("%s: reconnecting after %s", code, exc)
            await asyncio.sleep(5)


DEMO_IDLE_SECONDS = (5.0, 45.0)  # between charges, unless a remote start comes
DEMO_SAMPLE_SECONDS = 10.0  # between meter values while charging
DEMO_ENERGY_GLITCH_RATE = 0.1
DEMO_ENERGY_GLITCH_WH = 5000


async def _demo_charge(pile: SimulatedPile, connector: int, id_tag: str) -> None:
    idle = random.uniform(*DEMO_IDLE_SECONDS)
    with contextlib.suppress(TimeoutError):
        connector, id_tag = await asyncio.wait_for(pile.remote_starts.get(), idle)
    await pile.heartbeat()
    await pile.status(connector, "Preparing")
    # ConcurrentTx: a session of a previous run is still open on this connector; the new
    # StartTransaction closes it (superseded), as a real pile restarting would.
    if await pile.authorize(id_tag) not in ("Accepted", "ConcurrentTx"):
        await pile.status(connector, "Available")
        return
    result = await pile.start_tx(connector, id_tag)
    if result.id_tag_info["status"] != "Accepted":
        await pile.stop_tx(connector, reason="DeAuthorized")
        await pile.status(connector, "Available")
        return
    await pile.status(connector, "Charging")
    # Within the pile's power, as a car draws it: more would be code 13 (energy implausible).
    power_w = int(pile.power_w * random.uniform(0.6, 0.95))
    soc = random.randint(15, 45)
    for _ in range(random.randint(4, 12)):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pile.remote_stops.get(), DEMO_SAMPLE_SECONDS)
            await pile.stop_tx(connector, reason="Remote")
            await pile.status(connector, "Finishing")
            await pile.status(connector, "Available")
            return
        soc = min(100, soc + random.randint(1, 4))
        await pile.meter(
            connector,
            add_wh=power_w * int(DEMO_SAMPLE_SECONDS) // 3600 + random.randint(0, 20),
            soc=soc,
        )
        await pile.heartbeat()
    if random.random() < DEMO_ENERGY_GLITCH_RATE:
        # Now and then the stop reading jumps past what the pile metered (a firmware fault
        # seen in the field), so the demo's repair desk has fault bills (code 8) to work.
        pile.meter_wh += DEMO_ENERGY_GLITCH_WH
    await pile.stop_tx(connector, reason="EVDisconnected" if soc >= 100 else "Local")
    await pile.status(connector, "Finishing")
    await pile.status(connector, "Available")


SCENARIOS = {
    "normal": scenario_normal,
    "full-then-app-stop": scenario_full_then_app_stop,
    "offline-mid-session": scenario_offline_mid_session,
    "duplicate-stop": scenario_duplicate_stop,
    "clock-skew": scenario_clock_skew,
    "demo": scenario_demo,
}
