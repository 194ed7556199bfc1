"""Celery tasks of the reports: thin, idempotent, each calls one service."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from .services.rollups import rollups_rebuild

# The nightly safety net recounts this many days back (a bill settles within hours; a
# repair or late payment moves its day through the events, at any age).
REBUILD_RECENT_DAYS = 2


@shared_task(name="reports.rollups_rebuild_recent", soft_time_limit=480, time_limit=540)
def rollups_rebuild_recent_task() -> dict:
    """Beat runs it nightly: the last days recounted from the bills, whatever an event
    consumer may have missed (e.g. a firmware record that arrived after the bills)."""
    today = timezone.localdate()
    bill_rows, fault_rows = rollups_rebuild(
        first_day=today - dt.timedelta(days=REBUILD_RECENT_DAYS), last_day=today
    )
    return {"daily_rows": bill_rows, "fault_rows": fault_rows}
