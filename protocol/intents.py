"""Remote intents: what staff, drivers and partners ask of a pile, in the platform's words.

"Start this connector for this credential", "stop this session", "reset", "unlock",
"send your status again", firmware, diagnostics, configuration. Each intent finds the
adapter of the pile's protocol (`ADAPTERS`), which translates it into its wire command and
the pile's answer back into an `Outcome`; a protocol without the intent answers
*not supported*. The result carries a message a person can read (zh-hans / en), and an
intent made by a person (``acting_user``) writes an audit row either way.

No caller outside `protocol/` builds a protocol payload: they call these functions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import ChargingSession
from billing.models.sessions import ACTIVE_STATES
from billing.services.local_lists import LocalListEntry
from billing.services.reservations import ReservationRefused, reservation_create, reservation_end
from billing.services.sessions import CredentialKind
from chargenet.audit import audit_record
from orgs.models import Member
from stations.models import (
    ChargingProfile,
    Connector,
    Pile,
    ProfilePurpose,
    Reservation,
    ReservationState,
    Station,
)

from . import routing
from .adapters import IntentChannel, Outcome, PileAnswer, Sent, Trigger
from .ocpp16.commands import Ocpp16Adapter
from .ykc.commands import YkcAdapter

__all__ = [
    "ADAPTERS",
    "CredentialKind",
    "IntentChannel",
    "IntentResult",
    "Outcome",
    "Sent",
    "Trigger",
    "connector_reserve",
    "connector_start",
    "connector_start_answer",
    "connector_start_send",
    "connector_unlock",
    "pile_charging_profile_clear",
    "pile_charging_profile_set",
    "pile_composite_schedule",
    "pile_configuration_get",
    "pile_configuration_set",
    "pile_diagnostics_request",
    "pile_firmware_update",
    "pile_local_list_send",
    "pile_local_list_version",
    "pile_reset",
    "pile_trigger",
    "reservation_cancel",
    "session_stop_remote",
    "station_tariff_push",
]

# The adapter of each pile protocol (`Pile.protocol`).
ADAPTERS = {Pile.Protocol.OCPP16J: Ocpp16Adapter(), Pile.Protocol.YKC: YkcAdapter()}

TIMEOUT = 30.0  # seconds a person waits for the pile's answer
# After a command's deadline, how long its node's reply may still be on its way.
REPLY_GRACE = 2.0

MESSAGES = {
    Outcome.ACCEPTED: _("Pile %(pile)s accepted: %(what)s."),
    Outcome.REJECTED: _("Pile %(pile)s refused: %(what)s."),
    Outcome.NOT_SUPPORTED: _("Pile %(pile)s cannot do this: %(what)s."),
    Outcome.OFFLINE: _("Pile %(pile)s is offline; not sent: %(what)s."),
    Outcome.TIMEOUT: _("Pile %(pile)s did not answer in time: %(what)s."),
    Outcome.INVALID: _("Not sent to pile %(pile)s: %(what)s."),
}


@dataclass(frozen=True)
class IntentResult:
    """The outcome of one intent and a sentence saying it; ``answer`` holds the data some
    intents return (configuration settings, the diagnostics file name)."""

    intent: str
    outcome: Outcome
    message: str
    answer: PileAnswer


def _run(intent: str, pile: Pile, /, *, described, acting_user, refusal=None, noted=None, **kwargs):
    """Ask the adapter of ``pile``'s protocol for ``intent`` with ``kwargs`` (unless the
    platform already refuses it: ``refusal`` says why); say the outcome, and audit it with
    the intent's arguments (and what else is ``noted``) when a person asked."""
    method = getattr(ADAPTERS.get(pile.protocol), intent, None)
    if refusal is not None:
        answer = PileAnswer(Outcome.INVALID, reason=str(refusal))
    elif method is None:
        answer = PileAnswer(
            Outcome.NOT_SUPPORTED,
            reason=_("Piles speaking %(protocol)s have no such command.")
            % {"protocol": pile.get_protocol_display()},
        )
    else:
        answer = method(**kwargs)
    result = _result(intent, pile, described, answer)
    if acting_user is not None:
        audit_record(
            actor=acting_user,
            action="pile_intent",
            obj=pile,
            before={"intent": intent, **_arguments(kwargs), **(noted or {})},
            after={"outcome": result.outcome.value, "message": result.message, **_data(answer)},
        )
    return result


def _result(intent: str, pile: Pile, described, answer: PileAnswer) -> IntentResult:
    message = MESSAGES[answer.outcome] % {"pile": pile.code, "what": described}
    if answer.reason:
        message = f"{message} {answer.reason}"
    return IntentResult(
        intent=intent, outcome=Outcome(answer.outcome), message=message, answer=answer
    )


