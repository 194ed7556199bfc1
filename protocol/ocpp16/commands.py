"""The OCPP 1.6 adapter for remote intents: each intent becomes one OCPP CALL sent with
`protocol.services.send_command`, and the pile's answer becomes a `PileAnswer`.

The wire words (idTag, RemoteStartTransaction, Unlocked, …) stop here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.services.sessions import CredentialKind
from protocol.adapters import Outcome, PileAnswer, PowerSchedule, Sent, Setting, Trigger
from protocol.ocpp16 import words
from protocol.ocpp16.values import parse_pile_time
from protocol.services import (
    CommandError,
    CommandRejected,
    CommandTimeout,
    PileOffline,
    command_answer,
    command_send,
    send_command,
)

# OCPP 1.6 CiString limits of the fields the platform fills in.
ID_TAG_MAX = 20
CONFIGURATION_KEY_MAX = 50
CONFIGURATION_VALUE_MAX = 500

# A remote start carries an idTag; these credentials are one (the core reads it back at
# StartTransaction, see billing.services.sessions.identity).
START_KINDS = (CredentialKind.MEMBER_TOKEN, CredentialKind.CARD, CredentialKind.PARTNER_ORDER)

TRIGGERS = {
    Trigger.BOOT: "BootNotification",
    Trigger.HEARTBEAT: "Heartbeat",
    Trigger.STATUS: "StatusNotification",
    Trigger.METER_VALUES: "MeterValues",
    Trigger.FIRMWARE_STATUS: "FirmwareStatusNotification",
    Trigger.DIAGNOSTICS_STATUS: "DiagnosticsStatusNotification",
}

# Statuses (and CALLERROR codes) by which a pile says it cannot do it at all.
NOT_SUPPORTED = {"NotSupported", "NotImplemented"}


def _wire_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(reason) -> PileAnswer:
    return PileAnswer(Outcome.INVALID, reason=str(reason))


def _refusal(exc: CommandError) -> PileAnswer:
    """Why a command did not go through, in the platform's words."""
    if isinstance(exc, PileOffline):
        return PileAnswer(Outcome.OFFLINE)
    if isinstance(exc, CommandTimeout):
        return PileAnswer(Outcome.TIMEOUT)
    if isinstance(exc, CommandRejected):
        said = exc.details.get("status") or exc.details.get("error_code")
        return PileAnswer(Outcome.NOT_SUPPORTED if said in NOT_SUPPORTED else Outcome.REJECTED)
    return _invalid(exc.message)


def _naive(*times: dt.datetime | None) -> PileAnswer | None:
    if any(at is not None and at.tzinfo is None for at in times):
        return _invalid(_("A time needs its time zone."))
    return None


