"""Settlement runs in Celery after the closing transaction commits."""

from __future__ import annotations

from django.db import transaction


def _queue_settlement(session_ids: list[int]) -> None:
    from billing import tasks

    for session_id in session_ids:
        # robust: a broker hiccup after commit must not turn a committed stop into an error
        transaction.on_commit(lambda sid=session_id: tasks.session_settle.delay(sid), robust=True)
