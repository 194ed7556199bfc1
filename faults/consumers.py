"""The fault desk's event consumers (chargenet.events): what it does when a bill settles.

Settlement decides synchronously whether a bill may be charged (the desk's check, see
`faults.detection`); opening the fault bill for customer service and telling the driver
that the charge ended follow from its ``bill.settled`` event, after commit. Each consumer
is idempotent: a fault case is one per session (adding only new codes), a notification
one per session (a unique constraint).
"""

from __future__ import annotations

from decimal import Decimal

from billing.events import BILL_SETTLED
from billing.models import ChargingSession
from chargenet.events import consumer
from chargenet.models import OutboxEvent

from .services.cases import CaseOpening, fault_cases_open, session_scope
from .services.notify import SessionEnded, notifications_enqueue


@consumer(BILL_SETTLED, name="faults.cases_open")
def cases_open(event: OutboxEvent) -> None:
    """A settled bill with fault findings becomes (or adds codes to) a fault case."""
    record = event.payload.get("record")
    if not record:
        return
    session = ChargingSession.objects.get(pk=event.payload["session_id"])
    fault_cases_open(
        openings=[CaseOpening(session_id=session.pk, scope=session_scope(session), record=record)]
    )


@consumer(BILL_SETTLED, name="faults.session_ended_notify")
def session_ended_notify(event: OutboxEvent) -> None:
    """The driver's "charging finished" (energy and amount) or "being checked" message."""
    payload = event.payload
    if payload.get("member_id") is None:
        return
    session = ChargingSession.objects.select_related("station").get(pk=payload["session_id"])
    if payload["blocking"]:
        message = SessionEnded(session, being_checked=True)
    else:
        message = SessionEnded(
            session,
            being_checked=False,
            energy_wh=Decimal(payload["energy_wh"]),
            amount=Decimal(payload["total"]),
        )
    notifications_enqueue(messages=[message])