class Ocpp16CoreProfile:
    """Remote intents of the OCPP 1.6J core, firmware and remote trigger profiles; with
    the feature profiles (`Ocpp16FeatureProfiles`, below) they make `Ocpp16Adapter`."""

    def _call(self, pile, action: str, payload: dict, timeout: float) -> tuple[PileAnswer, Any]:
        """Send one CALL; the outcome in the platform's words and the raw answer payload."""
        try:
            answer = send_command(pile=pile, action=action, payload=payload, timeout=timeout)
        except CommandError as exc:
            return _refusal(exc), None
        return PileAnswer(Outcome.ACCEPTED), answer

    def _start_command(self, credential_value: str, credential_kind: str, number: int):
        """RemoteStartTransaction's payload, or the PileAnswer saying why it is not sent."""
        if credential_kind not in START_KINDS:
            return PileAnswer(
                Outcome.NOT_SUPPORTED,
                reason=_(
                    "An OCPP 1.6 pile can be started remotely for a member token, a card or a "
                    "partner order only."
                ),
            )
        if not credential_value or len(credential_value) > ID_TAG_MAX:
            return _invalid(
                _("The credential must be 1 to %(max)s characters for an OCPP 1.6 pile.")
                % {"max": ID_TAG_MAX}
            )
        return {"idTag": credential_value, "connectorId": number}

    def connector_start(self, *, connector, credential_value: str, credential_kind: str, timeout):
        payload = self._start_command(credential_value, credential_kind, connector.number)
        if isinstance(payload, PileAnswer):
            return payload
        return self._call(connector.pile, "RemoteStartTransaction", payload, timeout)[0]

    def connector_start_send(
        self, *, connector, credential_value: str, credential_kind: str, timeout
    ) -> Sent | PileAnswer:
        payload = self._start_command(credential_value, credential_kind, connector.number)
        if isinstance(payload, PileAnswer):
            return payload
        action = "RemoteStartTransaction"
        try:
            request_id = command_send(
                pile=connector.pile, action=action, payload=payload, timeout=timeout
            )
        except CommandError as exc:
            return _refusal(exc)
        return Sent(action, request_id, timezone.now().timestamp() + timeout)

    def start_answer(self, *, sent: Sent, reply: dict) -> PileAnswer:
        try:  # the exception's sentence is not kept: the outcome is what callers show
            command_answer(code="", action=sent.action, reply=reply, timeout=0)
        except CommandError as exc:
            return _refusal(exc)
        return PileAnswer(Outcome.ACCEPTED)

    def session_stop_remote(self, *, session, timeout):
        payload = {"transactionId": words.transaction_id(session.protocol_ref)}
        return self._call(session.pile, "RemoteStopTransaction", payload, timeout)[0]

    def pile_reset(self, *, pile, hard: bool, timeout):
        payload = {"type": "Hard" if hard else "Soft"}
        return self._call(pile, "Reset", payload, timeout)[0]

    def connector_unlock(self, *, connector, timeout):
        payload = {"connectorId": connector.number}
        return self._call(connector.pile, "UnlockConnector", payload, timeout)[0]

    def pile_trigger(self, *, pile, what: str, connector, timeout):
        payload = {"requestedMessage": TRIGGERS[what]}
        if connector is not None:
            payload["connectorId"] = connector.number
        return self._call(pile, "TriggerMessage", payload, timeout)[0]

    def pile_firmware_update(
        self, *, pile, location: str, retrieve_at, retries, retry_interval, timeout
    ):
        if problem := _naive(retrieve_at):
            return problem
        payload = {"location": location, "retrieveDate": _wire_time(retrieve_at)}
        payload |= _retries(retries, retry_interval)
        return self._call(pile, "UpdateFirmware", payload, timeout)[0]

    def pile_diagnostics_request(
        self, *, pile, location: str, since, until, retries, retry_interval, timeout
    ):
        if problem := _naive(since, until):
            return problem
        payload = {"location": location} | _retries(retries, retry_interval)
        for key, at in (("startTime", since), ("stopTime", until)):
            if at is not None:
                payload[key] = _wire_time(at)
        answer, result = self._call(pile, "GetDiagnostics", payload, timeout)
        return PileAnswer(answer.outcome, file_name=(result or {}).get("fileName", ""))

    def pile_configuration_get(self, *, pile, keys: list[str], timeout):
        if any(not key or len(key) > CONFIGURATION_KEY_MAX for key in keys):
            return _invalid(
                _("A configuration key is 1 to %(max)s characters.")
                % {"max": CONFIGURATION_KEY_MAX}
            )
        answer, result = self._call(
            pile, "GetConfiguration", {"key": keys} if keys else {}, timeout
        )
        result = result or {}
        settings = tuple(
            Setting(item["key"], item.get("value"), item["readonly"])
            for item in result.get("configurationKey", [])
        )
        return PileAnswer(
            answer.outcome, settings=settings, unknown_keys=tuple(result.get("unknownKey", []))
        )

    def pile_configuration_set(self, *, pile, key: str, value: str, timeout):
        if not key or len(key) > CONFIGURATION_KEY_MAX or len(value) > CONFIGURATION_VALUE_MAX:
            return _invalid(
                _("A configuration key is 1 to %(key)s characters, its value at most %(value)s.")
                % {"key": CONFIGURATION_KEY_MAX, "value": CONFIGURATION_VALUE_MAX}
            )
        answer, result = self._call(
            pile, "ChangeConfiguration", {"key": key, "value": value}, timeout
        )
        if (result or {}).get("status") == "RebootRequired":
            return PileAnswer(
                answer.outcome,
                reason=_("It takes effect when the pile restarts."),
                reboot_required=True,
            )
        return answer


def _retries(retries: int | None, retry_interval: int | None) -> dict:
    payload = {}
    if retries is not None:
        payload["retries"] = retries
    if retry_interval is not None:
        payload["retryInterval"] = retry_interval
    return payload


# --- OCPP 1.6 feature profiles: local list, reservation, smart charging (issue 15) ------
# Statuses by which a pile refuses for a reason a person can act on.
REFUSAL_REASONS = {
    "Faulted": _("The connector is faulted."),
    "Occupied": _("The connector is in use."),
    "Unavailable": _("The connector is unavailable."),
    "VersionMismatch": _("The pile holds another list version; the full list will be sent."),
    "Failed": _("The pile could not store the list."),
    "Unknown": _("The pile has no such charging profile."),
}
PROFILE_PURPOSES = {
    "pile_max": "ChargePointMaxProfile",
    "tx_default": "TxDefaultProfile",
    "tx": "TxProfile",
}


def _refused(answer: PileAnswer, result: dict | None) -> PileAnswer:
    """An answer whose status is not Accepted but not an error either (Faulted, Occupied,
    VersionMismatch, Unknown, …): rejected, with the pile's reason in the platform's words."""
    status = (result or {}).get("status")
    if answer.outcome != Outcome.ACCEPTED or status in (None, "Accepted"):
        return answer
    return PileAnswer(Outcome.REJECTED, reason=str(REFUSAL_REASONS.get(status, "")))


