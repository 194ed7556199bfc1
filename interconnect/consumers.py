"""The adapter's event consumers (chargenet.events): what partners are told when the core
changes. Each only queues pushes (rows, in the consumer's transaction); the worker sends
them later, outside any transaction. Idempotent: a push is one per operation and key."""

from __future__ import annotations

from billing.events import BILL_REPAIRED, BILL_SETTLED, SESSION_STARTED
from chargenet.events import consumer
from chargenet.models import OutboxEvent
from stations.events import PILE_STATUS_CHANGED
from stations.models import Connector

from .models import Interconnection
from .services.orders import (
    links_enabled,
    order_bill_settled,
    order_session_link,
    order_session_stopped,
)
from .services.pushes import Queued, pushes_enqueue
from .wire import connector_status, connector_wire_id


@consumer(SESSION_STARTED, name="interconnect.order_session_link")
def session_started(event: OutboxEvent) -> None:
    order_session_link(session_id=event.payload["session_id"])


@consumer(BILL_SETTLED, BILL_REPAIRED, name="interconnect.order_info")
def bill_settled(event: OutboxEvent) -> None:
    """The stop result, then the order information once the bill's figures stand: a
    fault bill that blocks payment is told when the desk has repaired it
    (``bill.repaired``)."""
    session_id = event.payload["session_id"]
    if event.kind == BILL_SETTLED:
        # Every closed session settles at once (its own task after the stop's commit):
        # the stop result goes with it, so session.stopped needs no second consumer.
        order_session_stopped(session_id=session_id)
        if event.payload.get("blocking"):
            return
    order_bill_settled(session_id=session_id)


@consumer(PILE_STATUS_CHANGED, name="interconnect.station_status", batch=True)
def pile_status_changed(events: list[OutboxEvent]) -> None:
    """notification_stationStatus to each enabled partner the station is published to
    (a pile-wide report, connector 0, has no connector to tell about). A burst of
    events costs the same four statements as one: the partners' stations, the partners,
    the connectors, the INSERT of every push."""
    wanted = [e for e in events if e.payload.get("connector_number")]
    if not wanted:
        return
    published = Interconnection.stations.through.objects.filter(
        station_id__in={e.payload["station_id"] for e in wanted},
        interconnection__in=links_enabled(),
    ).values_list("station_id", "interconnection_id")
    links_of: dict[int, list[int]] = {}
    for station_id, link_id in published:
        links_of.setdefault(station_id, []).append(link_id)
    wanted = [e for e in wanted if e.payload["station_id"] in links_of]
    if not wanted:
        return
    links = {
        link.pk: link
        for link in Interconnection.objects.filter(
            pk__in={i for ids in links_of.values() for i in ids}
        )
    }
    codes = {
        (pile_id, number): code
        for pile_id, number, code in Connector.objects.filter(
            pile_id__in={e.payload["pile_id"] for e in wanted}, pile__is_published=True
        ).values_list("pile_id", "number", "pile__code")
    }
    queued = []
    for event in wanted:
        payload = event.payload
        pile_code = codes.get((payload["pile_id"], payload["connector_number"]))
        if pile_code is None:
            continue
        data = {
            "ConnectorStatusInfo": {
                "ConnectorID": connector_wire_id(pile_code, payload["connector_number"]),
                "Status": connector_status(state=payload["state"], pile_online=True),
            }
        }
        queued += [
            Queued(
                link=links[link_id],
                operation="notification_stationStatus",
                key=str(event.pk),
                data=data,
            )
            for link_id in links_of[payload["station_id"]]
        ]
    pushes_enqueue(queued)
