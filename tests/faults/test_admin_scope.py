"""The scope matrix of tests/orgs/test_admin_scope.py over bills and fault bills: each
kind of staff sees exactly the rows of the sessions it may see (anonymous, other operator,
sub-operator without / with the station, operator admin, customer service), on the
changelist, the change page, and the related filters and dropdowns pointing at them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import Bill, ChargingSession, SessionState
from billing.services.settlement import bill_settle
from billing.services.tariffs import station_tariff_assign, tariff_plan_create
from billing.services.tariffs import tariff_version_create as version_create
from faults.models import FaultCase, FaultSource, Notification
from tests.billing.factories import DOMAIN_SCHEDULE, order_no, prices
from tests.events import events_delivered
from tests.world import client_as, world_rolled_back

pytestmark = pytest.mark.django_db

USERS = ["anonymous", "admin_b", "subop_y", "subop_x", "admin_a", "service_a"]
# The sessions of the world: "a1" at S1 (operator A, bound to X), "b3" at S3 (operator B).
VISIBLE = {
    "admin_b": {"b3"},
    "subop_y": set(),
    "subop_x": {"a1"},
    "admin_a": {"a1"},
    "service_a": {"a1"},
}
CHANGE_STATUS = {"admin_b": 404, "subop_y": 404, "subop_x": 200, "admin_a": 200, "service_a": 200}


def _settled_session(station, connector, member) -> ChargingSession:
    since = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    plan = tariff_plan_create(operator=station.operator, name=f"plan {station.code}")
    version_create(plan=plan, schedule=DOMAIN_SCHEDULE, prices=prices(), effective_from=since)
    station_tariff_assign(station=station, plan=plan, effective_from=since)
    end = timezone.now() - dt.timedelta(hours=1)
    start = end - dt.timedelta(minutes=30)
    session = ChargingSession.objects.create(
        order_no=order_no(),
        operator=station.operator,
        station=station,
        pile=connector.pile,
        connector=connector,
        id_tag="TAG",
        state=SessionState.STOPPED,
        started_at=start,
        stopped_at=end,
        meter_start_wh=Decimal(0),
        meter_stop_wh=Decimal(10000),
        stop_received_at=end,
    )
    ChargingSession.objects.filter(pk=session.pk).update(created_at=start)
    bill_settle(session_id=session.pk)
    events_delivered()
    if not FaultCase.objects.filter(session=session).exists():
        FaultCase.objects.create(
            session=session,
            codes=[9],
            source=FaultSource.SETTLEMENT,
            operator=station.operator,
            station=station,
            channel=session.channel,
            detected_at=end,
        )
    Notification.objects.create(session=session, member=member, kind="charge_finished")
    return session


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with world_rolled_back(django_db_blocker) as world:
        world.rows["a1"] = _settled_session(world["s1"], world["c1"], world["m_a"])
        world.rows["b3"] = _settled_session(world["s3"], world["c3"], world["m_b"])
        yield world


def _rows(model, world, names):
    return set(
        model.objects.filter(session__in=[world[n] for n in names]).values_list("pk", flat=True)
    )


ADMINS = {"billing_bill": Bill, "faults_faultcase": FaultCase}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("admin_name", list(ADMINS))
def test_changelist_shows_exactly_the_rows_in_scope(client, world, admin_name, user):
    response = client_as(client, world, user).get(reverse(f"admin:{admin_name}_changelist"))
    if user == "anonymous":
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))
        return
    assert response.status_code == 200
    shown = {obj.pk for obj in response.context["cl"].result_list}
    assert shown == _rows(ADMINS[admin_name], world, VISIBLE[user])
    assert len(shown) == len(VISIBLE[user])


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("admin_name", list(ADMINS))
def test_change_page_of_a_row_is_404_outside_the_scope(client, world, admin_name, user):
    [pk] = _rows(ADMINS[admin_name], world, {"a1"})
    response = client_as(client, world, user).get(reverse(f"admin:{admin_name}_change", args=[pk]))
    if user == "anonymous":
        assert response.status_code == 302
        return
    assert response.status_code == CHANGE_STATUS[user]


@pytest.mark.parametrize(
    ("user", "expected"), [("admin_a", {"s1", "s2"}), ("admin_b", set()), ("subop_x", set())]
)
def test_bill_station_filter_lists_only_visible_stations(client, world, user, expected):
    """Staff with a single visible station get no station filter at all (Django hides a
    filter with one choice); operator A's admin gets S1 and S2, never S3."""
    changelist = client_as(client, world, user).get(reverse("admin:billing_bill_changelist"))
    specs = [
        s
        for s in changelist.context["cl"].filter_specs
        if getattr(s, "field_path", "") == "station"
    ]
    assert {pk for spec in specs for pk, _label in spec.lookup_choices} == {
        world[n].pk for n in expected
    }


@pytest.mark.parametrize("user", ["admin_b", "subop_x", "admin_a"])
def test_notification_session_filter_and_rows_are_scoped(client, world, user):
    response = client_as(client, world, user).get(
        reverse("admin:faults_notification_changelist"), {"kind": "charge_finished"}
    )
    if user == "subop_x":  # not a permission of sub-operator staff
        assert response.status_code == 403
        return
    shown = {n.session_id for n in response.context["cl"].result_list}
    assert shown == {world[n].pk for n in VISIBLE[user]}
