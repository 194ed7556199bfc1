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

from django.utils.translation import gettext_lazy as _

from billing.models import ChargingSession
from billing.models.sessions import ACTIVE_STATES
from billing.services.sessions import CredentialKind
from chargenet.audit import audit_record
from stations.models import Connector, Pile, Station

from .adapters import IntentChannel, Outcome, PileAnswer, Trigger
from .ocpp16.commands import Ocpp16Adapter
from .ykc.commands import YkcAdapter

__all__ = [
    "ADAPTERS",
    "CredentialKind",
    "IntentChannel",
    "IntentResult",
    "Outcome",
    "Trigger",
    "connector_start",
    "connector_unlock",
    "pile_configuration_get",
    "pile_configuration_set",
    "pile_diagnostics_request",
    "pile_firmware_update",
    "pile_reset",
    "pile_trigger",
    "session_stop_remote",
    "station_tariff_push",
]

# The adapter of each pile protocol (`Pile.protocol`).
ADAPTERS = {Pile.Protocol.OCPP16J: Ocpp16Adapter(), Pile.Protocol.YKC: YkcAdapter()}

TIMEOUT = 30.0  # seconds a person waits for the pile's answer

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
    message = MESSAGES[answer.outcome] % {"pile": pile.code, "what": described}
    if answer.reason:
        message = f"{message} {answer.reason}"
    result = IntentResult(
        intent=intent, outcome=Outcome(answer.outcome), message=message, answer=answer
    )
    if acting_user is not None:
        audit_record(
            actor=acting_user,
            action="pile_intent",
            obj=pile,
            before={"intent": intent, **_arguments(kwargs), **(noted or {})},
            after={"outcome": result.outcome.value, "message": message, **_data(answer)},
        )
    return result


def _arguments(kwargs: dict) -> dict:
    """An intent's arguments for the audit row, rows named as people know them."""
    plain = {Connector: lambda c: c.number, ChargingSession: lambda s: s.order_no}
    return {
        name: plain[type(value)](value) if type(value) in plain else value
        for name, value in kwargs.items()
        if name not in ("pile", "timeout")
    }


def _data(answer: PileAnswer) -> dict:
    """The data an answer carries, for the audit row."""
    data = asdict(answer)
    del data["outcome"], data["reason"]
    return {key: value for key, value in data.items() if value}


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
    what = _("start connector %(number)s for %(kind)s %(value)s") % {
        "number": connector.number,
        "kind": CredentialKind(credential_kind).label,
        "value": credential_value,
    }
    return _run(
        "connector_start",
        connector.pile,
        described=what,
        acting_user=acting_user,
        noted={"channel": channel},
        connector=connector,
        credential_value=credential_value,
        credential_kind=credential_kind,
        timeout=timeout,
    )


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
