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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database could not be reached; nothing was committed."""


def _call(fn: Callable, kwargs: dict) -> Any:
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
