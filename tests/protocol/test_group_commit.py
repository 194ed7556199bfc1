"""Group commit (`protocol.db`): many piles' messages in one transaction, each answered
once it has committed; one failing message neither fails nor loses the others."""

from __future__ import annotations

import asyncio

import pytest
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from chargenet.celery import TasksSender, task_queue_on_commit, tasks_gathered, tasks_send
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


@pytest.fixture
def sender():
    sender = TasksSender()
    yield sender
    sender.close()


def test_a_failing_call_takes_back_only_its_own_work(sender):
    results = _group(
        [
            (journal, {"code": "A"}),
            (journal_then_refuse, {"code": "B"}),
            (journal, {"code": "C"}),
            (journal_twice, {"code": "D"}),
            (journal, {"code": "E"}),
        ],
        sender,
    )
    assert [ok for ok, _value in results] == [True, False, True, False, True]
    assert [results[0][1], results[2][1], results[4][1]] == ["A", "C", "E"]
    assert isinstance(results[1][1], DomainError)
    assert stored() == ["A", "C", "E"]


def test_a_call_that_lost_a_lock_runs_again_alone(sender):
    attempts = []

    def deadlocked_once(*, code: str) -> str:
        attempts.append(connection.in_atomic_block)
        journal(code=code)
        if len(attempts) < 3:  # the fast pass, then the pass with savepoints
            raise OperationalError("deadlock detected")
        return code

    results = _group([(journal, {"code": "A"}), (deadlocked_once, {"code": "B"})], sender)
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


class RecordingTask:
    """Stands in for a Celery task: records what would have been sent to the broker."""

    def __init__(self, name: str, *, merges_lists: bool = False):
        self.name, self.merges_lists, self.sent = name, merges_lists, []

    def delay(self, *args):
        self.sent.append(args)


DELIVER = RecordingTask("deliver", merges_lists=True)
SETTLE = RecordingTask("settle")


def queue_after_commit(*, code: str, ids: list[int]) -> str:
    journal(code=code)
    task_queue_on_commit(DELIVER, ids)
    task_queue_on_commit(SETTLE, code)
    return code


def test_a_batch_sends_its_tasks_after_commit_with_lists_joined():
    DELIVER.sent.clear()
    SETTLE.sent.clear()

    async def play():
        db = DbRunner(1, groups=1)
        try:
            calls = [db.run(queue_after_commit, code=f"P{n}", ids=[n, n + 10]) for n in range(4)]
            calls.insert(2, db.run(journal_then_refuse, code="X"))  # rolled back: sends nothing
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await db.run_alone(connections.close_all)
            db.shutdown()

    answers = asyncio.run(play())  # shutting the runner down makes the sends still queued
    assert [a for a in answers if isinstance(a, str)] == ["P0", "P1", "P2", "P3"]
    # P0 ran alone, then P1..P3 (and the refused X) together: two batches, whose
    # deliveries are joined when the second commits while the sender lingers on the first.
    assert [i for (ids,) in DELIVER.sent for i in ids] == [0, 10, 1, 11, 2, 12, 3, 13]
    assert len(DELIVER.sent) in (1, 2)
    assert SETTLE.sent == [("P0",), ("P1",), ("P2",), ("P3",)]


def test_the_sender_joins_what_arrives_while_it_lingers_in_order():
    DELIVER.sent.clear()
    SETTLE.sent.clear()
    sender = TasksSender(linger=0.5)
    sender.add([(DELIVER, ([1],)), (SETTLE, ("a",))])
    sender.add([(SETTLE, ("b",)), (DELIVER, ([2, 3],))])
    assert DELIVER.sent == SETTLE.sent == []  # not yet: the callers are answered first
    sender.close()
    assert DELIVER.sent == [([1, 2, 3],)]
    assert SETTLE.sent == [("a",), ("b",)]


