"""Scheduled upkeep of the gateway's data (scheduled in settings.CELERY_BEAT_SCHEDULE):

- ``protocol.tasks.journal_prune_task``      daily: frames older than the retention
- ``protocol.tasks.heartbeat_history_prune_task`` daily: heartbeat samples older than
  ``GATEWAY_HEARTBEAT_HISTORY_DAYS``
- ``protocol.tasks.piles_sweep_offline_task`` every minute: silent piles → offline (gateway
  nodes also run it every ``GATEWAY_SWEEP_SECONDS``; it is safe to run concurrently)
"""

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from stations.services import live

from . import services


@shared_task(name="protocol.journal_prune", acks_late=True)
def journal_prune_task() -> int:
    return services.journal_prune()


@shared_task(name="protocol.heartbeat_history_prune", acks_late=True)
def heartbeat_history_prune_task() -> int:
    before = timezone.now() - dt.timedelta(days=settings.GATEWAY_HEARTBEAT_HISTORY_DAYS)
    return live.heartbeat_history_prune(before=before)


@shared_task(name="protocol.piles_sweep_offline", acks_late=True)
def piles_sweep_offline_task() -> int:
    return len(live.piles_sweep_offline())
