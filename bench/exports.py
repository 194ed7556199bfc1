"""Benchmark of a large export as the worker runs it: the bills list of N bills (default
1,000,000) to Excel and to CSV, through `reports.exports.services.export_job_run`.

    python -m bench.exports [--rows 1000000] [--formats xlsx csv]

Target (issue 11): a 1,000,000-row Excel export with RSS < 300 MB; rows/s reported. Runs
in a throw-away database (`<DATABASE_URL's name>_bench_exports`), filled with SQL.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

from bench.__main__ import _scratch_database_url

RSS_LIMIT_MB = 300


def _fill(rows: int) -> None:
    """A network of 50 stations and ``rows`` settled sessions with their bills, by SQL."""
    from django.db import connection

    from billing.models import Bill, ChargingSession
    from tests.factories import ConnectorFactory, OperatorFactory, PileFactory, StationFactory

    operator = OperatorFactory(code="bench", name="Bench")
    connectors = [
        ConnectorFactory(pile=PileFactory(station=StationFactory(operator=operator)))
        for _ in range(50)
    ]
    values = ", ".join(f"({c.pk}, {c.pile_id}, {c.pile.station_id})" for c in connectors)
    sessions, bills = ChargingSession._meta.db_table, Bill._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE TEMP TABLE bench_guns (n serial, connector_id bigint, pile_id bigint,
                                          station_id bigint);
            INSERT INTO bench_guns (connector_id, pile_id, station_id) VALUES {values};
            INSERT INTO {sessions} (order_no, operator_id, station_id, pile_id, connector_id,
                protocol_ref, channel, id_tag, refused_as, state, started_at, stopped_at,
                meter_start_wh, meter_stop_wh, stop_reason, pile_reported, created_at,
                updated_at, vin)
            SELECT '2026' || lpad(i::text, 16, '0'), {operator.pk}, g.station_id, g.pile_id,
                   g.connector_id, i::text, 'scan', 'TAG', '', 'settled',
                   timestamptz '2026-01-01 00:00+08' + i * interval '30 seconds',
                   timestamptz '2026-01-01 01:00+08' + i * interval '30 seconds',
                   0, 20000 + i %% 1000, 'Local', '{{}}', now(), now(), ''
            FROM generate_series(1, %s) i JOIN bench_guns g ON g.n = i %% 50 + 1;
            INSERT INTO {bills} (session_id, order_no, operator_id, station_id, channel,
                current_type, started_at, ended_at, duration_s, energy_wh, electricity_fee,
                service_fee, total, rounding_mode, payment_state, fault_codes, fault_detail,
                pile_reported, settled_at)
            SELECT s.id, s.order_no, s.operator_id, s.station_id, 'scan', 'DC', s.started_at,
                   s.stopped_at, 3600, s.meter_stop_wh, 12.34, 5.67, 18.01, 'ROUND_DOWN',
                   'paid', '{{}}', '', '{{}}', s.stopped_at
            FROM {sessions} s;
            ANALYZE;
            """,
            [rows],
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--formats", nargs="+", default=["xlsx", "csv"])
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = _scratch_database_url("_bench_exports")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from reports.exports.models import ExportJob
    from reports.exports.services import export_job_run
    from tests.factories import StaffFactory

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    _fill(args.rows)
    print(f"filled {args.rows:,} bills in {time.perf_counter() - started:.0f} s", flush=True)
    staff = StaffFactory(username="bench", is_superuser=True, operator=None)
    failed = False
    with tempfile.TemporaryDirectory() as root:
        settings.EXPORTS_ROOT = root
        for fmt in args.formats:
            job = ExportJob.objects.create(staff=staff, slug="bills", title="Bills", fmt=fmt)
            started, cpu = time.perf_counter(), time.process_time()
            job = export_job_run(job_id=job.pk)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            size_mb = job.size_bytes / 2**20
            print(
                f"{fmt}: {job.rows_done:,} rows in {seconds:.0f} s = "
                f"{job.rows_done / seconds:,.0f} rows/s ({job.rows_done / cpu:,.0f} per CPU "
                f"second of this process), {size_mb:.0f} MB file, "
                f"peak RSS {peak_mb:.0f} MB (limit {RSS_LIMIT_MB} MB)",
                flush=True,
            )
            print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
            failed |= job.rows_done != args.rows or peak_mb >= RSS_LIMIT_MB
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
