"""What the adapters do when the core changed something piles hold (issue 15): queue the
work that talks to piles after the change committed, never inside the consumer's
transaction (`chargenet.events`)."""

from __future__ import annotations

from django.db import transaction

from chargenet.events import consumer
from chargenet.models import OutboxEvent
from stations.events import PILE_CONFIGURATION_CHANGED

from .tasks import pile_sync_task


@consumer(PILE_CONFIGURATION_CHANGED, name="protocol.configuration_push")
def configuration_push(event: OutboxEvent) -> None:
    keys = list(event.payload["keys"])
    for pile_id in event.payload["pile_ids"]:
        transaction.on_commit(lambda pile_id=pile_id: pile_sync_task.delay(pile_id, keys))
