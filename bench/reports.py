"""Benchmark of the reports on PostgreSQL (numbers for issue 11's closing note).

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.reports [--bills N]

Uses its own database (``<DATABASE_URL's name>_bench_reports``, dropped and created each
run). Seeds with INSERT … SELECT over generate_series: one operator with two
sub-operators, 200 stations, 5,000 piles, and N settled sessions with their bills spread
over the last 365 days (default 10,000,000, or BENCH_REPORT_BILLS); then builds the
rollups from the bills with `reports_rebuild`'s statement and times, as the back office
answers them (the test client, signed in):

- the dashboard (the admin index) as operator staff and as sub-operator staff (target
  < 300 ms);
- a month of the daily report (整车充电消费日报表) as operator staff (target < 1 s);
- `reports_verify` over that month.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from urllib.parse import urlsplit, urlunsplit

SEED_SQL = """
INSERT INTO orgs_operator (id, code, name, rounding_mode, created_at, start_min_balance)
VALUES (1, 'bench', 'Bench Operator', 'ROUND_DOWN', now(), 0);

INSERT INTO orgs_suboperator (id, operator_id, code, name, contact, hidden_reason)
VALUES (1, 1, 'sx', 'Sub X', '', ''), (2, 1, 'sy', 'Sub Y', '', '');

-- Ten fleet departments (企业部门), the first four bound to Sub X, the next two to Sub Y.
INSERT INTO orgs_department (id, hidden_reason, name, operator_id, sub_operator_id)
SELECT i, '', 'Fleet ' || i, 1, CASE WHEN i <= 4 THEN 1 WHEN i <= 6 THEN 2 END
FROM generate_series(1, 10) i;

INSERT INTO stations_station (id, operator_id, code, name, address, city, region_code,
    latitude, longitude, time_zone, is_public, password, created_at, hidden_reason)
SELECT i, 1, 'ST' || i, 'Station ' || i, 'Road ' || i, 'Zhongshan', '442001', 22.5, 113.4,
       'Asia/Shanghai', true, '', now(), ''
FROM generate_series(1, 200) i;

-- Sub-operator X is authorised on 20 stations.
INSERT INTO stations_station_sub_operators (station_id, suboperator_id)
SELECT i, 1 FROM generate_series(1, 20) i;

INSERT INTO stations_pile (id, station_id, code, name, vendor, model, serial_number,
    current_type, max_power_kw, firmware_version, protocol, credential_hash, is_published,
    is_online, created_at, hidden_reason, diagnostics_status, firmware_status)
SELECT i, 1 + (i - 1) / 25, '442001' || lpad(i::text, 14, '0'), '', 'V', 'M', '',
       'DC', 60, (ARRAY['10002','10722','11534','11536','2090100'])[1 + i %% 5], 'ocpp1.6j', '',
       true, i %% 10 <> 8, now(), '', '', ''
FROM generate_series(1, 5000) i;

INSERT INTO stations_connector (id, pile_id, number, rated_power_kw, standard, status,
    error_code, status_at)
SELECT i, i, 1, 60, 'GB/T DC', 'Available', '', now()
FROM generate_series(1, 5000) i;
"""

# N sessions and their bills over the DAYS days before today, 20-80 minutes each, at 25
# piles a station (five firmware versions at each), channels, attribution and departments
# drawn independently of the pile, so each station-day has rows of every channel, firmware,
# sub-operator and department as a busy network's would: one in ten attributed to a
# sub-operator, one in five a fleet department's, one in fifty a fault bill (repairs are the
# consumers' business, timed by the tests).
SESSIONS_SQL = """
INSERT INTO billing_chargingsession (id, order_no, operator_id, station_id, pile_id,
    connector_id, protocol_ref, channel, id_tag, vin, refused_as, state, started_at,
    stopped_at, meter_start_wh, meter_stop_wh, stop_reason, stop_received_at, pile_reported,
    created_at, updated_at, sub_operator_id, department_id)
