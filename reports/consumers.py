"""Reports' event consumers (chargenet.events): each bill event recounts the station-day(s)
its bill belongs to, from the bills (`reports.services.rollups`). Recounting is idempotent,
so a repeated or late delivery leaves the right figures; the order of events is irrelevant.
"""

from __future__ import annotations

import datetime as dt

from billing.events import BILL_PAID, BILL_REPAIRED, BILL_SETTLED
from billing.models import Bill
from chargenet.events import consumer
from chargenet.models import OutboxEvent

from .services.rollups import rollups_recompute, station_day_of


@consumer(BILL_SETTLED, BILL_REPAIRED, BILL_PAID, name="reports.rollups_recount")
def rollups_recount(event: OutboxEvent) -> None:
    """The bill's station-day (and, after a repair that moved its start, the day it was
    counted on before) recounted from the bills."""
    bill = (
        Bill.objects.filter(pk=event.payload["bill_id"])
        .values("station_id", "started_at", "station__time_zone")
        .first()
    )
    if bill is None:
        return
    starts = [bill["started_at"]]
    if previous := event.payload.get("previous_started_at"):
        starts.append(dt.datetime.fromisoformat(previous))
    rollups_recompute(
        station_days=[
            station_day_of(
                station_id=bill["station_id"], started_at=at, zone=bill["station__time_zone"]
            )
            for at in starts
        ]
    )
