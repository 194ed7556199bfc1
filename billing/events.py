"""The domain events billing publishes (`chargenet.events`), one name each.

Payloads are JSON: ids, and money and energy as exact decimal strings.
"""

BILL_SETTLED = "bill.settled"  # a stopped session became a bill (paid, owed, unpaid or fault)
BILL_REPAIRED = "bill.repaired"  # customer service repaired a fault bill; it is settled now
# (its payload adds previous_started_at: the start before the corrections)
BILL_PAID = "bill.paid"  # a bill charged after its settlement (owed, then covered)
PAYMENT_RECEIVED = "payment.received"  # a recharge credited to a member's wallet
SESSION_STARTED = "session.started"  # a pile (or channel) opened a session: live, or refused
SESSION_STOPPED = "session.stopped"  # a session closed (stop, superseded, lost): to settle
RECHARGE_CLOSED = "recharge.closed"  # a recharge order closed unpaid (expired or refused)
REFUND_REQUESTED = "refund.requested"  # a driver asked for balance back: staff to decide
REFUND_FINISHED = "refund.finished"  # an approved balance refund ended (refunded or failed)
REFUND_DECIDED = "refund.decided"  # staff approved (refunding) or rejected a balance refund
INVOICE_REQUESTED = "invoice.requested"  # a driver asked for an invoice: staff to issue
INVOICE_ISSUED = "invoice.issued"  # staff uploaded an invoice's PDF: the driver may fetch it
INVOICE_REJECTED = "invoice.rejected"  # staff rejected an invoice request (with a reason)
# A reservation was made, used, cancelled, expired or refused by the pile
# (billing.services.reservations; the live view and the drivers' API show them).
RESERVATION_CHANGED = "reservation.changed"
# Stations' tariffs changed: a plan assigned to a station, or a version of a plan created or
# corrected (billing.services.tariffs); payload: station_ids, effective_from (ISO 8601).
STATION_TARIFF_CHANGED = "station.tariff_changed"