SELECT i, '9' || lpad(i::text, 19, '0'), 1, 1 + (p - 1) / 25, p, p, i::text,
       (ARRAY['scan','password','card','partner'])[1 + (i / 3) %% 4], 'TAG', '', '',
       CASE WHEN i %% 50 = 0 THEN 'fault' ELSE 'settled' END,
       t0, t0 + (20 + i %% 60) * interval '1 minute', 0, wh, 'Local',
       t0 + (20 + i %% 60) * interval '1 minute', '{}', t0, t0,
       CASE WHEN (i / 7) %% 10 = 0 THEN 1 + (i / 11) %% 2 END,
       CASE WHEN (i / 13) %% 5 = 0 THEN 1 + (i / 17) %% 10 END
FROM (
    SELECT i, 1 + (i * 7919) %% 5000 AS p, 5000 + (i * 37) %% 40000 AS wh,
           %(start)s + make_interval(secs => (i::bigint * %(span)s / %(n)s)::int) AS t0
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) i
) s;

INSERT INTO billing_bill (id, session_id, order_no, operator_id, station_id, channel,
    sub_operator_id, department_id, current_type, started_at, ended_at, duration_s, energy_wh,
    electricity_fee, service_fee, total, rounding_mode, payment_state, fault_codes,
    fault_detail, pile_reported, settled_at, paid_at)
SELECT s.id, s.id, s.order_no, 1, s.station_id, s.channel, s.sub_operator_id,
       s.department_id, 'DC',
       s.started_at, s.stopped_at,
       extract(epoch FROM s.stopped_at - s.started_at)::int, s.meter_stop_wh,
       round(s.meter_stop_wh * 0.0007, 2), round(s.meter_stop_wh * 0.0007, 2),
       2 * round(s.meter_stop_wh * 0.0007, 2), 'ROUND_DOWN',
       CASE WHEN s.state = 'fault' THEN 'fault' WHEN s.id %% 7 = 0 THEN 'owed' ELSE 'paid' END,
       CASE WHEN s.state = 'fault' THEN ARRAY[1 + (s.id / 50) %% 13]::smallint[]
            ELSE '{}'::smallint[] END,
       '', '{}', s.stopped_at, CASE WHEN s.state = 'settled' THEN s.stopped_at END
FROM billing_chargingsession s WHERE s.id BETWEEN %(first)s AND %(last)s;
"""

# Fault code 4, 6 and 7 do not exist: map the generated ones onto real codes.
FIX_CODES_SQL = """
UPDATE billing_bill SET fault_codes = ARRAY[(ARRAY[1,2,3,5,8,9,10,11,12,13,1,2,8])[
    fault_codes[1]]]::smallint[] WHERE cardinality(fault_codes) > 0;
"""


# Rollup rows at the density N bills a year would give (--rollups-of N), for the days the
# timed pages read: 200 stations × 4 channels × 5 firmware versions × (no sub-operator, X,
# Y) per day, their station-day sums, 24 hours × 3 per station-day. Replaces those days'
# rows.
SYNTHETIC_SQL = """
DELETE FROM reports_billday WHERE day BETWEEN %(first)s AND %(last)s;
DELETE FROM reports_stationbillday WHERE day BETWEEN %(first)s AND %(last)s;
DELETE FROM reports_hourload WHERE day BETWEEN %(first)s AND %(last)s;
INSERT INTO reports_billday (day, operator_id, station_id, sub_operator_id, department_id,
    channel, firmware, sessions, energy_wh, energy_sharp_wh, energy_peak_wh, energy_flat_wh,
    energy_valley_wh, electricity_fee, service_fee, total, paid, owed, unpaid, fault_waiting,
    fault_bills, repaired, recovered, charging_s)
SELECT d::date, 1, st, sub, NULL, ch, fw, k, k * 20000, 0, k * 5000, k * 10000, k * 5000,
       k * 14, k * 14, k * 28, k * 24, k * 4, 0, 0, 0, 0, 0, k * 3000
FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') d,
     generate_series(1, 200) st,
     unnest(ARRAY['scan','password','card','partner']) ch,
     unnest(ARRAY['10002','10722','11534','11536','2090100']) fw,
     (VALUES (NULL::bigint), (1), (2)) v(sub),
     (SELECT %(per_row)s::int AS k) kk;
INSERT INTO reports_stationbillday (day, operator_id, station_id, sub_operator_id,
    department_id, sessions, energy_wh, energy_sharp_wh, energy_peak_wh, energy_flat_wh,
    energy_valley_wh, electricity_fee, service_fee, total, paid, owed, unpaid, fault_waiting,
    fault_bills, repaired, recovered, charging_s)
SELECT day, operator_id, station_id, sub_operator_id, department_id, sum(sessions),
       sum(energy_wh), sum(energy_sharp_wh), sum(energy_peak_wh), sum(energy_flat_wh),
       sum(energy_valley_wh), sum(electricity_fee), sum(service_fee), sum(total), sum(paid),
       sum(owed), sum(unpaid), sum(fault_waiting), sum(fault_bills), sum(repaired),
       sum(recovered), sum(charging_s)
FROM reports_billday WHERE day BETWEEN %(first)s AND %(last)s
GROUP BY day, operator_id, station_id, sub_operator_id, department_id;
INSERT INTO reports_hourload (day, operator_id, station_id, sub_operator_id, hour, energy_wh)
SELECT d::date, 1, st, sub, d + make_interval(hours => h), 10000
FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') d,
     generate_series(1, 200) st, generate_series(0, 23) h,
     (VALUES (NULL::bigint), (1), (2)) v(sub);
