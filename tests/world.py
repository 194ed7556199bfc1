"""A small two-operator network for scope tests (orgs and stations admin alike).

Operator A has sub-operators X and Y; station S1 is bound to X and to department DX
(whose sub-operator is X); S2 belongs to A without bindings; S3 belongs to operator B.
Staff: admin_a / admin_b (operator admins), subop_x (has S1), subop_y (has no station),
service_a (customer service of A).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from orgs.models import Role
from stations.models import PileFault, StationOutage, StatusEvent
from tests.admin_forms import signed_in
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


@dataclass
class World:
    rows: dict
    users: dict

    def __getitem__(self, name):
        return self.rows.get(name) or self.users[name]


def build_world() -> World:
    op_a = OperatorFactory(code="op-a", name="A")
    op_b = OperatorFactory(code="op-b", name="B")
    sub_x = SubOperatorFactory(operator=op_a, code="x", name="sub X")
    sub_y = SubOperatorFactory(operator=op_a, code="y", name="sub Y")
    sub_b = SubOperatorFactory(operator=op_b, code="bb", name="sub B")
    dept_x = DepartmentFactory(operator=op_a, name="dept X", sub_operator=sub_x)
    dept_a = DepartmentFactory(operator=op_a, name="dept A")
    dept_b = DepartmentFactory(operator=op_b, name="dept B", sub_operator=sub_b)
    s1 = StationFactory(
        operator=op_a, code="S1", name="S1", sub_operators=[sub_x], departments=[dept_x]
    )
    s2 = StationFactory(operator=op_a, code="S2", name="S2", city="广州市")
    s3 = StationFactory(operator=op_b, code="S3", name="S3", city="深圳市", sub_operators=[sub_b])
    p1 = PileFactory(station=s1, code="44200100000000000001")
    p2 = PileFactory(station=s2, code="44200100000000000002")
    p3 = PileFactory(station=s3, code="44200100000000000003")
    c1, c2, c3 = (ConnectorFactory(pile=p) for p in (p1, p2, p3))
    v_x = VehicleFactory(operator=op_a, plate="粤T-X", department=dept_x)
    v_a = VehicleFactory(operator=op_a, plate="粤T-A", department=dept_a)
    v_b = VehicleFactory(operator=op_b, plate="粤B-B", department=dept_b)
    card_x = CardFactory(operator=op_a, number="C-X", vehicle=v_x, department=dept_x)
    card_b = CardFactory(operator=op_b, number="C-B", vehicle=v_b, department=dept_b)
    m_x = MemberFactory(operator=op_a, nickname="m X", department=dept_x)
    m_a = MemberFactory(operator=op_a, nickname="m A")
    m_b = MemberFactory(operator=op_b, nickname="m B")
    now = timezone.now()
    ev1 = StatusEvent.objects.create(
        pile=p1, connector_number=1, status="Available", received_at=now
    )
    ev3 = StatusEvent.objects.create(pile=p3, connector_number=1, status="Faulted", received_at=now)
    fault1 = PileFault.objects.create(pile=p1, kind="offline", started_at=now)
    fault3 = PileFault.objects.create(pile=p3, kind="offline", started_at=now)
    outage2 = StationOutage.objects.create(station=s2, started_at=now, pile_count=1)
    outage3 = StationOutage.objects.create(station=s3, started_at=now, pile_count=1)
    users = {
        "anonymous": None,
        "admin_a": StaffFactory(username="admin_a", operator=op_a),
        "admin_b": StaffFactory(username="admin_b", operator=op_b),
        "subop_x": StaffFactory(
            username="subop_x", sub_operator=sub_x, role=Role.SUB_OPERATOR_STAFF
        ),
        "subop_y": StaffFactory(
            username="subop_y", sub_operator=sub_y, role=Role.SUB_OPERATOR_STAFF
        ),
        "service_a": StaffFactory(username="service_a", operator=op_a, role=Role.CUSTOMER_SERVICE),
    }
    rows = dict(locals())
    for key in ("users", "now"):
        rows.pop(key)
    return World(rows=rows, users=users)


@contextmanager
def world_rolled_back(django_db_blocker) -> Iterator[World]:
    """The world for a module-scoped fixture: built once inside a transaction rolled back
    at the end; each test runs in its own savepoint, so denied writes are checked against
    the same rows."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_world()
        transaction.set_rollback(True)


def client_as(client, world: World, user: str):
    """The test client on English pages, signed in as the world's ``user`` (not at all
    for "anonymous")."""
    if user == "anonymous":
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
        return client
    return signed_in(client, world[user])
