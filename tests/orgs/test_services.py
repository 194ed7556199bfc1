"""Organisation services: roles, validation of VINs and phones, cards, partnerships."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from chargenet.errors import DomainError
from chargenet.models import AuditLog
from orgs.models import Member, Role, Vehicle
from orgs.selectors import partner_enabled
from orgs.services import (
    ROLE_GROUPS,
    card_issue,
    department_create,
    member_create,
    partner_access_set,
    roles_sync,
    staff_assign_role,
    vehicle_create,
)
from tests.factories import (
    DepartmentFactory,
    MemberFactory,
    OperatorFactory,
    PartnerFactory,
    StaffFactory,
    SubOperatorFactory,
    VehicleFactory,
)

pytestmark = pytest.mark.django_db


def _perms(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}


def test_roles_sync_is_idempotent_and_grants_no_delete_on_money_records():
    roles_sync()
    before = {name: _perms(name) for name in ROLE_GROUPS.values()}
    roles_sync()
    assert {name: _perms(name) for name in ROLE_GROUPS.values()} == before
    assert Group.objects.filter(name__in=ROLE_GROUPS.values()).count() == 3
    admin = before["operator admin"]
    assert {"stations.change_station", "orgs.add_staff", "chargenet.view_auditlog"} <= admin
    assert not {p for p in admin if p.split(".")[1].split("_")[0] == "delete"} - {
        "stations.delete_openingwindow",
        "stations.delete_connector",
    }
    sub = before["sub-operator staff"]
    assert "stations.view_station" in sub
    assert "stations.change_station" not in sub
    assert "chargenet.view_auditlog" not in sub
    assert "orgs.change_member" in before["customer service"]


def test_role_change_moves_the_account_to_its_group_and_is_audited():
    staff = StaffFactory(role=Role.CUSTOMER_SERVICE)
    actor = StaffFactory(operator=staff.operator)
    assert list(staff.groups.values_list("name", flat=True)) == ["customer service"]
    staff.role = Role.OPERATOR_ADMIN
    staff.save()
    staff_assign_role(staff=staff, actor=actor)
    assert list(staff.groups.values_list("name", flat=True)) == ["operator admin"]
    assert staff.has_perm("stations.change_station")
    entry = AuditLog.objects.get(action="staff_role")
    assert (entry.before, entry.after) == (
        {"groups": ["customer service"]},
        {"groups": ["operator admin"]},
    )


@pytest.mark.parametrize(
    "vin",
    [
        "LKLA6G1B6K100230I",
        "LKLA6G1B6K100230O",
        "LKLA6G1B6K100230Q",
        "LKLA6G1B6K10023",
        "lkla6g1b6k1002301",
    ],
)
def test_bad_vin_is_refused_naming_the_field(vin):
    operator = OperatorFactory()
    with pytest.raises(DomainError) as exc:
        vehicle_create(operator=operator, plate="粤T00001D", vin=vin)
    assert str(exc.value).startswith("VIN: ")
    assert "A VIN is 17 characters, digits and capital letters without I, O or Q" in str(exc.value)
    assert Vehicle.objects.count() == 0


def test_good_vin_is_kept():
    vehicle = vehicle_create(operator=OperatorFactory(), plate="粤T00001D", vin="LKLA6G1B6K1002301")
    assert vehicle.vin == "LKLA6G1B6K1002301"


@pytest.mark.parametrize("phone", ["1390276100", "23902761001", "139027610011", "1390276100a"])
def test_bad_phone_is_refused(phone):
    with pytest.raises(DomainError, match="mobile number: A mobile number is 11 digits"):
        member_create(operator=OperatorFactory(), phone=phone)
    assert Member.objects.count() == 0


@pytest.mark.parametrize("field", ["phone", "wechat_openid"])
def test_one_phone_one_wechat_identity(field):
    existing = MemberFactory()
    values = {"phone": "13700000000", "wechat_openid": "oWx-new"}
    values[field] = getattr(existing, field)
    with pytest.raises(DomainError, match="already exists"):
        member_create(operator=existing.operator, **values)
    assert Member.objects.count() == 1


def test_card_issue_creates_a_virtual_member_named_after_the_plate():
    dept = DepartmentFactory()
    vehicle = VehicleFactory(operator=dept.operator, plate="粤T05121D", department=dept)
    card = card_issue(operator=dept.operator, number="8844200101", vehicle=vehicle)
    assert (card.member.nickname, card.member.is_virtual, card.member.department) == (
        "粤T05121D",
        True,
        dept,
    )
    assert len(card.member.token) == 16
    second = card_issue(operator=dept.operator, number="8844200102", vehicle=vehicle)
    assert second.member == card.member


def test_partner_switch_takes_effect_at_once_and_is_audited():
    operator = OperatorFactory()
    didi = PartnerFactory(code="didi", name="滴滴")
    actor = StaffFactory(operator=operator)
    partner_access_set(partner=didi, operator=operator, enabled=True, actor=actor)
    assert partner_enabled(partner_code="didi", operator_id=operator.pk) is True
    partner_access_set(partner=didi, operator=operator, enabled=False, actor=actor)
    assert partner_enabled(partner_code="didi", operator_id=operator.pk) is False
    partner_access_set(partner=didi, operator=operator, enabled=False, actor=actor)
    assert list(AuditLog.objects.order_by("id").values_list("action", flat=True)) == [
        "partner_on",
        "partner_off",
    ]


def test_department_tree_rules():
    operator = OperatorFactory()
    root = department_create(operator=operator, name="公交集团")
    child = department_create(operator=operator, name="一公司", parent=root)
    assert child.parent == root
    with pytest.raises(DomainError, match=r"Parent department: .* belongs to another operator"):
        department_create(operator=OperatorFactory(), name="x", parent=root)
    with pytest.raises(DomainError, match=r"Sub-operator: .* belongs to another operator"):
        department_create(operator=operator, name="y", sub_operator=SubOperatorFactory())
