"""A session closed: say so (``session.stopped``) and settle it in Celery after commit."""

from __future__ import annotations

from billing.events import SESSION_STOPPED
from chargenet.celery import task_queue_on_commit
from chargenet.events import events_publish


def _sessions_stopped(session_ids: list[int], *, published: bool = False) -> None:
    """Every path that closes sessions for settlement (stop, superseded, refused but
    charged) comes here, in its transaction; ``published``: the statement that closed
    them published their ``session.stopped`` events already (`states._transition`)."""
    from billing import tasks

    if not published:
        events_publish(
            kind=SESSION_STOPPED,
            events=[(session_id, {"session_id": session_id}) for session_id in session_ids],
        )
    # A broker hiccup after commit must not turn a committed stop into an error: the
    # beat's settle sweep picks up a session whose task was not queued.
    task_queue_on_commit(tasks.sessions_settle_task, list(session_ids))
