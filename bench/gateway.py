"""Closed-loop gateway benchmark: `python -m bench.gateway [--piles 200] [--seconds 20]`.

Starts `manage.py rungateway` on a free port against the configured DATABASE_URL (use a
scratch database: it creates a "bench" operator with N piles and members), then runs N
piles in this process, each repeating Authorize, StartTransaction, 3×MeterValues,
StopTransaction, Heartbeat as fast as the answers come, everything persisted. Prints
calls/s and p50/p99 latency. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")
django.setup()

from websockets.asyncio.client import connect  # noqa: E402

from orgs.models import Member, Operator  # noqa: E402
from stations.models import Connector, Pile, Station  # noqa: E402


def network(piles: int) -> list[tuple[str, str]]:
    operator, _ = Operator.objects.get_or_create(code="bench", defaults={"name": "Bench"})
    station, _ = Station.objects.get_or_create(
        operator=operator,
        code="BENCH",
        defaults=dict(name="Bench", address="-", city="-", latitude=0, longitude=0),
    )
    pairs = []
    for i in range(piles):
        code = f"4420999900{i:010d}"
        pile, created = Pile.objects.get_or_create(
            code=code, defaults=dict(station=station, current_type="DC")
        )
        if created:
            Connector.objects.create(pile=pile, number=1, standard="GB/T DC")
        member, _ = Member.objects.get_or_create(
            token=f"BENCH{i:06d}", defaults=dict(operator=operator, nickname=f"bench {i}")
        )
        pairs.append((code, member.token))
    return pairs


def many_piles(count: int) -> list[tuple[str, str]]:
    """Piles for the open loop, created in bulk (codes 44209998…)."""
    operator, _ = Operator.objects.get_or_create(code="bench", defaults={"name": "Bench"})
    station, _ = Station.objects.get_or_create(
        operator=operator,
        code="BENCH-OPEN",
        defaults=dict(name="Bench open loop", address="-", city="-", latitude=0, longitude=0),
    )
    codes = [f"4420999800{i:010d}" for i in range(count)]
    existing = set(Pile.objects.filter(code__in=codes).values_list("code", flat=True))
    new = [Pile(station=station, code=c, current_type="AC") for c in codes if c not in existing]
    Pile.objects.bulk_create(new, batch_size=2000)
    ids = Pile.objects.filter(code__in=[p.code for p in new]).values_list("pk", flat=True)
    Connector.objects.bulk_create(
        [Connector(pile_id=i, number=1, standard="GB/T AC") for i in ids], batch_size=2000
    )
    tokens = [f"OPEN{i:06d}" for i in range(count // 10)]
    have = set(Member.objects.filter(token__in=tokens).values_list("token", flat=True))
    Member.objects.bulk_create(
        [Member(operator=operator, token=t, nickname=t) for t in tokens if t not in have],
        batch_size=2000,
    )
    return [(c, tokens[i // 10] if i % 10 == 0 else "") for i, c in enumerate(codes)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def open_loop(url, pairs, seconds, interval, gateway_pid):
    """All piles connect at once (a reconnect storm of boots), then heartbeat every
    ``interval`` s; every tenth pile charges with a meter value per interval."""
    booted = 0
    connected_at = time.monotonic()
    semaphore = asyncio.Semaphore(1000)  # the load generator's own connect concurrency
    storm_done = asyncio.Event()
    stop_at = connected_at + seconds

    async def pile(code, token):
        nonlocal booted
        async with semaphore:
            ws = await connect(
                f"{url}/{code}", subprotocols=["ocpp1.6"], ping_interval=None, open_timeout=120
            )
        async with ws:
            p = Pile_(ws, [])
            await p.call(
                "BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "AC7"}
            )
            booted += 1
            if booted == len(pairs):
                storm_done.set()
            tx = None
            meter = 0
            if token:
                now = dt.datetime.now(dt.UTC)
                start = {"connectorId": 1, "idTag": token, "meterStart": 0, "timestamp": iso(now)}
                tx = (await p.call("StartTransaction", start))["transactionId"]
            await asyncio.sleep(random.uniform(0, interval))
            while time.monotonic() < stop_at:
                await p.call("Heartbeat", {})
                if tx is not None:
                    meter += 100
                    value = {"timestamp": iso(dt.datetime.now(dt.UTC)),
                             "sampledValue": [{"value": str(meter)}]}  # fmt: skip
                    await p.call(
                        "MeterValues",
                        {"connectorId": 1, "transactionId": tx, "meterValue": [value]},
                    )
                await asyncio.sleep(interval)
            if tx is not None:
                stop = {
                    "transactionId": tx,
                    "meterStop": meter,
                    "timestamp": iso(dt.datetime.now(dt.UTC)),
                }
                await p.call("StopTransaction", stop)

    tasks = [asyncio.create_task(pile(code, token)) for code, token in pairs]
    try:
        await asyncio.wait_for(storm_done.wait(), 300)
        storm = time.monotonic() - connected_at
    except TimeoutError:
        storm = float("nan")
    print(f"open loop: {booted}/{len(pairs)} piles booted in {storm:.1f} s", flush=True)
    peak = 0.0
    while time.monotonic() < stop_at:
        if gateway_pid:
            peak = max(peak, rss_mb(gateway_pid))
        await asyncio.sleep(1)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    print(f"gateway peak RSS: {peak:.0f} MB  errors: {len(errors)}")
    if errors:
        print(f"first error: {errors[0]!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Pile_:
    def __init__(self, ws, latencies: list[float]):
        self.ws = ws
        self.n = 0
        self.latencies = latencies

    async def call(self, action: str, payload: dict) -> dict:
        self.n += 1
        t = time.perf_counter()
        await self.ws.send(json.dumps([2, str(self.n), action, payload]))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg[0] == 3 and msg[1] == str(self.n):
                self.latencies.append(time.perf_counter() - t)
                return msg[2]
            if msg[0] == 4:
                raise RuntimeError(msg)


async def one_pile(url, code, token, stop_at, latencies, meter, heartbeats_only=False):
    async with connect(f"{url}/{code}", subprotocols=["ocpp1.6"], ping_interval=None) as ws:
        pile = Pile_(ws, latencies)
        while heartbeats_only and time.monotonic() < stop_at:
            await pile.call("Heartbeat", {})
        while time.monotonic() < stop_at:
            await pile.call("Authorize", {"idTag": token})
            now = dt.datetime.now(dt.UTC)
            start = await pile.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": token, "meterStart": meter[0], "timestamp": iso(now)},
            )
            tx = start["transactionId"]
            for i in range(3):
                meter[0] += 500
                at = now + dt.timedelta(seconds=i + 1)
                await pile.call(
                    "MeterValues",
                    {
                        "connectorId": 1,
                        "transactionId": tx,
                        "meterValue": [
                            {"timestamp": iso(at), "sampledValue": [{"value": str(meter[0])}]}
                        ],
                    },
                )
            await pile.call(
                "StopTransaction",
                {
                    "transactionId": tx,
                    "meterStop": meter[0],
                    "timestamp": iso(now + dt.timedelta(seconds=5)),
                },
            )
            await pile.call("Heartbeat", {})


async def load(url, pairs, seconds, warmup, heartbeats_only=False):
    latencies: list[float] = []
    begin = time.monotonic()
    stop_at = begin + warmup + seconds
    tasks = [
        asyncio.create_task(
            one_pile(url, code, token, stop_at, latencies, [i * 10_000_000], heartbeats_only)
        )
        for i, (code, token) in enumerate(pairs)
    ]
    await asyncio.sleep(warmup)
    latencies.clear()
    measured_from = time.monotonic()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - measured_from
    errors = [r for r in results if isinstance(r, Exception)]
    return latencies, elapsed, errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--piles", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--url", help="use a running gateway (ws://HOST:PORT/ocpp)")
    parser.add_argument(
        "--heartbeats-only", action="store_true", help="baseline: no database in the loop"
    )
    parser.add_argument(
        "--open-loop", type=int, metavar="N", help="N piles heartbeating, 10%% charging"
    )
    parser.add_argument("--interval", type=float, default=60)
    parser.add_argument("--workers", type=int, default=1, help="gateway node processes")
    args = parser.parse_args()

    pairs = many_piles(args.open_loop) if args.open_loop else network(args.piles)
    from django.db import connection

    connection.close()
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "rungateway",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            env={**os.environ, "LOG_LEVEL": "WARNING", "GATEWAY_MAX_CALLS_PER_MINUTE": "100000"},
            stdout=subprocess.PIPE,
            text=True,
        )
        proc.stdout.readline()
        url = f"ws://127.0.0.1:{port}/ocpp"
    if args.open_loop:
        try:
            asyncio.run(
                open_loop(url, pairs, args.seconds, args.interval, proc.pid if proc else None)
            )
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(60)
        return
    try:
        latencies, elapsed, errors = asyncio.run(
            load(url, pairs, args.seconds, args.warmup, args.heartbeats_only)
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
    latencies.sort()
    n = len(latencies)
    print(f"piles: {len(pairs)}  calls: {n}  seconds: {elapsed:.1f}  errors: {len(errors)}")
    if errors:
        print(f"first error: {errors[0]!r}")
    if n:
        print(
            f"calls/s: {n / elapsed:.0f}  p50: {latencies[n // 2] * 1000:.1f} ms  "
            f"p99: {latencies[int(n * 0.99)] * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
