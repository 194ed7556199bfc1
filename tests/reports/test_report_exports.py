"""A report page's export buttons: the exports' CSV or Excel of the page's own table; a
large one is a job whose worker builds the same report again (same staff member, same
filters, same scope) and writes exactly the page's rows."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from reports.exports.models import ExportJob
from reports.exports.registry import tabular_build
from reports.exports.services import export_job_run
from reports.exports.tabular import QUANTUM, cell_text
from reports.tables import REPORTS
from tests.factories import ConnectorFactory, PileFactory
from tests.faults.worked_example import at
from tests.reports.conftest import billed
from tests.world import client_as

pytestmark = pytest.mark.django_db

OCTOBER = {"date_from": "2019-10-01", "date_to": "2019-10-31"}


def _page(client, slug: str, params: dict):
    response = client.get(reverse("admin:reports_report", args=[slug]), params)
    assert response.status_code == 200
    return response.context


def _csv(body: str) -> list[list[str]]:
    assert body.startswith("\ufeff")
    return list(csv.reader(io.StringIO(body[1:])))


def _csv_expected(page) -> list[list[str]]:
    columns = page["report"].columns
    kinds = [c.kind for c in columns]
    rows = [*page["rows"], *([page["totals"]] if page["totals"] else [])]
    return [[str(c.title) for c in columns]] + [
        [cell_text(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows
    ]


def _xlsx_value(value, kind: str):
    """A cell read back by openpyxl, as the report's value (Decimals to their places)."""
    if value is None or value == "":
        return None
    if kind in QUANTUM and not isinstance(value, str):
        return D(str(value)).quantize(QUANTUM[kind])
    if kind == "date" and isinstance(value, dt.datetime):
        return value.date()
    return value


def _page_value(value, kind: str):
    """The page's value as Excel holds it: a time on the wall clock it carries."""
    if value is None or value == "":
        return None
    if kind == "datetime" and isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if kind == "text":
        return str(value)
    return value


def _same(exported, expected) -> bool:
    if isinstance(expected, dt.datetime):  # Excel keeps times as fractions of days
        return abs(exported - expected) < dt.timedelta(milliseconds=1)
    return exported == expected


