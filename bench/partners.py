"""Benchmark of the T/CEC 102 partner adapter (numbers for the issue's closing note).

    DATABASE_URL=... REDIS_URL=... .venv/bin/python -m bench.partners [--stations N] [--pushes N]

Uses its own database (``<DATABASE_URL's name>_bench_partners``, dropped and created each
run), seeded with 2,000 published stations (one DC pile, two connectors each) and one
partner. Then:

1. query_stations_info: every page of 100 stations as a partner calls it — signed and
   encrypted envelope, POST to /evcs/v1 (Django's test client, no socket), answer
   decrypted and checked — per-page latency and the time for all 2,000 stations;
2. pushes through the outbox: N connector state changes published as domain events,
   consumed (each queues a notification_stationStatus), then delivered over HTTP to the
   fake partner platform on 127.0.0.1, which checks every signature and acknowledges:
   events → queued pushes per second, and acknowledged pushes per second (target 500/s).
   The fake platform runs in a process of its own, as a partner's platform is another
   machine: in ours it would take its decrypting, checking and signing out of the
   sender's share of the interpreter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from urllib.parse import urlsplit, urlunsplit

SEED_SQL = """
INSERT INTO orgs_operator (id, code, name, rounding_mode, created_at, start_min_balance)
VALUES (1, 'bench', 'Bench Operator', 'ROUND_DOWN', now(), 0);

INSERT INTO stations_station (id, operator_id, code, name, address, city, region_code,
    latitude, longitude, time_zone, is_public, password, created_at, hidden_reason)
SELECT i, 1, 'ST' || i, 'Station ' || i, 'Road ' || i, 'Zhongshan', '442001', 22.5, 113.4,
       'Asia/Shanghai', true, '', now(), ''
FROM generate_series(1, %(stations)s) i;

INSERT INTO stations_pile (id, station_id, code, name, vendor, model, serial_number,
    current_type, max_power_kw, firmware_version, protocol, credential_hash, is_published,
    is_online, last_heartbeat_at, last_boot_at, created_at, hidden_reason, firmware_status,
    diagnostics_status)
SELECT i, i, '442001' || lpad(i::text, 14, '0'), '', 'V', 'M', '', 'DC', 120, '11534',
       'ocpp1.6j', '', true, true, now(), NULL, now(), '', '', ''
FROM generate_series(1, %(stations)s) i;

INSERT INTO stations_connector (id, pile_id, number, rated_power_kw, standard, status,
    error_code, status_at)
