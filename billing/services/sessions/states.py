"""The session state table and the one function that moves a session through it."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from billing.models import ChargingSession, SessionState, SessionTransition
from chargenet.errors import DomainError


class IllegalTransition(DomainError):
    code = "session_illegal_transition"


# The explicit state table: from → allowed destinations. `session_transition` enforces it.
TRANSITIONS: dict[str, frozenset[str]] = {
    SessionState.STARTED: frozenset({SessionState.CHARGING, SessionState.STOPPED}),
    # A refused start the pile charged for anyway: energy in its meter values makes it
    # live, a stop with energy closes it for settlement (billed, never debited).
    SessionState.REFUSED: frozenset({SessionState.CHARGING, SessionState.STOPPED}),
    SessionState.CHARGING: frozenset({SessionState.STOPPED}),
    SessionState.STOPPED: frozenset({SessionState.SETTLED, SessionState.FAULT}),
    SessionState.FAULT: frozenset({SessionState.REPAIRED, SessionState.SETTLED}),
    SessionState.REPAIRED: frozenset({SessionState.SETTLED}),
    SessionState.SETTLED: frozenset(),
}


def session_transition(
    *,
    session: ChargingSession,
    to_state: str,
    actor=None,
    reason: str = "",
    also_save: tuple[str, ...] = (),
) -> ChargingSession:
    """Move ``session`` to ``to_state`` if the state table allows it, recording the move.

    Call inside a transaction holding the session row (``select_for_update``);
    ``also_save`` names other fields changed with the move, saved in the same UPDATE."""
    allowed = TRANSITIONS.get(session.state, frozenset())
    if to_state not in allowed:
        raise IllegalTransition(
            _("A session cannot move from “%(from)s” to “%(to)s”.")
            % {"from": session.state, "to": to_state},
            details={"from": session.state, "to": to_state},
        )
    SessionTransition.objects.create(
        session=session,
        from_state=session.state,
        to_state=to_state,
        actor=actor,
        reason=reason[:200],
    )
    session.state = to_state
    session.save(update_fields=["state", "updated_at", *also_save])
    return session
