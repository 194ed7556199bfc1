"""The scope matrix over the back office: who sees which rows on every changelist and
change page, and denied writes change nothing. Rows are compared exactly."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.admin_forms import admin_messages
from tests.world import client_as, world_rolled_back

pytestmark = pytest.mark.django_db

USERS = ["anonymous", "admin_b", "subop_y", "subop_x", "admin_a"]

# changelist url name -> {user: names of world rows shown}; anonymous goes to the login.
VISIBLE = {
    "stations_station": {
        "admin_b": {"s3"},
        "subop_y": set(),
        "subop_x": {"s1"},
        "admin_a": {"s1", "s2"},
    },
    "stations_pile": {
        "admin_b": {"p3"},
        "subop_y": set(),
        "subop_x": {"p1"},
        "admin_a": {"p1", "p2"},
    },
    "stations_connector": {
        "admin_b": {"c3"},
        "subop_y": set(),
        "subop_x": {"c1"},
        "admin_a": {"c1", "c2"},
    },
    "stations_statusevent": {
        "admin_b": {"ev3"},
        "subop_y": set(),
        "subop_x": {"ev1"},
        "admin_a": {"ev1"},
    },
    "stations_pilefault": {
        "admin_b": {"fault3"},
        "subop_y": set(),
        "subop_x": {"fault1"},
        "admin_a": {"fault1"},
    },
    "stations_stationoutage": {
        "admin_b": {"outage3"},
        "subop_y": set(),
        "subop_x": set(),
        "admin_a": {"outage2"},
    },
    "orgs_suboperator": {
        "admin_b": {"sub_b"},
        "subop_y": {"sub_y"},
        "subop_x": {"sub_x"},
        "admin_a": {"sub_x", "sub_y"},
    },
    "orgs_department": {
        "admin_b": {"dept_b"},
        "subop_y": set(),
        "subop_x": {"dept_x"},
        "admin_a": {"dept_x", "dept_a"},
    },
    "orgs_vehicle": {
        "admin_b": {"v_b"},
        "subop_y": set(),
        "subop_x": {"v_x"},
        "admin_a": {"v_x", "v_a"},
    },
    "orgs_card": {
        "admin_b": {"card_b"},
        "subop_y": set(),
        "subop_x": {"card_x"},
        "admin_a": {"card_x"},
    },
    "orgs_member": {
        "admin_b": {"m_b", "card_b.member"},
        "subop_y": set(),
        "subop_x": {"m_x", "card_x.member"},
        "admin_a": {"m_x", "m_a", "card_x.member"},
    },
}

# A row of operator A hanging from S1 / sub-operator X, for the change-page matrix.
A_ROW = {
    "stations_station": "s1",
    "stations_pile": "p1",
    "stations_connector": "c1",
    "stations_statusevent": "ev1",
    "stations_pilefault": "fault1",
    "orgs_suboperator": "sub_x",
    "orgs_department": "dept_x",
    "orgs_vehicle": "v_x",
    "orgs_card": "card_x",
    "orgs_member": "m_x",
}
CHANGE_STATUS = {"admin_b": 404, "subop_y": 404, "subop_x": 200, "admin_a": 200}

# Customer service is operator-wide and read-mostly: it sees what the operator admin sees.
USERS.append("service_a")
CHANGE_STATUS["service_a"] = 200
for _rows in VISIBLE.values():
    _rows["service_a"] = _rows["admin_a"]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with world_rolled_back(django_db_blocker) as world:
        yield world


def _row(world, name):
    obj = world[name.split(".")[0]]
    return getattr(obj, name.split(".")[1]) if "." in name else obj


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("admin_name", list(VISIBLE))
def test_changelist_shows_exactly_the_rows_in_scope(client, world, admin_name, user):
    response = client_as(client, world, user).get(reverse(f"admin:{admin_name}_changelist"))
    if user == "anonymous":
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))
        return
    assert response.status_code == 200
    shown = {obj.pk for obj in response.context["cl"].result_list}
    assert shown == {_row(world, name).pk for name in VISIBLE[admin_name][user]}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("admin_name", list(A_ROW))
def test_change_page_of_a_row_is_404_outside_the_scope(client, world, admin_name, user):
    obj = _row(world, A_ROW[admin_name])
    url = reverse(f"admin:{admin_name}_change", args=[obj.pk])
    response = client_as(client, world, user).get(url)
    if user == "anonymous":
        assert response.status_code == 302
        return
    assert response.status_code == CHANGE_STATUS[user]


@pytest.mark.parametrize("admin_name", list(A_ROW))
def test_missing_row_is_the_same_404(client, world, admin_name):
    client.force_login(world["admin_a"])
    url = reverse(f"admin:{admin_name}_change", args=[987654321])
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(
    ("user", "status"),
    [("anonymous", 302), ("admin_b", 404), ("subop_y", 404), ("subop_x", 403), ("service_a", 403)],
)
def test_denied_station_edit_changes_nothing(client, world, user, status):
    s1 = world["s1"]
    url = reverse("admin:stations_station_change", args=[s1.pk])
    response = client_as(client, world, user).post(url, {"name": "stolen", "code": "S1"})
    assert response.status_code == status
    s1.refresh_from_db()
    assert (s1.name, s1.hidden_at) == ("S1", None)


NOT_ALLOWED = "No action selected."  # the hide action is not offered to this role


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("admin_b", "Hid 0 stations."),  # may hide, but the station is not in its scope
        ("subop_y", NOT_ALLOWED),
        ("subop_x", NOT_ALLOWED),
        ("service_a", NOT_ALLOWED),
    ],
)
def test_denied_hide_action_changes_nothing(client, world, user, message):
    s1 = world["s1"]
    response = client_as(client, world, user).post(
        reverse("admin:stations_station_changelist"),
        {"action": "hide_selected", "_selected_action": [s1.pk]},
    )
    assert (response.status_code, admin_messages(response)) == (302, [message])
    s1.refresh_from_db()
    assert s1.hidden_at is None
    assert list(s1.sub_operators.values_list("code", flat=True)) == ["x"]


@pytest.mark.parametrize(("user", "status"), [("admin_b", 404), ("subop_y", 404)])
def test_denied_vehicle_edit_changes_nothing(client, world, user, status):
    v_x = world["v_x"]
    url = reverse("admin:orgs_vehicle_change", args=[v_x.pk])
    response = client_as(client, world, user).post(
        url, {"operator": world["op_a"].pk, "plate": "粤T-STOLEN", "vin": ""}
    )
    assert response.status_code == status
    v_x.refresh_from_db()
    assert v_x.plate == "粤T-X"


@pytest.mark.parametrize(
    ("user", "field", "expected"),
    [
        ("subop_x", "department", {"dept_x"}),
        ("admin_a", "department", {"dept_x", "dept_a"}),
        ("admin_b", "department", {"dept_b"}),
        ("subop_x", "operator", {"op_a"}),
        ("admin_a", "member", {"m_x", "m_a", "card_x.member"}),
    ],
)
def test_vehicle_form_dropdowns_are_scoped(client, world, user, field, expected):
    response = client_as(client, world, user).get(reverse("admin:orgs_vehicle_add"))
    assert response.status_code == 200
    choices = response.context["adminform"].form.fields[field].queryset
    assert {o.pk for o in choices} == {_row(world, name).pk for name in expected}


@pytest.mark.parametrize(
    ("user", "field", "expected"),
    [
        ("admin_a", "sub_operators", {"sub_x", "sub_y"}),
        ("admin_a", "departments", {"dept_x", "dept_a"}),
        ("admin_b", "sub_operators", {"sub_b"}),
    ],
)
def test_station_form_and_filter_choices_are_scoped(client, world, user, field, expected):
    c = client_as(client, world, user)
    form = c.get(reverse("admin:stations_station_add")).context["adminform"].form
    want = {_row(world, name).pk for name in expected}
    assert {o.pk for o in form.fields[field].queryset} == want
    changelist = c.get(reverse("admin:stations_station_changelist")).context["cl"]
    spec = next(s for s in changelist.filter_specs if getattr(s, "field_path", "") == field)
    assert {pk for pk, _label in spec.lookup_choices} == want


def test_pile_city_filter_lists_only_visible_cities(client, world):
    client.force_login(world["subop_x"])
    changelist = client.get(reverse("admin:stations_pile_changelist")).context["cl"]
    spec = next(s for s in changelist.filter_specs if getattr(s, "parameter_name", "") == "city")
    assert [value for value, _label in spec.lookup_choices] == ["中山市"]


def test_csv_export_contains_only_selected_visible_rows(client, world):
    client.force_login(world["admin_a"])
    pks = [world["p1"].pk, world["p3"].pk]  # p3 belongs to operator B
    response = client.post(
        reverse("admin:stations_pile_changelist"),
        {"action": "export_csv", "_selected_action": pks},
    )
    assert response.status_code == 200
    lines = response.content.decode("utf-8-sig").strip().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("44200100000000000001,S1,中山市,DC,60.00,11534")


@pytest.mark.parametrize(
    ("user", "status"), [("admin_a", 200), ("service_a", 200), ("subop_x", 403)]
)
def test_audit_log_is_for_operator_wide_staff(client, world, user, status):
    response = client_as(client, world, user).get(reverse("admin:chargenet_auditlog_changelist"))
    assert response.status_code == status