SELECT i, 1 + (i - 1) / 2, 1 + (i - 1) %% 2, 60, 'GB/T DC', 'Available', '', now()
FROM generate_series(1, 2 * %(stations)s) i;
"""


def _serve_partner(credentials: dict, conn) -> None:
    """The fake partner platform in a child process: sends its URL, then answers how many
    pushes of an operation it acknowledged, until asked to stop."""
    from interconnect.fake import FakePartnerPlatform

    platform = FakePartnerPlatform(credentials).start()
    conn.send(platform.url)
    import time

    try:
        while (operation := conn.recv()) is not None:
            conn.send((len(platform.pushes(operation)), time.process_time()))
    except EOFError:  # the bench ended without stopping it (it failed)
        pass
    platform.stop()


class PartnerProcess:
    def __init__(self, credentials: dict):
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve_partner, args=(credentials, child), daemon=True
        )
        self.process.start()
        self.url = self.conn.recv()

    def acknowledged(self, operation: str) -> tuple[int, float]:
        """How many pushes of ``operation`` it acknowledged, and its CPU seconds so far."""
        self.conn.send(operation)
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send(None)
        self.process.join(10)


def _bench_url() -> tuple[str, str]:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/chargenet")
    parts = urlsplit(url)
    name = parts.path.lstrip("/") + "_bench_partners"
    return urlunsplit(parts._replace(path="/" + name)), name


def _ensure_database(url: str, name: str) -> None:
    import psycopg

    admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--pushes", type=int, default=2000)
    args = parser.parse_args()

    url, name = _bench_url()
    _ensure_database(url, name)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client

    from chargenet.events import events_deliver, events_publish
    from chargenet.models import OutboxEvent
    from interconnect.codec import answer_open
    from interconnect.fake import FakePartnerPlatform
    from interconnect.models import Interconnection, Push, PushState
    from interconnect.services.partners import interconnection_create
    from interconnect.services.pushes import pushes_deliver_due
    from orgs.models import Operator
    from stations.events import PILE_STATUS_CHANGED

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    print(f"database {name}: seeding {args.stations:,} published stations…")
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL, {"stations": args.stations})
        for table in ("orgs_operator", "stations_station", "stations_pile", "stations_connector"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    link, credentials = interconnection_create(
        name="Bench partner",
        operator_id_wire="BENCH0001",
        base_url="http://127.0.0.1:9/evcs/v1",
        enabled=True,
        operator=Operator.objects.get(),
    )
    platform = FakePartnerPlatform(credentials.as_wire())  # signs our calls as the partner
    partner = PartnerProcess(credentials.as_wire())  # serves our pushes
    Interconnection.objects.filter(pk=link.pk).update(base_url=partner.url)
    client = Client()

    def call(operation: str, data: dict, token: str = ""):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = client.post(
            f"/evcs/v1/{operation}",
            platform.envelope(data),
            content_type="application/json",
            headers=headers,
        )
        return answer_open(response.json(), secrets=platform.mine)

    token = call(
        "query_token",
        {"OperatorID": "BENCH0001", "OperatorSecret": credentials.inbound.operator_secret},
    ).data["AccessToken"]

    # 1. query_stations_info over every station, 100 a page.
    pages, seen = [], 0
    started = time.perf_counter()
    page = 1
    while True:
        t0 = time.perf_counter()
        answer = call("query_stations_info", {"PageNo": page, "PageSize": 100}, token)
        pages.append(time.perf_counter() - t0)
        seen += len(answer.data["StationInfos"])
        if page >= answer.data["PageCount"]:
            break
        page += 1
    total = time.perf_counter() - started
    assert seen == args.stations, seen
    print(
        f"query_stations_info: {seen:,} stations in {len(pages)} pages of 100, "
        f"{total:.2f} s in all; per page median {statistics.median(pages) * 1000:.0f} ms, "
        f"max {max(pages) * 1000:.0f} ms"
    )

    # 2. Pushes through the outbox: events → consumer → push rows → HTTP → acknowledged.
    n = args.pushes
    started = time.perf_counter()
    with transaction.atomic():
        events = events_publish(
            kind=PILE_STATUS_CHANGED,
            events=[
                (
                    pile_id,
                    {
                        "pile_id": pile_id,
                        "station_id": pile_id,
                        "connector_number": 1,
                        "state": "Charging",
                        "error_code": "",
                    },
                )
                for pile_id in (1 + i % args.stations for i in range(n))
            ],
        )
    # As the after-commit task does (chargenet.tasks.events_deliver_task).
    events_deliver(event_ids=[event.pk for event in events])
    queued = time.perf_counter() - started
    assert Push.objects.filter(state=PushState.PENDING).count() == n
    _n, partner_cpu = partner.acknowledged("notification_stationStatus")
    started, cpu = time.perf_counter(), time.process_time()
    counts = pushes_deliver_due()
    delivered, cpu = time.perf_counter() - started, time.process_time() - cpu
    acked, partner_cpu_after = partner.acknowledged("notification_stationStatus")
    partner_cpu = partner_cpu_after - partner_cpu
    assert counts == {"delivered": n} and acked == n, (counts, acked)
    assert not OutboxEvent.objects.filter(delivered_at__isnull=True).exists()
    partner.stop()
    print(
        f"outbox → pushes: {n:,} events consumed into pushes in {queued:.2f} s "
        f"({n / queued:,.0f}/s); delivered and acknowledged in {delivered:.2f} s "
        f"({n / delivered:,.0f}/s, target 500/s); end to end {n / (queued + delivered):,.0f}/s"
    )
    # The machine is shared: the worker's own CPU time says what one free core would do
    # (the database server's time is not in it).
    print(
        f"delivery used {cpu:.2f} s of this process's CPU for {n:,} pushes "
        f"({cpu / n * 1000:.2f} ms a push: {n / cpu:,.0f}/s on one free core); "
        f"the fake partner used {partner_cpu:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
