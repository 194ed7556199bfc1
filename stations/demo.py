"""The demo network `manage.py load_demo` builds: one operator in Zhongshan, its
stations, piles, organisation and staff. Idempotent: rows are found by their natural
keys and only created when missing (existing passwords are never reset).

Everything is created through the same services the back office uses, so the demo obeys
every validation rule (a bad pile code or VIN here fails loudly).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction

from orgs.models import (
    Card,
    Department,
    Member,
    Operator,
    Partner,
    Role,
    Staff,
    SubOperator,
    Vehicle,
)
from orgs.services import (
    card_issue,
    department_create,
    member_create,
    partner_access_set,
    roles_sync,
    staff_assign_role,
    sub_operator_create,
    vehicle_create,
)
from stations.models import CurrentType, Pile, Station
from stations.services.credentials import pile_credential_encode
from stations.services.network import (
    ConnectorData,
    PileData,
    StationData,
    pile_create,
    station_create,
)

OPERATOR_CODE = "zs-charge"
OPERATOR_NAME = "中山充电运营"
REGION = "442001"
DEMO_PASSWORD = "chargenet"
FIRMWARE = ["10002", "10722", "11534", "11536", "2090100"]


@dataclass(frozen=True)
class DemoStation:
    number: int
    name: str
    address: str
    latitude: str
    longitude: str
    # piles as (AC/DC, max kW); "DC2" is the dual-gun DC pile (2 × 60 kW)
    piles: tuple[str, ...]
    windows: tuple[tuple[str, str], ...] = ()
    password: str = ""


STATIONS: list[DemoStation] = [
    DemoStation(1, "石岐孙文西路站", "中山市石岐区孙文西路128号停车场", "22.517420", "113.375890",
                ("AC7", "AC7", "AC7", "AC7", "DC60")),
    DemoStation(2, "东区兴中广场站", "中山市东区兴中道18号兴中广场", "22.519860", "113.398420",
                ("AC7", "AC7", "DC60", "DC120", "DC2")),
    DemoStation(3, "火炬开发区公交总站", "中山市火炬开发区康乐大道25号", "22.543170", "113.478260",
                ("DC120", "DC120", "DC120", "DC120", "DC120", "DC60"), password="8866"),
    DemoStation(4, "西区富华道站", "中山市西区富华道32号富业广场", "22.526030", "113.357210",
                ("AC7", "AC7", "AC7", "DC60", "DC60")),
    DemoStation(5, "南区城南公交场站", "中山市南区城南一路9号", "22.487150", "113.386040",
                ("DC120", "DC120", "DC120", "DC60"), windows=(("19:00", "06:00"),),
                password="8866"),
    DemoStation(6, "小榄镇工业大道站", "中山市小榄镇工业大道中63号", "22.665310", "113.245170",
                ("AC7", "AC7", "AC7", "DC60", "DC120")),
    DemoStation(7, "古镇灯都广场站", "中山市古镇镇中兴大道南1号灯都广场", "22.610480", "113.190270",
                ("AC7", "AC7", "AC7", "AC7", "DC60")),
    DemoStation(8, "坦洲镇界狮南路站", "中山市坦洲镇界狮南路88号", "22.264390", "113.460520",
                ("AC7", "AC7", "DC60", "DC120", "DC120")),
]  # fmt: skip

SUB_OPERATORS = [
    # code, name, contact, station numbers it is authorised on
    ("zs-bus", "中山公交新能源", "陈经理 0760-88223300", (3, 5)),
    ("torch-ev", "火炬区充电服务", "李主管 0760-85596600", (2, 3)),
]

BUS_PLATES = ["粤T05121D", "粤T05122D", "粤T05123D", "粤T06301D", "粤T06302D", "粤T06303D"]
DRIVERS = [
    ("13902761001", "oDemoWx0000000000000000001", "黄先生"),
    ("13902761002", "oDemoWx0000000000000000002", "梁女士"),
    ("13702761003", "oDemoWx0000000000000000003", "何先生"),
    ("18802761004", "oDemoWx0000000000000000004", "林女士"),
    # One active session per member: enough drivers for every simulated pile to charge.
    *[(f"1590276{n:04d}", f"oDemoWx{n:019d}", f"车主{n:02d}") for n in range(5, 21)],
]
PARTNERS = [
    # code, name, kind, enabled for the demo operator
    ("didi", "滴滴", Partner.Kind.APP, False),
    ("yuyichong", "粤易充", Partner.Kind.PLATFORM, True),
]
STAFF = [
    # username, role, sub-operator code
    ("admin", Role.OPERATOR_ADMIN, None),
    ("subop", Role.SUB_OPERATOR_STAFF, "zs-bus"),
    ("service", Role.CUSTOMER_SERVICE, None),
]


def pile_code(station_number: int, serial: int) -> str:
    """20 digits: region 442001, station, line 0001, serial (unique across the demo)."""
    return f"{REGION}{station_number:04d}0001{serial:06d}"


# YKC (云快充) piles beside the OCPP ones: (station, kind) — AC, and DC dual-gun.
YKC_PILES = [(2, "AC7"), (4, "DC2"), (6, "AC7"), (8, "DC2")]
YKC_FIRMWARE = "YKC1.6-V4.1.50"


def ykc_pile_code(station_number: int, serial: int) -> str:
    """14 digits, as YKC's 7-byte BCD pile code holds: 4420, station, serial."""
    return f"{REGION[:4]}{station_number:04d}{serial:06d}"


