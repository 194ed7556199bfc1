"""Domain events through an outbox: what happened leaves the core as a row, never as a call.

A service that changes something calls `event_publish` inside its transaction; the event
row commits (or rolls back) with the change. After commit a Celery task delivers it to
every consumer registered for its kind; a beat sweep (`events_deliver_pending`) delivers
whatever a crash or a lost task left behind. So delivery is at least once.

Each consumer runs in its own transaction together with the `EventDelivery` row that says
it took the event: `INSERT … ON CONFLICT DO NOTHING` first, so a concurrent or repeated
delivery finds the row (after waiting for the first to commit) and skips. A consumer whose
effect is in this database therefore takes each event exactly once in effect; one that
talks to the network must only queue that work (a row, a task on commit) — never make a
network call here, inside the transaction.

Consumers live in their app's ``consumers.py`` (imported at start-up by
`autodiscover_consumers`), so the kernel knows no business app:

    @consumer("bill.settled", name="faults.cases_open")
    def cases_open(event: OutboxEvent) -> None: ...

A consumer that can take many events at once says ``batch=True`` and receives a list:
`events_deliver` (the after-commit task) gives it every event of a burst in one
transaction with their `EventDelivery` rows (one INSERT), instead of a transaction per
event. If the batch fails, each event is given to it alone (one bad event holds up only
itself).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from chargenet.celery import task_queue_on_commit
from chargenet.cursors import statement_run
from chargenet.models import EventDelivery, OutboxEvent
from chargenet.sqltext import literal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Consumer:
    name: str
    kinds: frozenset[str]
    handle: Callable[[OutboxEvent], None]
    # Set for ``batch=True`` consumers: takes a list of events in one transaction.
    handle_many: Callable[[list[OutboxEvent]], None] | None = None


_CONSUMERS: dict[str, Consumer] = {}


def consumer(*kinds: str, name: str, batch: bool = False) -> Callable:
    """Register ``handle(event)`` for events of ``kinds`` (``handle(events)``, a list,
    with ``batch=True``); ``name`` is stored with each delivery, so it must stay the same
    across releases."""

    def register(handle: Callable) -> Callable:
        existing = _CONSUMERS.get(name)
        if existing is not None and (existing.handle_many or existing.handle) is not handle:
            raise ValueError(f"two consumers are named {name!r}")
        if batch:
            _CONSUMERS[name] = Consumer(
                name=name,
                kinds=frozenset(kinds),
                handle=lambda event: handle([event]),
                handle_many=handle,
            )
        else:
            _CONSUMERS[name] = Consumer(name=name, kinds=frozenset(kinds), handle=handle)
        return handle

    return register


def consumers_of(kind: str) -> list[Consumer]:
    return [c for c in _CONSUMERS.values() if kind in c.kinds]


def autodiscover_consumers() -> None:
    autodiscover_modules("consumers")


def event_publish(*, kind: str, key: object = "", payload: dict | None = None) -> OutboxEvent:
    """Write one event in the caller's transaction and deliver it after commit."""
    return events_publish(kind=kind, events=[(key, payload or {})])[0]


_PUBLISH_SQL = (
    f"INSERT INTO {OutboxEvent._meta.db_table} "
    "(kind, key, payload, created_at, delivered_at, attempts) "
    "SELECT %s, e.key, e.payload::jsonb, %s, %s, 0 "
    "FROM unnest(%s::varchar[], %s::text[]) WITH ORDINALITY AS e(key, payload, n) "
    "ORDER BY e.n RETURNING id"
)
# One event (the gateway's starts and stops): its values, not arrays of one, which psycopg
# dumps in Python at ten times the CPU.
_PUBLISH_ONE_SQL = (
    f"INSERT INTO {OutboxEvent._meta.db_table} "
    "(kind, key, payload, created_at, delivered_at, attempts) "
    "VALUES (%s, %s, %s::jsonb, %s, %s, 0) RETURNING id"
)


def events_publish(*, kind: str, events: list[tuple[object, dict]]) -> list[OutboxEvent]:
    """Write events of ``kind`` ((key, payload) pairs) in the caller's transaction, in one
    INSERT, and deliver them after commit. An event nobody consumes is delivered at once."""
    if not events:
        return []
    if not connection.in_atomic_block:
        raise RuntimeError("domain events belong inside the transaction of the change")
    due = bool(consumers_of(kind))
    now = timezone.now()
    delivered_at = None if due else now
    keys = [str(key)[:64] for key, _payload in events]
    payloads = [json.dumps(payload) for _key, payload in events]
    # One statement of plain SQL: the gateway publishes on every start and stop, and the
    # ORM's bulk_create spent more CPU building the INSERT than PostgreSQL running it.
    if len(events) == 1:
        cursor = statement_run(_PUBLISH_ONE_SQL, [kind, keys[0], payloads[0], now, delivered_at])
    else:
        cursor = statement_run(_PUBLISH_SQL, [kind, now, delivered_at, keys, payloads])
    ids = [row[0] for row in cursor.fetchall()]
    rows = [
        OutboxEvent(pk=pk, kind=kind, key=key, payload=payload, created_at=now,
                    delivered_at=delivered_at, attempts=0)
        for pk, key, (_key, payload) in zip(ids, keys, events, strict=True)
    ]  # fmt: skip
    events_inserted(kind, ids)
    return rows


