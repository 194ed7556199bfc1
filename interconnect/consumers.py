"""The adapter's event consumers (chargenet.events): what partners are told when the core
changes. Each only queues pushes (rows, in the consumer's transaction); the worker sends
them later, outside any transaction. Idempotent: a push is one per operation and key."""

from __future__ import annotations

from billing.events import BILL_REPAIRED, BILL_SETTLED, SESSION_STARTED
from chargenet.events import consumer
from chargenet.models import OutboxEvent
from stations.events import PILE_STATUS_CHANGED
from stations.models import Connector

from .services.orders import (
    links_enabled,
    order_bill_settled,
    order_session_link,
    order_session_stopped,
)
from .services.pushes import push_enqueue
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


@consumer(PILE_STATUS_CHANGED, name="interconnect.station_status")
def pile_status_changed(event: OutboxEvent) -> None:
    """notification_stationStatus to each enabled partner the station is published to
    (a pile-wide report, connector 0, has no connector to tell about). Two reads: the
    partners, the connector."""
    payload = event.payload
    number = payload.get("connector_number") or 0
    if not number:
        return
    links = list(links_enabled().filter(stations=payload["station_id"]))
    if not links:
        return
    pile_code = (
        Connector.objects.filter(pile_id=payload["pile_id"], number=number, pile__is_published=True)
        .values_list("pile__code", flat=True)
        .first()
    )
    if pile_code is None:
        return
    data = {
        "ConnectorStatusInfo": {
            "ConnectorID": connector_wire_id(pile_code, number),
            "Status": connector_status(state=payload["state"], pile_online=True),
        }
    }
    for link in links:
        push_enqueue(
            link=link, operation="notification_stationStatus", key=str(event.pk), data=data
        )
