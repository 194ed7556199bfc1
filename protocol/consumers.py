"""What the adapters do when the core changed something piles hold (issue 15): queue the
work that talks to piles after the change committed, never inside the consumer's
transaction (`chargenet.events`)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.events import SESSION_STARTED, SESSION_STOPPED, STATION_TARIFF_CHANGED
from billing.models import ChargingSession
from chargenet.events import consumer
from chargenet.models import OutboxEvent
from stations.events import PILE_CONFIGURATION_CHANGED, STATION_POWER_CHANGED
from stations.models import Pile, Station

from .tasks import (
    pile_sync_task,
    station_power_push_task,
    station_power_rebalance_task,
    station_tariff_push_task,
)


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


@consumer(STATION_TARIFF_CHANGED, name="protocol.tariff_power_push")
def tariff_power_push(event: OutboxEvent) -> None:
    """Stations' tariffs changed: their piles' time-of-use caps follow the new peak periods.
    Only stations with a peak limit hold such caps. A change that starts later reaches the
    piles by the half-hourly refresh once it is in force (`time_of_use_refresh_task`): a
    broker ETA of days would be redelivered past the visibility timeout."""
    starts = dt.datetime.fromisoformat(event.payload["effective_from"])
    if starts > timezone.now():
        return
    stations = Station.objects.filter(
        pk__in=event.payload["station_ids"], peak_power_limit_kw__isnull=False
    ).values_list("pk", flat=True)
    for station_id in stations:
        transaction.on_commit(lambda sid=station_id: station_power_push_task.delay(sid))


@consumer(STATION_TARIFF_CHANGED, name="protocol.billing_model_push")
def billing_model_push(event: OutboxEvent) -> None:
    """Stations' tariffs changed: their YKC piles, which price the charge themselves, take
    the new billing model (0x58). A change that starts later reaches a pile when it next
    checks its model (0x05, at every login)."""
    starts = dt.datetime.fromisoformat(event.payload["effective_from"])
    if starts > timezone.now():
        return
    stations = (
        Station.objects.filter(
            pk__in=event.payload["station_ids"], piles__protocol=Pile.Protocol.YKC
        )
        .distinct()
        .values_list("pk", flat=True)
    )
    for station_id in stations:
        transaction.on_commit(lambda sid=station_id: station_tariff_push_task.delay(sid))


@consumer(STATION_POWER_CHANGED, name="protocol.station_power_push")
def power_settings_push(event: OutboxEvent) -> None:
    """A station's power limits changed: caps and shares again."""
    station_id = event.payload["station_id"]
    transaction.on_commit(lambda: station_power_push_task.delay(station_id))
