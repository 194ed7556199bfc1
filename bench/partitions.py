"""Growth of the frame journal and the meter samples: `python -m bench.partitions
[--frames 5000000] [--days 20] [--insert 200000]` on a scratch database (`make bench` gives
it one).

1. Insert cost, before/after: the same rows COPYed into a plain table shaped as before
   (0001's indexes; the samples' own session index) and into the partitioned table.
2. Bytes on disk per frame and per sample (table, TOAST and indexes).
3. The log search (the admin's queries, newest first, a page of 100) by order number and
   by pile over ``--frames`` frames spread over ``--days`` days, generated in SQL by
   the database itself (realistic actions, payloads, order numbers, 10,000 pile codes).
4. Retention: dropping one day's partition, against DELETE of a day from a plain table.

The issue asks for the search over 100 million frames; on a 2-core machine shared by
others that takes hours to generate, so the default is smaller: pass ``--frames``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")
django.setup()

from django.db import connection  # noqa: E402
from django.db.models import Q  # noqa: E402
from django.utils import timezone  # noqa: E402

from billing.models.sessions import METER_SAMPLE_PARTITIONS  # noqa: E402
from chargenet.partitions import partitions_drop_before, partitions_ensure  # noqa: E402
from protocol.models import FRAME_PARTITIONS, Frame  # noqa: E402
from protocol.selectors import frames_narrowed  # noqa: E402

PILES = 10_000
ACTIONS = "ARRAY['Heartbeat','MeterValues','StatusNotification','MeterValues','StartTransaction','StopTransaction']"  # noqa: E501
# One generated frame (number i, at time t): two of three carry an order number, like a
# pile that charges most of the time.
FRAME_SELECT = f"""
SELECT t, '4420' || lpad((i %% {PILES})::text, 16, '0'),
       CASE WHEN i %% 2 = 0 THEN 'in' ELSE 'out' END, CASE WHEN i %% 2 = 0 THEN 2 ELSE 3 END,
       ({ACTIONS})[1 + (i / 2) %% 6], md5(i::text),
       CASE WHEN i %% 2 = 1 THEN '{{}}'::jsonb ELSE jsonb_build_object(
         'connectorId', 1, 'transactionId', i / 60,
         'meterValue', jsonb_build_array(jsonb_build_object(
           'timestamp', to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'sampledValue', jsonb_build_array(jsonb_build_object(
             'value', (i %% 900000)::text, 'measurand', 'Energy.Active.Import.Register'))))) END,
       '', '', CASE WHEN i %% 3 > 0 THEN i / 60 END,
       CASE WHEN i %% 3 > 0 THEN lpad((i / 60)::text, 20, '2') ELSE '' END, 'node-1'
