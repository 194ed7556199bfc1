"""Protocol services usable from web, worker and shell: remote commands, journal upkeep.

`send_command` is the OCPP 1.6 transport of remote commands: the OCPP adapter
(`protocol.ocpp16.commands`) and its expert form use it. Everyone else asks for an intent
in the platform's words (`protocol.intents`) and never builds an OCPP payload.

`send_command` reaches a pile through whichever gateway node holds its connection: it
looks the node up in Redis, pushes the command onto that node's list and waits for the
node to push the pile's answer back (see `protocol.routing`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, _validate_payload

from chargenet.audit import audit_record
from chargenet.errors import DomainError
from chargenet.partitions import partitions_drop_before
from stations.models import Pile

from . import routing
from .models import FRAME_PARTITIONS

COMMAND_ACTIONS = (
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "Reset",
    "UnlockConnector",
    "ChangeAvailability",
    "ChangeConfiguration",
    "GetConfiguration",
    "TriggerMessage",
    "ClearCache",
    "UpdateFirmware",
    "GetDiagnostics",
    # OCPP 1.6 feature profiles (issue 15)
    "GetLocalListVersion",
    "SendLocalList",
    "ReserveNow",
    "CancelReservation",
    "SetChargingProfile",
    "ClearChargingProfile",
    "GetCompositeSchedule",
)
# Where a pile may fetch firmware from / upload diagnostics to (OCPP 1.6 §5.9, §5.17).
LOCATION_SCHEMES = ("ftp", "ftps", "http", "https")
# Answers that mean "the pile said no".
REFUSALS = {"Rejected", "NotSupported", "UnlockFailed", "NotImplemented"}


class CommandError(DomainError):
    code = "pile_command_failed"


class PileOffline(CommandError):
    code = "pile_offline"


class CommandTimeout(CommandError):
    code = "pile_command_timeout"


class CommandRejected(CommandError):
    code = "pile_command_rejected"


class CommandInvalid(CommandError):
    code = "pile_command_invalid"


def send_command(
    *, pile: Pile | str, action: str, payload: dict | None = None, timeout: float = 30.0
) -> dict[str, Any]:
    """Send an OCPP 1.6 command (camelCase payload, as on the wire) to a pile and return
    its answer payload. Raises `PileOffline`, `CommandTimeout`, `CommandRejected` (the pile
    answered Rejected/NotSupported/… or a CALLERROR) or `CommandInvalid`."""
    code = pile.code if isinstance(pile, Pile) else str(pile)
    request_id = command_send(pile=code, action=action, payload=payload, timeout=timeout)
    reply = routing.command_reply(request_id=request_id, wait=timeout + 2)
    return command_answer(code=code, action=action, reply=reply, timeout=timeout)


def command_send(
    *, pile: Pile | str, action: str, payload: dict | None = None, timeout: float = 30.0
) -> str:
    """The sending half of `send_command`: check the command and push it to the node
    holding the pile, without waiting; its request id for `command_answer`. Raises
    `PileOffline` or `CommandInvalid`."""
    code = pile.code if isinstance(pile, Pile) else str(pile)
    payload = payload or {}
    if action not in COMMAND_ACTIONS:
        raise CommandInvalid(
            _("“%(action)s” is not a command the platform sends; use one of: %(actions)s.")
            % {"action": action, "actions": ", ".join(COMMAND_ACTIONS)}
        )
    try:
        _validate_payload(Call("check", action, payload), "1.6")
    except OCPPError as exc:
        raise CommandInvalid(
            _("The %(action)s command is not valid OCPP 1.6: %(cause)s")
            % {"action": action, "cause": exc.details.get("cause", exc.description)}
        ) from exc
    _check_maintenance(action, payload)
    request_id = routing.command_send(code=code, action=action, payload=payload, timeout=timeout)
    if request_id is None:
        raise PileOffline(
            _("Pile %(code)s is offline: it is not connected to any gateway.") % {"code": code}
        )
    return request_id


def command_answer(*, code: str, action: str, reply: dict | None, timeout: float) -> dict[str, Any]:
    """The other half: the node's ``reply`` (None: none came) as the pile's answer payload,
    or `PileOffline`, `CommandTimeout`, `CommandRejected`."""
    reply = reply or {"outcome": "timeout"}
    outcome = reply.get("outcome")
    if outcome == "offline":
        raise PileOffline(_("Pile %(code)s is offline: its connection closed.") % {"code": code})
    if outcome == "timeout":  # no reply at all, or the gateway node gave up waiting
        raise CommandTimeout(
            _("Pile %(code)s did not answer %(action)s within %(timeout)s s.")
            % {"code": code, "action": action, "timeout": timeout}
        )
    if outcome == "error":
        raise CommandRejected(
            _("Pile %(code)s refused %(action)s with error %(error)s: %(description)s")
            % {
                "code": code,
                "action": action,
                "error": reply.get("error_code", ""),
                "description": reply.get("description", ""),
            },
            details=reply,
        )
    result = reply.get("payload") or {}
    status = result.get("status")
    if status in REFUSALS:
        raise CommandRejected(
            _("Pile %(code)s answered %(status)s to %(action)s.")
            % {"code": code, "status": status, "action": action},
            details=result,
        )
    return result


def _check_maintenance(action: str, payload: dict) -> None:
    """What the OCPP schema leaves open for UpdateFirmware / GetDiagnostics: a location the
    pile can reach, times with a time zone, a time window that is not inverted."""
    if action not in ("UpdateFirmware", "GetDiagnostics"):
        return
    location = urlsplit(payload["location"])
    if location.scheme.lower() not in LOCATION_SCHEMES or not location.hostname:
        raise CommandInvalid(
            _("The location must be an ftp, ftps, http or https URL with a host; got “%(url)s”.")
            % {"url": payload["location"]}
        )
    for field in ("retries", "retryInterval"):
        if payload.get(field, 0) < 0:
            raise CommandInvalid(
                _("%(field)s cannot be negative; got %(value)s.")
                % {"field": field, "value": payload[field]}
            )
    times = {
        field: _command_time(field, payload[field])
        for field in ("retrieveDate", "startTime", "stopTime")
        if field in payload
    }
    if "startTime" in times and "stopTime" in times and times["startTime"] >= times["stopTime"]:
        raise CommandInvalid(_("The diagnostics start time must be before its stop time."))


def _command_time(field: str, value: str) -> dt.datetime:
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise CommandInvalid(
            _(
                "%(field)s must be a date and time with a time zone, e.g. "
                "2026-12-01T02:00:00Z; got “%(value)s”."
            )
            % {"field": field, "value": value}
        )
    return at


def pile_command_by_staff(
    *, pile: Pile, action: str, payload: dict, timeout: float, actor
) -> dict[str, Any]:
    """`send_command` on a person's behalf: the command and its outcome (the pile's answer,
    or the error) go to the audit log either way, then the answer or error is returned."""
    before = {"action": action, "payload": payload}
    try:
        answer = send_command(pile=pile, action=action, payload=payload, timeout=timeout)
    except DomainError as exc:
        audit_record(actor=actor, action="pile_command", obj=pile, before=before,
                     after={"error": exc.code, "message": str(exc)})  # fmt: skip
        raise
    audit_record(actor=actor, action="pile_command", obj=pile, before=before, after=answer)
    return answer


def journal_prune(*, now: dt.datetime | None = None) -> int:
    """Drop the journal's days older than ``GATEWAY_JOURNAL_RETENTION_DAYS`` (whole
    partitions: no DELETE, no vacuum) and the stray older frames of the default partition.
    Returns the frames removed (see `partitions_drop_before`)."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.GATEWAY_JOURNAL_RETENTION_DAYS)
    return partitions_drop_before(spec=FRAME_PARTITIONS, before=cutoff)
