"""Domain events in tests: most tests run inside one transaction, where the after-commit
delivery task never fires; they deliver what is due as the worker would after commit."""

import datetime as dt

from chargenet.events import events_deliver_pending


def events_delivered() -> int:
    """Deliver every due event now (each consumer once, as in production)."""
    return events_deliver_pending(older_than=dt.timedelta(0))
