"""YKC gateway benchmark: `python -m bench.ykc [--piles 10000] [--seconds 60]`.

Starts `manage.py runykc` on a free port against the configured DATABASE_URL (use a scratch
database: it creates a "bench-ykc" operator with N YKC piles and cards; `make bench` runs it
as ``gateway_ykc`` on a throw-away database), then holds N piles from this process: all log
in at once (a reconnect storm, timed), then for ``--seconds`` every pile heartbeats every
10 s and every tenth pile charges (a card start, real-time data every 15 s, its
transaction record at the end), everything journaled and persisted as in production.
Prints the frames/s the gateway took in that steady state, the p50/p99 answer times and
the gateway's peak RSS. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")
django.setup()

from bench.gateway import free_port, rss_mb  # noqa: E402
from orgs.models import Card, Member, Operator  # noqa: E402
from protocol.ykc import simulator  # noqa: E402
from stations.models import Connector, Pile, Station  # noqa: E402

HEARTBEAT_SECONDS = 10.0
REAL_TIME_SECONDS = 15.0
ANSWER_TIMEOUT = 120.0  # a slow answer is measured, not dropped


def ykc_piles(count: int) -> list[tuple[str, str]]:
    """(pile code, card number or "") for ``count`` YKC piles; every tenth has a card."""
    operator, _ = Operator.objects.get_or_create(code="bench-ykc", defaults={"name": "Bench YKC"})
    station, _ = Station.objects.get_or_create(
        operator=operator,
        code="BENCH-YKC",
        defaults=dict(name="Bench YKC", address="-", city="-", latitude=0, longitude=0),
    )
    codes = [f"44209997{i:06d}" for i in range(count)]
    have = set(Pile.objects.filter(code__in=codes).values_list("code", flat=True))
    new = [
        Pile(station=station, code=c, current_type="DC", protocol=Pile.Protocol.YKC)
        for c in codes
        if c not in have
    ]
    Pile.objects.bulk_create(new, batch_size=2000)
    ids = Pile.objects.filter(code__in=[p.code for p in new]).values_list("pk", flat=True)
    Connector.objects.bulk_create(
        [Connector(pile_id=i, number=1, standard="GB/T DC") for i in ids], batch_size=2000
    )
    numbers = [f"99{i:08d}" for i in range(0, count, 10)]
    have = set(Card.objects.filter(number__in=numbers).values_list("number", flat=True))
    for number in numbers:
        if number not in have:
            member = Member.objects.create(operator=operator, token=f"Y{number}", nickname=number)
            Card.objects.create(operator=operator, number=number, member=member)
    return [(c, numbers[i // 10] if i % 10 == 0 else "") for i, c in enumerate(codes)]


class Counters:
    def __init__(self):
        self.measuring = False
        self.frames_in = 0  # frames the piles sent while measuring (what the gateway took)
        self.latencies: list[float] = []  # answer times while measuring

    async def timed(self, request) -> object:
        started = time.monotonic()
        answer = await request
        if self.measuring:
            self.latencies.append(time.monotonic() - started)
            self.frames_in += 1
        return answer

    def sent(self) -> None:
        if self.measuring:
            self.frames_in += 1


async def one_pile(host, port, code, card, counters, semaphore, booted, steady, stop, failed):
    """One pile: log in, heartbeat every 10 s from then on (a silent pile is dropped after
    3 missed heartbeats, storm or not); a pile with a card starts charging once the storm
    is over, sends real-time data every 15 s and its record when the run stops."""
    pile = simulator.YkcPile(code)
    try:
        async with semaphore:
            await pile.open(host, port)
            if await pile.login(timeout=ANSWER_TIMEOUT) != 0:
                raise ConnectionRefusedError(code)
    except BaseException:
        failed.append(code)
        raise
    booted.append(code)
    charging, next_real_time = False, None
    try:
        await asyncio.sleep(random.uniform(0, HEARTBEAT_SECONDS))
        while not stop.is_set():
            await counters.timed(pile.heartbeat(1, timeout=ANSWER_TIMEOUT))
            if card and steady.is_set() and next_real_time is None:
                answer = await counters.timed(pile.start_by_card(1, card))
                charging = answer.accepted == 1
                next_real_time = time.monotonic() + random.uniform(0, REAL_TIME_SECONDS)
            if charging and time.monotonic() >= next_real_time:
                await pile.meter(1, add_kwh=Decimal("0.1"))
                counters.sent()
                next_real_time += REAL_TIME_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS)
        if charging:
            await pile.stop(1)
    except BaseException:
        failed.append(code)  # dropped (e.g. its heartbeats missed under load)
        raise
    finally:
        await pile.close()


async def run(host, port, pairs, seconds, gateway_pid) -> None:
    """Log every pile in (the storm), then measure ``seconds`` of steady state."""
    counters, booted, failed = Counters(), [], []
    steady, stop = asyncio.Event(), asyncio.Event()
    semaphore = asyncio.Semaphore(500)  # the load generator's own connect concurrency
    started = time.monotonic()
    tasks = [
        asyncio.create_task(
            one_pile(host, port, code, card, counters, semaphore, booted, steady, stop, failed)
        )
        for code, card in pairs
    ]
    peak = 0.0
    while len(set(booted) | set(failed)) < len(pairs):
        await asyncio.sleep(1)
        peak = max(peak, rss_mb(gateway_pid))
    storm = time.monotonic() - started
    print(
        f"login storm: {len(booted)} piles logged in in {storm:.1f} s, "
        f"{len(failed)} failed or dropped meanwhile",
        flush=True,
    )
    dropped_before = len(failed)
    counters.measuring = True
    steady.set()
    measured_from = time.monotonic()
    while time.monotonic() < measured_from + seconds:
        await asyncio.sleep(1)
        peak = max(peak, rss_mb(gateway_pid))
    counters.measuring = False
    elapsed = time.monotonic() - measured_from
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    latencies = sorted(counters.latencies)
    n = len(latencies)
    charging = sum(1 for _code, card in pairs if card)
    print(
        f"piles: {len(pairs)} (charging: {charging})  errors: {len(errors)} "
        f"({len(failed) - dropped_before} dropped after the storm)"
    )
    if errors:
        print(f"first error: {errors[0]!r}")
    print(f"steady state: {counters.frames_in / elapsed:.0f} frames/s in over {elapsed:.0f} s")
    if n:
        print(
            f"answers: {n}  p50: {latencies[n // 2] * 1000:.1f} ms  "
            f"p99: {latencies[int(n * 0.99)] * 1000:.1f} ms"
        )
    print(f"gateway peak RSS: {peak:.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--piles", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    pairs = ykc_piles(args.piles)
    from django.db import connection

    connection.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runykc", "--host", "127.0.0.1",
         "--port", str(port)],
        env={**os.environ, "LOG_LEVEL": "WARNING", "GATEWAY_MAX_CALLS_PER_MINUTE": "100000"},
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    proc.stdout.readline()
    try:
        asyncio.run(run("127.0.0.1", port, pairs, args.seconds, proc.pid))
    finally:
        proc.terminate()
        proc.wait(60)


if __name__ == "__main__":
    main()
