"""Driver API benchmark: `python -m bench.drivers [--stations 10000] [--starts 100]`.

1. Nearby stations over 10,000 stations (one published DC pile each, spread over a
   150 km square): GET /api/v1/stations/nearby/ through the whole Django stack with a real
   driver token, from random points, 5 km radius; p50/p99 against 50 ms.
2. Remote starts: a real gateway process, N simulated piles connected (plugged in), a
   gunicorn serving the API; N drivers POST connectors/<id>/start/ at once; the time from
   each request leaving the client to its pile receiving RemoteStartTransaction, p50/p99
   against 1 s; the time to the 202 (the API answers without waiting for the pile); and
   what each start's ``starts/<id>/`` says afterwards (the pile's answer, read back).

Uses a scratch database of its own (`<DATABASE_URL name>_bench_drv`, recreated). Not part
of the test suite; `make bench` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NEARBY_P99_MS = 50
START_P99_S = 1.0
CENTER = (22.5176, 113.3926)


def scratch_database() -> str:
    from bench.__main__ import _scratch_database_url

    return _scratch_database_url("_bench_drv")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def build_network(stations: int, starts: int):
    from billing.services.wallet import wallet_recharge
    from orgs.models import Member, Operator
    from stations.models import Connector, Pile, Station

    operator = Operator.objects.create(code="bench-drv", name="Bench drivers")
    rng = random.Random(12)
    half = 0.7  # degrees: ~150 km square around the centre
    Station.objects.bulk_create(
        [
            Station(
                operator=operator,
                code=f"BD{i:05d}",
                name=f"Bench station {i}",
                address="-",
                city="-",
                latitude=Decimal(f"{CENTER[0] + rng.uniform(-half, half):.6f}"),
                longitude=Decimal(f"{CENTER[1] + rng.uniform(-half, half):.6f}"),
            )
            for i in range(stations)
        ],
        batch_size=2000,
    )
    ids = list(
        Station.objects.filter(operator=operator).order_by("pk").values_list("pk", flat=True)
    )
    Pile.objects.bulk_create(
        [
            Pile(station_id=sid, code=f"4420777{n:013d}", current_type="DC" if n % 3 else "AC",
                 max_power_kw=Decimal("60.00"), is_published=True, is_online=n % 5 != 0)
            for n, sid in enumerate(ids)
        ],
        batch_size=2000,
    )  # fmt: skip
    piles = list(Pile.objects.filter(station__operator=operator).order_by("pk"))
    Connector.objects.bulk_create(
        [
            Connector(pile=p, number=k, standard="GB/T DC", rated_power_kw=Decimal("60.00"),
                      status=rng.choice(["Available", "Charging", "Preparing"]))
            for p in piles for k in (1, 2)
        ],
        batch_size=4000,
    )  # fmt: skip
    members = [
        Member.objects.create(
            operator=operator, phone=f"1380000{i:04d}", token=f"BDRV{i:06d}", nickname=f"d{i}"
        )
        for i in range(starts)
    ]
    for m in members:
        wallet_recharge(member=m, amount=Decimal("100.00"), reference=f"bench-{m.pk}")
    from django.db import connection

    with connection.cursor() as cursor:
        # A bulk load: give the planner the statistics it would have. Our tables only: a
        # bare ANALYZE also takes the shared catalogues, and waits for every other
        # database's ANALYZE on this server.
        tables = [m._meta.db_table for m in (Station, Pile, Connector, Member)]
        cursor.execute(f"ANALYZE {', '.join(tables)}")
    return operator, piles[:starts], members


def bench_nearby(member, requests: int) -> list[float]:
    from django.test import Client

    from orgs.drivers import driver_token_issue

    client = Client(
        HTTP_HOST="localhost",
        HTTP_AUTHORIZATION=f"Bearer {driver_token_issue(member=member).key}",
    )
    rng = random.Random(7)
    times, cpu = [], []
    for i in range(requests + 20):
        lat = CENTER[0] + rng.uniform(-0.5, 0.5)
        lng = CENTER[1] + rng.uniform(-0.5, 0.5)
        query = {"lat": f"{lat:.6f}", "lng": f"{lng:.6f}", "radius": 5000}
        if i % 3 == 1:
            query["free_only"] = "true"
        t, c = time.perf_counter(), time.process_time()
        answer = client.get("/api/v1/stations/nearby/", query)
        elapsed, used = time.perf_counter() - t, time.process_time() - c
        assert answer.status_code == 200, answer.content
        if i >= 20:  # warm-up: connections, caches
            times.append(elapsed)
            cpu.append(used)
    return times, cpu


async def piles_online(gateway_url: str, piles, received: dict):
    """Connect and plug in every pile; each records when RemoteStartTransaction arrives
    and accepts it. Returns the open sockets."""
    from websockets.asyncio.client import connect

    sockets = []

    async def serve(ws, code):
        async for raw in ws:
            message = json.loads(raw)
            if message[0] == 2 and message[2] == "RemoteStartTransaction":
                received[code] = time.perf_counter()
            if message[0] == 2:
                await ws.send(json.dumps([3, message[1], {"status": "Accepted"}]))

    async def one(pile):
        ws = await connect(f"{gateway_url}/{pile.code}", subprotocols=["ocpp1.6"],
                           ping_interval=None, open_timeout=60)  # fmt: skip
        for n, (action, payload) in enumerate(
            [
                ("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "DC"}),
                ("StatusNotification",
                 {"connectorId": 1, "status": "Preparing", "errorCode": "NoError"}),
            ]
        ):  # fmt: skip
            await ws.send(json.dumps([2, f"b{n}", action, payload]))
            await ws.recv()
        sockets.append((ws, asyncio.create_task(serve(ws, pile.code))))

    await asyncio.gather(*(one(p) for p in piles))
    return sockets


def post_start(base: str, token: str, connector_id: int, key: str):
    """(status, sent, answered, start id or None)."""
    request = urllib.request.Request(
        f"{base}/api/v1/connectors/{connector_id}/start/",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )
    sent = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            body = json.loads(answer.read())
            return answer.status, sent, time.perf_counter(), body["id"]
    except urllib.error.HTTPError as error:
        return error.code, sent, time.perf_counter(), None


def get_me(base: str, token: str) -> int:
    request = urllib.request.Request(
        f"{base}/api/v1/me/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.status


def start_state(base: str, token: str, start_id: int) -> str:
    request = urllib.request.Request(
        f"{base}/api/v1/starts/{start_id}/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())["state"]


def web_cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) the gunicorn workers of ``master_pid`` used so far: what
    the starts cost the web tier, whatever else the machine runs."""
    total = 0.0
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def bench_starts(gateway_url, web_url, piles, members, web_pid):
    from asgiref.sync import sync_to_async

    from orgs.drivers import driver_token_issue
    from stations.models import Connector

    received: dict[str, float] = {}
    sockets = await piles_online(gateway_url, piles, received)

    @sync_to_async
    def ready():
        connectors = Connector.objects.filter(pile__in=piles, number=1)
        ready = connectors.filter(status="Preparing", pile__is_online=True)
        return list(ready.select_related("pile").order_by("pile"))

    connectors = []
    for _ in range(100):
        connectors = await ready()
        if len(connectors) == len(piles):
            break
        await asyncio.sleep(0.2)
    tokens = await sync_to_async(
        lambda: [driver_token_issue(member=m).key for m in members]
    )()  # fmt: skip
    loop = asyncio.get_running_loop()
    # Warm every gunicorn worker and thread up first (a server in service is warm: its
    # first requests import the views, load the translation catalogues, open connections).
    with ThreadPoolExecutor(max_workers=32) as pool:
        await asyncio.gather(
            *(
                loop.run_in_executor(pool, get_me, web_url, tokens[i % len(tokens)])
                for i in range(200)
            )
        )
    cpu_before = web_cpu_seconds(web_pid)
    with ThreadPoolExecutor(max_workers=len(piles)) as pool:
        results = await asyncio.gather(
            *(
                loop.run_in_executor(pool, post_start, web_url, token, c.pk, f"bench-{c.pk}")
                for token, c in zip(tokens, connectors, strict=True)
            )
        )
    web_cpu = web_cpu_seconds(web_pid) - cpu_before
    await asyncio.sleep(0.5)
    # What each start says now: the piles accepted, so "accepted" (they never report a
    # StartTransaction here).
    states: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for state in await asyncio.gather(
            *(
                loop.run_in_executor(pool, start_state, web_url, token, start_id)
                for token, (_s, _t, _d, start_id) in zip(tokens, results, strict=True)
                if start_id is not None
            )
        ):
            states[state] = states.get(state, 0) + 1
    for ws, task in sockets:
        task.cancel()
        await ws.close()
    latencies, answered, statuses = [], [], {}
    for (status, sent, done, _id), c in zip(results, connectors, strict=True):
        statuses[status] = statuses.get(status, 0) + 1
        if status == 202:  # recorded and sent; the pile's answer is read later
            answered.append(done - sent)
        if c.pile.code in received:
            latencies.append(received[c.pile.code] - sent)
    return latencies, answered, statuses, states, len(connectors), web_cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stations", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--starts", type=int, default=100)
    # gunicorn's advice: 2 × cores + 1 workers; a few threads each (the requests wait on
    # PostgreSQL and Redis); workers × threads database connections at most.
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1) + 1)
    parser.add_argument("--threads", type=int, default=4, help="per gunicorn worker")
    args = parser.parse_args()

    env = {
        **os.environ,
        "DATABASE_URL": scratch_database(),
        # A benchmark is one client from one address: the API's throttles would be the test.
        "API_THROTTLE_USER": "",
        "API_THROTTLE_IP": "",
        "LOG_LEVEL": "WARNING",
        "GATEWAY_MAX_CALLS_PER_MINUTE": "100000",
        "DRIVER_START_REQUIRES_PLUG": "1",
        # Persistent connections as in service (a fresh PostgreSQL backend per request
        # costs more than the start itself); --workers × --threads of them at most.
        "DB_CONN_MAX_AGE": "60",
    }
    os.environ.update(env)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v", "0"], check=True)
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")
    django.setup()
    from django.db import connection

    t = time.perf_counter()
    _operator, piles, members = build_network(args.stations, args.starts)
    print(f"network: {args.stations} stations, {2 * args.stations} connectors "
          f"in {time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip

    times, cpu = bench_nearby(members[0], args.requests)
    p50, p99 = pct(times, 0.5) * 1000, pct(times, 0.99) * 1000
    verdict = "ok" if p99 < NEARBY_P99_MS else "SLOW"
    print(f"nearby: {len(times)} requests  p50 {p50:.1f} ms  p99 {p99:.1f} ms  "
          f"(limit {NEARBY_P99_MS} ms: {verdict}); web process CPU per request "
          f"p50 {pct(cpu, 0.5) * 1000:.1f} ms p99 {pct(cpu, 0.99) * 1000:.1f} ms; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
          flush=True)  # fmt: skip
    connection.close()

    gw_port, web_port = free_port(), free_port()
    gateway = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "rungateway", "--port", str(gw_port)],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "chargenet.wsgi", "-b", f"127.0.0.1:{web_port}",
         "-w", str(args.workers), "--threads", str(args.threads), "--log-level", "warning"],
        env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        gateway.stdout.readline()
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        latencies, answered, statuses, states, ready, web_cpu = asyncio.run(
            bench_starts(
                f"ws://127.0.0.1:{gw_port}/ocpp",
                f"http://127.0.0.1:{web_port}",
                piles,
                members,
                web.pid,
            )
        )
    finally:
        for proc in (web, gateway):
            proc.terminate()
        for proc in (web, gateway):
            proc.wait(30)
    print(f"starts: {ready} piles plugged in, answers {statuses}, "
          f"{len(latencies)} RemoteStarts received; starts/<id>/ then says {states}",
          flush=True)  # fmt: skip
    print(f"web workers' CPU for the {ready} starts: {web_cpu:.2f} s "
          f"({web_cpu / max(ready, 1) * 1000:.1f} ms per start); load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)  # fmt: skip
    if answered:
        p50, p99 = pct(answered, 0.5), pct(answered, 0.99)
        print(f"start → 202 (recorded and sent, not waiting for the pile) at {args.starts} "
              f"concurrent: p50 {p50 * 1000:.0f} ms  p99 {p99 * 1000:.0f} ms")  # fmt: skip
    if latencies:
        p50, p99 = pct(latencies, 0.5), pct(latencies, 0.99)
        verdict = "ok" if p99 < START_P99_S and len(latencies) == args.starts else "SLOW"
        print(f"start → RemoteStart at {args.starts} concurrent: p50 {p50 * 1000:.0f} ms  "
              f"p99 {p99 * 1000:.0f} ms  max {max(latencies) * 1000:.0f} ms  "
              f"(limit {START_P99_S:.0f} s: {verdict})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