def pile_password(code: str) -> str:
    return f"demo-{code[-4:]}"


def _vin(n: int) -> str:
    return f"LKLA6G1B6K{1002300 + n:07d}"


def _time(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def _connectors(kind: str) -> tuple[str, Decimal, list[ConnectorData]]:
    if kind == "DC2":
        gun = Decimal(60)
        return CurrentType.DC, Decimal(120), [
            ConnectorData(number=1, standard="GB/T DC", rated_power_kw=gun),
            ConnectorData(number=2, standard="GB/T DC", rated_power_kw=gun),
        ]  # fmt: skip
    current, power = kind[:2], Decimal(kind[2:])
    standard = "GB/T AC" if current == CurrentType.AC else "GB/T DC"
    return current, power, [ConnectorData(number=1, standard=standard, rated_power_kw=power)]


def _operator() -> Operator:
    operator, _created = Operator.objects.get_or_create(
        code=OPERATOR_CODE, defaults={"name": OPERATOR_NAME}
    )
    return operator


def _sub_operators(operator: Operator) -> dict[str, SubOperator]:
    subs = {}
    for code, name, contact, _numbers in SUB_OPERATORS:
        sub = SubOperator.objects.filter(operator=operator, code=code).first()
        subs[code] = sub or sub_operator_create(
            operator=operator, code=code, name=name, contact=contact
        )
    return subs


def _departments(operator: Operator, subs: dict[str, SubOperator]) -> dict[str, Department]:
    def get_or_create(name, parent):
        found = Department.objects.filter(operator=operator, name=name, parent=parent).first()
        return found or department_create(
            operator=operator, name=name, parent=parent, sub_operator=subs["zs-bus"]
        )

    group = get_or_create("中山公交集团", None)
    return {"group": group, "bus": get_or_create("公交一公司", group)}


def _stations(operator: Operator, subs, departments) -> dict[int, Station]:
    stations = {}
    for spec in STATIONS:
        code = f"ZS{spec.number:03d}"
        station = Station.objects.filter(operator=operator, code=code).first()
        if station is None:
            station = station_create(
                operator=operator,
                data=StationData(
                    code=code,
                    name=spec.name,
                    address=spec.address,
                    city="中山市",
                    region_code=REGION,
                    latitude=Decimal(spec.latitude),
                    longitude=Decimal(spec.longitude),
                    password=spec.password,
                ),
                windows=[(_time(o), _time(c)) for o, c in spec.windows],
                sub_operators=[
                    subs[code_]
                    for code_, _n, _c, numbers in SUB_OPERATORS
                    if spec.number in numbers
                ],
                departments=[departments["bus"]] if spec.number in (3, 5) else [],
            )
        stations[spec.number] = station
    return stations


def _demo_codes() -> list[tuple[DemoStation, str, str]]:
    """(station spec, pile kind, pile code) of every demo pile, in order."""
    rows, serial = [], 0
    for spec in STATIONS:
        for kind in spec.piles:
            serial += 1
            rows.append((spec, kind, pile_code(spec.number, serial)))
    return rows


def _hashes(codes: list[str]) -> dict[str, str]:
    # Pile passwords are machine secrets kept as keyed hashes (one HMAC each, as the gateway
    # checks them), not as the slow web-login hash.
    return {code: pile_credential_encode(password=pile_password(code)) for code in codes}


def _piles(stations: dict[int, Station]) -> int:
    rows = _demo_codes()
    existing = dict(
        Pile.objects.filter(code__in=[code for _s, _k, code in rows]).values_list(
            "code", "credential_hash"
        )
    )
    hashes = _hashes([code for _s, _k, code in rows if not existing.get(code)])
    created = 0
    for serial, (spec, kind, code) in enumerate(rows, start=1):
        pile = Pile.objects.filter(code=code).first()
        if pile is None:
            current, power, connectors = _connectors(kind)
            is_dc = current == CurrentType.DC
            pile = pile_create(
                station=stations[spec.number],
                data=PileData(
                    code=code,
                    current_type=current,
                    max_power_kw=power,
                    vendor="英可瑞" if is_dc else "普天",
                    model=f"{'DC' if is_dc else 'AC'}-{power:.0f}kW"
                    + ("-2G" if kind == "DC2" else ""),
                    serial_number=f"SN{code[-8:]}",
                    firmware_version=FIRMWARE[serial % len(FIRMWARE)],
                    credential_hash=hashes[code],
                ),
                connectors=connectors,
                publish=True,
            )
            created += 1
        elif not pile.credential_hash:
            pile.credential_hash = hashes[code]
            pile.save(update_fields=["credential_hash"])
    return created


def _ykc_piles(stations: dict[int, Station]) -> int:
    """The YKC piles (no password: YKC piles log in by their code)."""
    created = 0
    for serial, (number, kind) in enumerate(YKC_PILES, start=1):
        code = ykc_pile_code(number, serial)
        if Pile.objects.filter(code=code).exists():
            continue
        current, power, connectors = _connectors(kind)
        is_dc = current == CurrentType.DC
        pile_create(
            station=stations[number],
            data=PileData(
                code=code,
                current_type=current,
                max_power_kw=power,
                vendor="星星充电" if is_dc else "特来电",
                model=f"YKC-{'DC' if is_dc else 'AC'}-{power:.0f}kW"
                + ("-2G" if kind == "DC2" else ""),
                serial_number=f"SN{code[-8:]}",
                firmware_version=YKC_FIRMWARE,
                protocol=Pile.Protocol.YKC,
            ),
            connectors=connectors,
            publish=True,
        )
        created += 1
    return created


def _fleet(operator: Operator, department: Department) -> None:
    for n, plate in enumerate(BUS_PLATES, start=1):
        vehicle = Vehicle.objects.filter(operator=operator, plate=plate).first()
        if vehicle is None:
            vehicle = vehicle_create(
                operator=operator, plate=plate, vin=_vin(n), department=department
            )
        number = f"88{REGION}{n:02d}"
        if not Card.objects.filter(number=number).exists():
            card_issue(operator=operator, number=number, vehicle=vehicle, department=department)


def _members(operator: Operator) -> None:
    for phone, openid, nickname in DRIVERS:
        if not Member.objects.filter(phone=phone).exists():
            member_create(operator=operator, phone=phone, wechat_openid=openid, nickname=nickname)


def _partners(operator: Operator) -> None:
    for code, name, kind, enabled in PARTNERS:
        partner, _created = Partner.objects.get_or_create(
            code=code, defaults={"name": name, "kind": kind}
        )
        partner_access_set(partner=partner, operator=operator, enabled=enabled)


def _staff(operator: Operator, subs: dict[str, SubOperator]) -> list[str]:
    created = []
    for username, role, sub_code in STAFF:
        if Staff.objects.filter(username=username).exists():
            continue  # never touch an existing account (nor its password)
        staff = Staff(
            username=username,
            operator=operator,
            sub_operator=subs[sub_code] if sub_code else None,
            role=role,
            is_staff=True,
            is_superuser=False,
        )
        staff.set_password(DEMO_PASSWORD)
        staff.save()
        staff_assign_role(staff=staff)
        created.append(username)
    return created


@dataclass
class DemoResult:
    operator: Operator
    piles_created: int
    staff_created: list[str]
    ykc_piles_created: int = 0


@transaction.atomic
def load_demo() -> DemoResult:
    """Build (or complete) the demo network. Safe to run any number of times."""
    roles_sync()
    operator = _operator()
    subs = _sub_operators(operator)
    departments = _departments(operator, subs)
    stations = _stations(operator, subs, departments)
    piles_created = _piles(stations)
    ykc_piles_created = _ykc_piles(stations)
    _fleet(operator, departments["bus"])
    _members(operator)
    _partners(operator)
    staff_created = _staff(operator, subs)
    return DemoResult(
        operator=operator,
        piles_created=piles_created,
        staff_created=staff_created,
        ykc_piles_created=ykc_piles_created,
    )


def demo_pile_credentials() -> list[tuple[str, str]]:
    """(pile code, plain password) of every demo pile in the database, by code — what the
    pile simulator logs in with."""
    codes = (
        Pile.objects.filter(station__operator__code=OPERATOR_CODE)
        .exclude(protocol=Pile.Protocol.YKC)  # YKC piles have no password
        .order_by("code")
        .values_list("code", flat=True)
    )
    return [(code, pile_password(code)) for code in codes]
