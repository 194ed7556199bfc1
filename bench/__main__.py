"""`make bench`: run every benchmark in turn and print its numbers (never part of the tests).

Each benchmark uses a throw-away database of its own (created from DATABASE_URL's server),
so running them never touches real data. Pass names to run a subset:

    python -m bench pricing settlement
"""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

BENCHES: dict[str, list[str]] = {
    "pricing": ["bench.pricing"],
    "settlement": ["bench.settlement", "--sessions", "1000"],
    "settlement_batch": ["bench.settlement", "--sessions", "2000", "--batch", "100"],
    "gateway": ["bench.gateway", "--piles", "200", "--seconds", "20"],
    "gateway_open_loop": ["bench.gateway", "--open-loop", "10000", "--seconds", "60"],
    "faults_sweep": ["bench.faults_sweep"],
    # 10,000 piles with passwords cold-boot (BENCH_AUTH_PILES for a smaller run).
    "gateway_pile_auth": ["bench.pile_auth"],
    # The journal and meter samples partitioned: insert cost, bytes, search, retention.
    "gateway_partitions": ["bench.partitions"],
    # 10,000 YKC piles: heartbeats every 10 s, 10% charging (real-time data every 15 s).
    "gateway_ykc": ["bench.ykc", "--piles", "10000", "--seconds", "60"],
    # Dashboard and a month of the daily report on 10,000,000 bills (BENCH_REPORT_BILLS).
    "reports": ["bench.reports"],
    # A 1,000,000-row bills export to Excel and CSV as the worker runs it (RSS, rows/s).
    "exports": ["bench.exports"],
    # Drivers: nearby over 10,000 stations; 100 concurrent remote starts (own scratch db).
    "drivers": ["bench.drivers"],
    # query_stations_info over 2,000 stations; pushes through the outbox to a fake partner.
    "partners": ["bench.partners"],
}


def _scratch_database_url(suffix: str = "_bench_gw") -> str:
    """DATABASE_URL with its database renamed `<name><suffix>` (`_bench_gw` by default),
    created anew (the gateway benchmark writes into the database it is given)."""
    import psycopg

    url = os.environ["DATABASE_URL"]
    parts = urlsplit(url)
    name = parts.path.lstrip("/") + suffix
    server = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def main(names: list[str]) -> int:
    failed = []
    for name in names or list(BENCHES):
        print(f"\n=== {name} ===", flush=True)
        # Servers run as in service: without DEBUG, Django keeps no log of every query
        # (that log costs each query time and each long-lived process memory).
        env = {"DEBUG": "0", **os.environ}
        if name.startswith("gateway"):
            env["DATABASE_URL"] = _scratch_database_url()
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], env=env, check=True)
        if subprocess.run([sys.executable, "-m", *BENCHES[name]], env=env).returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
