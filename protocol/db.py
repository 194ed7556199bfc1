"""Running Django ORM services from the asyncio gateway.

Services are synchronous and transactional; the gateway runs them in a small pool of
threads, each with its own database connection. A connection error closes that thread's
connection (the next call reconnects) and surfaces as `DatabaseUnavailable`, on which a
handler does not answer: the pile retries, and the gateway serves again once the
database is back.
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

from django.db import InterfaceError, OperationalError, close_old_connections, connection

logger = logging.getLogger(__name__)


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


class DbRunner:
    def __init__(self, threads: int = 8):
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="gw-db")

    async def run(self, fn: Callable, /, **kwargs) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(_call, fn, kwargs))

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        # The worker threads have ended; their connections are closed with the process.
