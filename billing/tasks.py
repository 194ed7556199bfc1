"""Celery tasks of billing: thin, idempotent, safe to retry; they call one service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from chargenet.celery import lock_bounded

from .services.sessions.meter import meter_samples_prune
from .services.settlement import bill_settle, sessions_settle_pending


@shared_task(
    name="billing.session_settle",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def session_settle(session_id: int) -> str:
    """Settle a stopped session (queued with transaction.on_commit after its stop).
    Returns the bill's order number; a repeat returns the same bill."""
    return bill_settle(session_id=session_id).order_no


@shared_task(
    name="billing.sessions_settle_pending",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=3,
    soft_time_limit=60,
    time_limit=90,
)
def sessions_settle_pending_task() -> int:
    """Settle one batch (up to 200) of stopped sessions nobody settled yet; beat runs it
    every 10 s (CELERY_BEAT_SCHEDULE). Runs that overlap skip each other's sessions, and
    a run does not wait long on any other lock (`lock_bounded`). Returns how many it
    settled."""
    with lock_bounded():
        return len(sessions_settle_pending())


@shared_task(name="billing.meter_samples_prune", acks_late=True)
def meter_samples_prune_task() -> int:
    """Drop the weeks of meter samples past retention (daily, CELERY_BEAT_SCHEDULE)."""
    return meter_samples_prune()
