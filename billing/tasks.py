"""Celery tasks of billing: thin, idempotent, safe to retry; they call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from chargenet.celery import lock_bounded

from .services.sessions.meter import meter_samples_prune
from .services.settlement import bill_settle, sessions_settle_pending

logger = logging.getLogger(__name__)


@shared_task(
    name="billing.sessions_settle",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def sessions_settle_task(session_ids: list[int]) -> list[str]:
    """Settle stopped sessions (queued after their stops commit), each in a transaction of
    its own. Returns the bills' order numbers; a repeat returns the same bills, so a retry
    of the whole list is safe. A session that cannot be settled is logged and left to the
    settle sweep (`sessions_settle_pending_task`); the others are settled."""
    order_nos = []
    for session_id in session_ids:
        try:
            order_nos.append(bill_settle(session_id=session_id).order_no)
        except OperationalError:
            raise
        except Exception:
            logger.exception("session %s not settled; the settle sweep retries it", session_id)
    return order_nos


# The stops of one gateway batch (or of several, see `chargenet.celery.TasksSender`) go
# as one task with their ids joined.
sessions_settle_task.merges_lists = True


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


# ---- WeChat Pay: these call WeChat, so they hold no transaction around the calls ----------


@shared_task(
    name="billing.recharges_reconcile_pending",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=3,
    soft_time_limit=240,
    time_limit=280,
)
def recharges_reconcile_pending_task() -> dict[str, int]:
    """Recharges pending past RECHARGE_QUERY_AFTER_MINUTES: asked at WeChat, credited
    (once) or closed; beat runs it every minute. Returns how many ended each way."""
    from .services.recharges import recharges_reconcile_pending

    return recharges_reconcile_pending()


@shared_task(
    name="billing.refunds_send",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def refunds_send_task(request_id: int) -> int:
    """Send the parts of an approved balance refund to WeChat (queued on commit of the
    approval); a part sent already is skipped."""
    from .services.refunds import refunds_send

    return refunds_send(request_id=request_id)


@shared_task(
    name="billing.refunds_reconcile_pending",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=3,
    soft_time_limit=240,
    time_limit=280,
)
def refunds_reconcile_pending_task() -> int:
    """Balance refund parts not yet accepted by WeChat are sent, those still processing
    are asked about; beat runs it every five minutes."""
    from .services.refunds import refunds_reconcile_pending

    return refunds_reconcile_pending()
