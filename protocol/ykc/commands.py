"""The YKC adapter for remote intents: each intent becomes one platform frame (0x34 start,
0x36 stop, 0x92 reboot, 0x58 billing model) sent through the node that holds the pile, and
the pile's answer becomes a `PileAnswer`. Intents YKC has no frame for (unlock, trigger,
firmware by URL, diagnostics, configuration) are not offered: they answer *not supported*.

The wire words stop here and in `protocol.ykc.connection`, which builds the frames.
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.services.sessions import (
    AuthDecision,
    Credential,
    CredentialKind,
    session_authorize,
)
from protocol import routing
from protocol.adapters import Outcome, PileAnswer, Sent

# A YKC start carries a card (its physical number) or an account; the core reads the
# credential back when the session opens on the pile's answer.
START_KINDS = (
    CredentialKind.MEMBER_TOKEN,
    CredentialKind.CARD,
    CredentialKind.PARTNER_ORDER,
    CredentialKind.DRIVER_APP,
)
REBOOT_NOW, REBOOT_WHEN_IDLE = 1, 2
# Why a gateway node did not send a command, in the reader's words.
NOT_SENT = {"NoTariff": _("The station has no tariff in force.")}


class YkcAdapter:
    """Remote intents for piles speaking YKC 1.6."""

    def _call(self, pile, action: str, payload: dict, timeout: float) -> tuple[PileAnswer, dict]:
        reply = routing.command_request(
            code=pile.code, action=action, payload=payload, timeout=timeout
        )
        return self._answer(reply)

    def _answer(self, reply: dict | None) -> tuple[PileAnswer, dict]:
        outcome = (reply or {"outcome": "offline"}).get("outcome")
        if outcome == "offline":
            return PileAnswer(Outcome.OFFLINE), {}
        if outcome == "timeout":
            return PileAnswer(Outcome.TIMEOUT), {}
        if outcome == "error":  # the node did not send it (`YkcConnection.call_pile`)
            return PileAnswer(Outcome.INVALID, reason=NOT_SENT.get(reply.get("error_code"), "")), {}
        result = reply.get("payload") or {}
        accepted = result.get("result") == 1
        return PileAnswer(Outcome.ACCEPTED if accepted else Outcome.REJECTED), result

    def _start_command(self, connector, credential_value: str, credential_kind: str):
        """The 0x34 frame's fields, or the PileAnswer saying why it is not sent."""
        if credential_kind not in START_KINDS:
            return PileAnswer(
                Outcome.NOT_SUPPORTED,
                reason=_(
                    "A YKC pile can be started remotely for a member, a card or a partner "
                    "order only."
                ),
            )
        credential = Credential(CredentialKind(credential_kind), credential_value)
        decision = session_authorize(pile=connector.pile, credential=credential)
        if decision != AuthDecision.ACCEPTED:  # a YKC pile starts on 0x34 without asking again
            return PileAnswer(
                Outcome.INVALID, reason=_("The platform does not accept this credential.")
            )
        return {"gun": connector.number, "kind": credential_kind, "value": credential_value}

    def connector_start(self, *, connector, credential_value: str, credential_kind: str, timeout):
        payload = self._start_command(connector, credential_value, credential_kind)
        if isinstance(payload, PileAnswer):
            return payload
        return self._call(connector.pile, "RemoteStart", payload, timeout)[0]

    def connector_start_send(
        self, *, connector, credential_value: str, credential_kind: str, timeout
    ) -> Sent | PileAnswer:
        payload = self._start_command(connector, credential_value, credential_kind)
        if isinstance(payload, PileAnswer):
            return payload
        request_id = routing.command_send(
            code=connector.pile.code, action="RemoteStart", payload=payload, timeout=timeout
        )
        if request_id is None:
            return PileAnswer(Outcome.OFFLINE)
        return Sent("RemoteStart", request_id, timezone.now().timestamp() + timeout)

    def start_answer(self, *, sent: Sent, reply: dict) -> PileAnswer:
        return self._answer(reply)[0]

    def session_stop_remote(self, *, session, timeout):
        payload = {"gun": session.connector.number}
        return self._call(session.pile, "RemoteStop", payload, timeout)[0]

    def pile_reset(self, *, pile, hard: bool, timeout):
        payload = {"control": REBOOT_NOW if hard else REBOOT_WHEN_IDLE}
        return self._call(pile, "Reboot", payload, timeout)[0]

    def pile_tariff_push(self, *, pile, timeout):
        """Send the station's tariff in force as the pile's billing model (0x58)."""
        return self._call(pile, "SetBillingModel", {}, timeout)[0]