class Ocpp16FeatureProfiles:
    """The intents of the Local Auth List Management, Reservation and Smart Charging
    profiles (mixed into `Ocpp16Adapter`)."""

    _call: Any

    def pile_local_list_version(self, *, pile, timeout):
        answer, result = self._call(pile, "GetLocalListVersion", {}, timeout)
        version = (result or {}).get("listVersion")
        return PileAnswer(answer.outcome, answer.reason, list_version=version)

    def pile_local_list_send(self, *, pile, version: int, entries, full: bool, timeout):
        items = []
        for entry in entries:
            if len(entry.id_tag) > ID_TAG_MAX:
                continue  # a pile cannot hold it; the platform still authorises it online
            item: dict[str, Any] = {"idTag": entry.id_tag}
            if entry.decision is not None:
                info = words.id_tag_info(entry.decision)
                if entry.expires_at is not None:
                    info["expiryDate"] = _wire_time(entry.expires_at)
                item["idTagInfo"] = info
            items.append(item)
        payload = {
            "listVersion": version,
            "updateType": "Full" if full else "Differential",
            "localAuthorizationList": items,
        }
        return _refused(*self._call(pile, "SendLocalList", payload, timeout))

    def connector_reserve(self, *, connector, reservation, timeout):
        if problem := _naive(reservation.expires_at):
            return problem
        payload = {
            "connectorId": connector.number,
            "expiryDate": _wire_time(reservation.expires_at),
            "idTag": reservation.id_tag,
            "reservationId": reservation.pk,
        }
        return _refused(*self._call(connector.pile, "ReserveNow", payload, timeout))

    def reservation_cancel(self, *, reservation, timeout):
        payload = {"reservationId": reservation.pk}
        return _refused(
            *self._call(reservation.connector.pile, "CancelReservation", payload, timeout)
        )

    def pile_charging_profile_set(self, *, profile, transaction_ref, timeout):
        schedule: dict[str, Any] = {
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [
                {"startPeriod": int(start), "limit": float(limit)}
                for start, limit in profile.periods
            ],
        }
        body: dict[str, Any] = {
            "chargingProfileId": profile.profile_id,
            "stackLevel": profile.stack_level,
            "chargingProfilePurpose": PROFILE_PURPOSES[profile.purpose],
            "chargingSchedule": schedule,
        }
        if profile.daily:
            body |= {"chargingProfileKind": "Recurring", "recurrencyKind": "Daily"}
        elif profile.starts_at is not None:
            body["chargingProfileKind"] = "Absolute"
        else:
            body["chargingProfileKind"] = "Relative"
        if profile.starts_at is not None:
            schedule["startSchedule"] = _wire_time(profile.starts_at)
        if transaction_ref is not None:
            body["transactionId"] = words.transaction_id(transaction_ref)
        payload = {"connectorId": profile.connector_number, "csChargingProfiles": body}
        return _refused(*self._call(profile.pile, "SetChargingProfile", payload, timeout))

    def pile_charging_profile_clear(self, *, pile, profile_id, connector_number, purpose, timeout):
        payload: dict[str, Any] = {}
        if profile_id is not None:
            payload["id"] = profile_id
        if connector_number is not None:
            payload["connectorId"] = connector_number
        if purpose:
            payload["chargingProfilePurpose"] = PROFILE_PURPOSES[purpose]
        return _refused(*self._call(pile, "ClearChargingProfile", payload, timeout))

    def pile_composite_schedule(self, *, pile, connector_number: int, seconds: int, timeout):
        payload = {"connectorId": connector_number, "duration": seconds, "chargingRateUnit": "W"}
        answer, result = self._call(pile, "GetCompositeSchedule", payload, timeout)
        answer = _refused(answer, result)
        wire = (result or {}).get("chargingSchedule")
        if answer.outcome != Outcome.ACCEPTED or not wire:
            return answer
        in_watts = wire["chargingRateUnit"] == "W"
        periods = tuple(
            (
                int(p["startPeriod"]),
                float(p["limit"])
                if in_watts
                else amperes_to_watts(pile, float(p["limit"]), p.get("numberPhases")),
            )
            for p in wire["chargingSchedulePeriod"]
        )
        starts = wire.get("startSchedule") or result.get("scheduleStart")
        schedule = PowerSchedule(parse_pile_time(starts), wire.get("duration"), periods)
        return PileAnswer(answer.outcome, schedule=schedule)


# OCPP 1.6: "numberPhases=3 will be assumed unless another number is given".
DEFAULT_PHASES = 3


def amperes_to_watts(pile, amperes: float, number_phases: int | None) -> float:
    """A limit a pile gave in amperes, in watts (the platform asks for W; some piles answer
    in A anyway). AC: A × the pile's voltage per phase × phases (those the period names,
    else the pile's configured phases, else 3); DC: A × the voltage configured for it."""
    if pile.current_type == "DC":
        return amperes * pile.phase_voltage_v
    phases = number_phases or pile.supply_phases or DEFAULT_PHASES
    return amperes * pile.phase_voltage_v * phases


class Ocpp16Adapter(Ocpp16FeatureProfiles, Ocpp16CoreProfile):
    """Remote intents for piles speaking OCPP 1.6J."""
