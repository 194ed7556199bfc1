"""A session closed: say so (``session.stopped``) and settle it in Celery after commit."""

from __future__ import annotations

from django.db import transaction

from billing.events import SESSION_STOPPED
from chargenet.events import events_publish


def _sessions_stopped(session_ids: list[int]) -> None:
    """Every path that closes sessions for settlement (stop, superseded, refused but
    charged) comes here, in its transaction."""
    from billing import tasks

    events_publish(
        kind=SESSION_STOPPED,
        events=[(session_id, {"session_id": session_id}) for session_id in session_ids],
    )
    for session_id in session_ids:
        # robust: a broker hiccup after commit must not turn a committed stop into an error
        transaction.on_commit(lambda sid=session_id: tasks.session_settle.delay(sid), robust=True)
