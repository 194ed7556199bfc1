"""Group commit (`protocol.db`): many piles' messages in one transaction, each answered
once it has committed; one failing message neither fails nor loses the others."""

from __future__ import annotations

import asyncio

import pytest
from django.db import OperationalError, connection, connections
from django.utils import timezone

from chargenet.errors import DomainError
from protocol.db import DbRunner, _group
from protocol.models import Frame

pytestmark = pytest.mark.django_db(transaction=True)


def journal(*, code: str) -> str:
    Frame.objects.create(
        at=timezone.now(), pile_code=code, direction="in", message_type=2, action="Heartbeat"
    )
    return code


def journal_then_refuse(*, code: str) -> None:
    journal(code=code)
    raise DomainError("refused after writing")


def journal_twice(*, code: str) -> None:
    journal(code=code)
    journal(code=code)  # the unique_id/… are not unique: a second row, not an error
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1/0")  # a statement the database refuses


def journal_in(*, code: str) -> tuple[str, int]:
    """Journal, and say in which transaction."""
    journal(code=code)
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_current()")
        return code, cursor.fetchone()[0]


def stored() -> list[str]:
    return sorted(Frame.objects.values_list("pile_code", flat=True))


def test_a_failing_call_takes_back_only_its_own_work():
    results = _group(
        [
            (journal, {"code": "A"}),
            (journal_then_refuse, {"code": "B"}),
            (journal, {"code": "C"}),
            (journal_twice, {"code": "D"}),
            (journal, {"code": "E"}),
        ]
    )
    assert [ok for ok, _value in results] == [True, False, True, False, True]
    assert [results[0][1], results[2][1], results[4][1]] == ["A", "C", "E"]
    assert isinstance(results[1][1], DomainError)
    assert stored() == ["A", "C", "E"]


def test_a_call_that_lost_a_lock_runs_again_alone():
    attempts = []

    def deadlocked_once(*, code: str) -> str:
        attempts.append(connection.in_atomic_block)
        journal(code=code)
        if len(attempts) < 3:  # the fast pass, then the pass with savepoints
            raise OperationalError("deadlock detected")
        return code

    results = _group([(journal, {"code": "A"}), (deadlocked_once, {"code": "B"})])
    assert results == [(True, "A"), (True, "B")]
    assert stored() == ["A", "B"]
    assert len(attempts) == 3


def test_calls_arriving_together_share_a_commit_and_each_gets_its_answer():
    async def play():
        db = DbRunner(1, groups=1)
        try:
            calls = [db.run(journal_in, code=f"P{n:02d}") for n in range(20)]
            calls.insert(5, db.run(journal_then_refuse, code="X"))
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await db.run_alone(connections.close_all)  # the thread's own connection
            db.shutdown()

    answers = asyncio.run(play())
    refused = answers.pop(5)
    assert str(refused) == "refused after writing"
    assert [code for code, _txid in answers] == [f"P{n:02d}" for n in range(20)]
    # The first call ran at once, alone; the others waited for it and went together.
    assert len({txid for _code, txid in answers}) == 2
    assert stored() == [f"P{n:02d}" for n in range(20)]
