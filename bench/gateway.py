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
    args = parser.parse_args()

    pairs = network(args.piles)
    from django.db import connection

    connection.close()
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rungateway", "--port", str(port)],
            env={**os.environ, "LOG_LEVEL": "WARNING", "GATEWAY_MAX_CALLS_PER_MINUTE": "100000"},
            stdout=subprocess.PIPE,
            text=True,
        )
        proc.stdout.readline()
        url = f"ws://127.0.0.1:{port}/ocpp"
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
