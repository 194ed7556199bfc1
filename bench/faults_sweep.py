"""Benchmark of the fault desk on PostgreSQL (numbers for the issue's closing note).

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.faults_sweep [--sessions N]

Uses its own database (``<DATABASE_URL's name>_bench``, dropped and created each run).
Seeds with INSERT … SELECT over generate_series:

- 200 stations, 5,000 piles, 10,000 connectors, 10,000 members;
- 1,000,000 sessions, of which 10,000 still open: 30 % of those silent for 40–200 minutes,
  1,000 with the connector back to Available, 500 on piles that rebooted, 500 on piles
  offline; three meter samples and Preparing/Charging statuses per open session;

then times the lost-bill sweep (target < 5 s, query count independent of the number of
sessions), and, after adding 100,000 fault cases, the fault-bill queue changelist as a
superuser and as operator staff (target < 300 ms), and one fault bill page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from urllib.parse import urlsplit, urlunsplit


def _bench_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/chargenet")
    parts = urlsplit(url)
    name = parts.path.lstrip("/") + "_bench"
    return urlunsplit(parts._replace(path="/" + name)), name


def _ensure_database(url: str, name: str) -> None:
    import psycopg

    admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # A fresh database each run: migrations and data exactly as this checkout has them.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


SEED_SQL = """
INSERT INTO orgs_operator (id, code, name, rounding_mode, created_at)
VALUES (1, 'bench', 'Bench Operator', 'ROUND_DOWN', now());

INSERT INTO stations_station (id, operator_id, code, name, address, city, region_code,
    latitude, longitude, time_zone, is_public, password, created_at, hidden_reason)
SELECT i, 1, 'ST' || i, 'Station ' || i, 'Road ' || i, 'Zhongshan', '442001', 22.5, 113.4,
       'Asia/Shanghai', true, '', now(), ''
FROM generate_series(1, 200) i;

INSERT INTO stations_pile (id, station_id, code, name, vendor, model, serial_number,
    current_type, max_power_kw, firmware_version, protocol, credential_hash, is_published,
    is_online, last_heartbeat_at, last_boot_at, created_at, hidden_reason)
SELECT i, 1 + (i - 1) %% 200, '442001' || lpad(i::text, 14, '0'), '', 'V', 'M', '',
       'DC', 60, (ARRAY['10002','10722','11534','11536','2090100'])[1 + i %% 5], 'ocpp1.6j', '',
       true, true, %(now)s, NULL, now(), ''
FROM generate_series(1, 5000) i;

INSERT INTO stations_connector (id, pile_id, number, rated_power_kw, standard, status,
    error_code, status_at)
SELECT i, 1 + (i - 1) / 2, 1 + (i - 1) %% 2, 60, 'GB/T DC', 'Charging', '', %(now)s
FROM generate_series(1, 10000) i;

INSERT INTO orgs_member (id, operator_id, phone, wechat_openid, nickname, status,
    is_virtual, token, created_at, hidden_reason)
SELECT i, 1, '138' || lpad(i::text, 8, '0'), 'openid-' || i, '', 'active', false,
       'T' || lpad(i::text, 9, '0'), now(), ''
FROM generate_series(1, 10000) i;

-- 990,000 settled sessions over the last 90 days, then 10,000 open ones (one per connector).
INSERT INTO billing_chargingsession (id, order_no, operator_id, station_id, pile_id,
    connector_id, channel, id_tag, member_id, vin, state, started_at, stopped_at,
    meter_start_wh, meter_stop_wh, stop_reason, stop_received_at, pile_reported,
    last_sample_at, created_at, updated_at)
SELECT i, '2026' || lpad(i::text, 16, '0'), 1, 1 + ((c - 1) / 2) %% 200, 1 + (c - 1) / 2, c,
       (ARRAY['scan','password','card','partner'])[1 + i %% 4], 'TAG' || i,
       CASE WHEN open THEN c END, '',
       CASE WHEN open THEN 'charging' ELSE 'settled' END,
       t0, CASE WHEN open THEN NULL ELSE t0 + interval '1 hour' END,
       1000, CASE WHEN open THEN NULL ELSE 21000 END, CASE WHEN open THEN '' ELSE 'Local' END,
       CASE WHEN open THEN NULL ELSE t0 + interval '1 hour' END, '{}',
       CASE WHEN open THEN last_sample ELSE t0 + interval '59 minutes' END, t0, t0
FROM (
    SELECT i, 1 + (i - 1) %% 10000 AS c, i > %(closed)s AS open,
           CASE WHEN i > %(closed)s
                THEN %(now)s - make_interval(mins => 240 + (i %% 60))
                ELSE %(now)s - make_interval(secs => (%(total)s - i) * 7 + 86400) END AS t0,
           CASE WHEN i > %(closed)s AND i %% 10 < 3
                THEN %(now)s - make_interval(mins => 40 + (i %% 160))
                ELSE %(now)s - make_interval(mins => i %% 20) END AS last_sample
    FROM generate_series(1, %(total)s) i
) s;

INSERT INTO billing_metersample (session_id, at, energy_wh, context)
SELECT s.id, s.last_sample_at - make_interval(mins => k * 10), 1000 + (3 - k) * 4000,
       'Sample.Periodic'
FROM billing_chargingsession s, generate_series(0, 2) k
WHERE s.state = 'charging';

INSERT INTO stations_statusevent (pile_id, connector_number, status, error_code, info,
    vendor_error_code, pile_time, received_at)
SELECT s.pile_id, c.number, st.status, 'NoError', '', '', s.created_at + st.offs,
       s.created_at + st.offs
