"""Benchmark of settlement end to end on PostgreSQL: lock, price, bill + lines, ledger.

    python -m bench.settlement [--sessions 1000] [--samples 100] [--workers 1]
                               [--batch 1] [--async-commit]

``--batch N`` settles N sessions per transaction with `bills_settle` (1: the per-session
task's `bill_settle`; 200: the pending-settlement beat task's batches);
``--workers N`` settles in N processes (as N Celery workers would); ``--async-commit``
sets synchronous_commit=off for the benchmark's connections, which measures everything
but the disk's flush latency (on a busy or slow disk that latency is most of a commit).

Runs in a throw-away test database (created and dropped like the test suite does), so
it never touches real data. Target (issue 4): ≥ 500 sessions/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import time
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from bench.pricing import make_sessions  # noqa: E402


def build(count: int, samples: int):
    from billing.models import ChargingSession, MeterSample, SessionState
    from billing.services.tariffs import (
        PeriodPrices,
        station_tariff_assign,
        tariff_plan_create,
        tariff_version_create,
    )
    from billing.services.wallet import wallet_recharge
    from orgs.models import Member, Operator
    from stations.models import Connector, Pile, Station

    operator = Operator.objects.create(code="bench", name="Bench")
    station = Station.objects.create(
        operator=operator,
        code="B1",
        name="Bench station",
        address="-",
        city="Zhongshan",
        latitude=Decimal("22.5"),
        longitude=Decimal("113.4"),
    )
    plan = tariff_plan_create(operator=operator, name="bench")
    p = [
        PeriodPrices(Decimal(e), Decimal(s))
        for e, s in [("1.1", "0.6"), ("0.98", "0.6"), ("0.64", "0.51"), ("0.33", "0.55")]
    ]
    tariff_version_create(
        plan=plan,
        schedule="3" * 16 + "2" * 12 + "1" * 6 + "2" * 4 + "1" * 6 + "2" * 4,
        prices={"AC": p, "DC": p},
        effective_from=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )
    station_tariff_assign(
        station=station, plan=plan, effective_from=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )
    ids = []
    for n, points in enumerate(make_sessions(count, samples)):
        pile = Pile.objects.create(
            station=station, code=f"{44200100000000000000 + n}", current_type="AC"
        )
        connector = Connector.objects.create(pile=pile, number=1, standard="GB/T AC")
        member = Member.objects.create(operator=operator, phone=f"139{n:08d}", token=f"B{n}")
        wallet_recharge(member=member, amount=Decimal("100000.00"), reference=f"BENCH{n}")
        session = ChargingSession.objects.create(
            order_no=f"{20240601000000000000 + n}",
            operator=operator,
            station=station,
            pile=pile,
            connector=connector,
            id_tag=f"B{n}",
            member=member,
            state=SessionState.STOPPED,
            started_at=points[0][0],
            stopped_at=points[-1][0],
            meter_start_wh=points[0][1],
            meter_stop_wh=points[-1][1],
            # Received when the pile sent it: the fault rules compare the two clocks.
            stop_received_at=points[-1][0],
        )
        ChargingSession.objects.filter(pk=session.pk).update(created_at=points[0][0])
        MeterSample.objects.bulk_create(
            MeterSample(session=session, at=t, energy_wh=e) for t, e in points[1:-1]
        )
        ids.append(session.pk)
    return ids


def settle_slice(ids: list[int], async_commit: bool, batch: int) -> None:
    from billing.services.settlement import bills_settle

    connection.close()  # a forked worker opens its own connection
    if async_commit:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
    for n in range(0, len(ids), batch):
        bills_settle(session_ids=ids[n : n + batch])
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1, help="sessions per transaction")
    parser.add_argument("--async-commit", action="store_true")
    args = parser.parse_args()
    old = setup_databases(verbosity=0, interactive=False)
    try:
        from billing.models import Bill, LedgerEntry
        from billing.services.settlement import bill_settle
        from billing.services.wallet import wallet_verify

        print(f"building {args.sessions} stopped sessions × {args.samples} samples …")
        ids = build(args.sessions, args.samples)
        connection.close()
        started, cpu = time.perf_counter(), time.process_time()
        if args.workers == 1:
            settle_slice(ids, args.async_commit, args.batch)
        else:
            with multiprocessing.get_context("fork").Pool(args.workers) as pool:
                pool.starmap(
                    settle_slice,
                    [
                        (ids[w :: args.workers], args.async_commit, args.batch)
                        for w in range(args.workers)
                    ],
                )
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        rate = len(ids) / elapsed
        mode = "async commit" if args.async_commit else "synchronous commit"
        print(
            f"[batch {args.batch}, {args.workers} worker(s), {mode}] settled {len(ids)} "
            f"sessions in "
            f"{elapsed:.3f} s = {rate:,.0f} sessions/s "
            f"({elapsed / len(ids) * 1000:.2f} ms each; target ≥ 500/s)"
        )
        if args.workers == 1:
            print(
                f"client CPU per settlement: {cpu / len(ids) * 1000:.2f} ms; load average "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
            )
        started = time.perf_counter()
        for session_id in ids[:200]:
            bill_settle(session_id=session_id)
        again = time.perf_counter() - started
        print(f"re-settling 200 (idempotent no-ops): {200 / again:,.0f} sessions/s")
        charges = LedgerEntry.objects.filter(kind="charge").count()
        print(
            f"bills {Bill.objects.count()}, charge entries {charges}, "
            f"wallet drifts {len(wallet_verify())}"
        )
    finally:
        connection.close()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
