"""Closed-loop gateway benchmark: `python -m bench.gateway [--piles 200] [--seconds 20]`.

In one run, on one machine: first the store-nothing OCPP server (`bench.baseline`, same
`ocpp` library, answers everything at once), then `manage.py rungateway` against the
configured DATABASE_URL (use a scratch database: it creates a "bench" operator with N
piles and members). Each gets the same closed loop: N piles on the `ocpp` library's
ChargePoint client (in ``--clients`` processes), each repeating Authorize,
StartTransaction, 3×MeterValues, StopTransaction, Heartbeat as fast as the answers come.
Prints calls/s and p50/p99 latency of both and the ratio gateway/store-nothing, which
tolerates a busy machine better than absolute numbers, and the CPU each server (and
PostgreSQL) spends per call, which shows where the difference goes. Each process's piles
connect before the loops start: the connection storm is not measured. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import logging
import math
import multiprocessing
import os
import random
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")
django.setup()

from ocpp.v16 import ChargePoint, call  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from orgs.models import Member, Operator  # noqa: E402
from stations.models import Connector, Pile, Station  # noqa: E402

logging.getLogger("ocpp").setLevel(logging.WARNING)  # it logs every frame at INFO


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
                self.latencies.append((time.perf_counter() - t, action))
                return msg[2]
            if msg[0] == 4:
                raise RuntimeError(msg)


class BenchPile(ChargePoint):
    """A pile of the closed loop on the `ocpp` library's client (as real piles' stacks do:
    it validates what it sends and what it is answered against the OCPP 1.6 schemas)."""

    def __init__(self, code, connection, latencies: list[float]):
        super().__init__(code, connection, response_timeout=60)
        self.latencies = latencies

    async def timed(self, payload):
        t = time.perf_counter()
        answer = await self.call(payload, suppress=False)
        self.latencies.append((time.perf_counter() - t, type(payload).__name__))
        return answer


async def closed_loop_pile(url, code, token, clock, latencies, meter, heartbeats_only):
    """One pile: connects, says it is ready, and runs its loop from ``clock["go"]`` (set
    once every pile of its process is connected) until ``clock["stop_at"]``."""
    try:
        # A busy machine can take seconds per handshake: wait, as a pile would retry.
        ws = await connect(
            f"{url}/{code}", subprotocols=["ocpp1.6"], ping_interval=None, open_timeout=60
        )
    finally:
        clock["ready"]()  # connected or failed: the others need not wait for it
    async with ws:
        pile = BenchPile(code, ws, latencies)
        receiver = asyncio.create_task(pile.start())
        try:
            await clock["go"].wait()
            while heartbeats_only and time.monotonic() < clock["stop_at"]:
                await pile.timed(call.Heartbeat())
            while time.monotonic() < clock["stop_at"]:
                await pile.timed(call.Authorize(id_tag=token))
                now = dt.datetime.now(dt.UTC)
                start = await pile.timed(
                    call.StartTransaction(
                        connector_id=1, id_tag=token, meter_start=meter, timestamp=iso(now)
                    )
                )
                tx = start.transaction_id
                for i in range(3):
                    meter += 500
                    at = now + dt.timedelta(seconds=i + 1)
                    value = {"timestamp": iso(at), "sampledValue": [{"value": str(meter)}]}
                    await pile.timed(
                        call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[value])
                    )
                stopped = iso(now + dt.timedelta(seconds=5))
                await pile.timed(
                    call.StopTransaction(meter_stop=meter, timestamp=stopped, transaction_id=tx)
                )
                await pile.timed(call.Heartbeat())
        finally:
            receiver.cancel()


CONNECT_LIMIT = 120.0  # seconds the piles of a process may take to connect


async def _client(url, pairs, first, seconds, warmup, heartbeats_only, queue, go):
    """The loop of one client process. Its piles connect first; it tells the parent,
    which starts every process's loop at once (``go``): a connection storm that takes
    seconds on a slow machine is not measured as calls."""
    latencies: list[float] = []
    ready = asyncio.Event()
    count = 0

    def one_ready() -> None:
        nonlocal count
        count += 1
        if count == len(pairs):
            ready.set()

    clock = {"ready": one_ready, "go": asyncio.Event(), "stop_at": math.inf}
    tasks = [
        asyncio.create_task(
            closed_loop_pile(
                url, code, token, clock, latencies, (first + i) * 10_000_000, heartbeats_only
            )
        )
        for i, (code, token) in enumerate(pairs)
    ]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ready.wait(), CONNECT_LIMIT)
    # The load generator's own pauses are not the server's latency: a full collection
    # walked every pile's client, websocket and schema validator here, 130-200 ms with all
    # of this process's piles waiting, which made the p99 of either server. Frozen, as the
    # gateway freezes what it has loaded (`protocol.gateway.collector`).
    gc.collect()
    gc.freeze()
    queue.put("connected")
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    clock["stop_at"] = time.monotonic() + warmup + seconds
    clock["go"].set()
    await asyncio.sleep(warmup)
    latencies.clear()
    measured_from = time.monotonic()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - measured_from
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    return latencies, elapsed, errors


def _client_process(queue, go, url, pairs, first, seconds, warmup, heartbeats_only) -> None:
    queue.put(asyncio.run(_client(url, pairs, first, seconds, warmup, heartbeats_only, queue, go)))


@dataclass
class Measured:
    latencies: list[tuple[float, str]]  # (seconds, action) of each answered call
    seconds: float
    errors: list[str]
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by whom, in…
    cpu_window: float = 0.0  # …this many seconds of the loop

    def __add__(self, other: Measured) -> Measured:
        cpu = {k: self.cpu.get(k, 0.0) + other.cpu.get(k, 0.0) for k in {**self.cpu, **other.cpu}}
        return Measured(
            self.latencies + other.latencies, self.seconds + other.seconds,
            self.errors + other.errors, cpu, self.cpu_window + other.cpu_window,
        )  # fmt: skip

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float, action: str | None = None) -> float:
        ordered = sorted(s for s, name in self.latencies if action in (None, name))
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0

    def actions_line(self) -> str:
        """p50/p99 of each action: which of them the tail is made of."""
        actions = sorted({name for _s, name in self.latencies})
        return (
            "  "
            + "  ".join(
                f"{a} {self.percentile_ms(0.5, a):.0f}/{self.percentile_ms(0.99, a):.0f}"
                for a in actions
            )
            + " (p50/p99 ms)"
        )

    def line(self, name: str) -> str:
        return (
            f"{name}: calls/s {self.rate:.0f}  p50 {self.percentile_ms(0.5):.1f} ms  "
            f"p99 {self.percentile_ms(0.99):.1f} ms  calls {len(self.latencies)}  "
            f"errors {len(self.errors)}"
        )

    def cpu_line(self) -> str:
        """CPU per answered call, the server's and PostgreSQL's: where a difference in
        calls/s goes (the load generator takes the rest of the machine)."""
        calls = self.rate * self.cpu_window
        if not calls:
            return ""
        parts = "  ".join(f"{who} {spent / calls * 1e6:.0f} µs" for who, spent in self.cpu.items())
        return f"  CPU per call: {parts}"


def closed_loop(
    url, pairs, *, seconds, warmup, clients, heartbeats_only=False, server_pid=None
) -> Measured:
    """Run the closed loop against ``url`` from ``clients`` processes (the load
    generator is Python too: one process would be the bottleneck, not the server). Every
    process's piles connect first, then all loops start together; the CPU of the server
    (``server_pid`` and its children) and of PostgreSQL is read over the measured part."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    go = context.Event()
    share = -(-len(pairs) // clients)
    procs = [
        context.Process(
            target=_client_process,
            args=(queue, go, url, pairs[i : i + share], i, seconds, warmup, heartbeats_only),
        )
        for i in range(0, len(pairs), share)
    ]
    for proc in procs:
        proc.start()
    for _proc in procs:
        queue.get(timeout=CONNECT_LIMIT + 60)  # "connected"
    go.set()
    time.sleep(warmup)
    before, measured_from = cpu_seconds(server_pid), time.monotonic()
    time.sleep(seconds)
    after, window = cpu_seconds(server_pid), time.monotonic() - measured_from
    latencies: list[float] = []
    elapsed, errors = 0.0, []
    for _proc in procs:
        part, took, failed = queue.get()
        latencies += part
        elapsed = max(elapsed, took)
        errors += failed
    for proc in procs:
        proc.join()
    cpu = {who: after[who] - before.get(who, 0.0) for who in after}
    return Measured(latencies, elapsed, errors, cpu, window)


def cpu_seconds(server_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by the server process and its descendants (gateway
    nodes), and by this machine's PostgreSQL processes (all of them: background writers
    included, as the server's writes make their work)."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    postgres = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime, stime
        pid = int(entry.name)
        parents[pid], used[pid] = int(fields[1]), seconds
        if name == "postgres":
            postgres += seconds
    spent = {"PostgreSQL": postgres}
    if server_pid is not None:
        tree, grew = {server_pid}, True
        while grew:  # children, their children…
            grew = False
            for pid, parent in parents.items():
                if parent in tree and pid not in tree:
                    tree.add(pid)
                    grew = True
        spent = {"server": sum(used.get(pid, 0.0) for pid in tree), **spent}
    return spent


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def start_server(command: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start a server that prints "… listening on ('127.0.0.1', PORT)" once ready."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    port = re.search(r"(\d+)\)", line)
    if "listening" not in line or port is None:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, f"ws://127.0.0.1:{port.group(1)}/ocpp"


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def gateway_command(port: int, workers: int) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), "rungateway", "--port", str(port),
            "--workers", str(workers)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--piles", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20, help="per server, all rounds")
    parser.add_argument("--rounds", type=int, default=2, help="turns of each server")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--url", help="only measure a running gateway (ws://HOST:PORT/ocpp)")
    parser.add_argument("--heartbeats-only", action="store_true", help="no database in the loop")
    parser.add_argument(
        "--open-loop", type=int, metavar="N", help="N piles heartbeating, 10%% charging"
    )
    parser.add_argument("--interval", type=float, default=60)
    parser.add_argument("--workers", type=int, default=1, help="gateway node processes")
    parser.add_argument("--no-baseline", action="store_true", help="skip the store-nothing server")
    args = parser.parse_args()

    pairs = many_piles(args.open_loop) if args.open_loop else network(args.piles)
    from django.db import connection

    connection.close()
    env = {**os.environ, "LOG_LEVEL": "WARNING", "GATEWAY_MAX_CALLS_PER_MINUTE": "100000"}
    if args.open_loop:
        proc, url = start_server(gateway_command(free_port(), args.workers), env)
        try:
            asyncio.run(open_loop(url, pairs, args.seconds, args.interval, proc.pid))
        finally:
            stop_server(proc)
        return
    loop = {
        "seconds": args.seconds,
        "warmup": args.warmup,
        "clients": args.clients,
        "heartbeats_only": args.heartbeats_only,
    }
    if args.url:
        measured = closed_loop(args.url, pairs, **loop)
        print(measured.line("gateway"))
        print(measured.actions_line())
        print(measured.cpu_line())
        return
    load = os.getloadavg()[0]
    print(
        f"closed loop: {len(pairs)} piles, {args.clients} client processes, {args.seconds:.0f} s "
        f"per server in {args.rounds} turns; load average before: {load:.1f}",
        flush=True,
    )
    # Both servers run side by side, measured in turns: a load that comes and goes on a
    # shared machine then weighs on both alike.
    servers = [("gateway", *start_server(gateway_command(free_port(), args.workers), env))]
    if not args.no_baseline:
        baseline = start_server([sys.executable, "-m", "bench.baseline"])
        servers.insert(0, ("store-nothing", *baseline))
    rounds = {name: Measured([], 0.0, []) for name, _proc, _url in servers}
    loop["seconds"] = args.seconds / args.rounds
    try:
        for _round in range(args.rounds):
            for name, proc, url in servers:
                rounds[name] += closed_loop(url, pairs, server_pid=proc.pid, **loop)
    finally:
        for _name, proc, _url in servers:
            stop_server(proc)
    ours = rounds["gateway"]
    for name, measured in rounds.items():
        print(measured.line(name if name != "gateway" else f"gateway (--workers {args.workers})"))
        print(measured.actions_line())
        print(measured.cpu_line())
        if measured.errors:
            print(f"  first error: {measured.errors[0]}")
    baseline = rounds.get("store-nothing")
    if baseline is not None and baseline.rate:
        print(
            f"ratio gateway/store-nothing: {ours.rate / baseline.rate:.2f}  "
            f"(p99 {ours.percentile_ms(0.99):.0f} ms vs {baseline.percentile_ms(0.99):.0f} ms; "
            f"load average after: {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