def _arguments(kwargs: dict) -> dict:
    """An intent's arguments for the audit row, rows named as people know them."""
    plain = {
        Connector: lambda c: c.number,
        ChargingSession: lambda s: s.order_no,
        Reservation: lambda r: r.pk,
        ChargingProfile: lambda p: p.periods,
    }
    return {
        name: plain[type(value)](value) if type(value) in plain else value
        for name, value in kwargs.items()
        if name not in ("pile", "timeout", "entries")
    }


def _data(answer: PileAnswer) -> dict:
    """The data an answer carries, for the audit row."""
    data = asdict(answer)
    del data["outcome"], data["reason"]
    return {key: value for key, value in data.items() if value}


def _start_described(connector: Connector, credential_kind: str, credential_value: str):
    return _("start connector %(number)s for %(kind)s %(value)s") % {
        "number": connector.number,
        "kind": CredentialKind(credential_kind).label,
        "value": credential_value,
    }


def connector_start(
    *,
    connector: Connector,
    credential_value: str,
    credential_kind: str,
    acting_user=None,
    channel: str = IntentChannel.BACK_OFFICE,
    timeout: float = TIMEOUT,
) -> IntentResult:
    """Ask the pile to start a charge on ``connector`` for a credential: a member token, a
    card number, or a partner order's tag (`billing.services.sessions.identity.partner_id_tag`),
    which the core recognises again when the pile reports the start and opens the session.
    ``channel`` says who asked (recorded in the audit row)."""
    return _run(
        "connector_start",
        connector.pile,
        described=_start_described(connector, credential_kind, credential_value),
        acting_user=acting_user,
        noted={"channel": channel},
        connector=connector,
        credential_value=credential_value,
        credential_kind=credential_kind,
        timeout=timeout,
    )


def connector_start_send(
    *, connector: Connector, credential_value: str, credential_kind: str, timeout: float = TIMEOUT
) -> Sent | IntentResult:
    """`connector_start` without waiting for the pile, for a caller that must answer at
    once (a driver's phone): `Sent` once the command is on its way (read the pile's answer
    later with `connector_start_answer`), or the result when it was not sent (offline,
    invalid, not supported). No person of ours acts here, so nothing is audited."""
    pile = connector.pile
    described = _start_described(connector, credential_kind, credential_value)
    send = getattr(ADAPTERS.get(pile.protocol), "connector_start_send", None)
    if send is None:
        return _run("connector_start_send", pile, described=described, acting_user=None)
    sent = send(
        connector=connector,
        credential_value=credential_value,
        credential_kind=credential_kind,
        timeout=timeout,
    )
    if isinstance(sent, Sent):
        return sent
    return _result("connector_start", pile, described, sent)


def connector_start_answer(
    *, connector: Connector, credential_value: str, credential_kind: str, sent: Sent
) -> IntentResult | None:
    """The pile's answer to a start sent by `connector_start_send`, without waiting: None
    while it may still come; *timeout* once the gateway node's deadline has passed with
    no reply (the node itself died, say). Safe to ask any number of times."""
    reply = routing.command_reply(request_id=sent.request_id, wait=0)
    if reply is None:
        if timezone.now().timestamp() < sent.expires + REPLY_GRACE:
            return None
        reply = {"outcome": "timeout"}
    pile = connector.pile
    answer = ADAPTERS[pile.protocol].start_answer(sent=sent, reply=reply)
    described = _start_described(connector, credential_kind, credential_value)
    return _result("connector_start", pile, described, answer)


def session_stop_remote(
    *, session: ChargingSession, acting_user=None, timeout: float = TIMEOUT
) -> IntentResult:
    """Ask the pile to stop ``session``; the session closes when the pile reports the stop."""
    ended = session.state not in ACTIVE_STATES
    return _run(
        "session_stop_remote",
        session.pile,
        described=_("stop session %(order_no)s") % {"order_no": session.order_no},
        acting_user=acting_user,
        refusal=_("The session has already ended.") if ended else None,
        session=session,
        timeout=timeout,
    )


def pile_reset(*, pile: Pile, hard: bool, acting_user=None, timeout: float = TIMEOUT):
    """Restart the pile: soft (it ends its sessions first) or hard (at once)."""
    return _run(
        "pile_reset",
        pile,
        described=_("hard reset") if hard else _("soft reset"),
        acting_user=acting_user,
        pile=pile,
        hard=hard,
        timeout=timeout,
    )


def connector_unlock(*, connector: Connector, acting_user=None, timeout: float = TIMEOUT):
    """Release the cable lock of ``connector`` (a driver cannot unplug)."""
    return _run(
        "connector_unlock",
        connector.pile,
        described=_("unlock connector %(number)s") % {"number": connector.number},
        acting_user=acting_user,
        connector=connector,
        timeout=timeout,
    )


