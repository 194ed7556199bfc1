"""Running Django ORM services from the asyncio gateway, with group commit.

Services are synchronous and transactional; the gateway runs them in a small pool of
threads, each with its own database connection. A connection error closes that thread's
connection (the next call reconnects) and surfaces as `DatabaseUnavailable`, on which a
handler does not answer: the pile retries, and the gateway serves again once the
database is back.

Group commit: calls that arrive while ``groups`` batches are already running wait and
then run together, many piles' messages in one transaction, each in a savepoint of its
own, and each caller gets its answer once that transaction has committed. Under load a
commit (and its WAL flush) is shared by a whole batch instead of paid per message; when
idle a call runs at once, alone. A call that fails (a domain error, a constraint, a
statement the database refused) rolls back its savepoint only: the other calls of the
batch commit as if it had not been there. One that lost to a deadlock or a lock timeout
is run again alone after the batch. A function that can take many calls at once says so
with a ``many`` attribute (`billing.services.sessions.meter.sessions_meter_record`, and
the starts', stops' and Authorizes' of `billing.services.sessions`): a batch's calls of
it run together, one or two statements for a batch's MeterValues, starts, stops or
Authorizes instead of one or two each (`_together` says which calls). Only a lost
connection fails the whole batch (`DatabaseUnavailable` for each: nothing was committed,
or the commit's fate is unknown and every service is idempotent, so the piles' retries
are safe).

A transaction message's frames are written in the batch that commits its effect
(`DbRunner.run_journaled`): one COPY for the batch's frames before its commit, so the
pile is answered after one commit instead of waiting for the journal's next one, which
under load cost more than the batch itself (a thread's COPY waits for the event loop to
give back the interpreter lock at each round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)

from chargenet.celery import TasksSender, tasks_gathered

logger = logging.getLogger(__name__)


def statements_prepared() -> None:
    """For a gateway process, before its first query: bind parameters on the server and
    let psycopg prepare the statements a connection runs again and again. A message runs
    a handful of statements, the same ones for every pile: prepared, each is parsed and
    planned once per connection instead of once per message (PostgreSQL's CPU per message
    10–15 % lower in `bench.gateway`). Not for web and workers, whose SQL includes DDL
    with parameters (partitions), which server-side binding cannot run; off with
    GATEWAY_DB_PREPARED=0 (a pooler in transaction mode that cannot keep statements)."""
    if settings.GATEWAY_DB_PREPARED:
        options = settings.DATABASES["default"].setdefault("OPTIONS", {})
        options.update(server_side_binding=True, prepare_threshold=settings.GATEWAY_DB_PREPARED)


class DatabaseUnavailable(Exception):
    """The database could not be reached; nothing was committed."""


_local = threading.local()
RECYCLE_CHECK_SECONDS = 30.0


def _recycle() -> None:
    """Apply CONN_MAX_AGE / health checks as a request cycle would, but only every few
    seconds per thread: doing it per call would add a round trip to every message."""
    now = time.monotonic()
    if now - getattr(_local, "checked", 0.0) >= RECYCLE_CHECK_SECONDS:
        _local.checked = now
        close_old_connections()


def _call(fn: Callable, kwargs: dict) -> Any:
    _recycle()
    for attempt in range(2):
        try:
            return fn(**kwargs)
        except (OperationalError, InterfaceError) as exc:
            # A dead connection (server restarted, idle timeout): drop it; retry once on a
            # fresh one, then give up and let the pile retry.
            with contextlib.suppress(Exception):
                connection.close()
            if attempt or connection.in_atomic_block:
                raise DatabaseUnavailable(str(exc)) from exc
    raise AssertionError("unreachable")


def _broken() -> bool:
    raw = connection.connection
    return raw is None or raw.closed or getattr(raw, "broken", False)


_RETRY_ALONE = object()


class _Redo(Exception):
    """The batch's fast pass met a failure: roll it all back and run it with savepoints."""


