"""One YKC pile's TCP connection: stream decoding, login, frame checks, dispatch to the
handlers (`protocol.ykc.handlers`), journaling, and the platform's commands to the pile.

Nothing a pile sends crashes the connection or stores anything but its journal row: a
frame with a bad CRC or length is dropped (the stream resynchronises on the next start
byte, the connection stays open: a line glitch must not cut off a charging pile); an
encrypted frame, an unknown type, a body that does not fit its type, BCD garbage or a
value the columns cannot hold is journaled and not answered. Floods close the connection.
Every answer echoes the serial of the frame it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone
from ocpp.exceptions import OCPPError

from billing.services.sessions import Credential, CredentialKind
from stations.models import Pile

from ..db import DatabaseUnavailable
from ..gateway import throttle
from ..models import Direction, MessageType
from . import codec, words
from .handlers import (
    TRANSACTION_TYPES,
    NoAnswer,
    YkcHandlers,
    credential_balance,
    pile_login,
    session_open,
    tariff_in_force,
)

if TYPE_CHECKING:
    from .server import YkcGateway

logger = logging.getLogger("protocol.ykc")

READ_BYTES = 4096
# Frames the pile sends answering a platform command (odd types answering even ones).
ANSWER_TYPES = set(codec.ANSWERS.values())
# Frames only the platform sends (even types): a pile sending one is confused.
PLATFORM_TYPES = {type_code for type_code in codec.TYPES if type_code % 2 == 0}


def action_name(type_code: int) -> str:
    """How a frame type is named in the protocol log (beside OCPP's actions)."""
    cls = codec.TYPES.get(type_code)
    return f"0x{type_code:02X} {cls.NAME}" if cls else f"0x{type_code:02X}"


class _Closer:
    """What the gateway's registry (`Gateway._register`, kicks) expects of a connection's
    transport: ``await close(code, reason)`` and the ``close_code`` it ended with."""

    def __init__(self, conn: YkcConnection):
        self.conn = conn
        self.close_code: str | None = None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.conn.close(reason or str(code))


class YkcConnection(YkcHandlers):
    def __init__(self, *, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gateway):
        self.reader = reader
        self.writer = writer
        self.gw: YkcGateway = gateway
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if peer else "?"
        self.pile: Pile | None = None
        self.code = ""
        self.pile_id: int | None = None
        self.token = uuid.uuid4().hex[:12]
        self._connection = _Closer(self)
        self.heard_at = asyncio.get_running_loop().time()  # the last bytes from the pile
        self.decoder = codec.StreamDecoder()
        self.registered = False
        self.went_silent = False  # closed for three missed heartbeats
        self.closing = False
        self.connector_states: dict[int, tuple[str, str]] = {}
        self.prefix_chars = settings.GATEWAY_JOURNAL_PREFIX_CHARS
        self.max_frames_per_minute = settings.GATEWAY_MAX_CALLS_PER_MINUTE
        self._frames: deque[float] = deque()  # the pile's own window once it logged in
        self._serial = 0
        self._pending: dict[int, asyncio.Future] = {}  # answer type → its waiter
        # Transaction serial → remote start whose answer did not come in time (a late 0x33
        # saying "started" still opens its session).
        self._late_starts: dict[str, dict] = {}
        self._outbound_lock = asyncio.Lock()

    # --- receive loop -----------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.closing:
                # No timer per read: the gateway's silence check (`YkcGateway._silence_loop`)
                # closes a link whose pile stopped talking, for 10,000 piles in one pass.
                data = await self.reader.read(READ_BYTES)
                self.heard_at = math.inf  # busy with what it said, not silent
                if not data:
                    self._connection.close_code = self._connection.close_code or "closed by pile"
                    break
                for item in self.decoder.feed(data):
                    await self._on_item(item)
                    if self.closing or self.gw.stopping:
                        break
                # Silence counts from when the gateway listens again: a pile waiting for
                # the answer to its login in a reconnect storm is not a silent pile.
                self.heard_at = loop.time()
                if self.gw.stopping:
                    break
        except (ConnectionError, OSError):
            self._connection.close_code = self._connection.close_code or "connection lost"

    def close(self, reason: str) -> None:
        if self._connection.close_code is None:
            self._connection.close_code = reason
        self.closing = True
        with contextlib.suppress(Exception):
            self.writer.close()

    def _journal(self, direction: str, message_type: int, *, wait: bool = False, **fields):
        return self.gw.journal.add(
            wait=wait,
            pile_code=(self.code or fields.pop("code", "") or "?")[:64],
            direction=direction,
            message_type=message_type,
            **{k: v for k, v in fields.items() if k != "code"},
        )

    def _hex(self, raw: bytes) -> str:
        return raw.hex().upper()[: self.prefix_chars]

    def _flooding(self) -> bool:
        now = time.monotonic()
        self._frames.append(now)
        while self._frames and self._frames[0] < now - 60:
            self._frames.popleft()
        return len(self._frames) > self.max_frames_per_minute

    async def _send(self, body: codec.Body, serial: int) -> None:
        await self._write(codec.encode(body, serial=serial))

    async def _write(self, frame: bytes) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            self.writer.write(frame)
            await self.writer.drain()

    async def _on_item(self, item: codec.Envelope | codec.Dropped) -> None:
        if self.pile_id is not None:
            self.gw.seen(self.pile_id)
        if self._flooding():
            self._journal(
                Direction.IN, MessageType.MALFORMED, raw=self._hex(item.raw), error_code="Flood"
            )
            logger.warning("%s: flooding, closing the connection", self.code or self.peer)
            self.close("too many frames")
            return
        if isinstance(item, codec.Dropped):
            self._journal(
                Direction.IN, MessageType.MALFORMED, raw=self._hex(item.raw), error_code=item.code
            )
            return
        await self._on_frame(item)

    async def _on_frame(self, envelope: codec.Envelope) -> None:
        action = action_name(envelope.type)
        seen = {"action": action, "unique_id": str(envelope.serial), "raw": self._hex(envelope.raw)}
        if envelope.encryption != codec.NOT_ENCRYPTED:
            self._journal(
                Direction.IN, MessageType.MALFORMED, **seen, error_code="Encrypted",
                payload={"encryption": envelope.encryption,
                         "refused": "encrypted frames (3DES) are not supported: send them plain"},
            )  # fmt: skip
            return
        try:
            body = envelope.decode()
        except codec.FrameError as error:
            payload = {"error": error.message}
            self._journal(
                Direction.IN, MessageType.MALFORMED, **seen, error_code=error.code, payload=payload
            )
            return
        fields = body.fields()
        code = getattr(body, "pile_code", None)
        if envelope.type in ANSWER_TYPES:
            self._on_answer(envelope, body, seen)
            return
        if envelope.type == codec.Login.TYPE:
            await self._login(envelope, body, seen)
            return
        problem = None
        if self.pile is None:
            problem = ("NotLoggedIn", "a pile logs in (0x01) before anything else")
        elif code is not None and code != self.code:
            problem = ("CodeMismatch", f"pile code {code} is not this connection's {self.code}")
        elif envelope.type in PLATFORM_TYPES or not hasattr(self, f"on_{body.NAME}"):
            problem = ("Unexpected", "a frame the platform sends, not a pile")
        if problem is not None:
            self._journal(
                Direction.IN, MessageType.CALL, **seen, code=code or "", error_code=problem[0],
                payload={**fields, "error": problem[1]},
            )  # fmt: skip
            return
        await self._dispatch(envelope, body, seen, fields)

    async def _dispatch(self, envelope, body, seen: dict, fields: dict) -> None:
        try:
            answer, order_no = await getattr(self, f"on_{body.NAME}")(body)
        except OCPPError as error:  # a value the columns cannot hold (`gateway.bounds`)
            cause = (error.details or {}).get("cause", error.description)
            self._journal(
                Direction.IN, MessageType.CALL, **seen, error_code="BadValue",
                payload={**fields, "error": cause},
            )  # fmt: skip
            return
        except NoAnswer as exc:
            self._journal(
                Direction.IN, MessageType.CALL, **seen, error_code=exc.code,
                payload={**fields, "error": str(exc)},
            )  # fmt: skip
            return
        except DatabaseUnavailable as exc:
            self._journal(
                Direction.IN, MessageType.CALL, **seen, payload=fields, error_code="NotAnswered"
            )
            logger.warning("%s: %s not answered (pile will retry): %s", self.code, body.NAME, exc)
            return
        except Exception:
            logger.exception("%s: %s failed", self.code, body.NAME)
            self._journal(
                Direction.IN, MessageType.CALL, **seen, payload=fields, error_code="InternalError"
            )
            return
        wait = envelope.type in TRANSACTION_TYPES and answer is not None
        f_in = self._journal(
            Direction.IN, MessageType.CALL, wait=wait, **seen, payload=fields, order_no=order_no
        )
        if answer is None:
            return
        frame = codec.encode(answer, serial=envelope.serial)
        f_out = self._journal(
            Direction.OUT,
            MessageType.CALL_RESULT,
            wait=wait,
            action=action_name(answer.TYPE),
            unique_id=seen["unique_id"],
            payload=answer.fields(),
            raw=self._hex(frame),
            order_no=order_no,
        )
        if wait:
            results = await asyncio.gather(f_in, f_out, return_exceptions=True)
            if any(r is not True for r in results):  # committed, not journaled: pile retries
                logger.warning("%s: %s not journaled, not answered", self.code, body.NAME)
                return
        await self._write(frame)

    # --- login ------------------------------------------------------------------------

    async def _login(self, envelope, body: codec.Login, seen: dict) -> None:
        code = body.pile_code
        gw = self.gw
        if self.pile is not None:
            if code != self.code:
                self._journal(Direction.IN, MessageType.CALL, **seen, error_code="CodeMismatch")
                return
        elif await throttle.login_throttled(gw.redis, code=code, peer=self.peer):
            logger.warning("throttled YKC pile %r from %s", code, self.peer)
            self.close("throttled")
            return
        try:
            pile, reason = await gw.db.run(
                pile_login, code=code, firmware_version=body.program_version
            )
        except DatabaseUnavailable:
            self._journal(
                Direction.IN, MessageType.CALL, **seen, code=code, error_code="NotAnswered"
            )
            return
        answer = codec.LoginAnswer(pile_code=code, result=0 if pile is not None else 1)
        out = {"action": action_name(answer.TYPE), "unique_id": seen["unique_id"],
               "payload": answer.fields()}  # fmt: skip
        if pile is None:
            await throttle.login_failed(gw.redis, code=code, peer=self.peer)
            if gw.refusals.admit(code=code, address=self.peer):
                logger.warning("refused YKC pile %r from %s: %s", code, self.peer, reason)
                self._journal(
                    Direction.IN, MessageType.CALL, **seen, code=code, error_code="Refused",
                    payload={**body.fields(), "error": f"{reason} (from {self.peer})"},
                )  # fmt: skip
                self._journal(Direction.OUT, MessageType.CALL_RESULT, **out, code=code)
            await self._send(answer, envelope.serial)
            self.close("login refused")
            return
        first = self.pile is None
        self.pile, self.code, self.pile_id = pile, pile.code, pile.pk
        if first:
            own = gw.frame_window(self.code)  # the flood window outlives connections
            own.extend(self._frames)
            self._frames = own
            await gw._register(self)
            self.registered = True
            gw.anonymous.discard(self)
        self._journal(Direction.IN, MessageType.CALL, **seen, payload=body.fields())
        self._journal(Direction.OUT, MessageType.CALL_RESULT, **out)
        await self._send(answer, envelope.serial)
        gw._spawn(self.call_pile("ClockSync", {}, 30.0))

    # --- commands to the pile ---------------------------------------------------------

    def _on_answer(self, envelope, body: codec.Body, seen: dict) -> None:
        future = self._pending.get(envelope.type)
        late = self._late_starts.pop(getattr(body, "serial", None), None)
        if late is not None and (future is None or future.done()):
            # The answer to a remote start whose wait timed out: if the pile did start,
            # it charges under that serial and will report it: the session must exist.
            self._journal(
                Direction.IN, MessageType.CALL_RESULT, **seen, error_code="Late",
                payload=body.fields(),
            )  # fmt: skip
            if body.result == 1:
                self.gw._spawn(self._open_late_start(late))
            return
        if future is None or future.done():
            self._journal(
                Direction.IN, MessageType.CALL_RESULT, **seen, payload=body.fields(),
                error_code="Unsolicited",
            )  # fmt: skip
            return
        self._journal(Direction.IN, MessageType.CALL_RESULT, **seen, payload=body.fields())
        future.set_result(body)

    def _next_serial(self) -> int:
        self._serial = (self._serial + 1) & 0xFFFF
        return self._serial

    async def _command(self, action: str, payload: dict) -> tuple[codec.Body, dict]:
        """The frame of a platform command, and what to do once the pile accepted it."""
        code = self.code
        if action == "RemoteStart":
            credential = Credential(CredentialKind(payload["kind"]), payload["value"])
            serial = words.new_serial(
                pile_code=code, gun=payload["gun"], at=timezone.localtime(timezone.now(), self.zone)
            )
            balance = await self.gw.db.run(
                credential_balance, pile=self.pile, credential=credential
            )
            body = codec.RemoteStart(
                serial=serial, pile_code=code, gun=payload["gun"], logical_card="0" * 16,
                physical_card=words.card_bytes(payload["value"])
                if credential.kind == CredentialKind.CARD else "00" * 8,
                balance=balance,
            )  # fmt: skip
            return body, {"credential": credential, "serial": serial}
        if action == "RemoteStop":
            return codec.RemoteStop(pile_code=code, gun=payload["gun"]), {}
        if action == "Reboot":
            return codec.Reboot(pile_code=code, control=payload.get("control", 1)), {}
        if action == "ClockSync":
            now = words.wire_time(timezone.now(), self.zone)
            return codec.ClockSync(pile_code=code, time=now.replace(microsecond=0)), {}
        if action == "SetBillingModel":
            spec = await self.gw.db.run(tariff_in_force, pile=self.pile, at=timezone.now())
            if spec is None:
                raise NoAnswer("NoTariff", "no tariff in force at the pile's station")
            return words.billing_model(spec, pile_code=code, cls=codec.SetBillingModel), {}
        raise NoAnswer("UnknownCommand", f"{action} is not a YKC command")

    async def call_pile(self, action: str, payload: dict, timeout: float) -> dict:
        """Send a command and wait for the pile's answer; one outstanding at a time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await asyncio.wait_for(self._outbound_lock.acquire(), timeout)
        except TimeoutError:
            return {"outcome": "timeout"}
        try:
            try:
                body, after = await self._command(action, payload)
            except NoAnswer as exc:
                return {"outcome": "error", "error_code": exc.code, "description": str(exc)}
            answer_type = codec.ANSWERS[body.TYPE]
            future = loop.create_future()
            self._pending[answer_type] = future
            serial = self._next_serial()
            frame = codec.encode(body, serial=serial)
            self._journal(
                Direction.OUT, MessageType.CALL, action=action_name(body.TYPE),
                unique_id=str(serial), payload=body.fields(), raw=self._hex(frame),
            )  # fmt: skip
            try:
                self.writer.write(frame)
                await self.writer.drain()
                answer = await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
            except TimeoutError:
                if action == "RemoteStart":
                    self._late_starts[body.serial] = {**after, "gun": body.gun}
                return {"outcome": "timeout"}
            except (ConnectionError, OSError):
                return {"outcome": "offline"}
            finally:
                self._pending.pop(answer_type, None)
        finally:
            self._outbound_lock.release()
        if answer is None:
            return {"outcome": "offline"}
        result = answer.fields()
        if action == "RemoteStart" and answer.result == 1:
            try:
                start = await self.gw.db.run(
                    session_open, pile=self.pile, gun=body.gun,
                    credential=after["credential"], serial=after["serial"],
                )  # fmt: skip
                result["order_no"] = start.order_no
            except Exception:
                logger.exception(
                    "%s: session of remote start %s not opened", self.code, body.serial
                )
        return {"outcome": "result", "payload": result}

    async def _open_late_start(self, start: dict) -> None:
        try:
            result = await self.gw.db.run(
                session_open, pile=self.pile, gun=start["gun"],
                credential=start["credential"], serial=start["serial"],
            )  # fmt: skip
        except Exception:
            logger.exception("%s: session of late remote start %s not opened", self.code, start)
            return
        logger.info("%s: late remote start %s opened as %s", self.code, start, result.order_no)

    def connection_lost(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_result(None)
