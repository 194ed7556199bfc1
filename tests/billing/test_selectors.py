import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import AnonymousUser

from billing.selectors import bills_visible_to
from billing.services.settlement import bill_settle
from tests.billing.factories import (
    StaffFactory,
    SubOperatorFactory,
    stopped_session,
    tariffed_station,
)

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")
SAMPLES = [
    (dt.datetime(2019, 9, 7, 1, tzinfo=SH), "0"),
    (dt.datetime(2019, 9, 7, 2, tzinfo=SH), "1000"),
]


@pytest.fixture
def world():
    station = tariffed_station()
    other_station = tariffed_station(operator=station.operator)
    sub = SubOperatorFactory(operator=station.operator)
    station.sub_operators.add(sub)
    here = bill_settle(session_id=stopped_session(station=station, samples=SAMPLES).pk)
    attributed = bill_settle(
        session_id=stopped_session(station=other_station, samples=SAMPLES, sub_operator=sub).pk
    )
    elsewhere = bill_settle(session_id=stopped_session(station=other_station, samples=SAMPLES).pk)
    foreign = bill_settle(
        session_id=stopped_session(station=tariffed_station(), samples=SAMPLES).pk
    )
    return {
        "operator": station.operator,
        "sub": sub,
        "bills": {
            "here": here,
            "attributed": attributed,
            "elsewhere": elsewhere,
            "foreign": foreign,
        },
    }


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("anonymous", set()),
        ("other operator", set()),
        ("operator staff", {"here", "attributed", "elsewhere"}),
        ("sub-operator staff", {"here", "attributed"}),
    ],
)
def test_bills_are_scoped_like_sessions(world, who, sees):
    staff = {
        "anonymous": lambda: AnonymousUser(),
        "other operator": lambda: StaffFactory(),
        "operator staff": lambda: StaffFactory(operator=world["operator"]),
        "sub-operator staff": lambda: StaffFactory(
            operator=world["operator"], sub_operator=world["sub"]
        ),
    }[who]()
    visible = set(bills_visible_to(staff).values_list("pk", flat=True))
    assert visible == {world["bills"][name].pk for name in sees}
