"""The frame journal writer: group commit, so journaling every frame stays cheap.

Frames are appended to an in-memory buffer and written by one background task in batches
(one COPY of up to ``max_batch`` rows every few milliseconds, in the gateway's group
commit: see `protocol.db`). A transaction message's frames do not wait for it: they are
written by the group commit in the transaction of the message's effect
(`DbRunner.run_journaled`, `PileConnection.transact`), with `_copy_rows`, before the pile
is answered. When the database is down the buffer is kept (bounded) and retried, so
frames are journaled once it is back.

COPY costs the gateway a third of what a multi-row INSERT built by the ORM does (no model
instances, no client-side quoting of every value); it is all or nothing, so a batch it
refuses is inserted again row-safely: one frame the database cannot store (a NUL character
in any text, a lone surrogate, NaN in JSON, a value longer than its column) must never
stop the journal: a failing batch is split until the bad row is alone, which is stored
cleaned, or at worst as a minimal "Unstorable" row; the good rows of the batch are stored
as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import deque

from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from .db import DbRunner
from .models import Frame

logger = logging.getLogger(__name__)

_TEXT_FIELDS = [
    f.name for f in Frame._meta.fields if f.get_internal_type() in ("CharField", "TextField")
]
_BIGINT = 2**63


# Every column a frame row fills, with what an omitted field stores (as the model would).
_COPY_FIELDS = [f for f in Frame._meta.concrete_fields if not f.primary_key]
_COPY_DEFAULTS = {f.name: (None if f.null else "") for f in _COPY_FIELDS}
_COPY_SQL = "COPY {table} ({columns}) FROM STDIN".format(
    table=connection.ops.quote_name(Frame._meta.db_table),
    columns=", ".join(connection.ops.quote_name(f.column) for f in _COPY_FIELDS),
)


def _copy(rows: list[dict]) -> None:
    """Store frame rows (the fields of `JournalWriter.add`) with one COPY; a batch the
    database refuses goes through `_insert`, which stores every frame it can."""
    try:
        with transaction.atomic():
            _copy_rows(rows)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:  # NUL, a lone surrogate, NaN, a value too long…
        logger.info("journal: COPY refused a batch of %s, inserting row by row: %s", len(rows), exc)
        _insert([Frame(**row) for row in rows])


def _copy_rows(rows: list[dict]) -> None:
    """The COPY of `_copy`, in the caller's transaction; raises if the database refuses a
    row (the group commit's first pass, `protocol.db`, then runs its batch again with
    savepoints, where `_copy` stores what it can)."""
    defaults = _COPY_DEFAULTS
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(_COPY_SQL) as copy,
    ):
        for row in rows:
            values = {**defaults, **row}
            payload = values["payload"]
            if payload is not None:
                values["payload"] = json.dumps(payload, ensure_ascii=False)
            copy.write_row(tuple(values.values()))


def _insert(rows: list[Frame]) -> None:
    error = _attempt(rows)
    if error is not None:
        # One transaction for the rest, a savepoint per attempt: if the database goes away
        # half-way nothing is left behind, so the batch's retry writes no duplicates.
        with transaction.atomic():
            _isolate(rows, error)


def _attempt(rows: list[Frame]) -> Exception | None:
    """Insert ``rows`` in one statement; return the error if the database refused them. A
    lost connection is raised: the writer keeps the whole batch and retries it later."""
    try:
        with transaction.atomic():
            Frame.objects.bulk_create(rows)
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:  # psycopg raises DataError, ValueError, UnicodeEncodeError…
        for row in rows:
            row.pk = None
        return exc
    return None


def _isolate(rows: list[Frame], error: Exception) -> None:
    """``rows`` failed together: store them in halves until each bad row is alone, then
    store that one cleaned, or at worst as a minimal row."""
    if len(rows) > 1:
        half = len(rows) // 2
        for part in (rows[:half], rows[half:]):
            if (part_error := _attempt(part)) is not None:
                _isolate(part, part_error)
        return
    row = rows[0]
    try:
        cleaned_error = _attempt([_cleaned(row)])
    except RecursionError as exc:  # JSON nested too deep to even walk
        cleaned_error = exc
    if cleaned_error is not None:
        logger.error("journal: a frame of %r stored as Unstorable: %s", row.pile_code, error)
        Frame.objects.bulk_create([_minimal(row, error)])


def _cleaned(row: Frame) -> Frame:
    """The row with every text storable: NUL spelled ``\\u0000`` (as JSON would), lone
    surrogates replaced, cut to the column's length; JSON without NaN/Infinity."""
    row.pk = None
    for name in _TEXT_FIELDS:
        value = storable(getattr(row, name))
        limit = Frame._meta.get_field(name).max_length
        setattr(row, name, value[:limit] if limit else value)
    row.payload = storable(row.payload)
    if row.transaction_id is not None and not -_BIGINT <= row.transaction_id < _BIGINT:
        row.transaction_id = None
    return row


