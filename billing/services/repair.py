"""Billing services the fault-bill desk calls: a session whose end never came becomes a
fault bill, and a repaired fault bill is priced and settled.

They live in billing because they change sessions and money; `faults/` decides *that*
something is wrong, billing decides what it costs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import connection

from billing.models import SessionState, SessionTransition
from billing.models.sessions import ACTIVE_STATES


def sessions_mark_lost(
    *, session_ids: Sequence[int], reason: str, now: dt.datetime
) -> dict[int, str]:
    """Move still-active sessions to ``fault`` (their StopTransaction never came) and record
    the move; returns {session id: previous state} for those actually moved.

    Two statements whatever the number of sessions. A session stopped meanwhile (its stop
    raced the sweep) is left alone: the state condition is re-checked in the UPDATE.
    Call inside the caller's transaction."""
    if not session_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE billing_chargingsession s SET state = %s, updated_at = %s
            FROM billing_chargingsession old
            WHERE s.id = old.id AND s.id = ANY(%s) AND s.state = ANY(%s)
            RETURNING s.id, old.state
            """,
            [SessionState.FAULT, now, list(session_ids), [str(s) for s in ACTIVE_STATES]],
        )
        moved = dict(cursor.fetchall())
    SessionTransition.objects.bulk_create(
        [
            SessionTransition(
                session_id=session_id,
                from_state=previous,
                to_state=SessionState.FAULT,
                reason=reason,
            )
            for session_id, previous in moved.items()
        ],
        batch_size=5000,
    )
    return moved
