"""Celery tasks of the kernel: delivering domain events (see chargenet.events)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from chargenet import events


@shared_task(
    name="chargenet.events_deliver",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_backoff_max=120,
    max_retries=5,
    soft_time_limit=60,
    time_limit=90,
)
def events_deliver_task(event_ids: list[int]) -> int:
    """Deliver events just committed; returns how many consumer deliveries ran."""
    return events.events_deliver(event_ids=event_ids)


# Sends gathered in one gateway batch go as one task with the ids joined.
events_deliver_task.merges_lists = True


@shared_task(name="chargenet.events_deliver_pending", soft_time_limit=120, time_limit=180)
def events_deliver_pending_task() -> int:
    return events.events_deliver_pending()


@shared_task(name="chargenet.events_prune", soft_time_limit=240, time_limit=300)
def events_prune_task() -> int:
    before = timezone.now() - dt.timedelta(days=settings.EVENTS_RETENTION_DAYS)
    return events.events_prune(before=before)
