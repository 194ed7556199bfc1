"""The audit log: rows written by hide/restore and services, scoped and read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from chargenet import audit
from chargenet.models import AuditLog
from tests.factories import OperatorFactory, PileFactory, StaffFactory, VehicleFactory

pytestmark = pytest.mark.django_db


def test_audit_record_keeps_actor_operator_and_json_values():
    pile = PileFactory(max_power_kw=Decimal("60.00"))
    actor = StaffFactory(operator=pile.station.operator)
    entry = audit.audit_record(
        actor=actor,
        action="pile_update",
        obj=pile,
        before={"max_power_kw": Decimal("60.00")},
        after={"max_power_kw": Decimal("120.00")},
    )
    entry.refresh_from_db()
    assert (entry.actor, entry.operator_id, entry.object_repr) == (
        actor,
        pile.station.operator_id,
        pile.code,
    )
    assert (entry.before, entry.after) == ({"max_power_kw": "60.00"}, {"max_power_kw": "120.00"})


def test_hide_and_restore_are_audited_and_reversible():
    vehicle = VehicleFactory()
    actor = StaffFactory(operator=vehicle.operator)
    audit.hide(obj=vehicle, actor=actor, reason="fleet left")
    vehicle.refresh_from_db()
    assert (vehicle.is_hidden, vehicle.hidden_by, vehicle.hidden_reason) == (
        True,
        actor,
        "fleet left",
    )
    audit.restore(obj=vehicle, actor=actor)
    vehicle.refresh_from_db()
    assert vehicle.is_hidden is False
    assert list(AuditLog.objects.order_by("id").values_list("action", "reason")) == [
        ("hide", "fleet left"),
        ("restore", ""),
    ]


@pytest.fixture
def two_logs():
    op_a, op_b = OperatorFactory(), OperatorFactory()
    admin_a, admin_b = StaffFactory(operator=op_a), StaffFactory(operator=op_b)
    v_a, v_b = VehicleFactory(operator=op_a), VehicleFactory(operator=op_b)
    audit.hide(obj=v_a, actor=admin_a)
    audit.restore(obj=v_a, actor=admin_a)
    audit.hide(obj=v_b, actor=admin_b)
    return admin_a, admin_b


@pytest.mark.parametrize(
    ("query", "expected"), [("", ["restore", "hide"]), ("?action=hide", ["hide"])]
)
def test_audit_admin_is_scoped_and_filterable(client, two_logs, query, expected):
    admin_a, _admin_b = two_logs
    client.force_login(admin_a)
    response = client.get(reverse("admin:chargenet_auditlog_changelist") + query)
    assert [e.action for e in response.context["cl"].result_list] == expected
    assert {e.actor for e in response.context["cl"].result_list} == {admin_a}


def test_audit_admin_is_read_only(client, two_logs):
    admin_a, admin_b = two_logs
    client.force_login(admin_a)
    own = AuditLog.objects.get(actor=admin_a, action="hide")
    other = AuditLog.objects.get(actor=admin_b)
    assert client.get(reverse("admin:chargenet_auditlog_add")).status_code == 403
    page = client.get(reverse("admin:chargenet_auditlog_change", args=[own.pk]))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert (
        client.post(
            reverse("admin:chargenet_auditlog_change", args=[own.pk]), {"action": "forged"}
        ).status_code
        == 403
    )
    assert (
        client.get(reverse("admin:chargenet_auditlog_change", args=[other.pk])).status_code == 404
    )
    own.refresh_from_db()
    assert own.action == "hide"