def test_an_eager_sender_runs_the_tasks_at_once_in_the_callers_thread(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    SETTLE.sent.clear()
    sender = TasksSender(linger=5)
    sender.add([(SETTLE, ("now",))])
    assert SETTLE.sent == [("now",)]
    sender.close()


def test_outside_a_batch_a_task_is_sent_at_commit_and_a_rollback_sends_nothing():
    SETTLE.sent.clear()
    with transaction.atomic():
        task_queue_on_commit(SETTLE, "kept")
        assert SETTLE.sent == []
    with pytest.raises(RuntimeError), transaction.atomic():
        task_queue_on_commit(SETTLE, "rolled back")
        raise RuntimeError
    assert SETTLE.sent == [("kept",)]


def test_a_broker_that_is_down_does_not_undo_a_commit():
    class Unreachable(RecordingTask):
        def delay(self, *args):
            raise ConnectionError("broker down")

    with tasks_gathered() as sends, transaction.atomic():
        journal(code="B1")
        task_queue_on_commit(Unreachable("deliver", merges_lists=True), [1])
    tasks_send(sends)  # logged, not raised
    assert stored() == ["B1"]


class _Pile:
    def __init__(self, pk: int):
        self.pk = pk


def test_calls_that_can_run_together_do_unless_their_pile_has_other_calls(sender):
    """One `many` for the batch's calls of a function that has one, in their order; the
    calls of a pile that also sent something else run alone, in the order they came."""
    ran = []

    def record(*, pile, n):
        ran.append(("alone", n))
        return journal(code=f"R{n}")

    def record_many(calls):
        ran.append(("together", [call["n"] for call in calls]))
        return [journal(code=f"R{call['n']}") for call in calls]

    record.many = record_many

    def other(*, pile, n):
        ran.append(("other", n))
        return journal(code=f"O{n}")

    one, two, three = _Pile(1), _Pile(2), _Pile(3)
    results = _group(
        [
            (record, {"pile": one, "n": 1}),
            (other, {"pile": two, "n": 2}),
            (record, {"pile": two, "n": 3}),
            (record, {"pile": three, "n": 4}),
            (record, {"pile": one, "n": 5}),
        ],
        sender,
    )
    assert results == [(True, "R1"), (True, "O2"), (True, "R3"), (True, "R4"), (True, "R5")]
    assert ran == [("together", [1, 4, 5]), ("other", 2), ("alone", 3)]
    assert stored() == ["O2", "R1", "R3", "R4", "R5"]


def _recording(ran: list):
    """A service that can take many calls at once, recording how it ran."""

    def one(**kwargs):
        ran.append(("alone", kwargs["code"]))
        return journal(code=kwargs["code"])

    def many(calls):
        ran.append(("together", [call["code"] for call in calls]))
        return [journal(code=call["code"]) for call in calls]

    one.many = many
    return one


def test_calls_of_no_pile_run_together_and_a_pile_id_names_a_pile(sender):
    """Handshakes (a code, no pile yet) run together whatever else the batch holds; a call
    that names its pile by ``pile_id`` keeps that pile's order as a ``pile`` does."""
    ran = []
    login, boot = _recording(ran), _recording(ran)

    def status(*, pile_id, code):
        ran.append(("other", code))
        return journal(code=code)

    results = _group(
        [
            (login, {"code": "L1"}),
            (boot, {"pile_id": 1, "code": "B1"}),
            (status, {"pile_id": 1, "code": "S1"}),
            (login, {"code": "L2"}),
            (boot, {"pile_id": 2, "code": "B2"}),
            (boot, {"pile_id": 3, "code": "B3"}),
        ],
        sender,
    )
    assert [value for _ok, value in results] == ["L1", "B1", "S1", "L2", "B2", "B3"]
    assert ran == [
        ("together", ["L1", "L2"]),
        ("alone", "B1"),
        ("other", "S1"),
        ("together", ["B2", "B3"]),
    ]


def test_a_failure_in_calls_run_together_isolates_each_of_them(sender):
    def record(*, pile, n):
        if n == 2:
            raise DomainError("refused")
        return journal(code=f"R{n}")

    def record_many(calls):
        return [record(**call) for call in calls]  # fails on the second: all redone alone

    record.many = record_many
    results = _group([(record, {"pile": _Pile(n), "n": n}) for n in (1, 2, 3)], sender)
    assert [ok for ok, _value in results] == [True, False, True]
    assert isinstance(results[1][1], DomainError)
    assert stored() == ["R1", "R3"]


def _frames_of(code: str, payload) -> list[dict]:
    common = {"at": timezone.now(), "pile_code": code, "message_type": 2, "action": "MeterValues"}
    return [{**common, "direction": "in", "payload": payload}, {**common, "direction": "out"}]


def _journaled(payload=None):
    """A `run_journaled` callable: the answer is the service's result in lower case; the
    frames carry ``payload``."""
    return lambda code: (code.lower(), _frames_of(code, payload or {"code": code}))


def test_a_journaled_calls_frames_commit_with_its_effect_and_a_failing_ones_do_not(sender):
    results = _group(
        [
            (journal_in, {"code": "A"}, lambda value: (value, _frames_of(value[0], {}))),
            (journal_then_refuse, {"code": "B"}, _journaled()),
            (journal, {"code": "C"}, _journaled()),
        ],
        sender,
    )
    assert [ok for ok, _value in results] == [True, False, True]
    assert results[2] == (True, "c")
    # each service's row and its two frames: B's service failed, so none of its frames
    assert stored() == ["A", "A", "A", "C", "C", "C"]


def test_a_batchs_frames_are_written_in_the_transaction_of_its_effects(sender):
    calls = [
        (journal_in, {"code": code}, lambda value: (value, _frames_of(value[0], {})))
        for code in ("A", "B")
    ]
    results = _group(calls, sender)
    [(ok_a, (_a, txid)), (ok_b, (_b, same_txid))] = results
    assert ok_a and ok_b and txid == same_txid
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT xmin::text, count(*) FROM {Frame._meta.db_table} GROUP BY 1")
        assert cursor.fetchall() == [(str(txid), 6)]  # two effects, four frames, one commit


def test_a_journaled_frame_the_database_refuses_is_stored_cleaned_and_the_batch_commits(sender):
    results = _group(
        [
            (journal, {"code": "A"}, _journaled({"text": "NUL \x00 here"})),
            (journal, {"code": "B"}, _journaled()),
        ],
        sender,
    )
    assert results == [(True, "a"), (True, "b")]
    assert stored() == ["A", "A", "A", "B", "B", "B"]
    cleaned = Frame.objects.get(pile_code="A", direction="in", payload__isnull=False)
    assert cleaned.payload == {"text": "NUL \\u0000 here"}