def pile_trigger(
    *,
    pile: Pile,
    what: str,
    connector: Connector | None = None,
    acting_user=None,
    timeout: float = TIMEOUT,
):
    """Ask the pile to send ``what`` (a `Trigger`: boot notice, heartbeat, connector
    state, meter values, firmware or diagnostics status) now, for one connector or all."""
    asked = _("send its %(what)s now") % {"what": Trigger(what).label}
    return _run(
        "pile_trigger",
        pile,
        described=asked,
        acting_user=acting_user,
        refusal=_not_its_connector(pile, connector),
        pile=pile,
        what=what,
        connector=connector,
        timeout=timeout,
    )


def _not_its_connector(pile: Pile, connector: Connector | None):
    if connector is not None and connector.pile_id != pile.pk:
        return _("Connector %(number)s is not on this pile.") % {"number": connector.number}
    return None


def pile_firmware_update(
    *,
    pile: Pile,
    location: str,
    retrieve_at: dt.datetime,
    retries: int | None = None,
    retry_interval: int | None = None,
    acting_user=None,
    timeout: float = TIMEOUT,
):
    """Have the pile download firmware from ``location`` from ``retrieve_at`` on and
    install it; its progress arrives as the pile's firmware status."""
    return _run(
        "pile_firmware_update",
        pile,
        described=_("update firmware from %(location)s") % {"location": location},
        acting_user=acting_user,
        pile=pile,
        location=location,
        retrieve_at=retrieve_at,
        retries=retries,
        retry_interval=retry_interval,
        timeout=timeout,
    )


def pile_diagnostics_request(
    *,
    pile: Pile,
    location: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    retries: int | None = None,
    retry_interval: int | None = None,
    acting_user=None,
    timeout: float = TIMEOUT,
):
    """Have the pile upload its diagnostics (optionally of ``since``–``until``) to
    ``location``; the answer names the file, the upload's progress arrives as its
    diagnostics status."""
    return _run(
        "pile_diagnostics_request",
        pile,
        described=_("upload diagnostics to %(location)s") % {"location": location},
        acting_user=acting_user,
        pile=pile,
        location=location,
        since=since,
        until=until,
        retries=retries,
        retry_interval=retry_interval,
        timeout=timeout,
    )


def pile_configuration_get(
    *, pile: Pile, keys: list[str] | None = None, acting_user=None, timeout: float = TIMEOUT
):
    """Read the pile's configuration (the given keys, or all); the settings are in
    ``result.answer.settings``, keys the pile does not know in ``unknown_keys``."""
    keys = list(keys or [])
    return _run(
        "pile_configuration_get",
        pile,
        described=_("read configuration %(keys)s") % {"keys": ", ".join(keys) or _("(all)")},
        acting_user=acting_user,
        pile=pile,
        keys=keys,
        timeout=timeout,
    )


def pile_configuration_set(
    *, pile: Pile, key: str, value: str, acting_user=None, timeout: float = TIMEOUT
):
    """Change one configuration key of the pile."""
    return _run(
        "pile_configuration_set",
        pile,
        described=_("set %(key)s to “%(value)s”") % {"key": key, "value": value},
        acting_user=acting_user,
        pile=pile,
        key=key,
        value=value,
        timeout=timeout,
    )


def station_tariff_push(
    *, station: Station, acting_user=None, timeout: float = TIMEOUT
) -> list[IntentResult]:
    """Send the station's tariff in force to each of its piles that keeps one (a YKC pile's
    billing model), e.g. after the station's tariff changed; piles that price nothing
    themselves answer *not supported*."""
    return [
        _run(
            "pile_tariff_push",
            pile,
            described=_("take the station's tariff in force"),
            acting_user=acting_user,
            pile=pile,
            timeout=timeout,
        )
        for pile in Pile.objects.visible().filter(station=station).order_by("code")
    ]


# --- OCPP 1.6 feature profiles (issue 15): local authorisation lists, reservations, smart
# charging. The core decides (billing.services.local_lists / reservations / power); these
# intents carry its decisions to the pile. Adapter method names: `protocol.adapters`.


def pile_local_list_version(*, pile: Pile, acting_user=None, timeout: float = TIMEOUT):
    """Ask which version of its local authorisation list the pile holds
    (``result.answer.list_version``; 0: none, -1: the pile has no list)."""
    return _run(
        "pile_local_list_version",
        pile,
        described=_("report its local list version"),
        acting_user=acting_user,
        pile=pile,
        timeout=timeout,
    )


def pile_local_list_send(
    *,
    pile: Pile,
    version: int,
    entries: tuple[LocalListEntry, ...],
    full: bool,
    acting_user=None,
    timeout: float = TIMEOUT,
):
    """Give the pile version ``version`` of its local authorisation list: all of it
    (``full``) or the difference from the version it holds (an entry without a decision
    removes that credential)."""
    described = _("store local list version %(version)s (%(count)s %(how)s)") % {
        "version": version,
        "count": len(entries),
        "how": _("entries, full") if full else _("changes"),
    }
    return _run(
        "pile_local_list_send",
        pile,
        described=described,
        acting_user=acting_user,
        noted={"entries": len(entries)},
        pile=pile,
        version=version,
        entries=tuple(entries),
        full=full,
        timeout=timeout,
    )