def _group(calls: list[tuple], sender: TasksSender) -> list[tuple[bool, Any]]:
    """Run ``calls`` (fn, kwargs[, journaled]) in one transaction; return (ok, result or
    exception) per call, after the commit. The Celery sends the calls queued on commit go
    to ``sender``. A call's ``journaled`` (see `DbRunner.run_journaled`) turns its result
    into (result, frame rows): the batch's frames are written with one COPY before the
    commit, so they are committed with the effects they record.

    First without savepoints (each costs two round trips, per call and per nested
    ``atomic`` of the services): nearly every batch succeeds whole. If any call fails, or
    leaves the transaction marked for rollback, the whole transaction is rolled back and
    the batch runs again with a savepoint per call, so a failing call takes back only its
    own work. A call that lost a lock (deadlock, lock or statement timeout) is run again
    alone once the others have committed."""
    calls = [(call[0], call[1], call[2] if len(call) > 2 else None) for call in calls]
    with tasks_gathered() as sends:
        try:
            results = _group_pass(calls, savepoints=False)
        except _Redo:
            del sends[:]  # that pass rolled back; its commit hooks never ran, but be sure
            results = _group_pass(calls, savepoints=True)
    # The batch's Celery sends (event deliveries, settlements) go once it has committed,
    # from the sender's thread, joined with other batches' (one broker round trip for
    # many messages' events), while the callers are answered. A send lost to a crash is
    # one the beat's sweeps make.
    sender.add(sends)
    return results


def _together(calls: list[tuple[Callable, dict]]) -> dict[int, list[int]]:
    """The calls of a batch to run together: {first index: all indexes} for each function
    that can take many calls at once (its ``many``, e.g. `sessions_meter_record`), among
    the calls of piles that have no other kind of call in the batch, so that no pile's
    messages run in another order than they came (a pile is its ``pile`` or its
    ``pile_id``). A call of no pile (a handshake's `pile_login`, which only reads) runs
    with every other call of its function."""
    kinds: dict[object, set] = {}
    for fn, kwargs, *_journaled in calls:
        pile = _pile_of(kwargs)
        if pile is not None:
            kinds.setdefault(pile, set()).add(fn)
    groups: dict[Callable, list[int]] = {}
    for i, (fn, kwargs, *_journaled) in enumerate(calls):
        pile = _pile_of(kwargs)
        if getattr(fn, "many", None) is not None and (pile is None or kinds[pile] == {fn}):
            groups.setdefault(fn, []).append(i)
    return {members[0]: members for members in groups.values() if len(members) > 1}


def _pile_of(kwargs: dict) -> int | None:
    pile = kwargs.get("pile")
    return pile.pk if pile is not None else kwargs.get("pile_id")


def _group_pass(calls: list[tuple], *, savepoints: bool) -> list:
    results: list[tuple[bool, Any] | None] = [None] * len(calls)
    frames: list[dict] = []  # the journaled calls' frame rows, written before the commit
    # Without savepoints, calls that can run together do: one statement for a batch's
    # MeterValues instead of one each. With savepoints (a failure is being isolated),
    # every call runs alone.
    together = {} if savepoints else _together(calls)
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of the proxy looks it up again
    features = db.features
    features.uses_savepoints = savepoints  # this thread's connection only
    try:
        with transaction.atomic():
            for i, (fn, kwargs, journaled) in enumerate(calls):
                if results[i] is not None:
                    continue  # ran with the first of its group
                try:
                    if savepoints:
                        with transaction.atomic():
                            value = _journal(journaled, fn(**kwargs), frames)
                    elif i in together:
                        members = together[i]
                        values = fn.many([calls[j][1] for j in members])
                        for j, member_value in zip(members, values, strict=True):
                            results[j] = (True, _journal(calls[j][2], member_value, frames))
                        value = results[i][1]
                    else:  # any failure redoes the batch: the call needs no block of its own
                        value = _journal(journaled, fn(**kwargs), frames)
                    if db.needs_rollback:  # a service swallowed a failure
                        raise _Redo
                    results[i] = (True, value)
                except _Redo:
                    raise
                except (OperationalError, InterfaceError) as exc:
                    if _broken():
                        raise
                    if not savepoints:
                        raise _Redo from exc
                    results[i] = (False, _RETRY_ALONE)
                    logger.info("%s lost a lock in a batch, run alone: %s", fn.__name__, exc)
                except Exception as exc:
                    if not savepoints:
                        raise _Redo from exc
                    results[i] = (False, exc)
            if frames:
                _frames_write(frames, savepoints=savepoints)
    finally:
        features.uses_savepoints = True
    for i, (_ok, value) in enumerate(results):
        if value is _RETRY_ALONE:
            fn, kwargs, journaled = calls[i]
            alone = {"fn": fn, "kwargs": kwargs, "journaled": journaled}
            try:
                results[i] = (True, _call(_journaled_alone, alone))
            except Exception as exc:
                results[i] = (False, exc)
    return results