def _minimal(row: Frame, error: Exception) -> Frame:
    """What is left of a frame that cannot be stored even cleaned: who, when, which way."""
    return Frame(
        at=row.at,
        pile_code=storable(row.pile_code)[:64],
        direction=row.direction,
        message_type=row.message_type,
        action=storable(row.action)[:64],
        error_code="Unstorable",
        raw=storable(f"{type(error).__name__}: {error}")[:500],
        node=storable(row.node)[:64],
    )


def storable(value):
    """``value`` (text or JSON) as PostgreSQL can store it: NUL spelled ``\\u0000``, lone
    surrogates replaced, NaN/Infinity as text. Also for what a pile's answers hand on."""
    if isinstance(value, str):
        value = value.replace("\x00", "\\u0000")
        try:
            value.encode()
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode()
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [storable(v) for v in value]
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    return value


class JournalWriter:
    def __init__(
        self,
        db: DbRunner,
        *,
        node: str,
        max_batch: int = 1000,
        interval: float = 0.01,
        max_buffer: int = 500_000,
    ):
        self.db = db
        self.node = node
        self.max_batch = max_batch
        self.interval = interval
        self.max_buffer = max_buffer
        self._buffer: deque[tuple[dict, asyncio.Future | None]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.dropped = 0

    def add(self, *, wait: bool = False, **fields) -> asyncio.Future | None:
        """Queue one frame row; with ``wait`` return a future resolved once it is written."""
        if not fields.keys() <= _COPY_DEFAULTS.keys():
            unknown = sorted(fields.keys() - _COPY_DEFAULTS.keys())
            raise TypeError(f"not fields of a frame: {unknown}")
        fields.setdefault("at", timezone.now())
        fields.setdefault("node", self.node)
        future = asyncio.get_running_loop().create_future() if wait else None
        if len(self._buffer) >= self.max_buffer:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.error("journal buffer full: %s frames dropped", self.dropped)
        self._buffer.append((fields, future))
        # The first frame after a flush wakes the writer: it is written a gathering
        # interval later, not at the writer's idle timeout.
        if wait or len(self._buffer) == 1 or len(self._buffer) >= self.max_batch:
            self._wake.set()
        return future

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="journal-writer")

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.5)
            self._wake.clear()
            if backoff:
                await asyncio.sleep(backoff)
            else:
                await asyncio.sleep(self.interval)  # let a batch gather
            ok = await self.flush()
            backoff = 0.0 if ok else min(max(backoff * 2, 0.2), 1.0)

    async def flush(self) -> bool:
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(self.max_batch, len(self._buffer)))]
            try:
                await self.db.run(_copy, rows=[fields for fields, _f in batch])
            except Exception as exc:
                logger.warning("journal flush failed (%s frames kept): %s", len(batch), exc)
                for fields, future in reversed(batch):
                    self._buffer.appendleft((fields, None))
                    if future is not None and not future.done():
                        future.set_exception(exc)
                return False
            for _frame, future in batch:
                if future is not None and not future.done():
                    future.set_result(True)
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.flush()
