"""Cold boot of piles with passwords: `python -m bench.pile_auth [--piles 10000]`.

Every pile has its own password (stored keyed-hashed, as the back office stores it). All
piles connect at once with HTTP Basic auth and send BootNotification; prints how many
booted and how long the whole storm took, against the 60 s the operator needs for a
10,000-pile network after a gateway restart. ``BENCH_AUTH_PILES`` overrides the default
count (e.g. for a quick run). Uses the configured DATABASE_URL: `make bench` gives it a
scratch database. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

from websockets.asyncio.client import connect

from bench.gateway import ROOT, Pile_, free_port  # sets Django up
from orgs.models import Operator
from protocol.simulator import basic_auth_header
from stations.models import Connector, Pile, Station
from stations.services.credentials import pile_credential_encode

LIMIT_SECONDS = 60


def password_of(code: str) -> str:
    return f"bench-{code}-password"


def piles_with_passwords(count: int, *, passwords: bool = True) -> list[str]:
    operator, _ = Operator.objects.get_or_create(code="bench", defaults={"name": "Bench"})
    station, _ = Station.objects.get_or_create(
        operator=operator,
        code="BENCH-AUTH",
        defaults=dict(name="Bench auth", address="-", city="-", latitude=0, longitude=0),
    )
    codes = [f"442099{97 if passwords else 96}00{i:010d}" for i in range(count)]
    existing = set(Pile.objects.filter(code__in=codes).values_list("code", flat=True))
    new = [
        Pile(
            station=station,
            code=c,
            current_type="AC",
            credential_hash=pile_credential_encode(password=password_of(c)) if passwords else "",
        )
        for c in codes
        if c not in existing
    ]
    Pile.objects.bulk_create(new, batch_size=2000)
    ids = Pile.objects.filter(code__in=[p.code for p in new]).values_list("pk", flat=True)
    Connector.objects.bulk_create(
        [Connector(pile_id=i, number=1, standard="GB/T AC") for i in ids], batch_size=2000
    )
    return codes


async def storm(url: str, codes: list[str], passwords: bool) -> tuple[int, float, list[Exception]]:
    """Connect and boot every pile, keeping each connection open (as piles do) until the
    last one has booted; the time is from the first connect to the last answer."""
    semaphore = asyncio.Semaphore(1000)  # the load generator's own connect concurrency
    booted = 0
    all_in = asyncio.Event()
    pending = len(codes)

    def headers(code: str) -> dict[str, str]:
        return basic_auth_header(code, password_of(code)) if passwords else {}

    async def boot(code: str) -> None:
        nonlocal booted, pending
        try:
            async with semaphore:
                ws = await connect(
                    f"{url}/{code}",
                    subprotocols=["ocpp1.6"],
                    additional_headers=headers(code),
                    ping_interval=None,
                    open_timeout=120,
                )
                answer = await Pile_(ws, []).call(
                    "BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "AC7"}
                )
                booted += answer["status"] == "Accepted"
        finally:
            pending -= 1
            if not pending:
                all_in.set()
        await all_in.wait()
        await ws.close()

    began = time.monotonic()
    tasks = [asyncio.create_task(boot(c)) for c in codes]
    await all_in.wait()
    elapsed = time.monotonic() - began
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return booted, elapsed, [r for r in results if isinstance(r, Exception)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--piles", type=int, default=int(os.environ.get("BENCH_AUTH_PILES", 10000)))
    parser.add_argument(
        "--without-passwords", action="store_true", help="baseline: the same storm, no Basic auth"
    )
    args = parser.parse_args()
    codes = piles_with_passwords(args.piles, passwords=not args.without_passwords)
    from django.db import connection

    connection.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "rungateway", "--port", str(port)],
        env={**os.environ, "LOG_LEVEL": "WARNING", "GATEWAY_MAX_CALLS_PER_MINUTE": "100000"},
        stdout=subprocess.PIPE,
        text=True,
    )
    proc.stdout.readline()
    try:
        url = f"ws://127.0.0.1:{port}/ocpp"
        booted, elapsed, errors = asyncio.run(storm(url, codes, not args.without_passwords))
    finally:
        proc.terminate()
        proc.wait(60)
    verdict = "within" if booted == len(codes) and elapsed <= LIMIT_SECONDS else "NOT within"
    kind = "without" if args.without_passwords else "with"
    print(
        f"piles {kind} passwords: {booted}/{len(codes)} booted in {elapsed:.1f} s "
        f"({verdict} {LIMIT_SECONDS} s)  errors: {len(errors)}"
    )
    if errors:
        print(f"first error: {errors[0]!r}")


if __name__ == "__main__":
    main()
