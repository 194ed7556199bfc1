"""The frame journal writer: group commit, so journaling every frame stays cheap.

Frames are appended to an in-memory buffer and written by one background task in batches
(one INSERT of up to ``max_batch`` rows every few milliseconds). Transaction-bearing
handlers await the flush of their frames before answering. When the database is down the
buffer is kept (bounded) and retried, so frames are journaled once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from django.db import DataError, transaction
from django.utils import timezone

from .db import DbRunner
from .models import Frame

logger = logging.getLogger(__name__)


def _insert(rows: list[Frame]) -> None:
    try:
        with transaction.atomic():
            Frame.objects.bulk_create(rows)
    except DataError:
        # A frame PostgreSQL cannot store (a NUL character in text or JSON) must not block
        # the journal, and with it every transaction-bearing answer: store it cleaned.
        for row in rows:
            row.pk = None
            row.raw = row.raw.replace("\x00", "\\u0000")
            row.payload = _without_nul(row.payload)
        Frame.objects.bulk_create(rows)


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", "\\u0000")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
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
        self._buffer: deque[tuple[Frame, asyncio.Future | None]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.dropped = 0

    def add(self, *, wait: bool = False, **fields) -> asyncio.Future | None:
        """Queue one frame row; with ``wait`` return a future resolved once it is written."""
        fields.setdefault("at", timezone.now())
        fields.setdefault("node", self.node)
        future = asyncio.get_running_loop().create_future() if wait else None
        if len(self._buffer) >= self.max_buffer:
            self._buffer.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.error("journal buffer full: %s frames dropped", self.dropped)
        self._buffer.append((Frame(**fields), future))
        if wait or len(self._buffer) >= self.max_batch:
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
                await self.db.run(_insert, rows=[frame for frame, _f in batch])
            except Exception as exc:
                logger.warning("journal flush failed (%s frames kept): %s", len(batch), exc)
                for frame, future in reversed(batch):
                    frame.pk = None
                    self._buffer.appendleft((frame, None))
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
