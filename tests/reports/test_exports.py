"""Excel and CSV exports: exact cells and formats, totals, the filters sheet; small exports
at once, large ones as a job only their author downloads; the bills list exports exactly
what each staff member's list shows."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import translation
from openpyxl import load_workbook

from billing.models import Bill, ChargingSession, PaymentState
from chargenet.models import AuditLog
from reports.exports.csv import csv_write
from reports.exports.models import ExportJob
from reports.exports.services import export_job_run, export_jobs_resume_stale
from reports.exports.tabular import Column
from reports.exports.xlsx import xlsx_write
from reports.tasks import export_job_run_task
from tests.admin_forms import admin_messages, signed_in
from tests.world import build_world

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class Sample:
    """A tabular of ``n`` rows whose cells follow from the row number."""

    n: int
    slug: str = "sample"
    title: str = "Sample"
    columns: list = field(
        default_factory=lambda: [
            Column("name", "name", "text"),
            Column("count", "count", "int"),
            Column("amount", "amount (yuan)", "yuan"),
            Column("energy", "energy (kWh)", "kwh"),
            Column("rate", "rate", "percent"),
            Column("day", "day", "date"),
            Column("at", "at", "datetime"),
        ]
    )

    def rows(self):
        for i in range(self.n):
            yield (
                f"station {i}",
                i,
                D(i) / 100,
                D(i) / 1000,
                D("12.5"),
                dt.date(2026, 11, 1) + dt.timedelta(days=i % 30),
                dt.datetime(2026, 11, 1, 8, tzinfo=SHANGHAI) + dt.timedelta(minutes=i),
            )

    def totals(self):
        return (None, self.n, sum(D(i) / 100 for i in range(self.n)), None, None, None, None)

    def filters_used(self):
        return [("station", "=HYPERLINK(1)"), ("day", "2026-11")]


def _xlsx(tabular) -> bytes:
    out = io.BytesIO()
    xlsx_write(tabular, out, exported_at=dt.datetime(2026, 11, 29, 4, 5, 6, tzinfo=dt.UTC))
    return out.getvalue()


def test_the_workbook_has_typed_cells_formats_frozen_header_totals_and_filters():
    book = load_workbook(io.BytesIO(_xlsx(Sample(3000))))
    data, filters = book.worksheets
    assert data.title == "Sample" and filters.title == "Filters"
    assert data.freeze_panes == "A2"
    header = [c.value for c in data[1]]
    assert header == ["name", "count", "amount (yuan)", "energy (kWh)", "rate", "day", "at"]
    assert all(c.font.b for c in data[1])
    row = data[1235]  # the data row of i = 1233
    assert [c.value for c in row] == [
        "station 1233",
        1233,
        12.33,
        1.233,
        12.5,
        # Excel has no zones: the station's wall clock, read back as naive times.
        dt.datetime(2026, 11, 4),  # noqa: DTZ001
        dt.datetime(2026, 11, 1, 8) + dt.timedelta(minutes=1233),  # noqa: DTZ001
    ]
    assert [c.number_format for c in row] == [
        "General",
        "0",
        "0.00",
        "0.000",
        '0.00"%"',
        "yyyy-mm-dd",
        "yyyy-mm-dd hh:mm:ss",
    ]
    assert data.max_row == 3002  # header, 3000 rows, totals
    totals = data[3002]
    assert [c.value for c in totals] == ["Total", 3000, 44985, None, None, None, None]
    assert totals[2].number_format == "0.00" and totals[0].font.b
    assert [[c.value for c in r] for r in filters.iter_rows()] == [
        ["Sample", None],
        ["station", "=HYPERLINK(1)"],
        ["day", "2026-11"],
        ["Exported at", "2026-11-29 12:05:06 CST"],
        ["Rows", 3000],
    ]
    # A text starting with "=" stays text: it never runs as a formula.
    assert filters["B2"].data_type == "s"


@dataclass
class Awkward(Sample):
    """Values the fast row writer must escape or skip as openpyxl would."""

    def rows(self):
        yield ("=HYPERLINK(1)", None, D("1.50"), None, None, None, None)
        yield ("  a <b> & c\x07 ", 2, None, D("0.001"), D("0"), dt.date(2026, 11, 2), None)
        yield ("", 3, D("-0.01"), D("12345678.123"), D("100.00"), None, None)

    def totals(self):
        return None


def test_the_fast_rows_are_typed_escaped_and_sparse_like_openpyxls():
    data = load_workbook(io.BytesIO(_xlsx(Awkward(0)))).worksheets[0]
    rows = [[(c.value, c.number_format, c.data_type) for c in r] for r in data.iter_rows(min_row=2)]
    assert [[v for v, _f, _t in r] for r in rows] == [
        ["=HYPERLINK(1)", None, 1.5, None, None, None, None],
        ["  a <b> & c ", 2, None, 0.001, 0, dt.datetime(2026, 11, 2), None],  # noqa: DTZ001
        [None, 3, -0.01, 12345678.123, 100, None, None],
    ]
    assert rows[0][0][2] == "s"  # text, not a formula
    assert [f for _v, f, _t in rows[1]][1:6] == ["0", "General", "0.000", '0.00"%"', "yyyy-mm-dd"]


def test_headers_are_chinese_in_zh_hans():
    from reports.exports.changelists import BillsTabular

    with translation.override("zh-hans"):
        titles = [str(f.column.title) for f in BillsTabular.fields]
    assert titles[:3] == ["订单号", "站点", "充电桩"]
    assert titles[14:17] == ["电费（元）", "服务费（元）", "总金额（元）"]


def test_csv_has_the_bom_header_rows_to_their_places_and_totals():
    out = io.StringIO()
    assert csv_write(Sample(2), out) == 2
    text = out.getvalue()
    assert text.startswith("\ufeff")
    assert list(csv.reader(io.StringIO(text[1:]))) == [
        ["name", "count", "amount (yuan)", "energy (kWh)", "rate", "day", "at"],
        ["station 0", "0", "0.00", "0.000", "12.50", "2026-11-01", "2026-11-01 08:00:00"],
        ["station 1", "1", "0.01", "0.001", "12.50", "2026-11-02", "2026-11-01 08:01:00"],
        ["Total", "2", "0.01", "", "", "", ""],
    ]


# ---- the bills list ------------------------------------------------------------------


def _bill(station, *, n: int, total: str, energy_wh: str, sub_operator=None, **kw) -> Bill:
    pile = station.piles.first()
    started = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC) + dt.timedelta(hours=n)
    session = ChargingSession.objects.create(
        order_no=f"2026112000000000{n:04d}",
        operator=station.operator,
        station=station,
        pile=pile,
        connector=pile.connectors.first(),
        protocol_ref=str(n),
        id_tag="T",
        state="settled",
        started_at=started,
        stopped_at=started + dt.timedelta(minutes=90),
        meter_start_wh=0,
        meter_stop_wh=D(energy_wh),
        sub_operator=sub_operator,
    )
    total = D(total)
    return Bill.objects.create(
        session=session,
        order_no=session.order_no,
        operator=station.operator,
        station=station,
        channel="scan",
        sub_operator=sub_operator,
        current_type="DC",
        started_at=started,
        ended_at=started + dt.timedelta(minutes=90),
        duration_s=5400,
        energy_wh=D(energy_wh),
        electricity_fee=total - D("1.00"),
        service_fee=D("1.00"),
        total=total,
        rounding_mode="ROUND_DOWN",
        payment_state=PaymentState.PAID,
        settled_at=started + dt.timedelta(minutes=91),
        **kw,
    )


@pytest.fixture
def bills(db):
    world = build_world()
    rows = {
        "x1": _bill(
            world["s1"], n=1, total="33.02", energy_wh="30123.4", sub_operator=world["sub_x"]
        ),
        "a2": _bill(world["s2"], n=2, total="10.50", energy_wh="9000"),
        "b3": _bill(world["s3"], n=3, total="7.00", energy_wh="5000"),
    }
    return world, rows


def _export(client, user, fmt="csv", **params):
    response = client.get(reverse("admin:billing_bill_export", args=[fmt]), params)
    return response


def _csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))


@pytest.mark.parametrize(
    ("user", "orders"),
    [
        ("admin_a", ["20261120000000000002", "20261120000000000001"]),
        ("subop_x", ["20261120000000000001"]),
        ("subop_y", []),
        ("admin_b", ["20261120000000000003"]),
    ],
)
def test_the_bills_export_holds_exactly_the_bills_the_list_shows(client, bills, user, orders):
    world, _rows = bills
    signed_in(client, world[user])
    listed = client.get(reverse("admin:billing_bill_changelist"))
    assert [b.order_no for b in listed.context["cl"].result_list] == orders
    # From any page of the list: the export is all of its pages.
    rows = _csv_rows(_export(client, user, p="7"))
    assert [r[0] for r in rows[1:-1]] == orders
    assert rows[-1][0] == f"Total: {len(orders)} bills"


def test_anonymous_gets_no_export(client, bills):
    response = _export(client, None)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_bill_row_has_every_field_on_the_station_clock(client, bills):
    world, _rows = bills
    signed_in(client, world["admin_a"])
    exported = _csv_rows(_export(client, "admin_a", station__id__exact=world["s1"].pk))
    assert exported[0][:4] == ["order number", "station", "pile", "connector"]
    assert exported[1] == [
        "20261120000000000001",
        "S1",
        "44200100000000000001",
        "1",
        "scan (WeChat)",
        "",
        "",
        "",
        "",
        "sub X",
        "2026-11-20 11:00:00",
        "2026-11-20 12:30:00",
        "1:30:00",
        "30.123",
        "32.02",
        "1.00",
        "33.02",
        "paid",
        "",
        "",
    ]
    assert exported[2] == [
        "Total: 1 bills",
        *[""] * 12,
        "30.123",
        "32.02",
        "1.00",
        "33.02",
        "",
        "",
        "",
    ]


def test_the_bills_workbook_names_the_list_filters_and_the_scope(client, bills):
    world, _rows = bills
    signed_in(client, world["subop_x"])
    response = _export(client, "subop_x", fmt="xlsx", q="20261120000000000001")
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    data, filters = book.worksheets
    assert data["Q2"].value == 33.02 and data["Q2"].number_format == "0.00"
    # The exact energy (0.1 Wh) is kept; the cell shows it to the Wh.
    assert data["N2"].value == 30.1234 and data["N2"].number_format == "0.000"
    shown = [[c.value for c in r] for r in filters.iter_rows()][1:-2]
    assert shown == [
        ["search", "20261120000000000001"],
        ["scope", "sub X"],
        ["exported by", "subop_x"],
    ]
    entry = AuditLog.objects.get(action="export")
    assert (entry.actor, entry.after["report"], entry.after["rows"]) == (
        world["subop_x"],
        "bills",
        1,
    )


def test_a_large_export_becomes_a_job_only_its_author_downloads(client, bills, settings, tmp_path):
    settings.EXPORTS_INLINE_MAX_ROWS = 1
    settings.EXPORTS_ROOT = tmp_path
    world, _rows = bills
    signed_in(client, world["admin_a"])
    response = _export(client, "admin_a", fmt="xlsx", payment_state__exact="paid")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:exports_exportjob_changelist")
    job = ExportJob.objects.get()
    assert (job.staff, job.slug, job.fmt, job.state, job.rows_total, job.filters) == (
        world["admin_a"],
        "bills",
        "xlsx",
        "queued",
        2,
        {"payment_state__exact": ["paid"]},
    )
    page = client.get(response["Location"])
    assert admin_messages(page) == [
        "“Bills” has more than 1 rows: it is being written in the background. Download "
        "it here when it is ready."
    ]
    # The worker (the task calls this) builds the same list again, for the same person,
    # in the language the person asked in (the worker's own default is zh-hans).
    assert job.language == "en"
    with translation.override("zh-hans"):
        assert export_job_run(job_id=job.pk).state == "done"
    job.refresh_from_db()
    assert (job.rows_done, job.rows_total) == (2, 2)
    download = reverse("admin:exports_exportjob_download", args=[job.pk])
    data = load_workbook(io.BytesIO(b"".join(client.get(download).streaming_content))).worksheets[0]
    assert data.cell(1, 1).value == "order number"
    assert [data.cell(r, 1).value for r in (2, 3, 4)] == [
        "20261120000000000002",
        "20261120000000000001",
        "Total: 2 bills",
    ]
    # The job's page says what was exported, for whom, and links the file.
    page = client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    assert "<li>payment state: paid</li>" in page and f'href="{download}"' in page
    # A repeat (a redelivered task) leaves the finished job alone.
    assert export_job_run(job_id=job.pk).file_name == job.file_name
    progress = client.get(reverse("admin:exports_exportjob_progress"), {"id": job.pk}).json()
    assert progress == {
        "jobs": [
            {"id": job.pk, "state": "done", "state_label": "done", "progress": "2 of 2 rows (100%)"}
        ]
    }
    # Someone else: not on their list, and the file is a 404 like a missing one.
    signed_in(client, world["service_a"])
    listed = client.get(reverse("admin:exports_exportjob_changelist"))
    assert list(listed.context["cl"].result_list) == []
    assert client.get(download).status_code == 404
    assert client.get(reverse("admin:exports_exportjob_progress"), {"id": job.pk}).json() == {
        "jobs": []
    }


def test_a_job_whose_worker_died_is_queued_again(bills, settings, tmp_path, monkeypatch):
    world, _rows = bills
    settings.EXPORTS_ROOT = tmp_path
    now = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
    stale = ExportJob.objects.create(staff=world["admin_a"], slug="bills", title="Bills", fmt="csv")
    fresh = ExportJob.objects.create(staff=world["admin_a"], slug="bills", title="Bills", fmt="csv")
    ExportJob.objects.filter(pk=stale.pk).update(
        created_at=now - dt.timedelta(hours=1),
        state="running",
        heartbeat_at=now - dt.timedelta(minutes=11),
    )
    ExportJob.objects.filter(pk=fresh.pk).update(
        created_at=now - dt.timedelta(hours=1),
        state="running",
        heartbeat_at=now - dt.timedelta(minutes=1),
    )
    queued = []
    monkeypatch.setattr(export_job_run_task, "delay", queued.append)
    assert export_jobs_resume_stale(now=now) == [stale.pk]
    assert queued == [stale.pk]
    assert ExportJob.objects.get(pk=stale.pk).state == "queued"
    assert ExportJob.objects.get(pk=fresh.pk).state == "running"


def test_a_csv_job_writes_the_same_rows_as_the_list(bills, settings, tmp_path):
    world, _rows = bills
    settings.EXPORTS_ROOT = tmp_path
    job = ExportJob.objects.create(
        staff=world["subop_x"], slug="bills", title="Bills", fmt="csv", language="en"
    )
    job = export_job_run(job_id=job.pk)
    text = (tmp_path / job.file_name).read_text(encoding="utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert [r[0] for r in rows] == ["order number", "20261120000000000001", "Total: 1 bills"]
    assert list(tmp_path.iterdir()) == [tmp_path / job.file_name]  # no partial file left
