"""Billing tasks. Placeholder from the gateway branch: the billing branch's version wins."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def session_settle(session_id: int) -> None:
    """Settle a stopped session (priced by the billing branch; here only logged)."""
    logger.info("session %s stopped: settlement queued", session_id)
