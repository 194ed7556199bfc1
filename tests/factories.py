"""factory_boy factories for the organisation registry and the network.

Shared by every app's tests. Defaults build a valid, publishable-looking network row;
override what a test is about. Staff get an unusable password (tests use force_login)
and are put in their role's group like the back office does.
"""

from __future__ import annotations

from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from orgs.models import (
    Card,
    Department,
    Member,
    Operator,
    Partner,
    PartnerAccess,
    Role,
    Staff,
    SubOperator,
    Vehicle,
)
from stations.models import Connector, CurrentType, Pile, Station

VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def vin_for(n: int) -> str:
    """A valid 17-character VIN (no I/O/Q) unique for ``n``."""
    digits = []
    for _ in range(6):
        n, r = divmod(n, len(VIN_ALPHABET))
        digits.append(VIN_ALPHABET[r])
    return "LGXC16DF5M1" + "".join(reversed(digits))


class OperatorFactory(DjangoModelFactory):
    class Meta:
        model = Operator
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"op-{n}")
    name = factory.Sequence(lambda n: f"Operator {n}")


class SubOperatorFactory(DjangoModelFactory):
    class Meta:
        model = SubOperator

    operator = factory.SubFactory(OperatorFactory)
    code = factory.Sequence(lambda n: f"sub-{n}")
    name = factory.Sequence(lambda n: f"Sub-operator {n}")


class DepartmentFactory(DjangoModelFactory):
    class Meta:
        model = Department

    operator = factory.SubFactory(OperatorFactory)
    name = factory.Sequence(lambda n: f"Department {n}")
    sub_operator = None
    parent = None


class StaffFactory(DjangoModelFactory):
    """Operator admin by default. ``sub_operator=`` with ``role=Role.SUB_OPERATOR_STAFF``
    for a sub-operator account (its operator follows the sub-operator)."""

    class Meta:
        model = Staff
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    role = Role.OPERATOR_ADMIN
    sub_operator = None
    operator = factory.LazyAttribute(
        lambda o: o.sub_operator.operator if o.sub_operator else OperatorFactory()
    )

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):
        if extracted:
            obj.set_password(extracted)
        else:
            obj.set_unusable_password()
        if create:
            obj.save(update_fields=["password"])

    @factory.post_generation
    def role_group(obj, create, extracted, **kwargs):
        if create:
            from orgs.services import staff_assign_role

            staff_assign_role(staff=obj)


class MemberFactory(DjangoModelFactory):
    class Meta:
        model = Member

    operator = factory.SubFactory(OperatorFactory)
    phone = factory.Sequence(lambda n: f"139{n:08d}")
    wechat_openid = factory.Sequence(lambda n: f"oWx-{n:08d}")
    nickname = factory.Sequence(lambda n: f"driver {n}")
    token = factory.Sequence(lambda n: f"T{n:015d}")
    department = None


class VehicleFactory(DjangoModelFactory):
    class Meta:
        model = Vehicle

    operator = factory.SubFactory(OperatorFactory)
    plate = factory.Sequence(lambda n: f"粤T{n:05d}")
    vin = factory.Sequence(vin_for)
    department = None
    member = None


class CardFactory(DjangoModelFactory):
    """A card on a virtual member account named after the vehicle's plate."""

    class Meta:
        model = Card

    operator = factory.SubFactory(OperatorFactory)
    number = factory.Sequence(lambda n: f"{n:010d}")
    department = None
    vehicle = factory.SubFactory(
        VehicleFactory,
        operator=factory.SelfAttribute("..operator"),
        department=factory.SelfAttribute("..department"),
    )
    member = factory.SubFactory(
        MemberFactory,
        operator=factory.SelfAttribute("..operator"),
        department=factory.SelfAttribute("..department"),
        nickname=factory.SelfAttribute("..vehicle.plate"),
        phone=None,
        wechat_openid=None,
        is_virtual=True,
    )


class PartnerFactory(DjangoModelFactory):
    class Meta:
        model = Partner
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"partner-{n}")
    name = factory.Sequence(lambda n: f"Partner {n}")
    kind = Partner.Kind.APP


class PartnerAccessFactory(DjangoModelFactory):
    class Meta:
        model = PartnerAccess

    partner = factory.SubFactory(PartnerFactory)
    operator = factory.SubFactory(OperatorFactory)
    enabled = True


class StationFactory(DjangoModelFactory):
    class Meta:
        model = Station
        skip_postgeneration_save = True

    operator = factory.SubFactory(OperatorFactory)
    code = factory.Sequence(lambda n: f"ST{n:04d}")
    name = factory.Sequence(lambda n: f"Station {n}")
    address = "中山市东区中山四路1号"
    city = "中山市"
    region_code = "442001"
    latitude = Decimal("22.517600")
    longitude = Decimal("113.392600")

    @factory.post_generation
    def sub_operators(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.sub_operators.set(extracted)

    @factory.post_generation
    def departments(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.departments.set(extracted)


class PileFactory(DjangoModelFactory):
    """A published-ready DC pile without connectors (add ConnectorFactory rows)."""

    class Meta:
        model = Pile

    station = factory.SubFactory(StationFactory)
    code = factory.Sequence(lambda n: f"44200100{n:012d}")
    vendor = "Demo Power"
    model = "DC-60"
    current_type = CurrentType.DC
    max_power_kw = Decimal("60.00")
    firmware_version = "11534"


class ConnectorFactory(DjangoModelFactory):
    class Meta:
        model = Connector
        django_get_or_create = ("pile", "number")

    pile = factory.SubFactory(PileFactory)
    number = 1
    standard = factory.LazyAttribute(
        lambda o: (
            Connector.Standard.GBT_DC
            if o.pile.current_type == CurrentType.DC
            else Connector.Standard.GBT_AC
        )
    )
    rated_power_kw = factory.LazyAttribute(lambda o: o.pile.max_power_kw)
