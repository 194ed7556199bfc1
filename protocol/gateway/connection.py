"""One pile's WebSocket connection: frame checks, dispatch to the OCPP 1.6 handlers
(`protocol.ocpp16.handlers`), journaling.

Built on `ocpp.v16.ChargePoint` (its message classes, JSON-schema validation and error
types) with our own receive loop, because the gateway needs what the library's loop does
not do: answer malformed frames with a CALLERROR, refuse floods, journal every frame, and
*not* answer a transaction-bearing message whose effect could not be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone
from jsonschema.exceptions import ValidationError as SchemaValidationError
from ocpp.exceptions import (
    FormationViolationError,
    InternalError,
    NotSupportedError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    ProtocolError,
)
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplemented,
)
from ocpp.v16 import ChargePoint
from ocpp.v16.enums import Action
from websockets.exceptions import ConnectionClosed

from stations.models import Pile

from ..db import DatabaseUnavailable
from ..journal import storable
from ..models import Direction, MessageType
from ..ocpp16.handlers import INBOUND_ACTIONS, TRANSACTION_ACTIONS, Ocpp16Handlers
from ..ocpp16.schemas import call_payload_validate
from . import bounds

if TYPE_CHECKING:
    from .server import Gateway

logger = logging.getLogger("protocol.gateway")

KNOWN_ACTIONS = {a.value for a in Action}
_UNIQUE_ID_RE = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')


class NoAnswer(Exception):
    """Leave the CALL unanswered: the pile will retry it."""


def _ocpp_code(error: OCPPError) -> str:
    # OCPP-J 1.6 spells it FormationViolation (errata 5.2); the library uses 2.0's name.
    return "FormationViolation" if error.code == "FormatViolation" else error.code


def _spec_error(error: OCPPError) -> OCPPError:
    """The OCPP-J 1.6 §4.2.3 error for a payload the schema refused, where the library names
    it otherwise: too few/many items violate an occurrence constraint, a value outside its
    enumeration or range is an invalid property value; neither is a formation error."""
    cause = error.__context__
    if not isinstance(cause, SchemaValidationError):
        return error
    details = {"cause": cause.message}
    if cause.validator in ("minItems", "maxItems"):
        return OccurenceConstraintViolationError(details=details)
    if cause.validator in ("enum", "minimum", "maximum"):
        return PropertyConstraintViolationError(details=details)
    return error


class PileConnection(Ocpp16Handlers, ChargePoint):
    def __init__(self, *, pile: Pile, websocket, gateway: Gateway):
        super().__init__(pile.code, websocket, response_timeout=30)
        self.code = pile.code
        self.pile_id = pile.pk
        self.pile = pile  # with its station, loaded once at the handshake (`pile_login`)
        self.gw = gateway
        self.token = uuid.uuid4().hex[:12]
        # Read once per connection, not per frame.
        self.max_frame_bytes = settings.GATEWAY_MAX_FRAME_BYTES
        self.max_frames_per_minute = settings.GATEWAY_MAX_CALLS_PER_MINUTE
        self.prefix_chars = settings.GATEWAY_JOURNAL_PREFIX_CHARS
        self.connector_states: dict[int, str] = {}
        self.orders: dict[int, str] = {}  # transaction id → order number, for the journal
        self._pending: dict[str, tuple[str, asyncio.Future]] = {}
        self._outbound_lock = asyncio.Lock()
        self._calling: dict = {}  # the CALL being answered, as journaled
        self._journaled = False  # its frames were written with its effect
        # Per pile on this node, not per connection: reconnecting does not reset the count.
        self._frames: deque[float] = gateway.frame_window(pile.code)
        self.aborted = False

    # --- receive loop -----------------------------------------------------------------

    async def start(self) -> None:
        try:
            async for raw in self._connection:
                if self.aborted:
                    continue  # closing for abuse: drain until the peer's close frame
                await self.route_message(raw)
                if self.gw.stopping:
                    break
        except ConnectionClosed:
            pass

    def _journal(self, direction: str, message_type: int, *, wait: bool = False, **fields):
        return self.gw.journal.add(
            wait=wait, pile_code=self.code, direction=direction, message_type=message_type, **fields
        )

    async def _send_text(self, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._connection.send(text)

    async def _send_error(self, unique_id: str, action: str, error: OCPPError) -> None:
        code = _ocpp_code(error)
        details = {k: str(v)[:500] for k, v in (error.details or {}).items() if k != "ocpp_message"}
        frame = [4, unique_id, code, error.description, details]
        self._journal(
            Direction.OUT,
            MessageType.CALL_ERROR,
            action=action,
            unique_id=unique_id[:64],
            payload={"description": error.description, "details": details},
            error_code=code,
        )
        await self._send_text(json.dumps(frame, separators=(",", ":")))

    async def route_message(self, raw: str | bytes) -> None:
        self.gw.seen(self.pile_id)
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raw = raw.decode("utf-8", "replace")
        if self._flooding():
            # Every frame counts, whatever it is: malformed frames and answers nobody asked
            # for grow the journal just as calls do.
            self._journal(
                Direction.IN, MessageType.MALFORMED, raw=raw[: self.prefix_chars],
                error_code="Flood",
            )  # fmt: skip
            logger.warning("%s: flooding, closing the connection", self.code)
            self._abort(1008, "too many messages")
            return
        limit = self.max_frame_bytes
        if len(raw) > limit:
            match = _UNIQUE_ID_RE.match(raw)
            self._journal(
                Direction.IN, MessageType.MALFORMED, raw=raw[:2000], error_code="FrameTooLarge"
            )
            await self._send_error(
                match.group(1) if match else "-1",
                "",
                FormationViolationError(
                    description=f"Frame of {len(raw)} characters exceeds the limit of {limit}."
                ),
            )
            return
        try:
            msg = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
            match = _UNIQUE_ID_RE.match(raw)
            self._journal(Direction.IN, MessageType.MALFORMED, raw=raw[:4000], error_code="JSON")
            await self._send_error(
                match.group(1) if match else "-1",
                "",
                FormationViolationError(description="Frame is not valid JSON."),
            )
            return
        if not isinstance(msg, list) or not msg or msg[0] not in (2, 3, 4):
            self._journal(Direction.IN, MessageType.MALFORMED, raw=raw[:4000], error_code="RPC")
            uid = msg[1] if isinstance(msg, list) and len(msg) > 1 else "-1"
            await self._send_error(
                uid if isinstance(uid, str) else "-1",
                "",
                FormationViolationError(
                    description="Frame is not an OCPP-J array [type, id, ...] of type 2, 3 or 4."
                ),
            )
            return
        if msg[0] in (3, 4):
            self._on_response(msg, raw)
            return
        if (
            len(msg) != 4
            or not isinstance(msg[1], str)
            or not 0 < len(msg[1]) <= 36
            or not isinstance(msg[2], str)
            or not isinstance(msg[3], dict)
        ):
            self._journal(Direction.IN, MessageType.MALFORMED, raw=raw[:4000], error_code="RPC")
            uid = msg[1] if len(msg) > 1 and isinstance(msg[1], str) else "-1"
            await self._send_error(
                uid[:36] or "-1",
                "",
                ProtocolError(description="A CALL is [2, uniqueId, action, {payload}]."),
            )
            return
        _type, unique_id, action, payload = msg
        # A text the database cannot hold (NUL, a lone surrogate) reaches a parsed payload
        # only through a \u escape: a frame without one needs no walk of its texts.
        await self._on_call(unique_id, action, payload, escaped="\\u" in raw)

    def _abort(self, code: int, reason: str) -> None:
        """Close for abuse: send the close frame now, without awaiting the handshake (the
        flooding peer has filled our receive buffer, so `close()` would wait for its
        timeout), discard what still arrives, and cut the socket if the peer never
        answers the close."""
        ws = self._connection
        self.aborted = True
        with contextlib.suppress(Exception):
            ws.protocol.send_close(code, reason)
            ws.send_data()
        asyncio.get_running_loop().call_later(5, ws.transport.abort)

    def _flooding(self) -> bool:
        now = time.monotonic()
        self._frames.append(now)
        while self._frames and self._frames[0] < now - 60:
            self._frames.popleft()
        return len(self._frames) > self.max_frames_per_minute

    def _on_response(self, msg: list, raw: str) -> None:
        unique_id = msg[1] if len(msg) > 1 and isinstance(msg[1], str) else ""
        pending = self._pending.get(unique_id)
        action = pending[0] if pending else ""
        if pending is None:
            # An answer to nothing we sent: kept as a bounded prefix of its text, so a pile
            # sending big unsolicited answers cannot grow the journal without limit.
            self._journal(
                Direction.IN, msg[0], unique_id=unique_id[:64],
                raw=raw[: self.prefix_chars], error_code="Unsolicited",
            )  # fmt: skip
            return
        if msg[0] == 3:
            payload = msg[2] if len(msg) > 2 else None
            self._journal(
                Direction.IN,
                MessageType.CALL_RESULT,
                action=action,
                unique_id=unique_id[:64],
                payload=payload,
            )
        else:
            self._journal(
                Direction.IN,
                MessageType.CALL_ERROR,
                action=action,
                unique_id=unique_id[:64],
                payload={"frame": msg[2:]},
                error_code=str(msg[2])[:64] if len(msg) > 2 else "",
            )
        if not pending[1].done():
            pending[1].set_result(msg)

    async def _on_call(
        self, unique_id: str, action: str, payload: dict, *, escaped: bool = True
    ) -> None:
        journal = {"action": action[:64], "unique_id": unique_id, "payload": payload}
        self._calling, self._journaled = journal, False  # for `transact`
        try:
            if action not in INBOUND_ACTIONS:
                if action in KNOWN_ACTIONS:
                    raise NotSupportedError(
                        description=f"{action} is not handled by this central system."
                    )
                raise OcppNotImplemented(description=f"Unknown action {action!r}.")
            try:
                call_payload_validate(unique_id, action, payload)  # the library's schemas
            except OCPPError as error:
                raise _spec_error(error) from error
            if escaped:
                bounds.text(payload)
            handler = getattr(self, f"on_{action}")
            answer, order_no, transaction_id = await handler(payload)
        except OCPPError as error:
            self._journal(Direction.IN, MessageType.CALL, **journal, error_code=_ocpp_code(error))
            await self._send_error(unique_id, action, error)
            return
        except (DatabaseUnavailable, NoAnswer) as exc:
            self._journal(Direction.IN, MessageType.CALL, **journal, error_code="NotAnswered")
            logger.warning("%s: %s not answered (pile will retry): %s", self.code, action, exc)
            return
        except Exception:
            logger.exception("%s: %s failed", self.code, action)
            self._journal(Direction.IN, MessageType.CALL, **journal, error_code="InternalError")
            if action in TRANSACTION_ACTIONS:
                return  # unanswered: the pile keeps the message and retries it
            await self._send_error(
                unique_id,
                action,
                InternalError(description="The central system could not process the request."),
            )
            return
        if self._journaled:  # its frames were committed with its effect (`transact`)
            await self._send_text(json.dumps([3, unique_id, answer], separators=(",", ":")))
            return
        tx = {"order_no": order_no, "transaction_id": transaction_id}
        wait = action in TRANSACTION_ACTIONS
        f_in = self._journal(Direction.IN, MessageType.CALL, wait=wait, **journal, **tx)
        f_out = self._journal(
            Direction.OUT,
            MessageType.CALL_RESULT,
            wait=wait,
            action=action,
            unique_id=unique_id,
            payload=answer,
            **tx,
        )
        if wait:
            results = await asyncio.gather(f_in, f_out, return_exceptions=True)
            failed = [r for r in results if r is not True]
            if failed:  # committed, but not journaled yet: unanswered, the pile retries
                logger.warning("%s: %s not journaled, not answered: %s", self.code, action, failed)
                return
        await self._send_text(json.dumps([3, unique_id, answer], separators=(",", ":")))

    async def transact(self, fn, kwargs: dict, finish) -> tuple[dict, str, int | None]:
        """Run the service of the CALL being answered in the next group commit, with its
        frames: ``finish`` turns the service's result into (answer, order number,
        transactionId), and the CALL's frame and its answer's are written in the same
        transaction (`DbRunner.run_journaled`), so the answer goes once that commits."""
        call = self._calling
        code, node = self.code, self.gw.journal.node

        def journaled(result):
            outcome = answer, order_no, transaction_id = finish(result)
            common = {"pile_code": code, "unique_id": call["unique_id"], "node": node,
                      "order_no": order_no, "transaction_id": transaction_id,
                      "at": timezone.now()}  # fmt: skip
            frames = [
                {**common, "direction": Direction.IN, "message_type": MessageType.CALL,
                 "action": call["action"], "payload": call["payload"]},
                {**common, "direction": Direction.OUT, "message_type": MessageType.CALL_RESULT,
                 "action": call["action"], "payload": answer},
            ]  # fmt: skip
            return outcome, frames

        outcome = await self.gw.db.run_journaled(fn, kwargs, journaled)
        self._journaled = True
        return outcome

    # --- outbound -------------------------------------------------------------------------

    async def call_pile(self, action: str, payload: dict, timeout: float) -> dict:
        """Send a CALL and wait for the pile's answer; one outstanding CALL at a time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await asyncio.wait_for(self._outbound_lock.acquire(), timeout)
        except TimeoutError:
            return {"outcome": "timeout"}
        try:
            unique_id = uuid.uuid4().hex
            future = loop.create_future()
            self._pending[unique_id] = (action, future)
            self._journal(
                Direction.OUT, MessageType.CALL, action=action, unique_id=unique_id, payload=payload
            )
            try:
                await self._connection.send(
                    json.dumps([2, unique_id, action, payload], separators=(",", ":"))
                )
                msg = await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
            except TimeoutError:
                return {"outcome": "timeout"}
            except ConnectionClosed:
                return {"outcome": "offline"}
            finally:
                self._pending.pop(unique_id, None)
        finally:
            self._outbound_lock.release()
        if msg is None:
            return {"outcome": "offline"}
        # The pile's words go on to callers that store them (audit log, admin messages).
        if msg[0] == 3:
            return {"outcome": "result", "payload": storable(msg[2]) if len(msg) > 2 else {}}
        return {
            "outcome": "error",
            "error_code": storable(str(msg[2]))[:64] if len(msg) > 2 else "",
            "description": storable(str(msg[3]))[:500] if len(msg) > 3 else "",
        }

    def connection_lost(self) -> None:
        for _action, future in self._pending.values():
            if not future.done():
                future.set_result(None)