def test_export_csv_gives_the_pages_table_as_csv(client, world):
    signed = client_as(client, world, "subop_x")
    page = _page(signed, "daily", OCTOBER)
    html = signed.get(reverse("admin:reports_report", args=["daily"]), OCTOBER).content
    assert b'href="?date_from=2019-10-01&amp;date_to=2019-10-31&amp;export=csv"' in html
    assert b'href="?date_from=2019-10-01&amp;date_to=2019-10-31&amp;export=xlsx"' in html
    response = signed.get(
        reverse("admin:reports_report", args=["daily"]), {**OCTOBER, "export": "csv"}
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = _csv(b"".join(response.streaming_content).decode())
    assert rows == _csv_expected(page)
    assert rows[-1][:6] == ["total", "", "", "", "2", "21.000"]
    xlsx = signed.get(
        reverse("admin:reports_report", args=["daily"]), {**OCTOBER, "export": "xlsx"}
    )
    assert xlsx["Content-Type"].startswith("application/vnd.openxmlformats")


@pytest.mark.parametrize(
    ("slug", "user", "params", "fmt"),
    [
        ("daily", "admin_a", OCTOBER, "xlsx"),
        ("daily", "subop_x", OCTOBER, "csv"),
        ("detail", "admin_a", OCTOBER, "xlsx"),  # times on the station's clock
        ("detail", "subop_x", OCTOBER, "csv"),
        ("utilisation", "subop_x", OCTOBER, "xlsx"),  # percentages
        ("faults", "admin_a", {**OCTOBER, "group_by": "channel"}, "csv"),
    ],
)
def test_a_large_report_export_is_a_job_writing_the_pages_rows(
    client, world, settings, tmp_path, slug, user, params, fmt
):
    settings.EXPORTS_INLINE_MAX_ROWS = 1
    settings.EXPORTS_ROOT = tmp_path
    if slug == "faults":  # 200 kWh in an hour on a 60 kW connector: a fault bill (code 13)
        connector = ConnectorFactory(
            pile=PileFactory(station=world["s2"], code="44200100000000000099")
        )
        for hour, channel in ((12, "partner"), (14, "scan"), (16, "scan")):
            billed(connector, start=at(2019, 10, 6, hour), wh=200_000, channel=channel)
    signed = client_as(client, world, user)
    page = _page(signed, slug, params)
    assert len(page["rows"]) > 1 and not page["more"]
    response = signed.get(reverse("admin:reports_report", args=[slug]), {**params, "export": fmt})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:exports_exportjob_changelist")
    job = ExportJob.objects.get()
    expected_filters = {k: [v] for k, v in params.items()}
    assert (job.staff, job.slug, job.fmt, job.filters) == (world[user], slug, fmt, expected_filters)

    job = export_job_run(job_id=job.pk)  # what the Celery task calls
    assert (job.state, job.rows_done) == ("done", len(page["rows"]))
    path = tmp_path / job.file_name
    if fmt == "csv":
        assert _csv(path.read_text(encoding="utf-8")) == _csv_expected(page)
        return
    data = load_workbook(path).worksheets[0]
    kinds = [c.kind for c in page["report"].columns]
    exported = [
        [_xlsx_value(v, k) for v, k in zip(row, kinds, strict=True)]
        for row in data.iter_rows(min_row=2, values_only=True)
    ]
    expected = [
        [_page_value(v, k) for v, k in zip(row, kinds, strict=True)]
        for row in [*page["rows"], *([page["totals"]] if page["totals"] else [])]
    ]
    assert len(exported) == len(expected)
    for got, want in zip(exported, expected, strict=True):
        assert all(_same(g, w) for g, w in zip(got, want, strict=True)), (got, want)


def test_a_sub_operators_job_has_only_its_rows(world, settings, tmp_path):
    """The worker's report for subop_x: the bills attributed to it (a1 at its station S1,
    a2 at S2), not a3 at S2 that the operator's admin sees with the same filters."""
    settings.EXPORTS_ROOT = tmp_path
    filters = {k: [v] for k, v in OCTOBER.items()}
    orders = {name: world.rows[name].order_no for name in ("a1", "a2", "a3")}
    everyone = list(tabular_build("detail", staff=world["admin_a"], filters=filters).rows())
    assert sorted(r[0] for r in everyone) == sorted(orders.values())
    job = ExportJob.objects.create(
        staff=world["subop_x"], slug="detail", title="detail", fmt="csv", filters=filters
    )
    rows = _csv((tmp_path / export_job_run(job_id=job.pk).file_name).read_text("utf-8"))
    assert sorted(r[0] for r in rows[1:-1]) == sorted([orders["a1"], orders["a2"]])
    assert rows[-1][0] == "total" and rows[-1][10:14] == ["21.000", "14.70", "14.70", "29.40"]


def test_the_job_keeps_the_days_the_page_showed(client, world, settings, tmp_path):
    """No dates asked: the page shows this month so far, and the job keeps those days (a
    worker running after midnight on the 1st builds the same report)."""
    settings.EXPORTS_INLINE_MAX_ROWS = 0
    client_as(client, world, "admin_a").get(
        reverse("admin:reports_report", args=["utilisation"]), {"export": "csv"}
    )
    job = ExportJob.objects.get()
    report = tabular_build("utilisation", staff=world["admin_a"], filters=job.filters)
    today = timezone.localdate()
    assert job.filters == {"date_from": [str(today.replace(day=1))], "date_to": [str(today)]}
    assert (report.filters.first_day, report.filters.last_day) == (today.replace(day=1), today)


def test_every_report_is_registered_for_the_worker(world):
    for slug in REPORTS:
        report = tabular_build(slug, staff=world["admin_a"], filters={})
        assert type(report) is REPORTS[slug]


def test_detail_times_are_on_the_stations_clock_on_the_page_and_in_the_export(client, world):
    """a1 started at 10:00 in Shanghai (02:00 UTC): the page and the CSV both say 10:00."""
    signed = client_as(client, world, "subop_x")
    params = {**OCTOBER, "station": world["s1"].pk}
    page = _page(signed, "detail", params)
    [row] = page["cells"]
    assert (row[0][0], row[7][0]) == (world.rows["a1"].order_no, "2019-10-05 10:00:00")
    response = signed.get(
        reverse("admin:reports_report", args=["detail"]), {**params, "export": "csv"}
    )
    rows = _csv(b"".join(response.streaming_content).decode())
    assert rows[1][7:9] == ["2019-10-05 10:00:00", "2019-10-05 11:00:00"]