"""
FRAME_COLUMNS = (
    "at, pile_code, direction, message_type, action, unique_id, payload, raw, error_code, "
    "transaction_id, order_no, node"
)
# Shaped as the journal was before partitioning (protocol 0001's indexes).
PLAIN_FRAMES = """
CREATE TABLE bench_frame_plain (LIKE protocol_frame INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE bench_frame_plain ADD PRIMARY KEY (id);
CREATE INDEX ON bench_frame_plain (at);
CREATE INDEX ON bench_frame_plain (pile_code);
CREATE INDEX ON bench_frame_plain (pile_code varchar_pattern_ops);
CREATE INDEX ON bench_frame_plain (action);
CREATE INDEX ON bench_frame_plain (action varchar_pattern_ops);
CREATE INDEX ON bench_frame_plain (order_no);
CREATE INDEX ON bench_frame_plain (order_no varchar_pattern_ops);
CREATE INDEX ON bench_frame_plain (pile_code, at DESC);
CREATE INDEX ON bench_frame_plain (action, at DESC);
"""
PLAIN_SAMPLES = """
CREATE TABLE bench_sample_plain (LIKE billing_metersample INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE bench_sample_plain ADD PRIMARY KEY (id);
CREATE INDEX ON bench_sample_plain (session_id);
ALTER TABLE bench_sample_plain ADD FOREIGN KEY (session_id)
  REFERENCES billing_chargingsession (id) DEFERRABLE INITIALLY DEFERRED;
CREATE UNIQUE INDEX ON bench_sample_plain (session_id, at);
"""
SAMPLE_COLUMNS = "session_id, at, energy_wh, power_w, current_a, voltage_v, soc, context"
SAMPLE_SELECT = (
    "SELECT ('{{{ids}}}'::int[])[1 + i %% {count}], t, i * 10.5, 7000.0, 32.00, 220.00, NULL, "
    "'Sample.Periodic'"
)


def sql(statement: str, params=None):
    if params is None and ";" in statement.strip().rstrip(";"):
        for part in statement.split(";"):
            if part.strip():
                sql(part)
        return None
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def timed(statement: str, params=None) -> float:
    t = time.perf_counter()
    sql(statement, params)
    return time.perf_counter() - t


def generate(table: str, columns: str, select: str, *, first: int, count: int, start, span):
    """Rows ``first`` … ``first + count`` spread evenly over ``span`` from ``start``
    (``select``'s own percent signs doubled: the statement has parameters)."""
    step = span / count
    return timed(
        f"INSERT INTO {table} ({columns}) {select} FROM (SELECT i, %s::timestamptz + "
        f"(i - %s) * %s::interval AS t FROM generate_series(%s, %s) i) g",
        [start, first, step, first, first + count - 1],
    )


def size(table: str) -> int:
    """Bytes of a table with its partitions, TOAST and indexes."""
    return sql(
        "SELECT coalesce(sum(pg_total_relation_size(relid)), pg_total_relation_size(%s)) "
        "FROM pg_partition_tree(%s::regclass)",
        [table, table],
    )[0][0]


def sessions_for_samples(count: int) -> list[int]:
    """Sessions the generated samples belong to (their foreign key): ``count`` starts on
    one bench pile, each superseding the one before."""
    from bench.gateway import network
    from billing.services import sessions
    from protocol.ocpp16 import words
    from stations.services import live

    code, token = network(1)[0]
    pile = live.pile_login(code=code, password=None).pile
    started = timezone.now() - dt.timedelta(days=1)
    return [
        sessions.session_start(
            pile=pile, connector_number=1, credential=words.credential(token),
            meter_start_wh=0, started_at=started + dt.timedelta(seconds=n),
        ).session_id
        for n in range(count)
    ]  # fmt: skip


def search_ms(query) -> tuple[float, float]:
    times = []
    for _ in range(5):
        t = time.perf_counter()
        list(query())
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times[1:]), max(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5_000_000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--insert", type=int, default=200_000, help="rows for insert costs")
    parser.add_argument(
        "--search-only",
        action="store_true",
        help="only time the log search on the frames a previous run left in this database",
    )
    args = parser.parse_args()
    if args.search_only:
        log_search()
        return
    today = timezone.localdate()
    day0 = today - dt.timedelta(days=args.days + 2)
    midnight = timezone.make_aware(dt.datetime.combine(day0, dt.time()))
    for spec in (FRAME_PARTITIONS, METER_SAMPLE_PARTITIONS):
        partitions_ensure(spec=spec, since=day0, through=today)
    sql(PLAIN_FRAMES)
    sql(PLAIN_SAMPLES)
    ids = sessions_for_samples(100)
    sample_select = SAMPLE_SELECT.format(ids=",".join(map(str, ids)), count=len(ids))
    n = args.insert
    print(f"load average: {os.getloadavg()[0]:.1f}; insert costs, {n} rows each, one day")

    def insert_cost(name, plain, parted, columns, select):
        before = generate(plain, columns, select, first=1, count=n, start=midnight,
                          span=dt.timedelta(days=1))  # fmt: skip
        after = generate(parted, columns, select, first=1, count=n, start=midnight,
                         span=dt.timedelta(days=1))  # fmt: skip
        sql(f"ANALYZE {plain}; ANALYZE {parted}")
        b, a = size(plain), size(parted)
        print(
            f"{name}: insert {before / n * 1e6:.1f} µs/row before, {after / n * 1e6:.1f} "
            f"µs/row after; on disk {b / n:.0f} bytes/row before, {a / n:.0f} bytes/row after"
        )

    insert_cost("frames", "bench_frame_plain", "protocol_frame", FRAME_COLUMNS, FRAME_SELECT)
    insert_cost("meter samples", "bench_sample_plain", "billing_metersample", SAMPLE_COLUMNS,
                sample_select)  # fmt: skip

    # Retention: one day, dropped whole vs deleted from the plain table.
    next_day = midnight + dt.timedelta(days=1)
    deleted = timed("DELETE FROM bench_frame_plain WHERE at < %s", [next_day])
    counting = timed(f"SELECT count(*) FROM {FRAME_PARTITIONS.name(day0)}")
    t = time.perf_counter()
    removed = partitions_drop_before(spec=FRAME_PARTITIONS, before=next_day)
    dropped = time.perf_counter() - t
    print(f"retention of one day ({removed} frames): partition counted and dropped in "
          f"{dropped * 1000:.0f} ms (counting alone {counting * 1000:.0f} ms); DELETE from a "
          f"plain table {deleted * 1000:.0f} ms, and its dead rows are left to vacuum")  # fmt: skip

    # The log search over many frames.
    total = args.frames
    per_day = total // args.days
    t = time.perf_counter()
    for d in range(args.days):
        generate("protocol_frame", FRAME_COLUMNS, FRAME_SELECT, first=1 + d * per_day,
                 count=per_day, start=midnight + dt.timedelta(days=2 + d),
                 span=dt.timedelta(days=1))  # fmt: skip
        print(f"  generated {(d + 1) * per_day} frames", end="\r", flush=True)
    took = time.perf_counter() - t
    print(f"generated {args.frames} frames over {args.days} days in {took:.0f} s")
    log_search()


def log_search() -> None:
    """The admin's log searches over every frame in the journal."""
    sql("ANALYZE protocol_frame")
    frames = sql("SELECT count(*) FROM protocol_frame")[0][0]
    print(f"{frames} frames, {size('protocol_frame') / frames:.0f} bytes/frame on disk; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    order_no = sql("SELECT order_no FROM protocol_frame WHERE order_no <> '' "
                   "ORDER BY at DESC LIMIT 1 OFFSET 5000")[0][0]  # fmt: skip
    pile = "4420" + "7".zfill(16)
    # The admin's log search (FrameAdmin.get_search_results), newest first, one page: an
    # order number's frames narrowed first (`frames_narrowed`), a pile's by its index.
    by_order = Q(order_no=order_no)
    by_pile = Q(pile_code=pile)

    def page(match):
        narrowed = frames_narrowed(match) if match is by_order else match
        return Frame.objects.filter(narrowed).order_by("-at", "-id")[:100]

    for name, match in (("order number", by_order), ("pile", by_pile)):
        median, worst = search_ms(lambda match=match: page(match))
        print(f"log search by {name} over {frames} frames: median {median:.1f} ms, "
              f"worst {worst:.1f} ms")  # fmt: skip
    for name, match in (("order number", by_order), ("pile", by_pile)):
        plan = page(match).explain(analyze=True, summary=True)
        times = [line.strip() for line in plan.splitlines() if line.endswith(" ms")]
        print(f"  by {name}, in the database: {'; '.join(times[-2:])}")
    # The session page: its order number's frames, oldest first.
    median, worst = search_ms(
        lambda: Frame.objects.filter(frames_narrowed(by_order)).order_by("at", "id")[:500]
    )
    print(f"a session's frames by order number: median {median:.1f} ms, worst {worst:.1f} ms")


if __name__ == "__main__":
    main()
