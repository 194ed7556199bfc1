"""A YKC pile simulator over TCP, for tests, `make run` and the benchmark. It sends what a
YKC pile sends (login, billing model check/request, heartbeats, real-time data, starts by
card or VIN, the transaction record) and answers the platform's commands (remote
start/stop, clock sync, billing model, reboot) like a pile. Scenarios mirror the OCPP
simulator's (`protocol.simulator`):

- ``normal``: log in, get the billing model, start by card, real-time data, record
- ``full-then-app-stop``: the car is full (idle, still plugged), the platform stops the
  charge remotely (0x36), then the record
- ``offline-mid-session``: the connection drops during the charge; the record is sent
  after logging in again (late 0x3B)
- ``duplicate-record``: the record is sent twice (no answer seen the first time)
- ``clock-skew``: the pile's clock is two hours ahead
- ``energy-mismatch``: the record's total is 5 kWh more than the real-time data said
- ``demo``: charge in a loop forever (used by `make run`)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import zoneinfo
from decimal import Decimal

from . import codec, words

logger = logging.getLogger("protocol.ykc.simulator")

ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
STOP_APP, STOP_FULL, STOP_MANUAL = 0x40, 0x41, 0x45


class YkcPile:
    """A pile: sends what a YKC pile sends and answers what it answers."""

    def __init__(
        self,
        code: str,
        *,
        guns: int = 1,
        ac: bool = False,
        skew: dt.timedelta = dt.timedelta(0),
        power_w: int = 7000,
        zone: zoneinfo.ZoneInfo = ZONE,
    ):
        self.code = code
        self.guns = guns
        self.ac = ac
        self.skew = skew
        self.power_w = power_w
        self.zone = zone
        self.meter_kwh = Decimal(random.randint(1000, 9000))  # the pile's total register
        self.model: codec._BillingModel | None = None
        self.remote_starts: asyncio.Queue[codec.RemoteStart] = asyncio.Queue()
        self.remote_stops: asyncio.Queue[int] = asyncio.Queue()
        self.reboots: list[int] = []
        self.clock_syncs: list[dt.datetime] = []
        self.charges: dict[int, dict] = {}  # gun → serial, start time and register, energy
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._serial = 0
        self._waiting: dict[int, asyncio.Future] = {}  # answer type → waiter
        self._task: asyncio.Task | None = None

    def now(self) -> dt.datetime:
        """The pile's wall clock (its station's zone, plus its skew), as CP56Time2a has it."""
        local = dt.datetime.now(self.zone) + self.skew
        return local.replace(tzinfo=None, microsecond=local.microsecond // 1000 * 1000)

    # --- transport ----------------------------------------------------------------------

    async def open(self, host: str, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self._task = asyncio.create_task(self._receive())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._task
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        for future in self._waiting.values():
            if not future.done():
                future.cancel()

    async def send(self, body: codec.Body, *, serial: int | None = None) -> int:
        if serial is None:
            self._serial = (self._serial + 1) & 0xFFFF
            serial = self._serial
        self.writer.write(codec.encode(body, serial=serial))
        await self.writer.drain()
        return serial

    async def request(self, body: codec.Body, answer: type[codec.Body], *, timeout=10.0):
        """Send ``body`` and wait for the frame of type ``answer`` (echoing its serial)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting[answer.TYPE] = future
        serial = await self.send(body)
        got_serial, got = await asyncio.wait_for(future, timeout)
        if got_serial != serial:
            raise AssertionError(f"answer serial {got_serial} does not echo {serial}")
        return got

    async def _receive(self) -> None:
        decoder = codec.StreamDecoder()
        while True:
            data = await self.reader.read(4096)
            if not data:
                break
            for item in decoder.feed(data):
                if isinstance(item, codec.Envelope):
                    await self._on_frame(item.serial, item.decode())
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("closed by the platform"))

    async def _on_frame(self, serial: int, body: codec.Body) -> None:
        future = self._waiting.pop(body.TYPE, None)
        if future is not None and not future.done():
            future.set_result((serial, body))
            return
        handler = getattr(self, f"on_{body.NAME}", None)
        if handler is not None:
            await self.send(await handler(body), serial=serial)

    # --- what the platform asks ---------------------------------------------------------

    async def on_RemoteStart(self, body: codec.RemoteStart):
        busy = body.gun in self.charges
        if not busy:
            await self.remote_starts.put(body)
        return codec.RemoteStartAnswer(
            serial=body.serial, pile_code=self.code, gun=body.gun,
            result=0 if busy else 1, reason=2 if busy else 0,
        )  # fmt: skip

    async def on_RemoteStop(self, body: codec.RemoteStop):
        charging = body.gun in self.charges
        if charging:
            await self.remote_stops.put(body.gun)
        return codec.RemoteStopAnswer(
            pile_code=self.code, gun=body.gun, result=int(charging), reason=0 if charging else 2
        )

    async def on_ClockSync(self, body: codec.ClockSync):
        self.clock_syncs.append(body.time)
        return codec.ClockSyncAnswer(pile_code=self.code, time=body.time)

    async def on_SetBillingModel(self, body: codec.SetBillingModel):
        self.model = body
        return codec.SetBillingModelAnswer(pile_code=self.code, result=1)

    async def on_Reboot(self, body: codec.Reboot):
        self.reboots.append(body.control)
        return codec.RebootAnswer(pile_code=self.code, result=1)

    # --- what a pile sends --------------------------------------------------------------

    async def login(self, *, timeout: float = 10.0) -> int:
        answer = await self.request(
            codec.Login(
                pile_code=self.code, pile_type=int(self.ac), gun_count=self.guns,
                protocol_version=16, program_version="SIM1.6", network=1, sim="0" * 20, carrier=4,
            ),
            codec.LoginAnswer,
            timeout=timeout,
        )  # fmt: skip
        return answer.result

    async def billing_model(self) -> codec._BillingModel | None:
        """Check the model (0x05); when it differs, ask for it (0x09)."""
        model = self.model.model if self.model else "0000"
        check = await self.request(
            codec.BillingModelCheck(pile_code=self.code, model=model),
            codec.BillingModelCheckAnswer,
        )
        if check.result == 1:
            self.model = await self.request(
                codec.BillingModelRequest(pile_code=self.code), codec.BillingModelAnswer
            )
        return self.model

    async def heartbeat(self, gun: int = 1, *, timeout: float = 10.0) -> codec.HeartbeatAnswer:
        body = codec.Heartbeat(pile_code=self.code, gun=gun, gun_state=0)
        return await self.request(body, codec.HeartbeatAnswer, timeout=timeout)

    async def start_by_card(self, gun: int, card: str, *, timeout=10.0) -> codec.StartAnswer:
        card = words.card_bytes(card)
        return await self._start(gun, kind=words.START_BY_CARD, card=card, timeout=timeout)

    async def start_by_vin(self, gun: int, vin: str) -> codec.StartAnswer:
        return await self._start(gun, kind=words.START_BY_VIN, vin=vin)

    async def _start(self, gun, *, kind: int, card: str = "00" * 8, vin: str = "", timeout=10.0):
        answer = await self.request(
            codec.StartRequest(
                pile_code=self.code, gun=gun, start_kind=kind, password_needed=0, card=card,
                password_md5="00" * 16, vin_reversed=vin[::-1],
            ),
            codec.StartAnswer,
            timeout=timeout,
        )  # fmt: skip
        if answer.accepted == 1:
            self.begin(gun, answer.serial, trade_kind=5 if kind == words.START_BY_VIN else 2)
        return answer

    def begin(self, gun: int, serial: str, *, trade_kind: int = 1, card: str = "00" * 8) -> None:
        """The pile starts charging under ``serial``."""
        self.charges[gun] = {
            "serial": serial, "started": self.now(), "start": self.meter_kwh, "energy": Decimal(0),
            "trade_kind": trade_kind, "card": card,
        }  # fmt: skip

    def real_time(self, gun: int, *, status: int = words.STATUS_CHARGING, soc: int = 50):
        charge = self.charges.get(gun)
        energy = charge["energy"] if charge else Decimal(0)
        return codec.RealTimeData(
            serial=charge["serial"] if charge else "0" * 32, pile_code=self.code, gun=gun,
            status=status if charge or status != words.STATUS_CHARGING else words.STATUS_IDLE,
            gun_home=0, plugged=1, voltage=Decimal("220.0") if charge else Decimal(0),
            current=Decimal("32.0") if charge else Decimal(0), cable_temperature=30,
            cable_code="00" * 8, soc=soc if charge else 0, battery_max_temperature=30,
            charging_minutes=0, remaining_minutes=0, energy=energy, loss_energy=energy,
            amount=self._amount(energy), hardware_faults=0,
        )  # fmt: skip

    async def meter(self, gun: int, *, add_kwh: Decimal, soc: int = 50, status=None) -> None:
        """Charge ``add_kwh`` more and send the real-time data (0x13, never answered)."""
        self.charges[gun]["energy"] += add_kwh
        self.meter_kwh += add_kwh
        await self.send(self.real_time(gun, soc=soc, status=status or words.STATUS_CHARGING))

    def _price(self) -> Decimal:
        if self.model is None:
            return Decimal(0)
        slot = self.now().hour * 2 + self.now().minute // 30
        electricity, service = self.model.prices()[self.model.slots[slot]]
        return electricity + service

    def _amount(self, energy: Decimal) -> Decimal:
        return (energy * self._price()).quantize(Decimal("0.0001"))

    def record(
        self, gun: int, *, reason: int = STOP_MANUAL, extra_kwh: Decimal = Decimal(0)
    ) -> codec.TransactionRecord:
        """The transaction record of the charge on ``gun``, with the pile's own per-period
        split (all in the period its billing model had at the start)."""
        charge = self.charges[gun]
        energy = charge["energy"] + extra_kwh
        period = 2
        if self.model is not None:
            started = charge["started"]
            period = self.model.slots[started.hour * 2 + started.minute // 30]
        prices = [e + s for e, s in self.model.prices()] if self.model else [Decimal(0)] * 4
        values = {}
        for n, name in enumerate(codec.PERIOD_NAMES):
            mine = energy if n == period else Decimal(0)
            values |= {
                f"{name}_price": prices[n],
                f"{name}_energy": mine,
                f"{name}_loss_energy": mine,
                f"{name}_amount": (mine * prices[n]).quantize(Decimal("0.0001")),
            }
        ended = self.now()
        return codec.TransactionRecord(
            serial=charge["serial"], pile_code=self.code, gun=gun, started=charge["started"],
            ended=ended, meter_start=charge["start"], meter_stop=charge["start"] + energy,
            total_energy=energy, total_loss_energy=energy,
            total_amount=(energy * prices[period]).quantize(Decimal("0.0001")), vin="",
            trade_kind=charge["trade_kind"], traded_at=ended, stop_reason=reason,
            physical_card=charge["card"], **values,
        )  # fmt: skip

    async def send_record(
        self, record: codec.TransactionRecord, *, timeout: float = 10.0
    ) -> codec.TransactionRecordAnswer:
        answer = await self.request(record, codec.TransactionRecordAnswer, timeout=timeout)
        if answer.serial != record.serial:
            raise AssertionError("0x40 names another transaction")
        return answer

    async def stop(self, gun, *, reason: int = STOP_MANUAL, extra_kwh=Decimal(0), timeout=10.0):
        """End the charge: idle real-time data, then the record (answered after commit)."""
        record = self.record(gun, reason=reason, extra_kwh=extra_kwh)
        self.meter_kwh += extra_kwh
        del self.charges[gun]
        await self.send(self.real_time(gun, status=words.STATUS_IDLE))
        return await self.send_record(record, timeout=timeout)


@contextlib.asynccontextmanager
async def connected(host: str, port: int, code: str, **kwargs):
    """A logged-in pile with its billing model, serving the platform's commands."""
    pile = kwargs.pop("pile", None) or YkcPile(code, **kwargs)
    await pile.open(host, port)
    try:
        if await pile.login() != 0:
            raise ConnectionRefusedError(f"pile {code} was refused")
        await pile.billing_model()
        yield pile
    finally:
        await pile.close()


def parse_url(url: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` → (host, port)."""
    host, _sep, port = url.removeprefix("tcp://").rstrip("/").rpartition(":")
    return host or "127.0.0.1", int(port)


# --- scenarios ------------------------------------------------------------------------------
# Each takes (url, pile code, card number) like the OCPP ones take (url, code, password, idTag).


async def scenario_normal(url, code, card, *, gun=1, samples=3, **kw):
    async with connected(*parse_url(url), code, **kw) as pile:
        await pile.heartbeat(gun)
        await pile.start_by_card(gun, card)
        for i in range(samples):
            await pile.meter(gun, add_kwh=Decimal("1.5"), soc=40 + 10 * i)
        await pile.stop(gun)
        return pile


async def scenario_full_then_app_stop(url, code, card, *, gun=1, wait_stop=30.0, **kw):
    async with connected(*parse_url(url), code, **kw) as pile:
        await pile.start_by_card(gun, card)
        await pile.meter(gun, add_kwh=Decimal(5), soc=95)
        await pile.meter(gun, add_kwh=Decimal("0.5"), soc=100)
        try:
            await asyncio.wait_for(pile.remote_stops.get(), wait_stop)
            reason = STOP_APP
        except TimeoutError:
            reason = STOP_FULL
        await pile.stop(gun, reason=reason)
        return pile


async def scenario_offline_mid_session(url, code, card, *, gun=1, **kw):
    async with connected(*parse_url(url), code, **kw) as pile:
        await pile.start_by_card(gun, card)
        await pile.meter(gun, add_kwh=Decimal(2))
    # offline: the charge goes on, the record waits for the link
    pile.charges[gun]["energy"] += Decimal(3)
    pile.meter_kwh += Decimal(3)
    record = pile.record(gun)
    del pile.charges[gun]
    async with connected(*parse_url(url), code, pile=pile) as again:
        await again.send_record(record)
        return again


async def scenario_duplicate_record(url, code, card, *, gun=1, **kw):
    async with connected(*parse_url(url), code, **kw) as pile:
        await pile.start_by_card(gun, card)
        await pile.meter(gun, add_kwh=Decimal("2.5"))
        record = pile.record(gun)
        del pile.charges[gun]
        await pile.send_record(record)
        await pile.send_record(record)  # a pile that did not see the first answer resends
        return pile


async def scenario_clock_skew(url, code, card, **kw):
    kw.setdefault("skew", dt.timedelta(hours=2))
    return await scenario_normal(url, code, card, **kw)


async def scenario_energy_mismatch(url, code, card, *, gun=1, **kw):
    async with connected(*parse_url(url), code, **kw) as pile:
        await pile.start_by_card(gun, card)
        await pile.meter(gun, add_kwh=Decimal(2))
        await pile.stop(gun, extra_kwh=Decimal(5))  # the record says 7 kWh
        return pile


DEMO_IDLE_SECONDS = (5.0, 45.0)
DEMO_SAMPLE_SECONDS = 15.0  # real-time data every 15 s while charging (spec §7.2)
HEARTBEAT_SECONDS = 10.0


async def scenario_demo(url, code, card, *, gun=1, forever=True, **kw):
    """Keep a pile alive: heartbeats every 10 s, and charges in a loop (a card start now and
    then, or a remote start from the app); reconnects when the gateway goes away."""
    while True:
        try:
            async with connected(*parse_url(url), code, **kw) as pile:
                beats = asyncio.create_task(_heartbeats(pile, gun))
                try:
                    while True:
                        await _demo_charge(pile, gun, card)
                        if not forever:
                            return pile
                finally:
                    beats.cancel()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            if not forever:
                raise
            logger.info("%s: reconnecting after %s", code, exc)
            await asyncio.sleep(5)


async def _heartbeats(pile: YkcPile, gun: int) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        await pile.heartbeat(gun)


async def _demo_charge(pile: YkcPile, gun: int, card: str) -> None:
    try:
        remote = await asyncio.wait_for(
            pile.remote_starts.get(), random.uniform(*DEMO_IDLE_SECONDS)
        )
        pile.begin(gun, remote.serial, card=remote.physical_card)
    except TimeoutError:
        answer = await pile.start_by_card(gun, card)
        if answer.accepted != 1:
            return
    power_kw = Decimal(pile.power_w) / 1000 * Decimal(str(round(random.uniform(0.6, 0.95), 2)))
    add = (power_kw * Decimal(DEMO_SAMPLE_SECONDS) / 3600).quantize(Decimal("0.0001"))
    soc, reason = random.randint(15, 45), STOP_MANUAL
    for _ in range(random.randint(4, 12)):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pile.remote_stops.get(), DEMO_SAMPLE_SECONDS)
            reason = STOP_APP
            break
        soc = min(100, soc + random.randint(1, 4))
        await pile.meter(gun, add_kwh=add, soc=soc)
    await pile.stop(gun, reason=reason)


SCENARIOS = {
    "normal": scenario_normal,
    "full-then-app-stop": scenario_full_then_app_stop,
    "offline-mid-session": scenario_offline_mid_session,
    "duplicate-record": scenario_duplicate_record,
    "clock-skew": scenario_clock_skew,
    "energy-mismatch": scenario_energy_mismatch,
    "demo": scenario_demo,
}
