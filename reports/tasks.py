"""Celery tasks of reports: thin, idempotent, safe to retry; they call one service."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from reports.exports.services import export_job_run, export_jobs_prune, export_jobs_resume_stale


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
