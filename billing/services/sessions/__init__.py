"""Sessions as piles open, feed and close them: the core's commands authorise, start,
meter, stop, in its own words (`Credential`, `AuthDecision`, `Sample`, a session found by
(pile, protocol transaction reference)); protocol adapters translate to and from them.

Every command is idempotent, because piles resend: a start replayed after a reconnect
returns the session it already opened (``session_start_idempotent``), meter samples are
unique per (session, time) so repeats and out-of-order batches store each moment once, and
a repeated stop changes nothing. Adapters answer a pile only after these functions
returned, i.e. after their transaction committed.

One module per use case: `states` (the state table), `identity` (credential → channel,
member, card, vehicle; authorisation), `start`, `meter`, `vin`, `stop`, and
`settlement_queue`. Callers import from this package, which re-exports their names.
"""

from billing.services.sessions.identity import (
    AuthDecision,
    Credential,
    CredentialKind,
    Identity,
    identify,
    partner_credential,
    session_authorize,
)
from billing.services.sessions.meter import MeterResult, Sample, session_meter_record
from billing.services.sessions.start import StartResult, new_order_no, session_start
from billing.services.sessions.states import (
    TRANSITIONS,
    IllegalTransition,
    session_open,
    session_transition,
    sessions_transition,
)
from billing.services.sessions.stop import StopResult, session_stop
from billing.services.sessions.vin import session_link_vin
from chargenet.errors import DomainError

__all__ = [
    "TRANSITIONS",
    "AuthDecision",
    "Credential",
    "CredentialKind",
    "DomainError",
    "Identity",
    "IllegalTransition",
    "MeterResult",
    "Sample",
    "StartResult",
    "StopResult",
    "identify",
    "new_order_no",
    "partner_credential",
    "session_authorize",
    "session_link_vin",
    "session_meter_record",
    "session_open",
    "session_start",
    "session_stop",
    "session_transition",
    "sessions_transition",
]