def events_insert_sql(kind: str, *, key: str, payload: str, source: str) -> str:
    """The INSERT of one ``kind`` event per row of ``source``, for a statement that
    publishes what it changes as a part of itself (a CTE) instead of in a round trip of
    its own, as the gateway's starts and stops do. ``key`` and ``payload`` (jsonb) are
    SQL over the source's columns; the events are dated by the transaction (``now()``).
    It returns the events' ids and keys: give the ids to `events_inserted`."""
    delivered_at = "NULL" if consumers_of(kind) else "now()"  # nobody consumes: delivered
    return (
        f"INSERT INTO {OutboxEvent._meta.db_table} "
        "(kind, key, payload, created_at, delivered_at, attempts) "
        f"SELECT {literal(kind)}, {key}, {payload}, now(), {delivered_at}, 0 FROM {source} "
        "RETURNING id, key"
    )


def events_inserted(kind: str, ids: list[int]) -> None:
    """Deliver these new events of ``kind`` once the caller's transaction commits."""
    if ids and consumers_of(kind):
        from chargenet.tasks import events_deliver_task

        # A broker that is down loses nothing: the sweep delivers what was not queued.
        task_queue_on_commit(events_deliver_task, list(ids))


def event_deliver(*, event_id: int) -> list[str]:
    """Give one event to each of its consumers that has not taken it yet; returns the
    names of those that took it now. A consumer that raises is left due (logged) and the
    others still run; the event is marked delivered once none is due."""
    event = OutboxEvent.objects.filter(pk=event_id).first()
    if event is None or event.delivered_at is not None:
        return []
    took, failed = [], []
    for c in consumers_of(event.kind):
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"INSERT INTO {EventDelivery._meta.db_table} (event_id, consumer, at) "
                        "VALUES (%s, %s, now()) ON CONFLICT DO NOTHING",
                        [event.pk, c.name],
                    )
                    if cursor.rowcount == 0:
                        continue  # taken already (or just now, by a concurrent delivery)
                c.handle(event)
            took.append(c.name)
        except Exception:
            failed.append(c.name)
            logger.exception("consumer %s failed on event %s; it stays due", c.name, event.pk)
    if failed:
        OutboxEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
    else:
        OutboxEvent.objects.filter(pk=event.pk, delivered_at__isnull=True).update(
            delivered_at=timezone.now()
        )
    return took


def events_deliver(*, event_ids: list[int]) -> int:
    """Deliver these events: a ``batch`` consumer takes all of its events still due in one
    transaction (their `EventDelivery` rows in one INSERT, then one call); every other
    consumer, and a batch that failed, goes through `event_deliver` one event at a time.
    Events all of whose consumers took them here are marked delivered in one UPDATE.
    Returns how many consumer deliveries ran."""
    events = list(
        OutboxEvent.objects.filter(pk__in=event_ids, delivered_at__isnull=True).order_by("pk")
    )
    alone = set()  # events that still go through event_deliver
    took = 0
    for c in _CONSUMERS.values():
        mine = [e for e in events if e.kind in c.kinds]
        if not mine:
            continue
        if c.handle_many is None or len(mine) < 2:
            alone.update(e.pk for e in mine)
            continue
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"INSERT INTO {EventDelivery._meta.db_table} (event_id, consumer, at) "
                        "SELECT id, %s, now() FROM unnest(%s::bigint[]) AS id "
                        "ON CONFLICT DO NOTHING RETURNING event_id",
                        [c.name, [e.pk for e in mine]],
                    )
                    new = {row[0] for row in cursor.fetchall()}
                taken = [e for e in mine if e.pk in new]
                if taken:
                    c.handle_many(taken)
            took += len(taken)
        except Exception:
            logger.exception("batch consumer %s failed on %d events; one by one", c.name, len(mine))
            alone.update(e.pk for e in mine)
    whole = [e.pk for e in events if e.pk not in alone]
    if whole:
        OutboxEvent.objects.filter(pk__in=whole, delivered_at__isnull=True).update(
            delivered_at=timezone.now()
        )
    for event in events:
        if event.pk in alone:
            took += len(event_deliver(event_id=event.pk))
    return took


# An event whose consumer failed this often is left for a person (the admin lists it).
MAX_ATTEMPTS = 20


def events_deliver_pending(
    *, older_than: dt.timedelta = dt.timedelta(seconds=30), limit: int = 500
) -> int:
    """The sweep: deliver events still due after ``older_than`` (their own task should
    have run by then). Returns how many events it went through."""
    cutoff = timezone.now() - older_than
    ids = list(
        OutboxEvent.objects.filter(
            delivered_at__isnull=True, created_at__lt=cutoff, attempts__lt=MAX_ATTEMPTS
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    events_deliver(event_ids=ids)
    return len(ids)


def events_retry(*, event_ids: list[int]) -> int:
    """Deliver events again at once, their attempts counted afresh (after a consumer was
    fixed). Returns how many are now delivered."""
    OutboxEvent.objects.filter(pk__in=event_ids, delivered_at__isnull=True).update(attempts=0)
    for event_id in event_ids:
        event_deliver(event_id=event_id)
    return OutboxEvent.objects.filter(pk__in=event_ids, delivered_at__isnull=False).count()


def events_prune(*, before: dt.datetime) -> int:
    """Delete delivered events older than ``before`` (their effects are elsewhere)."""
    deleted, _ = OutboxEvent.objects.filter(
        delivered_at__isnull=False, created_at__lt=before
    ).delete()
    return deleted
