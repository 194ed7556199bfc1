"""Celery tasks of the reports: thin, idempotent, safe to retry; each calls one service."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from reports.exports.services import export_job_run, export_jobs_prune, export_jobs_resume_stale

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


# Acknowledged on receipt, unlike the other tasks: an export may run longer than the
# broker's visibility timeout (a million rows take minutes), and a late ack would have
# it delivered twice. A worker that dies leaves its job "running" without progress:
# `export_jobs_resume_stale` (beat) queues it again.
@shared_task(
    name="reports.export_job_run",
    acks_late=False,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=3,
    soft_time_limit=3300,
    time_limit=3600,
)
def export_job_run_task(job_id: int) -> str:
    """Write the file of an export job; returns its state ("done" on a repeat too)."""
    return export_job_run(job_id=job_id).state


@shared_task(name="reports.export_jobs_resume_stale", soft_time_limit=60, time_limit=90)
def export_jobs_resume_stale_task() -> int:
    return len(export_jobs_resume_stale())


@shared_task(name="reports.export_jobs_prune", soft_time_limit=240, time_limit=300)
def export_jobs_prune_task() -> int:
    before = timezone.now() - dt.timedelta(days=settings.EXPORTS_RETENTION_DAYS)
    return export_jobs_prune(before=before)
