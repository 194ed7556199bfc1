"""The organisation back office: staff accounts and roles, departments as a tree,
members, vehicles, partnership switch."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from orgs.models import Department, Member, PartnerAccess, Role, Staff, Vehicle
from tests.admin_forms import admin_messages, form_errors, page_data, signed_in
from tests.factories import (
    CardFactory,
    DepartmentFactory,
    MemberFactory,
    OperatorFactory,
    PartnerAccessFactory,
    StaffFactory,
    StationFactory,
    SubOperatorFactory,
    VehicleFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return OperatorFactory(code="zs")


@pytest.fixture
def admin_user(operator):
    return StaffFactory(username="boss", operator=operator)


@pytest.fixture
def admin_client(client, admin_user):
    return signed_in(client, admin_user)


def test_operator_admin_creates_a_sub_operator_account_in_its_group(admin_client, operator):
    sub = SubOperatorFactory(operator=operator)
    url = reverse("admin:orgs_staff_add")
    data = page_data(
        admin_client.get(url),
        username="bus-desk",
        usable_password="false",
        role=Role.SUB_OPERATOR_STAFF,
        operator=str(operator.pk),
        sub_operator=str(sub.pk),
        is_staff="on",
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, form_errors(response)
    staff = Staff.objects.get(username="bus-desk")
    assert (staff.operator, staff.sub_operator, staff.is_superuser) == (operator, sub, False)
    assert list(staff.groups.values_list("name", flat=True)) == ["sub-operator staff"]


def test_staff_form_refuses_another_operators_sub_operator(admin_client, operator):
    foreign = SubOperatorFactory()
    url = reverse("admin:orgs_staff_add")
    data = page_data(
        admin_client.get(url),
        username="intruder",
        usable_password="false",
        role=Role.SUB_OPERATOR_STAFF,
        operator=str(operator.pk),
        sub_operator=str(foreign.pk),
    )
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert form_errors(response) == [
        "Select a valid choice. That choice is not one of the available choices.",
        "Sub-operator: a sub-operator staff account needs its sub-operator.",
    ]
    assert not Staff.objects.filter(username="intruder").exists()


def test_operator_admin_cannot_grant_superuser_or_groups(admin_client, admin_user):
    page = admin_client.get(reverse("admin:orgs_staff_change", args=[admin_user.pk]))
    fields = page.context["adminform"].form.fields
    assert {"is_superuser", "groups", "user_permissions"}.isdisjoint(fields)
    assert {"role", "operator", "sub_operator"} <= set(fields)


def test_department_parent_cannot_be_a_descendant(admin_client, operator):
    root = DepartmentFactory(operator=operator, name="root")
    child = DepartmentFactory(operator=operator, name="child", parent=root)
    url = reverse("admin:orgs_department_change", args=[root.pk])
    response = admin_client.post(url, page_data(admin_client.get(url), parent=str(child.pk)))
    assert response.status_code == 200
    assert form_errors(response) == [
        "Parent department: “child” is this department or one of its sub-departments; a "
        "department cannot be placed under itself."
    ]
    root.refresh_from_db()
    assert root.parent is None


def test_department_list_shows_parent_and_station_count(admin_client, operator):
    root = DepartmentFactory(operator=operator, name="公交集团")
    bus = DepartmentFactory(operator=operator, name="一公司", parent=root)
    StationFactory.create_batch(2, operator=operator, departments=[bus])
    StationFactory(operator=OperatorFactory(), departments=[])
    response = admin_client.get(reverse("admin:orgs_department_changelist"))
    rows = {d.name: (d.parent_id, d.n_stations) for d in response.context["cl"].result_list}
    assert rows == {"公交集团": (None, 0), "一公司": (root.pk, 2)}


def test_vehicle_form_refuses_bad_vin(admin_client, operator):
    url = reverse("admin:orgs_vehicle_add")
    data = page_data(
        admin_client.get(url), operator=str(operator.pk), plate="粤T1", vin="LKLA6G1B6K10023O0"
    )
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert form_errors(response) == [
        "A VIN is 17 characters, digits and capital letters without I, O or Q; got "
        "“LKLA6G1B6K10023O0”."
    ]
    assert Vehicle.objects.count() == 0


def test_member_added_in_the_back_office_gets_a_token(admin_client, operator):
    url = reverse("admin:orgs_member_add")
    data = page_data(admin_client.get(url), operator=str(operator.pk), phone="13902761009")
    response = admin_client.post(url, data)
    assert response.status_code == 302, form_errors(response)
    member = Member.objects.get(phone="13902761009")
    assert len(member.token) == 16


def test_member_and_card_expiry_are_set_in_the_back_office(admin_client, operator):
    """An expired member or card is answered Expired at the pile (OCPP 1.6 kit)."""
    member = MemberFactory(operator=operator, phone="13902761010")
    url = reverse("admin:orgs_member_change", args=[member.pk])
    data = page_data(admin_client.get(url), expires_at_0="2027-01-31", expires_at_1="23:59:00")
    response = admin_client.post(url, data)
    assert response.status_code == 302, form_errors(response)
    member.refresh_from_db()
    assert timezone.localtime(member.expires_at).strftime("%Y-%m-%d %H:%M") == "2027-01-31 23:59"

    card = CardFactory(operator=operator, member=member)
    url = reverse("admin:orgs_card_change", args=[card.pk])
    data = page_data(admin_client.get(url), expires_at_0="2026-12-31", expires_at_1="00:00:00")
    response = admin_client.post(url, data)
    assert response.status_code == 302, form_errors(response)
    card.refresh_from_db()
    assert timezone.localtime(card.expires_at).strftime("%Y-%m-%d %H:%M") == "2026-12-31 00:00"


def test_partner_switch_action_gives_feedback(admin_client, operator):
    access = PartnerAccessFactory(operator=operator, partner__name="滴滴", enabled=True)
    PartnerAccessFactory(enabled=True)  # another operator's: out of reach
    response = admin_client.post(
        reverse("admin:orgs_partneraccess_changelist"),
        {
            "action": "switch_off",
            "_selected_action": list(PartnerAccess.objects.values_list("pk", flat=True)),
        },
    )
    assert admin_messages(response) == ["Switched off: 滴滴. Their calls are refused from now on."]
    assert list(PartnerAccess.objects.order_by("pk").values_list("enabled", flat=True)) == [
        False,
        True,
    ]
    access.refresh_from_db()
    assert access.enabled is False


def test_hidden_vehicle_leaves_the_default_list(admin_client, operator):
    vehicle = VehicleFactory(operator=operator)
    response = admin_client.post(
        reverse("admin:orgs_vehicle_changelist"),
        {"action": "hide_selected", "_selected_action": [vehicle.pk]},
    )
    assert admin_messages(response) == ["Hid 1 vehicle."]
    listed = admin_client.get(reverse("admin:orgs_vehicle_changelist")).context["cl"]
    assert listed.result_count == 0
    hidden = admin_client.get(reverse("admin:orgs_vehicle_changelist") + "?hidden=yes")
    assert [v.pk for v in hidden.context["cl"].result_list] == [vehicle.pk]
    assert Department.objects.count() == 0


def test_partner_can_be_switched_on_for_my_operator_without_an_existing_row(admin_client, operator):
    from tests.factories import PartnerFactory

    didi = PartnerFactory(code="didi", name="滴滴")
    response = admin_client.post(
        reverse("admin:orgs_partner_changelist"),
        {"action": "switch_on_for_me", "_selected_action": [didi.pk]},
    )
    assert admin_messages(response) == ["Switched on: 滴滴. Takes effect at once."]
    assert list(PartnerAccess.objects.values_list("operator", "enabled")) == [(operator.pk, True)]
    listed = admin_client.get(reverse("admin:orgs_partner_changelist")).context["cl"]
    assert [p.on_for_me for p in listed.result_list] == [True]


def test_customer_service_cannot_switch_partners(client, operator):
    from tests.factories import PartnerFactory

    didi = PartnerFactory(code="didi")
    client.force_login(StaffFactory(operator=operator, role=Role.CUSTOMER_SERVICE))
    response = client.post(
        reverse("admin:orgs_partner_changelist"),
        {"action": "switch_on_for_me", "_selected_action": [didi.pk]},
    )
    assert response.status_code == 403
    assert PartnerAccess.objects.count() == 0


def test_operator_admin_must_give_new_accounts_an_operator(admin_client):
    url = reverse("admin:orgs_staff_add")
    data = page_data(
        admin_client.get(url),
        username="nobody",
        usable_password="false",
        role=Role.CUSTOMER_SERVICE,
        operator="",
    )
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert form_errors(response) == ["This field is required."]
    assert not Staff.objects.filter(username="nobody").exists()


def test_csv_export_escapes_cells_a_spreadsheet_would_run(client, operator, admin_user):
    dept = DepartmentFactory(operator=operator, name="@SUM(A1:A9)")
    rows = [
        VehicleFactory(operator=operator, plate="=1+2", vin='=HYPERLINK("h")'),
        VehicleFactory(operator=operator, plate="+86", vin="-1", department=dept),
        VehicleFactory(operator=operator, plate="\tT", vin="LSVAA4182E2123456"),
    ]
    signed_in(client, admin_user)
    response = client.post(
        reverse("admin:orgs_vehicle_changelist"),
        {"action": "export_csv", "_selected_action": [v.pk for v in rows]},
    )
    lines = response.content.decode("utf-8-sig").splitlines()
    assert sorted(lines[1:]) == sorted(
        [
            '\'=1+2,"\'=HYPERLINK(""h"")",',
            "'+86,'-1,'@SUM(A1:A9)",
            "'\tT,LSVAA4182E2123456,",
        ]
    )


@pytest.mark.parametrize(("language", "status"), [("zh-hans", "有效"), ("en", "active")])
def test_csv_export_shows_a_choice_by_its_label(client, operator, admin_user, language, status):
    member = MemberFactory(operator=operator, nickname="driver csv")
    signed_in(client, admin_user)
    response = client.post(
        reverse("admin:orgs_member_changelist"),
        {"action": "export_csv", "_selected_action": [member.pk]},
        headers={"accept-language": language},
    )
    (row,) = response.content.decode("utf-8-sig").splitlines()[1:]
    assert row == f"driver csv,{member.phone},{member.wechat_openid},{status},"
