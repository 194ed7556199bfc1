"""Back-office lists cost the same number of queries for 1 row or many (no N+1)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import (
    CardFactory,
    ConnectorFactory,
    DepartmentFactory,
    MemberFactory,
    OperatorFactory,
    PileFactory,
    StaffFactory,
    StationFactory,
    SubOperatorFactory,
    VehicleFactory,
)

pytestmark = pytest.mark.django_db


def _grow(operator, n: int) -> None:
    for _ in range(n):
        sub = SubOperatorFactory(operator=operator)
        dept = DepartmentFactory(operator=operator, sub_operator=sub)
        station = StationFactory(operator=operator, sub_operators=[sub], departments=[dept])
        ConnectorFactory(pile=PileFactory(station=station))
        vehicle = VehicleFactory(operator=operator, department=dept)
        CardFactory(operator=operator, vehicle=vehicle, department=dept)
        MemberFactory(operator=operator, department=dept)


@pytest.mark.parametrize(
    "admin_name",
    [
        "stations_station",
        "stations_pile",
        "stations_connector",
        "orgs_suboperator",
        "orgs_department",
        "orgs_vehicle",
        "orgs_card",
        "orgs_member",
        "orgs_staff",
    ],
)
def test_changelist_queries_do_not_grow_with_rows(client, admin_name):
    operator = OperatorFactory()
    client.force_login(StaffFactory(operator=operator))
    url = reverse(f"admin:{admin_name}_changelist")
    _grow(operator, 1)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    _grow(operator, 4)
    with CaptureQueriesContext(connection) as large:
        assert client.get(url).status_code == 200
    assert len(large) == len(small)
