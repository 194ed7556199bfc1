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
from billing.services.reservations import reservations_expire
from chargenet.partitions import AHEAD_DAYS, partitions_ensure
from stations.models import (
    ConfigurationSetting,
    FirmwareCampaign,
    FirmwareCampaignPile,
    Pile,
    Station,
)
from stations.services import live

from . import intents, services
from .adapters import Outcome
from .campaigns import firmware_campaign_pending, firmware_campaign_target_send
from .models import FRAME_PARTITIONS
from .smart_charging import station_power_push, station_power_rebalance, time_of_use_refresh
from .sync import pile_configuration_push, pile_local_list_sync, pile_sync


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


# --- OCPP 1.6 feature profiles (issue 15): piles brought up to what the platform wants ---
@shared_task(name="protocol.pile_sync", acks_late=True, time_limit=300, soft_time_limit=240)
def pile_sync_task(pile_id: int, keys: list[str] | None = None) -> None:
    """After a boot (``keys`` None: configuration and local list) or a configuration
    change (only those keys)."""
    pile = Pile.objects.select_related("station").filter(pk=pile_id).first()
    if pile is None:
        return
    if keys is None:
        pile_sync(pile=pile)
    else:
        pile_configuration_push(pile=pile, keys=keys)


@shared_task(name="protocol.piles_booted_sync", acks_late=True)
def piles_booted_sync_task(pile_ids: list[int]) -> int:
    """The piles a gateway node booted in the last moment (ids joined by its
    `chargenet.celery.TasksSender`), each brought up to date by a `pile_sync_task` of its
    own: a reconnect storm of 10,000 boots is a few dozen publishes from the gateway, whose
    event loop the piles are waiting on, and 10,000 from a worker, whose pool runs the
    syncs side by side (each waits for its pile's answers)."""
    for pile_id in dict.fromkeys(pile_ids):  # a pile booted twice in the moment: once
        pile_sync_task.delay(pile_id)
    return len(pile_ids)


piles_booted_sync_task.merges_lists = True


@shared_task(name="protocol.piles_sync", acks_late=True, time_limit=300, soft_time_limit=240)
def piles_sync_task() -> int:
    """Beat: local lists of online piles that have one, brought up to date."""
    enabled = ConfigurationSetting.objects.filter(key="LocalAuthListEnabled", value="true")
    piles = Pile.objects.filter(is_online=True).filter(
        pk__in=enabled.values("pile_id")
    ) | Pile.objects.filter(is_online=True, station__in=enabled.values("station_id"))
    count = 0
    for pile in piles.select_related("station").distinct():
        if pile_local_list_sync(pile=pile) is not None:
            count += 1
    return count


@shared_task(name="protocol.reservations_expire", acks_late=True)
def reservations_expire_task() -> int:
    """Beat: reservations whose time is up end as expired (the pile ends its own)."""
    return reservations_expire()


@shared_task(name="protocol.station_power_rebalance", acks_late=True, time_limit=300)
def station_power_rebalance_task(station_id: int) -> int:
    """A session started or stopped at a station with a power limit: new shares."""
    station = Station.objects.filter(pk=station_id).first()
    if station is None:
        return 0
    return len(station_power_rebalance(station=station))


@shared_task(name="protocol.station_power_push", acks_late=True, time_limit=300)
def station_power_push_task(station_id: int) -> int:
    """A station's tariff or power limits changed: its connected piles' caps and shares."""
    station = Station.objects.filter(pk=station_id).first()
    if station is None:
        return 0
    return len(station_power_push(station=station))


@shared_task(name="protocol.station_tariff_push", acks_late=True, time_limit=300)
def station_tariff_push_task(station_id: int) -> int:
    """A station's tariff changed: its connected YKC piles take the new billing model
    (0x58; each answer, 0x57, is journaled). Returns how many piles accepted it."""
    station = Station.objects.filter(pk=station_id).first()
    if station is None:
        return 0
    results = intents.station_tariff_push(station=station)
    return sum(result.outcome == Outcome.ACCEPTED for result in results)


@shared_task(name="protocol.time_of_use_refresh", acks_late=True, time_limit=300)
def time_of_use_refresh_task() -> int:
    """Beat: time-of-use caps that differ from the tariff in force, sent again."""
    return time_of_use_refresh()


@shared_task(name="protocol.firmware_campaign_send", acks_late=True)
def firmware_campaign_send_task(campaign_id: int) -> int:
    """Queue one task per pile of the campaign still to be sent the update."""
    campaign = FirmwareCampaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return 0
    pending = list(firmware_campaign_pending(campaign=campaign).values_list("pk", flat=True))
    for target_id in pending:
        firmware_campaign_target_send_task.delay(target_id)
    return len(pending)


@shared_task(
    name="protocol.firmware_campaign_target_send",
    acks_late=True,
    time_limit=120,
    soft_time_limit=100,
)
def firmware_campaign_target_send_task(target_id: int) -> str:
    target = (
        FirmwareCampaignPile.objects.select_related("campaign", "pile__station")
        .filter(pk=target_id)
        .first()
    )
    if target is None or target.sent_outcome == "accepted":
        return ""
    result = firmware_campaign_target_send(target=target)
    return result.outcome if result is not None else "cancelled"
