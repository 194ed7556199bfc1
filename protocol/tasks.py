"""Scheduled upkeep of the gateway's data (scheduled in settings.CELERY_BEAT_SCHEDULE):

- ``protocol.tasks.journal_prune_task``      daily: drops the journal's days past retention
- ``protocol.tasks.partitions_ahead_task``   hourly: creates the journal's days and the
  meter samples' weeks ahead (`chargenet.partitions.AHEAD_DAYS`)
- ``protocol.tasks.heartbeat_history_prune_task`` daily: heartbeat samples older than
  ``GATEWAY_HEARTBEAT_HISTORY_DAYS``
- ``protocol.tasks.piles_sweep_offline_task`` every minute: silent piles → offline (gateway
  nodes also run it every ``GATEWAY_SWEEP_SECONDS``; it is safe to run concurrently)
"""

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from billing.models.sessions import METER_SAMPLE_PARTITIONS
from chargenet.partitions import AHEAD_DAYS, partitions_ensure
from stations.services import live

from . import services
from .models import FRAME_PARTITIONS


@shared_task(name="protocol.journal_prune", acks_late=True)
def journal_prune_task() -> int:
    return services.journal_prune()


@shared_task(name="protocol.partitions_ahead", acks_late=True)
def partitions_ahead_task() -> list[str]:
    """The partitions of the next `AHEAD_DAYS` days, created before anything is written
    there (else those rows would land in the default partition)."""
    today = timezone.localdate()
    through = today + dt.timedelta(days=AHEAD_DAYS)
    return [
        *partitions_ensure(spec=FRAME_PARTITIONS, since=today, through=through),
        *partitions_ensure(spec=METER_SAMPLE_PARTITIONS, since=today, through=through),
    ]


@shared_task(name="protocol.heartbeat_history_prune", acks_late=True)
def heartbeat_history_prune_task() -> int:
    before = timezone.now() - dt.timedelta(days=settings.GATEWAY_HEARTBEAT_HISTORY_DAYS)
    return live.heartbeat_history_prune(before=before)


@shared_task(name="protocol.piles_sweep_offline", acks_late=True)
def piles_sweep_offline_task() -> int:
    return len(live.piles_sweep_offline())
