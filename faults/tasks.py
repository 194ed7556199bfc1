"""Celery tasks of the fault desk: thin, idempotent, each calls one service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from billing.services.settlement import bills_settle
from chargenet.celery import lock_bounded

from .services.notify import notification_send, notifications_pending_ids
from .services.sweep import lost_bills_sweep


@shared_task(name="faults.lost_bills_sweep", soft_time_limit=120, time_limit=180)
def lost_bills_sweep_task() -> dict:
    """Beat runs it every 5 minutes. Runs never wait for each other (candidates are taken
    with SKIP LOCKED) nor long for anyone else (`lock_bounded`)."""
    with lock_bounded():
        result = lost_bills_sweep()
    return {"candidates": result.candidates, "lost": result.lost}


@shared_task(
    name="faults.lost_bills_settle",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    soft_time_limit=240,
    time_limit=300,
)
def lost_bills_settle_task(session_ids: list[int]) -> int:
    """Settle the sessions the sweep closed as lost, as one batch (idempotent: sessions
    settled already return their bills)."""
    return len(bills_settle(session_ids=session_ids))


@shared_task(name="faults.notifications_send_pending", soft_time_limit=120, time_limit=180)
def notifications_send_pending_task() -> int:
    ids = notifications_pending_ids()
    for notification_id in ids:
        notification_send(notification_id=notification_id)
    return len(ids)
