"""Sessions as piles open, feed and close them: authorize, start, meter, stop.

Every function here is idempotent, because piles resend: a StartTransaction replayed after
a reconnect returns the session it already opened (``session_start_idempotent``), meter
samples are unique per (session, time) so repeats and out-of-order batches store each
moment once, and a repeated StopTransaction changes nothing. The gateway answers a pile
only after these functions returned, i.e. after their transaction committed.

One module per use case: `states` (the state table), `identity` (idTag → channel, member,
card, vehicle; Authorize), `start`, `meter`, `vin` (DataTransfer VIN), `stop`, and
`settlement_queue`. Callers import from this package, which re-exports their names.
"""

from billing.services.sessions.identity import (
    PARTNER_TAG_RE,
    AuthStatus,
    Identity,
    identify,
    partner_id_tag,
    session_authorize,
)
from billing.services.sessions.meter import (
    MeterResult,
    Sample,
    parse_pile_time,
    samples_from_ocpp,
    session_meter_record,
)
from billing.services.sessions.start import StartResult, new_order_no, session_start
from billing.services.sessions.states import TRANSITIONS, IllegalTransition, session_transition
from billing.services.sessions.stop import StopResult, session_stop
from billing.services.sessions.vin import session_link_vin
from chargenet.errors import DomainError

__all__ = [
    "PARTNER_TAG_RE",
    "TRANSITIONS",
    "AuthStatus",
    "DomainError",
    "Identity",
    "IllegalTransition",
    "MeterResult",
    "Sample",
    "StartResult",
    "StopResult",
    "identify",
    "new_order_no",
    "parse_pile_time",
    "partner_id_tag",
    "samples_from_ocpp",
    "session_authorize",
    "session_link_vin",
    "session_meter_record",
    "session_start",
    "session_stop",
    "session_transition",
]
