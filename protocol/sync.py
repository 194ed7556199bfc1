"""Bringing a pile up to what the platform wants of it, after it connects and whenever
that changes: its desired configuration (`stations.services.configuration`) and its local
authorisation list (`billing.services.local_lists`). Runs in a Celery task (never in a
database transaction: each step is an intent that waits for the pile).

The gateway queues `protocol.tasks.piles_booted_sync_task` after answering a
BootNotification (a moment's boots together; it queues a `pile_sync_task` per pile); the
``pile.configuration_changed`` consumer queues `pile_sync_task` for the piles concerned;
beat runs `piles_sync` for the lists of online piles (members and cards change all day)."""

from __future__ import annotations

from billing.services.local_lists import pile_local_list_plan, pile_local_list_record
from stations.models import Pile
from stations.selectors import pile_configuration_desired

from . import intents
from .adapters import Outcome
from .smart_charging import pile_time_of_use_push

# The pile holds no list at all (OCPP 1.6: GetLocalListVersion answers -1).
NO_LIST = -1


def pile_configuration_push(*, pile: Pile, keys: list[str] | None = None) -> list:
    """Send the pile its desired configuration (only ``keys`` when given); stops at the
    first answer that says the pile cannot be reached."""
    results = []
    for key, value in pile_configuration_desired(pile=pile).items():
        if keys is not None and key not in keys:
            continue
        result = intents.pile_configuration_set(pile=pile, key=key, value=value)
        results.append(result)
        if result.outcome in (Outcome.OFFLINE, Outcome.TIMEOUT):
            break
    return results


def pile_local_list_sync(
    *, pile: Pile, full: bool = False, acting_user=None
) -> intents.IntentResult | None:
    """Give the pile the changes to its local list (the whole list when it holds another
    version, or when ``full``), when its desired configuration enables the list; None:
    nothing to send. Staff asking from the console pass ``acting_user`` (audited)."""
    if pile_configuration_desired(pile=pile).get("LocalAuthListEnabled") != "true":
        return None
    held = intents.pile_local_list_version(pile=pile)
    if held.outcome != Outcome.ACCEPTED or held.answer.list_version == NO_LIST:
        return held
    pile_version = None if full else held.answer.list_version
    plan = pile_local_list_plan(pile=pile, pile_version=pile_version)
    if plan is None:
        return None
    result = intents.pile_local_list_send(
        pile=pile,
        version=plan.version,
        entries=plan.entries,
        full=plan.full,
        acting_user=acting_user,
    )
    if result.outcome == Outcome.REJECTED and not plan.full:
        # VersionMismatch or Failed: start again from the whole list.
        plan = pile_local_list_plan(pile=pile, pile_version=None)
        result = intents.pile_local_list_send(
            pile=pile,
            version=plan.version,
            entries=plan.entries,
            full=True,
            acting_user=acting_user,
        )
    if result.outcome == Outcome.ACCEPTED:
        pile_local_list_record(pile=pile, plan=plan)
    return result


def pile_sync(*, pile: Pile) -> None:
    """Everything a pile should hold, after it (re)connected: configuration, local list,
    and its time-of-use power cap (`protocol.smart_charging`)."""
    pushed = pile_configuration_push(pile=pile)
    if any(r.outcome in (Outcome.OFFLINE, Outcome.TIMEOUT) for r in pushed):
        return
    listed = pile_local_list_sync(pile=pile)
    if listed is not None and listed.outcome in (Outcome.OFFLINE, Outcome.TIMEOUT):
        return
    pile_time_of_use_push(pile=pile)
