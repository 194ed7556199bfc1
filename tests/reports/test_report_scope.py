"""The scope matrix of the report pages: each kind of staff sees exactly the figures of the
bills it may see (anonymous, other operator, sub-operator without / with the station)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.urls import reverse

from reports.tables import REPORTS
from tests.world import client_as

pytestmark = pytest.mark.django_db

OCTOBER = {"date_from": "2019-10-01", "date_to": "2019-10-31"}
# (sessions, energy kWh) of the daily report's totals row.
SEES = {
    "admin_b": (1, D("5.000")),  # b3
    "subop_y": (0, D("0.000")),  # no station, nothing attributed
    "subop_x": (2, D("21.000")),  # a1 (its station S1) + a2 (attributed to X at S2)
    "admin_a": (3, D("24.000")),  # a1, a2, a3
}


def test_anonymous_is_sent_to_sign_in(client, world):
    response = client_as(client, world, "anonymous").get(
        reverse("admin:reports_report", args=["daily"]), OCTOBER
    )
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize("user", sorted(SEES))
def test_daily_report_totals_are_the_bills_the_user_sees(client, world, user):
    response = client_as(client, world, user).get(
        reverse("admin:reports_report", args=["daily"]), OCTOBER
    )
    assert response.status_code == 200
    totals = response.context["totals"]
    assert (totals[4], totals[5]) == SEES[user]
    stations = {row[1] for row in response.context["rows"]}
    assert ("S3" in stations) == (user == "admin_b")
    assert ("S2" in stations) == (user in ("admin_a", "subop_x"))


@pytest.mark.parametrize("user", sorted(SEES))
@pytest.mark.parametrize("slug", sorted(REPORTS))
def test_every_report_page_answers_within_its_query_budget(
    client, world, user, slug, django_assert_max_num_queries
):
    signed = client_as(client, world, user)
    url = reverse("admin:reports_report", args=[slug])
    with django_assert_max_num_queries(20):
        response = signed.get(url, OCTOBER)
    assert response.status_code == 200
    detail_rows = len(response.context["rows"])
    if slug in ("daily", "detail"):
        assert (detail_rows > 0) == (SEES[user][0] > 0)


@pytest.mark.parametrize(
    ("user", "field", "other"),
    [
        ("subop_x", "station", "s3"),
        ("subop_x", "station", "s2"),
        ("admin_b", "sub_operator", "sub_x"),
    ],
)
def test_filter_choices_outside_the_scope_are_refused(client, world, user, field, other):
    response = client_as(client, world, user).get(
        reverse("admin:reports_report", args=["daily"]), {**OCTOBER, field: world[other].pk}
    )
    assert response.status_code == 200
    assert response.context["report"] is None
    assert field in response.context["form"].errors


def test_report_pages_speak_chinese(client, world):
    signed = client_as(client, world, "admin_a")
    signed.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    response = signed.get(reverse("admin:reports_report", args=["daily"]), OCTOBER)
    page = response.content.decode()
    assert "整车充电消费日报表" in page
    assert "服务费（元）" in page and "导出 Excel" in page
    home = signed.get(reverse("admin:index")).content.decode()
    assert "今日" in home and "近30天电量与营收" in home
