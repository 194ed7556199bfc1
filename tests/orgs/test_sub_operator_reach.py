"""The seed ticket: a sub-operator authorised on two stations, with no department bound to
it, saw 0 departments, members, vehicles and cards (and never a VIN), although fleets charge
at its stations. It sees those with a charge it sees, plus those bound to it; it files and
changes only rows of its own departments. Matrix over the world of tests/world.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from billing.models import ChargingSession
from orgs import selectors
from orgs.models import Role, Vehicle
from tests.admin_forms import page_data
from tests.billing.factories import order_no
from tests.factories import (
    CardFactory,
    ConnectorFactory,
    MemberFactory,
    PileFactory,
    StaffFactory,
    StationFactory,
    SubOperatorFactory,
)
from tests.world import client_as, world_rolled_back

pytestmark = pytest.mark.django_db


def _session(connector, **who) -> ChargingSession:
    return ChargingSession.objects.create(
        order_no=order_no(),
        operator=connector.pile.station.operator,
        station=connector.pile.station,
        pile=connector.pile,
        connector=connector,
        id_tag="TAG",
        started_at=dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC),
        meter_start_wh=0,
        **who,
    )


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with world_rolled_back(django_db_blocker) as world:
        rows, op_a = world.rows, world["op_a"]
        # Z is authorised on S2 and S4 directly; no department is bound to it.
        rows["sub_z"] = sub_z = SubOperatorFactory(operator=op_a, code="z", name="sub Z")
        world["s2"].sub_operators.add(sub_z)
        s4 = StationFactory(operator=op_a, code="S4", name="S4", sub_operators=[sub_z])
        c4 = ConnectorFactory(pile=PileFactory(station=s4, code="44200100000000000004"))
        rows["card_a"] = card_a = CardFactory(
            operator=op_a, number="C-A", vehicle=world["v_a"], department=world["dept_a"]
        )
        # Fleet A charges at S2 with its vehicle, card and a member.
        _session(
            world["c2"],
            member=world["m_a"],
            vehicle=world["v_a"],
            card=card_a,
            department=world["dept_a"],
        )
        # A walk-in driver at S4; and a charge at S1 attributed to Y (not one of Y's stations).
        rows["m_walk_in"] = walk_in = MemberFactory(operator=op_a, nickname="walk-in")
        _session(c4, member=walk_in)
        rows["m_y"] = m_y = MemberFactory(operator=op_a, nickname="m Y")
        _session(world["c1"], member=m_y, sub_operator=world["sub_y"])
        world.users["subop_z"] = StaffFactory(
            username="subop_z", sub_operator=sub_z, role=Role.SUB_OPERATOR_STAFF
        )
        yield world


SEEN = {
    "departments": {
        "subop_z": {"dept_a"},
        "subop_x": {"dept_x"},
        "subop_y": set(),
        "admin_b": {"dept_b"},
    },
    "members": {
        "subop_z": {"m_a", "m_walk_in"},
        "subop_x": {"m_x", "card_x.member", "m_y"},  # m_y charged at S1
        "subop_y": {"m_y"},  # attributed to Y
        "admin_b": {"m_b", "card_b.member"},
    },
    "vehicles": {"subop_z": {"v_a"}, "subop_x": {"v_x"}, "subop_y": set(), "admin_b": {"v_b"}},
    "cards": {
        "subop_z": {"card_a"},
        "subop_x": {"card_x"},
        "subop_y": set(),
        "admin_b": {"card_b"},
    },
}
CHANGELIST = {
    "departments": "orgs_department",
    "members": "orgs_member",
    "vehicles": "orgs_vehicle",
    "cards": "orgs_card",
}


def _row(world, name):
    obj = world[name.split(".")[0]]
    return getattr(obj, name.split(".")[1]) if "." in name else obj


@pytest.mark.parametrize("user", ["subop_z", "subop_x", "subop_y", "admin_b"])
@pytest.mark.parametrize("kind", list(SEEN))
def test_selector_and_changelist_show_bound_and_charged_rows(client, world, kind, user):
    expected = {_row(world, name).pk for name in SEEN[kind][user]}
    selector = getattr(selectors, f"{kind}_visible_to")
    assert set(selector(world[user]).values_list("pk", flat=True)) == expected
    response = client_as(client, world, user).get(reverse(f"admin:{CHANGELIST[kind]}_changelist"))
    assert {obj.pk for obj in response.context["cl"].result_list} == expected


def test_the_sub_operator_sees_the_vin_of_a_vehicle_charging_at_its_station(client, world):
    response = client_as(client, world, "subop_z").get(reverse("admin:orgs_vehicle_changelist"))
    assert f'<td class="field-vin">{world["v_a"].vin}</td>' in response.content.decode()


@pytest.mark.parametrize(
    ("user", "departments"),
    [("subop_z", set()), ("subop_x", {"dept_x"}), ("admin_a", {"dept_x", "dept_a"})],
)
def test_add_form_offers_only_departments_the_row_stays_visible_in(
    client, world, user, departments
):
    response = client_as(client, world, user).get(reverse("admin:orgs_vehicle_add"))
    field = response.context["adminform"].form.fields["department"]
    assert {d.pk for d in field.queryset} == {world[name].pk for name in departments}
    assert field.required is (user != "admin_a")


def test_sub_operator_without_a_department_cannot_add_a_vehicle_that_would_vanish(client, world):
    c = client_as(client, world, "subop_z")
    page = c.get(reverse("admin:orgs_vehicle_add"))
    data = page_data(page, operator=str(world["op_a"].pk), plate="粤T-NEW", vin="")
    refusals = [
        ("", "This field is required."),
        # A department it sees only through charges: the vehicle would not be in its list.
        (
            str(world["dept_a"].pk),
            "Select a valid choice. That choice is not one of the available choices.",
        ),
    ]
    for department, error in refusals:
        response = c.post(reverse("admin:orgs_vehicle_add"), {**data, "department": department})
        assert response.status_code == 200
        assert list(response.context["adminform"].form.errors["department"]) == [error]
    assert not Vehicle.objects.filter(plate="粤T-NEW").exists()


def test_a_vehicle_a_sub_operator_adds_is_in_its_list(client, world):
    c = client_as(client, world, "subop_x")
    page = c.get(reverse("admin:orgs_vehicle_add"))
    data = page_data(
        page, operator=str(world["op_a"].pk), plate="粤T-X2", vin="", department=world["dept_x"].pk
    )
    assert c.post(reverse("admin:orgs_vehicle_add"), data).status_code == 302
    listed = c.get(reverse("admin:orgs_vehicle_changelist")).context["cl"].result_list
    assert "粤T-X2" in {v.plate for v in listed}


def test_a_vehicle_seen_through_charges_is_read_only_for_the_sub_operator(client, world):
    v_a = world["v_a"]
    c = client_as(client, world, "subop_z")
    url = reverse("admin:orgs_vehicle_change", args=[v_a.pk])
    assert c.get(url).status_code == 200
    response = c.post(url, {"operator": world["op_a"].pk, "plate": "粤T-STOLEN", "vin": ""})
    assert response.status_code == 403
    v_a.refresh_from_db()
    assert v_a.plate == "粤T-A"
