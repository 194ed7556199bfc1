"""How many refused handshakes reach the journal: at most N per pile code and per address in
any minute. Refusals are cheap to cause (a wrong password, a made-up pile code) and each
would otherwise write a journal row and a log line; the rest are only counted, and the
count is logged once a minute."""

from __future__ import annotations

import logging
import time
from collections import deque

logger = logging.getLogger("protocol.gateway")

WINDOW = 60.0


class RefusalLimiter:
    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._seen: dict[tuple[str, str], deque[float]] = {}
        self._suppressed = 0
        self._swept = time.monotonic()

    def admit(self, *, code: str, address: str) -> bool:
        """Whether this refusal is journaled (and logged on its own)."""
        now = time.monotonic()
        if now - self._swept >= WINDOW:
            self._sweep(now)
        keys = [("code", code), ("address", address)]
        windows = [self._window(key, now) for key in keys]
        if any(len(w) >= self.per_minute for w in windows):
            self._suppressed += 1
            return False
        for window in windows:
            window.append(now)
        return True

    def _window(self, key: tuple[str, str], now: float) -> deque[float]:
        window = self._seen.setdefault(key, deque())
        while window and window[0] <= now - WINDOW:
            window.popleft()
        return window

    def _sweep(self, now: float) -> None:
        """Forget keys quiet for a minute (the map stays as small as the last minute's
        refusals) and log what was not journaled."""
        self._seen = {k: w for k, w in self._seen.items() if w and w[-1] > now - WINDOW}
        if self._suppressed:
            logger.warning(
                "%s refused handshakes not journaled (over %s per pile code or address "
                "in a minute)",
                self._suppressed,
                self.per_minute,
            )
        self._suppressed = 0
        self._swept = now
