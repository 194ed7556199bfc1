"""What the adapters do when the core changed something piles hold (issue 15): queue the
work that talks to piles after the change committed, never inside the consumer's
transaction (`chargenet.events`)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from billing.events import SESSION_STARTED, SESSION_STOPPED
from billing.models import ChargingSession
from chargenet.events import consumer
from chargenet.models import OutboxEvent
from stations.events import PILE_CONFIGURATION_CHANGED
from stations.models import Station

from .tasks import pile_sync_task, station_power_rebalance_task


@consumer(PILE_CONFIGURATION_CHANGED, name="protocol.configuration_push")
def configuration_push(event: OutboxEvent) -> None:
    keys = list(event.payload["keys"])
    for pile_id in event.payload["pile_ids"]:
        transaction.on_commit(lambda pile_id=pile_id: pile_sync_task.delay(pile_id, keys))


@consumer(SESSION_STARTED, SESSION_STOPPED, name="protocol.station_power_rebalance")
def power_rebalance(event: OutboxEvent) -> None:
    """A session started or stopped at a station sharing a power limit: queue new shares."""
    station_id = (
        ChargingSession.objects.filter(pk=event.payload["session_id"])
        .values_list("station_id", flat=True)
        .first()
    )
    limited = Q(power_limit_kw__isnull=False) | Q(peak_power_limit_kw__isnull=False)
    if Station.objects.filter(limited, pk=station_id).exists():
        transaction.on_commit(lambda: station_power_rebalance_task.delay(station_id))
