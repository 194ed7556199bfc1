"""What a pile adapter answers to a remote intent, in the platform's words.

`protocol.intents` asks the adapter of the pile's protocol (`protocol.intents.ADAPTERS`)
for an intent by name; the adapter translates it into its wire command, sends it and
translates the pile's answer back into a `PileAnswer`. Nothing here names a wire word.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _


class Outcome(models.TextChoices):
    ACCEPTED = "accepted", _("accepted")
    REJECTED = "rejected", _("rejected")
    OFFLINE = "offline", _("offline")
    TIMEOUT = "timeout", _("no answer in time")
    NOT_SUPPORTED = "not_supported", _("not supported")
    # The request itself was wrong (e.g. a firmware URL the pile cannot reach): not sent.
    INVALID = "invalid", _("invalid request")


class IntentChannel(models.TextChoices):
    """Who asked for a remote start."""

    BACK_OFFICE = "back_office", _("back office")
    DRIVER_APP = "driver_app", _("driver app")
    PARTNER = "partner", _("partner platform")


class Trigger(models.TextChoices):
    """What a pile can be asked to send again now."""

    BOOT = "boot", _("boot notice")
    HEARTBEAT = "heartbeat", _("heartbeat")
    STATUS = "status", _("connector state")
    METER_VALUES = "meter_values", _("meter values")
    FIRMWARE_STATUS = "firmware_status", _("firmware update status")
    DIAGNOSTICS_STATUS = "diagnostics_status", _("diagnostics status")


@dataclass(frozen=True)
class Setting:
    """One configuration key of a pile as the pile reported it."""

    key: str
    value: str | None
    read_only: bool


@dataclass(frozen=True)
class PileAnswer:
    """What came back. ``reason`` is an extra sentence a person can read (why it was not
    sent, what to do next); the other fields are filled by the intents that return data."""

    outcome: Outcome
    reason: str = ""
    settings: tuple[Setting, ...] = ()
    unknown_keys: tuple[str, ...] = ()
    file_name: str = ""
    reboot_required: bool = False
    list_version: int | None = None  # the local authorisation list version a pile holds
    schedule: PowerSchedule | None = None  # the power a pile plans to give (composite)


@dataclass(frozen=True)
class Sent:
    """A command on its way to a pile whose answer is read later: ``request_id`` names the
    reply the gateway node leaves in Redis (`protocol.routing.command_reply`), ``expires``
    (epoch seconds) is when the node gives up waiting for the pile. Kept as plain values so
    a caller can store it and read the answer from another request or process."""

    action: str
    request_id: str
    expires: float


# --- Starts answered later (a driver's phone must not wait for the pile) ------------------
# An adapter also offers the start in two halves, by these method names:
#   connector_start_send(connector, credential_value, credential_kind, timeout)
#       → Sent, or a PileAnswer when it was not sent (offline, invalid, not supported)
#   start_answer(sent, reply) → PileAnswer     reply: the node's reply dict
#       ({"outcome": "timeout"} when none came before ``sent.expires``)


# --- OCPP 1.6 feature profiles (issue 15) -----------------------------------------------
# The intents below are protocol-neutral; an adapter implements those its protocol has,
# by these method names (keyword arguments as in `protocol.intents`):
#   pile_local_list_version(pile)                      → PileAnswer.list_version
#   pile_local_list_send(pile, version, entries, full)
#       entries: tuple[billing.services.local_lists.LocalListEntry, ...]
#   connector_reserve(connector, reservation)           reservation: stations.Reservation
#       (None when the core refused it: not called then)
#   reservation_cancel(reservation)
#   pile_charging_profile_set(profile)                  profile: stations.ChargingProfile
#   pile_charging_profile_clear(pile, profile_id, connector_number, purpose)
#   pile_composite_schedule(pile, connector_number, seconds) → PileAnswer.schedule
# each with ``timeout``. A refusal with a reason the pile gave (a faulted or occupied
# connector, a list version mismatch) is *rejected* with that reason in the platform's words.


@dataclass(frozen=True)
class PowerSchedule:
    """Power limits from offsets: ``periods`` of (seconds from ``starts_at``, limit in W)."""

    starts_at: dt.datetime | None
    seconds: int | None
    periods: tuple[tuple[int, float], ...]