def _journal(journaled: Callable | None, value: Any, frames: list[dict]) -> Any:
    """A call's result, and its frame rows added to ``frames``, if it is journaled."""
    if journaled is None:
        return value
    value, rows = journaled(value)
    frames.extend(rows)
    return value


def _frames_write(frames: list[dict], *, savepoints: bool) -> None:
    from .journal import _copy, _copy_rows  # the journal builds on this module

    if savepoints:
        _copy(frames)  # a frame the database refuses is stored row-safely
        return
    try:
        _copy_rows(frames)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:  # NUL, a lone surrogate… : the careful pass stores it
        raise _Redo from exc


def _journaled_alone(fn: Callable, kwargs: dict, journaled: Callable | None) -> Any:
    """``fn(**kwargs)`` in a transaction of its own, with its frames if journaled."""
    with transaction.atomic():
        frames: list[dict] = []
        value = _journal(journaled, fn(**kwargs), frames)
        if frames:
            _frames_write(frames, savepoints=True)
    return value


class DbRunner:
    def __init__(self, threads: int = 8, *, groups: int | None = None, max_group: int = 500):
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="gw-db")
        # Batches running at once; the other threads stay free for `run_alone`.
        self.groups = groups or max(1, threads // 2)
        self.max_group = max_group
        self._waiting: list[tuple[Callable, dict, asyncio.Future, Callable | None]] = []
        self._running = 0
        # A Celery send costs the gateway ~0.5 ms of CPU (kombu builds a Redis client for
        # each publish); gathering 0.1 s of batches' sends makes them ten a second at
        # most, whatever the load, for a tenth of a second's delay to event consumers
        # and settlement, which take longer than that anyway.
        self.sender = TasksSender(linger=0.1)

    async def run(self, fn: Callable, /, **kwargs) -> Any:
        """Run ``fn(**kwargs)`` in the next group commit; its result (or exception) once
        the group's transaction has committed."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((fn, kwargs, future, None))
        self._dispatch()
        return await future

    async def run_journaled(
        self, fn: Callable, kwargs: dict, journaled: Callable[[Any], tuple[Any, list[dict]]]
    ) -> Any:
        """`run`, for a message whose answer waits for its frames: ``journaled`` turns
        ``fn``'s result into (what this returns, the frame rows recording the message),
        in the batch's thread; the rows are written in the batch's transaction, so the
        answer waits for one commit, not for the journal's next one after it."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((fn, kwargs, future, journaled))
        self._dispatch()
        return await future

    async def run_alone(self, fn: Callable, /, **kwargs) -> Any:
        """Run ``fn(**kwargs)`` in a transaction of its own (long or lock-heavy work that
        should not hold a batch back)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(_call, fn, kwargs))

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting and self._running < self.groups:
            batch = self._waiting[: self.max_group]
            del self._waiting[: self.max_group]
            self._running += 1
            calls = [(fn, kwargs, journaled) for fn, kwargs, _future, journaled in batch]
            done = loop.run_in_executor(
                self.executor,
                functools.partial(_call, _group, {"calls": calls, "sender": self.sender}),
            )
            done.add_done_callback(functools.partial(self._finished, batch))

    def _finished(self, batch: list, done: asyncio.Future) -> None:
        self._running -= 1
        error = done.exception() if not done.cancelled() else DatabaseUnavailable("cancelled")
        for i, (_fn, _kwargs, future, _journaled) in enumerate(batch):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
                continue
            ok, value = done.result()[i]
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        self._dispatch()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.sender.close()
        # The worker threads have ended; their connections are closed with the process.