FROM billing_chargingsession s
JOIN stations_connector c ON c.id = s.connector_id
CROSS JOIN (VALUES ('Preparing', interval '-1 minute'), ('Charging', interval '0')) st(status, offs)
WHERE s.state = 'charging';

-- 1,000 connectors back to Available without a stop.
INSERT INTO stations_statusevent (pile_id, connector_number, status, error_code, info,
    vendor_error_code, pile_time, received_at)
SELECT s.pile_id, c.number, 'Available', 'NoError', '', '', %(now)s - interval '5 minutes',
       %(now)s - interval '5 minutes'
FROM billing_chargingsession s JOIN stations_connector c ON c.id = s.connector_id
WHERE s.state = 'charging' AND s.id %% 10 = 5;

-- 500 piles rebooted, 500 piles offline.
UPDATE stations_pile SET last_boot_at = %(now)s - interval '3 minutes' WHERE id %% 10 = 7;
UPDATE stations_pile SET is_online = false WHERE id %% 10 = 8;
INSERT INTO stations_pilefault (pile_id, kind, connector_number, error_code, started_at)
SELECT id, 'offline', 0, '', %(now)s - interval '30 minutes' FROM stations_pile WHERE id %% 10 = 8;
"""

CASES_SQL = """
INSERT INTO faults_faultcase (session_id, operator_id, station_id, sub_operator_id, channel,
    codes, blocks_payment, state, source, findings, pile_values, platform_values, proposal,
    firmware, detected_at)
SELECT s.id, s.operator_id, s.station_id, s.sub_operator_id, s.channel,
       ((ARRAY['{1}', '{2}', '{9,10}', '{5,9}', '{9,10,11}', '{8}', '{10}', '{3}',
               '{12}'])[1 + s.id %% 9])::smallint[],
       s.id %% 9 <> 6,
       (ARRAY['open','open','open','repaired','dismissed','escalated'])[1 + s.id %% 6],
       'settlement', '[]', '{}', '{}', '{}',
       (ARRAY['10002','10722','11534','11536','2090100'])[1 + s.id %% 5], s.stopped_at
FROM billing_chargingsession s
WHERE s.state = 'settled' AND s.id <= %(n)s;
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=10_000)
    parser.add_argument("--cases", type=int, default=100_000)
    args = parser.parse_args()

    url, name = _bench_url()
    _ensure_database(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, setup_test_environment
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    now = timezone.now()
    print(f"database {name}: seeding {args.sessions:,} sessions ({args.open:,} open)…")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE orgs_operator, orgs_staff, chargenet_auditlog RESTART IDENTITY CASCADE"
        )
        cursor.execute(
            SEED_SQL,
            {"now": now, "total": args.sessions, "closed": args.sessions - args.open},
        )
        for table in ("billing_chargingsession", "stations_statusevent", "stations_pile"):
            cursor.execute(f"ANALYZE {table}")
        for seq_table in ("billing_chargingsession", "orgs_member", "stations_pile",
                          "stations_connector", "stations_station", "orgs_operator"):  # fmt: skip
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{seq_table}', 'id'), "
                f"(SELECT max(id) FROM {seq_table}))"
            )
    print(f"  seeded in {time.perf_counter() - started:.1f} s")

    from chargenet.celery import app
    from faults.services.sweep import lost_bills_sweep

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = lost_bills_sweep(now=now)
        elapsed = time.perf_counter() - started
    print(
        f"sweep: {elapsed:.2f} s, {len(queries.captured_queries)} queries, "
        f"{result.candidates:,} candidates, {result.lost:,} lost, by code {dict(result.by_code)}"
    )
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        again = lost_bills_sweep(now=now)
        elapsed = time.perf_counter() - started
    print(
        f"sweep again (nothing new): {elapsed:.3f} s, {len(queries.captured_queries)} "
        f"queries, {again.lost} lost"
    )
    app.control.purge()  # the settlements and notifications it queued: no worker here

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM faults_faultaction")
        cursor.execute("DELETE FROM faults_notification")
        cursor.execute("DELETE FROM faults_faultcase")
        cursor.execute(CASES_SQL, {"n": args.cases + 10})
        cursor.execute("ANALYZE faults_faultcase")
        cursor.execute("SELECT count(*) FROM faults_faultcase")
        (cases,) = cursor.fetchone()
    print(f"fault cases: {cases:,}")

    from django.test import Client
    from django.urls import reverse

    from orgs.models import Staff

    setup_test_environment()
    superuser = Staff.objects.create_superuser("bench-admin", password="x")
    operator_staff = Staff.objects.create_user(
        "bench-cs", password="x", operator_id=1, is_staff=True
    )
    from django.contrib.auth.models import Permission

    operator_staff.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="faults")
    )
    queue = reverse("admin:faults_faultcase_changelist")
    for label, user, query in [
        ("superuser", superuser, {}),
        ("operator staff", operator_staff, {}),
        ("operator staff, code 9 + firmware", operator_staff, {"code": "9", "firmware": "2090100"}),
        ("operator staff, open", operator_staff, {"state": "open"}),
    ]:
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(user)
        assert client.get(queue, query).status_code == 200  # warm
        times = []
        for _ in range(7):
            with CaptureQueriesContext(connection) as q:
                started = time.perf_counter()
                response = client.get(queue, query)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        print(
            f"queue ({label}): median {statistics.median(times):.0f} ms, "
            f"max {max(times):.0f} ms, {len(q.captured_queries)} queries"
        )
    from faults.models import FaultCase

    case = FaultCase.objects.order_by("-id").first()
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(operator_staff)
    page = reverse("admin:faults_faultcase_change", args=[case.pk])
    client.get(page)
    started = time.perf_counter()
    assert client.get(page).status_code == 200
    print(f"fault bill page: {(time.perf_counter() - started) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
