"""The dashboard (the admin index): figures from the rollups, scoped like the bills."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.urls import reverse

from reports.dashboard import Figures, StationUse, dashboard_for
from stations.models import Connector, ConnectorState
from tests.world import client_as

pytestmark = pytest.mark.django_db

DAY = dt.date(2019, 10, 5)


def test_dashboard_figures_of_the_day_and_month(world):
    board = dashboard_for(world["admin_a"], today=DAY)
    assert board.today == Figures(3, D("24.000"), D("16.80"), D("16.80"), D("33.60"))
    assert board.month == board.today
    assert board.trend["x"][-1] == "10-05"
    assert board.trend["series"][0]["data"][-1] == 24.0
    assert board.trend["series"][1]["data"][-1] == 33.6
    load = board.load["series"][0]["data"]
    assert (load[10], load[11], load[12]) == (21.0, 0.0, 3.0)
    # S2: two one-hour sessions on one pile over 30 days; S1: one.
    assert board.top == [StationUse("S2", D("0.28")), StationUse("S1", D("0.14"))]
    assert (board.piles_online, board.piles_offline) == (0, 2)


@pytest.mark.parametrize(
    ("user", "today"),
    [
        ("admin_b", Figures(1, D("5.000"), D("3.50"), D("3.50"), D("7.00"))),
        ("subop_y", Figures(0, D("0.000"), D("0.00"), D("0.00"), D("0.00"))),
        ("subop_x", Figures(2, D("21.000"), D("14.70"), D("14.70"), D("29.40"))),
    ],
)
def test_dashboard_is_scoped(world, user, today):
    Connector.objects.filter(pk=world["c3"].pk).update(status=ConnectorState.FAULTED)
    board = dashboard_for(world[user], today=DAY)
    assert board.today == today
    stations = {use.name for use in board.top}
    assert stations == {"admin_b": {"S3"}, "subop_y": set(), "subop_x": {"S1"}}[user]
    assert board.piles_faulted == (1 if user == "admin_b" else 0)  # S3's connector


@pytest.mark.parametrize("user", ["admin_a", "admin_b", "subop_x", "subop_y"])
def test_admin_index_is_the_dashboard(client, world, user, django_assert_max_num_queries):
    signed = client_as(client, world, user)
    with django_assert_max_num_queries(25):
        response = signed.get(reverse("admin:index"))
    assert response.status_code == 200
    assert b'data-chart="dash-trend"' in response.content
    assert b"reports/vendor/echarts/echarts.min.js" in response.content
    assert b"<script>" not in response.content  # no inline script (CSP)


def test_anonymous_gets_the_sign_in_page(client, world):
    response = client_as(client, world, "anonymous").get(reverse("admin:index"))
    assert response.status_code == 302