def connector_reserve(
    *,
    connector: Connector,
    member: Member,
    expires_at: dt.datetime,
    acting_user=None,
    timeout: float = TIMEOUT,
) -> IntentResult:
    """Hold ``connector`` for ``member`` until ``expires_at``: the core makes the
    reservation (`billing.services.reservations.reservation_create`, which may refuse it),
    then the pile is asked to hold it; a pile that does not ends it as *refused*."""
    refusal, reservation = None, None
    try:
        reservation = reservation_create(
            connector=connector, member=member, expires_at=expires_at, acting_user=acting_user
        )
    except ReservationRefused as exc:
        refusal = exc.message
    result = _run(
        "connector_reserve",
        connector.pile,
        described=_("reserve connector %(number)s for %(member)s until %(until)s")
        % {
            "number": connector.number,
            "member": member,
            "until": f"{timezone.localtime(expires_at):%Y-%m-%d %H:%M}",
        },
        acting_user=acting_user,
        refusal=refusal,
        noted={"member": member.pk, "expires_at": expires_at},
        connector=connector,
        reservation=reservation,
        timeout=timeout,
    )
    if reservation is not None and result.outcome != Outcome.ACCEPTED:
        reservation_end(reservation=reservation, state=ReservationState.REFUSED)
    return result


def reservation_cancel(*, reservation: Reservation, acting_user=None, timeout: float = TIMEOUT):
    """End ``reservation`` in the core (it no longer holds the connector, whatever the
    pile says), then release it on the pile."""
    reservation.refresh_from_db(fields=["state"])
    ended = reservation.state != ReservationState.ACTIVE
    if not ended:
        reservation_end(
            reservation=reservation, state=ReservationState.CANCELLED, acting_user=acting_user
        )
    return _run(
        "reservation_cancel",
        reservation.connector.pile,
        described=_("cancel reservation %(id)s on connector %(number)s")
        % {"id": reservation.pk, "number": reservation.connector.number},
        acting_user=acting_user,
        refusal=_("The reservation has already ended.") if ended else None,
        reservation=reservation,
        timeout=timeout,
    )


def pile_charging_profile_set(
    *, profile: ChargingProfile, acting_user=None, timeout: float = TIMEOUT
):
    """Give the pile ``profile`` (stored by `stations.services.charging_profiles`); a
    profile for one session names the session's transaction as the pile knows it."""
    ref = None
    if profile.session_id is not None:
        ref = (
            ChargingSession.objects.filter(pk=profile.session_id)
            .values_list("protocol_ref", flat=True)
            .first()
        )
    refusal = None
    if profile.purpose == ProfilePurpose.TX and not ref:
        refusal = _("A profile for one session needs a session the pile is running.")
    limits = ", ".join(f"{limit / 1000:g} kW" for _start, limit in profile.periods)
    return _run(
        "pile_charging_profile_set",
        profile.pile,
        described=_("limit power (%(purpose)s) to %(limits)s")
        % {"purpose": profile.get_purpose_display(), "limits": limits},
        acting_user=acting_user,
        refusal=refusal,
        noted={"profile_id": profile.profile_id, "connector": profile.connector_number},
        profile=profile,
        transaction_ref=ref,
        timeout=timeout,
    )


def pile_charging_profile_clear(
    *,
    pile: Pile,
    profile_id: int | None = None,
    connector_number: int | None = None,
    purpose: str | None = None,
    acting_user=None,
    timeout: float = TIMEOUT,
):
    """Remove charging profiles from the pile: one (``profile_id``), or those of a
    connector and/or purpose; none of them given: every profile."""
    return _run(
        "pile_charging_profile_clear",
        pile,
        described=_("clear charging profiles"),
        acting_user=acting_user,
        pile=pile,
        profile_id=profile_id,
        connector_number=connector_number,
        purpose=purpose,
        timeout=timeout,
    )


def pile_composite_schedule(
    *,
    pile: Pile,
    connector_number: int,
    seconds: int = 86400,
    acting_user=None,
    timeout: float = TIMEOUT,
):
    """Ask the pile what power it plans to give on a connector (0: the pile) for the next
    ``seconds`` (``result.answer.schedule``)."""
    return _run(
        "pile_composite_schedule",
        pile,
        described=_("report its power schedule for connector %(number)s")
        % {"number": connector_number},
        acting_user=acting_user,
        pile=pile,
        connector_number=connector_number,
        seconds=seconds,
        timeout=timeout,
    )
