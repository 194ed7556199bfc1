"""Benchmark of the pure pricing engine: sessions with 100 meter samples each.

    python -m bench.pricing [--sessions 5000]

Target (issue 4): ≥ 5,000 sessions/s on one core. No database is touched.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import time
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")

import django

django.setup()

from billing.pricing import PeriodPrice, TariffSpec, price_session, schedule_from_text  # noqa: E402

ZONE = "Asia/Shanghai"
SCHEDULE = schedule_from_text("3" * 16 + "2" * 12 + "1" * 6 + "2" * 4 + "1" * 6 + "2" * 4)
PRICES = (
    PeriodPrice(Decimal("1.10"), Decimal("0.60")),
    PeriodPrice(Decimal("0.98"), Decimal("0.60")),
    PeriodPrice(Decimal("0.64"), Decimal("0.51")),
    PeriodPrice(Decimal("0.33"), Decimal("0.55")),
)


def make_sessions(count: int, samples: int, seed: int = 4) -> list[list[tuple]]:
    """Sessions of 100 samples every 1–5 minutes at 3–120 kW, starting any time of a week
    (so many cross period boundaries and midnight), registers with 3 decimals of Wh."""
    rng = random.Random(seed)
    base = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    sessions = []
    for _ in range(count):
        t = base + dt.timedelta(seconds=rng.randrange(7 * 86400))
        e = Decimal(rng.randrange(10**9)) / 1000
        power_w = rng.randrange(3_000, 120_000)
        points = []
        for _ in range(samples):
            points.append((t, e))
            step = rng.randrange(60, 300)
            t += dt.timedelta(seconds=step)
            e += Decimal(power_w * step * 1000 // 3600) / 1000
        sessions.append(points)
    return sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tariffs = [
        TariffSpec(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), SCHEDULE, PRICES, 1),
        TariffSpec(dt.datetime(2024, 6, 4, tzinfo=dt.UTC), SCHEDULE, PRICES[::-1], 2),
    ]
    sessions = make_sessions(args.sessions, args.samples)
    best = None
    for n in range(args.rounds):
        started = time.perf_counter()
        total = Decimal(0)
        for samples in sessions:
            total += price_session(samples=samples, tariffs=tariffs, zone=ZONE).total
        elapsed = time.perf_counter() - started
        rate = len(sessions) / elapsed
        best = max(best or 0, rate)
        print(
            f"round {n + 1}: {len(sessions)} sessions × {args.samples} samples in "
            f"{elapsed:.3f} s = {rate:,.0f} sessions/s ({elapsed / len(sessions) * 1e6:.0f} µs "
            f"each), billed {total} yuan"
        )
    print(f"best: {best:,.0f} sessions/s (target ≥ 5,000)")


if __name__ == "__main__":
    main()
