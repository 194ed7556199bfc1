"""The fault-bill scope equals billing's session scope, from both sides."""

import pytest

from billing.selectors import sessions_visible_to
from billing.services.settlement import bill_settle
from faults.models import FaultCase
from faults.selectors import fault_cases_visible_to
from orgs.models import Staff
from tests.billing.factories import OperatorFactory, SubOperatorFactory, stopped_session
from tests.billing.factories import tariffed_station as station_with_tariff
from tests.events import events_delivered
from tests.faults.test_repair import SAMPLES

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    first = station_with_tariff()
    second = station_with_tariff(operator=first.operator)
    sub_a, sub_b = (SubOperatorFactory(operator=first.operator) for _ in range(2))
    first.sub_operators.add(sub_a)
    sessions = [
        stopped_session(station=first, samples=SAMPLES),  # at sub_a's station
        stopped_session(station=second, samples=SAMPLES, sub_operator=sub_b),  # sub_b's
        stopped_session(station=second, samples=SAMPLES),  # nobody's
        stopped_session(station=station_with_tariff(), samples=SAMPLES),  # other operator
    ]
    for session in sessions:
        bill_settle(session_id=session.pk)  # each is code 8 (the pile over-reports)
        events_delivered()
    assert FaultCase.objects.count() == 4
    return first.operator, sub_a, sub_b, sessions


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("superuser", [0, 1, 2, 3]),
        ("operator staff", [0, 1, 2]),
        ("sub-operator a (station)", [0]),
        ("sub-operator b (attribution)", [1]),
        ("other operator", []),
        ("no operator", []),
        ("inactive", []),
    ],
)
def test_fault_case_scope_matches_the_session_scope(world, who, expected):
    operator, sub_a, sub_b, sessions = world
    kwargs = {
        "superuser": {"is_superuser": True},
        "operator staff": {"operator": operator},
        "sub-operator a (station)": {"operator": operator, "sub_operator": sub_a},
        "sub-operator b (attribution)": {"operator": operator, "sub_operator": sub_b},
        "other operator": {"operator": OperatorFactory()},
        "no operator": {},
        "inactive": {"operator": operator, "is_active": False},
    }[who]
    staff = Staff.objects.create_user(username=who, **kwargs)
    seen = set(fault_cases_visible_to(staff).values_list("session_id", flat=True))
    assert seen == {sessions[i].pk for i in expected}
    # The same rule as the session table's: a fault case is seen with its session.
    assert seen == set(
        sessions_visible_to(staff).filter(fault_case__isnull=False).values_list("pk", flat=True)
    )
