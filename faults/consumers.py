"""The fault desk's event consumers (chargenet.events): what it does when a bill settles,
and the driver's messages about their money (balance refunds, invoices).

Settlement decides synchronously whether a bill may be charged (the desk's check, see
`faults.detection`); opening the fault bill for customer service and telling the driver
that the charge ended follow from its ``bill.settled`` event, after commit. Each consumer
is idempotent: a fault case is one per session (adding only new codes), a notification
one per session (a unique constraint).
"""

from __future__ import annotations

from decimal import Decimal

from billing.events import (
    BILL_SETTLED,
    INVOICE_ISSUED,
    INVOICE_REJECTED,
    REFUND_DECIDED,
    REFUND_FINISHED,
)
from billing.models import ChargingSession, InvoiceRequest, RefundRequest, RefundState
from chargenet.events import consumer
from chargenet.models import OutboxEvent

from .models import Notification
from .services.cases import CaseOpening, fault_cases_open, session_scope
from .services.notify import MemberMessage, SessionEnded, notifications_enqueue


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


# A refund request's state as the driver's message (the other states send none).
REFUND_KINDS = {
    RefundState.REFUNDING: Notification.Kind.REFUND_APPROVED,
    RefundState.REJECTED: Notification.Kind.REFUND_REJECTED,
    RefundState.REFUNDED: Notification.Kind.REFUND_REFUNDED,
    RefundState.FAILED: Notification.Kind.REFUND_FAILED,
}


@consumer(REFUND_DECIDED, REFUND_FINISHED, name="faults.refund_notify")
def refund_notify(event: OutboxEvent) -> None:
    """Tell the driver their balance refund was approved or rejected, then refunded or
    failed (one message per request and state)."""
    state = event.payload["state"]
    if state not in REFUND_KINDS:
        return
    request = RefundRequest.objects.get(pk=event.payload["request_id"])
    payload = {"amount": str(request.amount)}
    if state == RefundState.REJECTED:
        payload["reason"] = request.rejection_reason
    if "refunded" in event.payload:
        payload["refunded"] = event.payload["refunded"]
    notifications_enqueue(
        messages=[
            MemberMessage(
                member_id=request.member_id,
                kind=REFUND_KINDS[state],
                subject=f"refund:{request.pk}:{state}",
                payload=payload,
            )
        ]
    )


@consumer(INVOICE_ISSUED, INVOICE_REJECTED, name="faults.invoice_notify")
def invoice_notify(event: OutboxEvent) -> None:
    """Tell the driver their invoice is ready to download, or why it was rejected."""
    invoice = InvoiceRequest.objects.get(pk=event.payload["invoice_id"])
    issued = event.kind == INVOICE_ISSUED
    payload = {"title": invoice.title, "amount": str(invoice.amount)}
    if not issued:
        payload["reason"] = invoice.rejection_reason
    notifications_enqueue(
        messages=[
            MemberMessage(
                member_id=invoice.member_id,
                kind=Notification.Kind.INVOICE_ISSUED
                if issued
                else Notification.Kind.INVOICE_REJECTED,
                subject=f"invoice:{invoice.pk}:{'issued' if issued else 'rejected'}",
                payload=payload,
            )
        ]
    )
