"""Inbound OCPP 1.6 CALLs: translate the payload into a core command, run it, translate
the result back. Each handler returns (answer payload, order number, transactionId) for
the journal; `protocol.gateway.connection` validates, journals and answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Any

from django.conf import settings
from django.utils import timezone
from ocpp.exceptions import PropertyConstraintViolationError

from billing.services import sessions
from chargenet.errors import DomainError
from stations.models import Pile
from stations.services import live, maintenance

from ..gateway import bounds
from ..tasks import piles_booted_sync_task
from . import words
from .values import parse_pile_time, samples_from_ocpp

logger = logging.getLogger(__name__)

# Actions a pile may send (OCPP 1.6 core + firmware/diagnostics); the transaction-bearing
# ones are answered only after their effect and their frames are committed.
TRANSACTION_ACTIONS = {"StartTransaction", "MeterValues", "StopTransaction"}
INBOUND_ACTIONS = {
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "StatusNotification",
    *TRANSACTION_ACTIONS,
}


def _time(value: str | None, field: str) -> dt.datetime:
    parsed = parse_pile_time(value)
    if parsed is None:
        raise PropertyConstraintViolationError(
            details={"cause": f"{field} is not an ISO 8601 date-time: {value!r}"}
        )
    return parsed


def _now_iso() -> str:
    return timezone.now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _credential(id_tag: str) -> sessions.Credential | None:
    return words.credential(id_tag) if id_tag else None


class Ocpp16Handlers:
    """The ``on_<Action>`` handlers of a pile connection (mixed into `PileConnection`,
    which provides ``gw``, ``pile``, ``pile_id``, ``connector_states`` and ``orders``)."""

    gw: Any
    pile: Pile
    pile_id: int
    connector_states: dict[int, str]
    orders: dict[int, str]
    transact: Any  # `PileConnection.transact`

    def state_summary(self) -> str:
        return live.pile_state_summary(self.connector_states.values())

    async def on_BootNotification(self, p: dict):
        result = await self.gw.db.run(
            live.pile_boot,
            pile_id=self.pile_id,
            vendor=p["chargePointVendor"],
            model=p["chargePointModel"],
            serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber", ""),
            firmware_version=p.get("firmwareVersion", ""),
        )
        answer = {"status": result.status, "currentTime": _now_iso(), "interval": result.interval}
        if result.status == "Accepted":
            self.gw._spawn(self._after_boot())
        return answer, "", None

    async def on_Heartbeat(self, p: dict):
        self.gw.heartbeat(self.pile_id, self.state_summary())
        return {"currentTime": _now_iso()}, "", None

    async def on_StatusNotification(self, p: dict):
        connector = bounds.connector_number(p["connectorId"], pile_itself=True)
        state = words.connector_state(p["status"])
        await self.gw.db.run(
            live.connector_status_record,
            pile=self.pile,
            connector_number=connector,
            state=state,
            error_code=words.connector_error(p["errorCode"]),
            info=p.get("info", ""),
            vendor_error_code=p.get("vendorErrorCode", ""),
            pile_time=parse_pile_time(p.get("timestamp")),
        )
        if connector > 0:
            self.connector_states[connector] = state
        return {}, "", None

    async def on_Authorize(self, p: dict):
        decision = await self.gw.db.run(
            sessions.session_authorize, pile=self.pile, credential=words.credential(p["idTag"])
        )
        return {"idTagInfo": words.id_tag_info(decision)}, "", None

    # The transaction messages: each service runs with `transact`, which writes the CALL's
    # frames in the transaction of its effect; the answer is made from the service's
    # result in the group commit's thread, before the commit (pure functions only).

    async def on_StartTransaction(self, p: dict):
        def answered(result: sessions.StartResult):
            transaction_id = words.transaction_id(result.protocol_ref)
            answer = {
                "transactionId": transaction_id,
                "idTagInfo": words.id_tag_info(result.status),
            }
            return answer, result.order_no, transaction_id

        start = dict(
            pile=self.pile,
            connector_number=bounds.connector_number(p["connectorId"], pile_itself=False),
            credential=words.credential(p["idTag"]),
            meter_start_wh=bounds.meter_wh(p["meterStart"], field="meterStart"),
            started_at=_time(p["timestamp"], "timestamp"),
            reservation_id=p.get("reservationId"),
        )
        try:
            answer, order_no, transaction_id = await self.transact(
                sessions.session_start, start, answered
            )
        except live.UnknownConnector as exc:
            # Said to the pile in the protocol's language, whatever the platform's is.
            cause = f"connectorId {p['connectorId']} is not a connector of this pile"
            raise PropertyConstraintViolationError(details={"cause": cause}) from exc
        self.orders[transaction_id] = order_no
        return answer, order_no, transaction_id

    async def on_MeterValues(self, p: dict):
        transaction_id = bounds.transaction_id(p.get("transactionId"))
        samples = samples_from_ocpp(p["meterValue"])
        meter = dict(
            pile=self.pile,
            connector_number=bounds.connector_number(p["connectorId"], pile_itself=True),
            protocol_ref=words.protocol_ref(transaction_id),
            samples=bounds.samples(samples, field="meterValue"),
        )
        return await self.transact(
            sessions.session_meter_record,
            meter,
            lambda result: ({}, result.order_no, result.session_id or transaction_id),
        )

    async def on_StopTransaction(self, p: dict):
        transaction_id = bounds.transaction_id(p["transactionId"])
        samples = samples_from_ocpp(p.get("transactionData", []))

        def answered(result):
            answer: dict[str, Any] = {}
            if result.status is not None:
                answer["idTagInfo"] = words.id_tag_info(result.status)
            return answer, result.order_no, transaction_id

        stop = dict(
            pile=self.pile,
            protocol_ref=words.protocol_ref(transaction_id),
            meter_stop_wh=bounds.meter_wh(p["meterStop"], field="meterStop"),
            stopped_at=_time(p["timestamp"], "timestamp"),
            reason=p.get("reason", ""),
            credential=_credential(p.get("idTag", "")),
            samples=bounds.samples(samples, field="transactionData"),
            transaction_data=p.get("transactionData", []),
        )
        return await self.transact(sessions.session_stop, stop, answered)

    async def on_DataTransfer(self, p: dict):
        known = settings.OCPP_DATA_TRANSFER_VENDOR_IDS
        if known and p["vendorId"] not in known:
            return {"status": "UnknownVendorId"}, "", None
        if p.get("messageId", "").upper() != "VIN":
            return {"status": "UnknownMessageId"}, "", None
        data = p.get("data", "")
        connector, transaction_id, vin = 1, None, data
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, dict):
            field = "data.connectorId"
            number = bounds.integer(parsed.get("connectorId") or 1, field=field)
            connector = bounds.connector_number(number, field=field, pile_itself=False)
            if parsed.get("transactionId") is not None:
                field = "data.transactionId"
                number = bounds.integer(parsed["transactionId"], field=field)
                transaction_id = bounds.transaction_id(number, field=field)
            vin = str(parsed.get("vin", ""))
        try:
            session_id = await self.gw.db.run(
                sessions.session_link_vin,
                pile=self.pile,
                connector_number=connector,
                vin=vin,
                protocol_ref=words.protocol_ref(transaction_id),
            )
        except DomainError:
            return {"status": "Rejected", "data": "invalid VIN"}, "", None
        if session_id is None:
            return {"status": "Rejected", "data": "no session"}, "", None
        return {"status": "Accepted"}, self.orders.get(session_id, ""), session_id

    async def on_FirmwareStatusNotification(self, p: dict):
        await self.gw.db.run(
            maintenance.pile_firmware_status_record, pile_id=self.pile_id, status=p["status"]
        )
        return {}, "", None

    async def on_DiagnosticsStatusNotification(self, p: dict):
        await self.gw.db.run(
            maintenance.pile_diagnostics_status_record, pile_id=self.pile_id, status=p["status"]
        )
        return {}, "", None

    # --- OCPP 1.6 feature profiles (issue 15) ----------------------------------------------

    async def _after_boot(self) -> None:
        """Once the boot is answered: queue bringing the pile up to its desired
        configuration and local list (`protocol.sync`, in a worker: it waits for the pile).
        Through the node's tasks sender, joined with the other boots of the moment: one
        publish per pile cost the event loop ~2 ms of CPU, a third of a reconnect storm's.
        A send the broker refuses is logged there; the beat sync catches up."""
        sends = [(piles_booted_sync_task, ([self.pile_id],))]
        sender = self.gw.db.sender
        if sender.eager:  # the task runs where it is sent: not on the event loop
            await asyncio.to_thread(sender.add, sends)
        else:
            sender.add(sends)
