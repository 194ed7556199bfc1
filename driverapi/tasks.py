"""Celery tasks of the driver API: thin, idempotent, safe to retry."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError


@shared_task(
    name="driverapi.starts_settle",
    autoretry_for=(OperationalError,),
    max_retries=3,
    soft_time_limit=60,
    time_limit=90,
)
def starts_settle_task() -> int:
    """Record the outcome of starts nobody asked about since they were sent (the phone
    went away), while the gateway's reply is still in Redis; beat runs it every minute."""
    from .starts import starts_settle

    return starts_settle()