ANALYZE reports_billday; ANALYZE reports_stationbillday; ANALYZE reports_hourload;
"""


def _bench_url() -> tuple[str, str]:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/chargenet")
    parts = urlsplit(url)
    name = parts.path.lstrip("/") + "_bench_reports"
    return urlunsplit(parts._replace(path="/" + name)), name


def _fresh_database(url: str, name: str) -> None:
    import psycopg

    admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _timed(client, url, query, runs=7) -> tuple[float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert client.get(url, query).status_code == 200  # warm
    times = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as q:
            started = time.perf_counter()
            response = client.get(url, query)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times), max(times), len(q.captured_queries)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--bills", type=int, default=int(os.environ.get("BENCH_REPORT_BILLS", 10_000_000))
    )
    parser.add_argument("--chunk", type=int, default=500_000)
    parser.add_argument(
        "--days",
        type=int,
        default=365,
        help="spread the bills over the last DAYS days (with --bills 1700000 --days 62 the "
        "two months the pages read carry a 10,000,000-bills-a-year network's real bills, "
        "when seeding 10,000,000 takes too long on a shared machine)",
    )
    parser.add_argument(
        "--rollups-of",
        type=int,
        default=0,
        help="then time the pages again on rollup rows synthesized at the density of this "
        "many bills a year (when generating them all takes too long on this machine)",
    )
    parser.add_argument(
        "--time-only",
        action="store_true",
        help="time the pages again on the database a previous run seeded (after a change "
        "to the code: seeding takes minutes)",
    )
    args = parser.parse_args()

    url, name = _bench_url()
    if not args.time_only:
        _fresh_database(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    today = timezone.localdate()
    if args.time_only:
        _report_density(connection)
    else:
        call_command("migrate", verbosity=0)
        _seed_and_rebuild(args, connection, today, name)

    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from orgs.models import Role, Staff
    from orgs.services import roles_sync, staff_assign_role

    setup_test_environment()
    roles_sync()
    Staff.objects.filter(username__in=["bench-op", "bench-sub"]).delete()
    operator_staff = Staff.objects.create_user(
        "bench-op", password="x", operator_id=1, is_staff=True, role=Role.OPERATOR_ADMIN
    )
    sub_staff = Staff.objects.create_user(
        "bench-sub", password="x", operator_id=1, sub_operator_id=1, is_staff=True,
        role=Role.SUB_OPERATOR_STAFF,
    )  # fmt: skip
    for staff in (operator_staff, sub_staff):
        staff_assign_role(staff=staff)
    month_end = today.replace(day=1) - dt.timedelta(days=1)
    month = {"date_from": str(month_end.replace(day=1)), "date_to": str(month_end)}
    checks = [
        ("dashboard, operator staff", operator_staff, reverse("admin:index"), {}, 300),
        ("dashboard, sub-operator staff", sub_staff, reverse("admin:index"), {}, 300),
        ("daily report, one month, operator staff", operator_staff,
         reverse("admin:reports_report", args=["daily"]), month, 1000),
        ("daily report, one month, sub-operator staff", sub_staff,
         reverse("admin:reports_report", args=["daily"]), month, 1000),
    ]  # fmt: skip
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    failed = _time_pages(checks)

    from reports.verify import rollups_verify

    started = time.perf_counter()
    differences = rollups_verify(first_day=month_end.replace(day=1), last_day=month_end)
    print(
        f"reports_verify of {month['date_from']}..{month['date_to']}: "
        f"{time.perf_counter() - started:.1f} s, {len(differences)} differences"
    )
    if args.rollups_of:
        first = month_end.replace(day=1)
        rows_per_day = 200 * 4 * 5 * 3
        per_row = max(1, round(args.rollups_of / 365 / rows_per_day))
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(SYNTHETIC_SQL, {"first": first, "last": today, "per_row": per_row})
        print(
            f"synthetic rollups at the density of {args.rollups_of:,} bills a year for "
            f"{first}..{today} ({per_row} sessions a row, {rows_per_day:,} rows a day): "
            f"{time.perf_counter() - started:.0f} s"
        )
        failed |= _time_pages(checks)
    return 1 if failed or differences else 0


def _seed_and_rebuild(args, connection, today, name) -> None:
    from django.utils import timezone

    first_day = today - dt.timedelta(days=args.days)
    start = dt.datetime.combine(first_day, dt.time(), tzinfo=timezone.get_current_timezone())
    per_year = args.bills * 365 // args.days
    print(
        f"database {name}: seeding {args.bills:,} bills over {first_day}..{today} "
        f"({per_year:,} bills a year at this density)…"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE orgs_operator, orgs_staff RESTART IDENTITY CASCADE")
        cursor.execute(SEED_SQL, {})
        for first in range(1, args.bills + 1, args.chunk):
            last = min(first + args.chunk - 1, args.bills)
            cursor.execute(
                SESSIONS_SQL,
                {"first": first, "last": last, "n": args.bills, "start": start,
                 "span": args.days * 86400},
            )  # fmt: skip
            print(f"  {last:,} bills, {time.perf_counter() - started:.0f} s", flush=True)
        cursor.execute(FIX_CODES_SQL)
        cursor.execute("ANALYZE")
    print(f"  seeded in {time.perf_counter() - started:.1f} s")

    from reports.services.rollups import rollups_rebuild

    started = time.perf_counter()
    bill_rows, fault_rows = rollups_rebuild(first_day=first_day - dt.timedelta(days=1),
                                            last_day=today)  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"reports_rebuild of {args.bills:,} bills: {time.perf_counter() - started:.1f} s, "
        f"{bill_rows:,} daily rows, {fault_rows:,} fault rows"
    )


def _report_density(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), min(started_at), max(started_at) FROM billing_bill")
        n, first, last = cursor.fetchone()
    print(f"timing again on the seeded database: {n:,} bills, {first:%Y-%m-%d}..{last:%Y-%m-%d}")


def _time_pages(checks) -> bool:
    from django.test import Client

    failed = False
    for label, user, page, query, target in checks:
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(user)
        median, worst, queries = _timed(client, page, query)
        verdict = "ok" if median < target else "SLOW"
        failed |= median >= target
        print(
            f"{label}: median {median:.0f} ms, max {worst:.0f} ms, {queries} queries "
            f"(target < {target} ms: {verdict})"
        )
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
