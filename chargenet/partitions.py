"""Time-partitioned tables (PostgreSQL declarative range partitioning) for data that only
grows: the frame journal, meter samples.

A `TimePartitions` names a table, its time column and the span of one partition (a day, a
week: local days of ``TIME_ZONE``). Partitions are created ahead by beat
(`partitions_ensure`), retention drops whole partitions (`partitions_drop_before`: no
DELETE, no vacuum debt), and a default partition catches the rows no partition covers yet
(a pile whose clock is years off), so an insert never fails for want of a partition. A
partition created over a range the default partition already holds rows of takes them
over (in the same transaction).

The table's primary key in the database is (id, time column): PostgreSQL needs the
partition key in every unique index. The model keeps ``id`` as its primary key: ids come
from the table's identity sequence and stay unique, and Django addresses rows by id.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimePartitions:
    table: str
    column: str
    days: int  # 1: daily partitions; 7: weekly, starting on Mondays

    def start_of(self, day: dt.date) -> dt.date:
        if self.days == 7:
            return day - dt.timedelta(days=day.weekday())
        return day

    def name(self, start: dt.date) -> str:
        return f"{self.table}_p{start:%Y%m%d}"

    @property
    def default(self) -> str:
        return f"{self.table}_default"


def _bound(day: dt.date) -> dt.datetime:
    """Local midnight of ``day`` (the back office's days), as an aware time."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time()))


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def partitions_list(*, spec: TimePartitions) -> list[tuple[str, dt.date]]:
    """The range partitions of ``spec``'s table, (name, first day), oldest first."""
    prefix = f"{spec.table}_p"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [spec.table],
        )
        names = [row[0] for row in cursor.fetchall()]
    found = []
    for name in names:
        if name.startswith(prefix):
            found.append((name, dt.date.fromisoformat(name[len(prefix) :])))
    return sorted(found, key=lambda item: item[1])


def partitions_ensure(*, spec: TimePartitions, through: dt.date, since: dt.date) -> list[str]:
    """Create the partitions covering ``since`` … ``through`` that do not exist yet (one
    transaction each); rows of their range already in the default partition move in.
    Returns the names created."""
    existing = {name for name, _start in partitions_list(spec=spec)}
    created = []
    start = spec.start_of(since)
    while start <= through:
        end = start + dt.timedelta(days=spec.days)
        name = spec.name(start)
        if name not in existing:
            _partition_create(spec, name, start, end)
            created.append(name)
        start = end
    return created


def _partition_create(spec: TimePartitions, name: str, start: dt.date, end: dt.date) -> None:
    table, column = _q(spec.table), _q(spec.column)
    low, high = _bound(start), _bound(end)
    with transaction.atomic(), connection.cursor() as cursor:
        # Attached at the end: PostgreSQL checks that the default partition holds no row
        # of the new range, so any it holds are moved in first.
        cursor.execute(
            f"CREATE TABLE {_q(name)} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {_q(spec.default)} WHERE {column} >= %s "
            f"AND {column} < %s RETURNING *) INSERT INTO {_q(name)} SELECT * FROM moved",
            [low, high],
        )
        if cursor.rowcount:
            logger.info("%s: %s rows moved in from the default partition", name, cursor.rowcount)
        cursor.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {_q(name)} FOR VALUES FROM (%s) TO (%s)",
            [low, high],
        )


def partitions_drop_before(*, spec: TimePartitions, before: dt.datetime) -> int:
    """Drop the partitions wholly older than ``before`` and delete the default partition's
    rows older than it. Returns the rows removed (a partition is counted, read once,
    before its drop)."""
    removed = 0
    for name, start in partitions_list(spec=spec):
        if _bound(start + dt.timedelta(days=spec.days)) > before:
            break
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {_q(name)}")
            removed += cursor.fetchone()[0]
            cursor.execute(f"ALTER TABLE {_q(spec.table)} DETACH PARTITION {_q(name)}")
            cursor.execute(f"DROP TABLE {_q(name)}")
        logger.info("%s dropped (retention)", name)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_q(spec.default)} WHERE {_q(spec.column)} < %s", [before])
        removed += cursor.rowcount
    return removed


# How far ahead beat keeps partitions (the task runs hourly: days of slack if it stops).
AHEAD_DAYS = 14


def table_partition(*, spec: TimePartitions, keep_days: int) -> None:
    """Turn ``spec``'s plain table into a partitioned one, keeping its rows, ids, indexes
    and constraints (for a migration; runs in the migration's transaction).

    The table is renamed aside, the partitioned table created in its place with the same
    columns, constraints and indexes under the same names, its primary key (id, time),
    partitions from its oldest row (at most ``keep_days`` back: older rows go to the
    default partition, for the next prune) to `AHEAD_DAYS` ahead, then the rows are copied
    and the old table dropped. A table already partitioned is left as it is."""
    table, old = spec.table, f"{spec.table}_unpartitioned"
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
        if cursor.fetchone()[0] == "p":
            return
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass ORDER BY conname",
            [table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
            [table],
        )
        indexes = cursor.fetchall()
        cursor.execute(f"ALTER TABLE {_q(table)} RENAME TO {_q(old)}")
        for name, _kind, _definition in constraints:
            cursor.execute(
                f"ALTER TABLE {_q(old)} RENAME CONSTRAINT {_q(name)} TO {_q(_aside(name))}"
            )
        for name, _definition in indexes:
            cursor.execute(f"ALTER INDEX {_q(name)} RENAME TO {_q(_aside(name))}")
        cursor.execute(
            f"CREATE TABLE {_q(table)} (LIKE {_q(old)} INCLUDING DEFAULTS INCLUDING IDENTITY "
            f"INCLUDING STORAGE) PARTITION BY RANGE ({_q(spec.column)})"
        )
        for name, kind, definition in constraints:
            if kind == "p":
                definition = f"PRIMARY KEY (id, {_q(spec.column)})"
            cursor.execute(f"ALTER TABLE {_q(table)} ADD CONSTRAINT {_q(name)} {definition}")
        for _name, definition in indexes:
            cursor.execute(definition)  # "… ON public.<table> …": the new table now
        cursor.execute(f"CREATE TABLE {_q(spec.default)} PARTITION OF {_q(table)} DEFAULT")
        cursor.execute(f"SELECT min({_q(spec.column)}) FROM {_q(old)}")
        first = cursor.fetchone()[0]
    today = timezone.localdate()
    since = today
    if first is not None:
        since = min(max(timezone.localdate(first), today - dt.timedelta(days=keep_days)), today)
    partitions_ensure(spec=spec, since=since, through=today + dt.timedelta(days=AHEAD_DAYS))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {_q(table)} OVERRIDING SYSTEM VALUE SELECT * FROM {_q(old)}")
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, false) "
            f"FROM {_q(old)}",
            [table],
        )
        cursor.execute(f"DROP TABLE {_q(old)}")


def _aside(name: str) -> str:
    return f"{name[:50]}_unpart"
