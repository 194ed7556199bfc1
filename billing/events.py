"""The domain events billing publishes (`chargenet.events`), one name each.

Payloads are JSON: ids, and money and energy as exact decimal strings.
"""

BILL_SETTLED = "bill.settled"  # a stopped session became a bill (paid, owed, unpaid or fault)
BILL_REPAIRED = "bill.repaired"  # customer service repaired a fault bill; it is settled now
BILL_PAID = "bill.paid"  # a bill charged after its settlement (owed, then covered)
PAYMENT_RECEIVED = "payment.received"  # a recharge credited to a member's wallet
SESSION_STARTED = "session.started"  # a pile (or channel) opened a session: live, or refused
SESSION_STOPPED = "session.stopped"  # a session closed (stop, superseded, lost): to settle
# A reservation was made, used, cancelled, expired or refused by the pile
# (billing.services.reservations; the live view and the drivers' API show them).
RESERVATION_CHANGED = "reservation.changed"
