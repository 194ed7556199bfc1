"""Staff clicking "apply" on the same fault bill at the same moment, each in its own
thread with its own database connection (the tests that use it need transaction=True)."""

import threading

from django.db import connection
from django.utils import translation

from billing.services.repair import BillCorrections, RepairConflict
from faults.services.repair import fault_bill_repair


def repair_at_once(*, session, corrections: BillCorrections, agents) -> dict[str, str]:
    """Each agent's outcome by username: "won", or the conflict message it was told."""
    barrier = threading.Barrier(len(agents))
    outcomes: dict[str, str] = {}

    def apply(agent):
        try:
            translation.activate("en")  # a thread does not inherit the test's language
            barrier.wait()
            fault_bill_repair(session=session, corrections=corrections, acting_user=agent)
            outcomes[agent.username] = "won"
        except RepairConflict as exc:
            outcomes[agent.username] = str(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=apply, args=(agent,)) for agent in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
