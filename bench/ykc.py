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
import multiprocessing
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
        # Answer times while measuring, by what was answered (heartbeat 0x04, start 0x32).
        self.latencies: dict[str, list[float]] = {"heartbeat": [], "start": []}

    async def timed(self, request, kind: str = "heartbeat") -> object:
        started = time.monotonic()
        answer = await request
        if self.measuring:
            self.latencies[kind].append(time.monotonic() - started)
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
                answer = await counters.timed(
                    pile.start_by_card(1, card, timeout=ANSWER_TIMEOUT), "start"
                )
                charging = answer.accepted == 1
                next_real_time = time.monotonic() + random.uniform(0, REAL_TIME_SECONDS)
            if charging and time.monotonic() >= next_real_time:
                await pile.meter(1, add_kwh=Decimal("0.1"))
                counters.sent()
                next_real_time += REAL_TIME_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS)
        if charging:
            await pile.stop(1, timeout=ANSWER_TIMEOUT)
    except BaseException:
        failed.append(code)  # dropped (e.g. its heartbeats missed under load)
        raise
    finally:
        await pile.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client(host, port, pairs, phases, pipe) -> None:
    """One load-generating process's piles: report when they have all logged in (or
    failed), measure from ``phases["steady"]`` to ``phases["stop"]``, then send back what
    they saw."""
    counters, booted, failed = Counters(), [], []
    steady, stop = asyncio.Event(), asyncio.Event()
    semaphore = asyncio.Semaphore(250)  # this process's own connect concurrency
    tasks = [
        asyncio.create_task(
            one_pile(host, port, code, card, counters, semaphore, booted, steady, stop, failed)
        )
        for code, card in pairs
    ]
    while len(booted) + len(failed) < len(pairs):
        await asyncio.sleep(0.2)
    pipe.send(("storm", len(booted), len(failed)))
    while not phases["steady"].is_set():
        await asyncio.sleep(0.05)
    dropped_before = len(failed)
    counters.measuring = True
    steady.set()
    while not phases["stop"].is_set():
        await asyncio.sleep(0.05)
    counters.measuring = False
    stop.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    pipe.send(
        ("done", counters.frames_in, counters.latencies, len(errors),
         repr(errors[0]) if errors else "", len(failed) - dropped_before, cpu_seconds(os.getpid()))
    )  # fmt: skip


def client_process(host, port, pairs, phases, pipe) -> None:
    asyncio.run(client(host, port, pairs, phases, pipe))


def run(host, port, pairs, seconds, gateway_pid, clients) -> None:
    """Log every pile in (the storm), then measure ``seconds`` of steady state. The piles
    are shared out between ``clients`` processes so the load generator is not what limits
    the gateway (one Python process tops out well below 10,000 piles' frames)."""
    context = multiprocessing.get_context("fork")
    phases = {"steady": context.Event(), "stop": context.Event()}
    pipes, procs = [], []
    started = time.monotonic()
    for n in range(clients):
        mine, theirs = context.Pipe()
        proc = context.Process(
            target=client_process, args=(host, port, pairs[n::clients], phases, theirs)
        )
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    peak, booted, failed = 0.0, 0, 0
    for pipe in pipes:
        while not pipe.poll(1):
            peak = max(peak, rss_mb(gateway_pid))
        _kind, ok, bad = pipe.recv()
        booted, failed = booted + ok, failed + bad
    storm = time.monotonic() - started
    print(
        f"login storm: {booted} piles logged in in {storm:.1f} s, "
        f"{failed} failed or dropped meanwhile",
        flush=True,
    )
    cpu_before = cpu_seconds(gateway_pid)
    phases["steady"].set()
    measured_from = time.monotonic()
    while time.monotonic() < measured_from + seconds:
        time.sleep(1)
        peak = max(peak, rss_mb(gateway_pid))
    phases["stop"].set()
    elapsed = time.monotonic() - measured_from
    gateway_cpu = cpu_seconds(gateway_pid) - cpu_before
    load = os.getloadavg()
    frames, errors, first_error, dropped, client_cpu = 0, 0, "", 0, 0.0
    latencies: dict[str, list[float]] = {"all": [], "heartbeat": [], "start": []}
    for pipe in pipes:
        _kind, n_frames, lat, n_errors, first, n_dropped, cpu = pipe.recv()
        frames += n_frames
        for kind, values in lat.items():
            latencies[kind] += values
            latencies["all"] += values
        errors += n_errors
        first_error = first_error or first
        dropped += n_dropped
        client_cpu += cpu
    for proc in procs:
        proc.join()
    charging = sum(1 for _code, card in pairs if card)
    print(
        f"piles: {len(pairs)} (charging: {charging}) in {clients} client processes  "
        f"errors: {errors} ({dropped} dropped after the storm)"
    )
    if first_error:
        print(f"first error: {first_error}")
    print(f"steady state: {frames / elapsed:.0f} frames/s in over {elapsed:.0f} s")
    for kind, values in latencies.items():
        values.sort()
        if n := len(values):
            print(
                f"answers ({kind}): {n}  p50: {values[n // 2] * 1000:.1f} ms  "
                f"p99: {values[int(n * 0.99)] * 1000:.1f} ms  max: {values[-1] * 1000:.0f} ms"
            )
    print(
        f"gateway: peak RSS {peak:.0f} MB, CPU {gateway_cpu / elapsed:.0%} of a core in the "
        f"steady state; load generator CPU {client_cpu:.0f} s in all; "
        f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--piles", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--clients", type=int, default=0, help="Load generator processes (1 per 2,500 piles)."
    )
    parser.add_argument("--profile", help="Run the gateway under cProfile, stats to this file.")
    args = parser.parse_args()
    pairs = ykc_piles(args.piles)
    from django.db import connection

    connection.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, *(["-m", "cProfile", "-o", args.profile] if args.profile else []),
         str(ROOT / "manage.py"), "runykc", "--host", "127.0.0.1",
         "--port", str(port)],
        env={**os.environ, "LOG_LEVEL": "WARNING", "GATEWAY_MAX_CALLS_PER_MINUTE": "100000"},
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    proc.stdout.readline()
    try:
        clients = args.clients or max(1, -(-args.piles // 2500))
        run("127.0.0.1", port, pairs, args.seconds, proc.pid, clients)
    finally:
        proc.terminate()
        proc.wait(60)


if __name__ == "__main__":
    main()
