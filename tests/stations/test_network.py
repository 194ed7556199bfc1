"""Network editing services: validation messages naming field and rule, publishing,
hiding a station with its bindings (and restoring them)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from chargenet.errors import DomainError
from chargenet.models import AuditLog
from stations.models import Connector, OpeningWindow, Pile, Station
from stations.services.network import (
    ConnectorData,
    PileData,
    StationData,
    opening_windows_problems,
    pile_create,
    pile_publish,
    pile_update,
    station_create,
    station_hide,
    station_restore,
    station_set_opening_windows,
)
from tests.factories import (
    ConnectorFactory,
    DepartmentFactory,
    OperatorFactory,
    PileFactory,
    StaffFactory,
    StationFactory,
    SubOperatorFactory,
)

pytestmark = pytest.mark.django_db


def t(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def _pile_data(**overrides) -> PileData:
    values = {"code": "44200100010001000001", "current_type": "DC", "max_power_kw": Decimal(60)}
    values.update(overrides)
    return PileData(**values)


@pytest.mark.parametrize(
    "code", ["442001000100010000", "4420010001000100000A", "442001000100010", "4" * 21]
)
def test_bad_pile_code_is_refused_and_nothing_saved(code):
    station = StationFactory()
    with pytest.raises(DomainError) as exc:
        pile_create(station=station, data=_pile_data(code=code))
    assert str(exc.value).startswith("pile code: ")
    assert (
        f"A pile code is 14 (YKC), 16 or 20 digits, e.g. 44200100020001000012; got “{code}”."
        in str(exc.value)
    )
    assert Pile.objects.count() == 0


@pytest.mark.parametrize("code", ["44200100010001", "4420010001000100", "44200100010001000001"])
def test_pile_code_of_14_16_or_20_digits_is_kept_as_a_string(code):
    pile = pile_create(station=StationFactory(), data=_pile_data(code=code))
    pile.refresh_from_db()
    assert pile.code == code


@pytest.mark.parametrize("power", [Decimal("0"), Decimal("-7")])
def test_power_must_be_positive(power):
    station = StationFactory()
    with pytest.raises(DomainError, match=r"max power \(kW\): Power must be greater than 0 kW"):
        pile_create(station=station, data=_pile_data(max_power_kw=power))
    with pytest.raises(DomainError, match=r"rated power \(kW\): Power must be greater than 0"):
        pile_create(
            station=station,
            data=_pile_data(),
            connectors=[ConnectorData(number=1, standard="GB/T DC", rated_power_kw=power)],
        )
    assert (Pile.objects.count(), Connector.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("windows", "overlap"),
    [
        (["19:00-06:00", "05:00-08:00"], "19:00–06:00 and 05:00–08:00"),
        (["08:00-12:00", "11:30-13:00"], "08:00–12:00 and 11:30–13:00"),
        (["22:00-02:00", "23:00-23:30"], "22:00–02:00 and 23:00–23:30"),
        (["00:00-10:00", "20:00-00:00", "09:00-09:30"], "00:00–10:00 and 09:00–09:30"),
    ],
)
def test_overlapping_opening_windows_name_the_times(windows, overlap):
    station = StationFactory()
    OpeningWindow.objects.create(station=station, opens=t("10:00"), closes=t("11:00"))
    pairs = [tuple(t(x) for x in w.split("-")) for w in windows]
    with pytest.raises(DomainError) as exc:
        station_set_opening_windows(station=station, windows=pairs)
    assert f"the windows {overlap} overlap" in str(exc.value)
    assert [str(w) for w in station.opening_windows.all()] == ["10:00–11:00"]


@pytest.mark.parametrize(
    "windows",
    [["19:00-06:00", "06:00-08:00"], ["08:00-12:00", "12:00-13:00"], ["20:00-00:00"], []],
)
def test_touching_windows_are_fine(windows):
    pairs = [tuple(t(x) for x in w.split("-")) for w in windows]
    assert opening_windows_problems(pairs) == []


def test_same_open_and_close_is_refused():
    assert opening_windows_problems([(t("08:00"), t("08:00"))]) == [
        "Opening hours: a window must not open and close at the same time (08:00); leave "
        "the hours empty for a station open 24 hours."
    ]


def test_station_create_with_overnight_hours_and_bindings():
    operator = OperatorFactory()
    sub = SubOperatorFactory(operator=operator)
    actor = StaffFactory(operator=operator)
    station = station_create(
        operator=operator,
        data=StationData(
            code="ZS-01",
            name="岐江夜间站",
            address="中山市石岐区民生路1号",
            city="中山市",
            latitude=Decimal("22.52"),
            longitude=Decimal("113.38"),
        ),
        windows=[(t("19:00"), t("06:00"))],
        sub_operators=[sub],
        actor=actor,
    )
    assert [str(w) for w in station.opening_windows.all()] == ["19:00–06:00"]
    assert list(station.sub_operators.all()) == [sub]
    assert AuditLog.objects.filter(action="station_create", operator=operator).count() == 1


def test_station_create_refuses_another_operators_sub_operator():
    operator = OperatorFactory()
    foreign = SubOperatorFactory()
    data = StationData(
        code="ZS-02",
        name="x",
        address="y",
        city="中山市",
        latitude=Decimal(22),
        longitude=Decimal(113),
    )
    with pytest.raises(DomainError, match="belongs to another operator"):
        station_create(operator=operator, data=data, sub_operators=[foreign])
    assert Station.objects.count() == 0


@pytest.mark.parametrize(
    ("max_power", "powers", "message"),
    [
        (
            None,
            [Decimal(60)],
            "Pile 44200100000000000099 cannot be published. Max power (kW): required before "
            "the pile can be published.",
        ),
        (
            Decimal(60),
            [],
            "Pile 44200100000000000099 cannot be published. Connectors: a pile needs at "
            "least one connector before it can be published.",
        ),
        (
            Decimal(120),
            [Decimal(60), None],
            "Pile 44200100000000000099 cannot be published. Rated power (kW): required on "
            "every connector before the pile can be published; missing on connector 2.",
        ),
    ],
)
def test_publish_refused_without_powers(max_power, powers, message):
    pile = PileFactory(code="44200100000000000099", max_power_kw=max_power)
    for number, power in enumerate(powers, start=1):
        ConnectorFactory(pile=pile, number=number, rated_power_kw=power)
    with pytest.raises(DomainError) as exc:
        pile_publish(pile=pile)
    assert str(exc.value) == message
    pile.refresh_from_db()
    assert pile.is_published is False


def test_publish_dual_gun_pile_is_audited():
    pile = PileFactory(max_power_kw=Decimal(120))
    ConnectorFactory(pile=pile, number=1, rated_power_kw=Decimal(60))
    ConnectorFactory(pile=pile, number=2, rated_power_kw=Decimal(60))
    actor = StaffFactory(operator=pile.station.operator)
    pile_publish(pile=pile, actor=actor)
    pile.refresh_from_db()
    assert pile.is_published is True
    entry = AuditLog.objects.get(action="pile_publish")
    assert (entry.actor, entry.operator_id, entry.after) == (
        actor,
        pile.station.operator_id,
        {"is_published": True},
    )


def test_published_pile_cannot_lose_its_max_power():
    pile = PileFactory(max_power_kw=Decimal(60))
    ConnectorFactory(pile=pile)
    pile_publish(pile=pile)
    with pytest.raises(DomainError, match=r"Max power \(kW\): required"):
        pile_update(pile=pile, changes={"max_power_kw": None})
    pile.refresh_from_db()
    assert pile.max_power_kw == Decimal("60.00")


def test_pile_create_with_connectors_and_publish():
    pile = pile_create(
        station=StationFactory(),
        data=_pile_data(max_power_kw=Decimal(120)),
        connectors=[
            ConnectorData(number=1, standard="GB/T DC", rated_power_kw=Decimal(60)),
            ConnectorData(number=2, standard="GB/T DC", rated_power_kw=Decimal(60)),
        ],
        publish=True,
    )
    assert pile.is_published is True
    assert list(pile.connectors.values_list("number", "rated_power_kw")) == [
        (1, Decimal("60.00")),
        (2, Decimal("60.00")),
    ]


def test_hiding_a_station_removes_its_bindings_and_restore_puts_them_back():
    """The "80 vs 75 stations" ticket: a department's bound stations are its visible ones."""
    operator = OperatorFactory()
    sub = SubOperatorFactory(operator=operator)
    dept = DepartmentFactory(operator=operator, sub_operator=sub)
    stations = [
        StationFactory(operator=operator, sub_operators=[sub], departments=[dept]) for _ in range(3)
    ]
    actor = StaffFactory(operator=operator)
    station_hide(station=stations[0], actor=actor, reason="closed")
    assert dept.stations.count() == 2
    assert sub.stations.count() == 2
    assert dept.stations.filter(hidden_at__isnull=False).count() == 0
    entry = AuditLog.objects.get(action="hide")
    assert entry.before == {
        "hidden_at": None,
        "sub_operators": [sub.pk],
        "departments": [dept.pk],
    }
    assert entry.operator_id == operator.pk

    station_restore(station=stations[0], actor=actor)
    stations[0].refresh_from_db()
    assert stations[0].hidden_at is None
    assert (dept.stations.count(), sub.stations.count()) == (3, 3)
    assert AuditLog.objects.filter(action="restore", object_id=str(stations[0].pk)).count() == 1


def test_hiding_twice_is_a_no_op():
    station = StationFactory()
    actor = StaffFactory(operator=station.operator)
    station_hide(station=station, actor=actor)
    station_hide(station=station, actor=actor)
    assert AuditLog.objects.filter(action="hide").count() == 1


def test_hiding_a_pile_unpublishes_it_and_restore_leaves_it_unpublished():
    from stations.services.network import pile_hide, pile_restore

    pile = PileFactory()
    ConnectorFactory(pile=pile)
    pile_publish(pile=pile)
    actor = StaffFactory(operator=pile.station.operator)
    pile_hide(pile=pile, actor=actor, reason="removed from site")
    pile.refresh_from_db()
    assert (pile.is_hidden, pile.is_published) == (True, False)
    entry = AuditLog.objects.get(action="hide")
    assert (entry.before, entry.operator_id) == (
        {"hidden_at": None, "is_published": True},
        pile.station.operator_id,
    )
    pile_restore(pile=pile, actor=actor)
    pile.refresh_from_db()
    assert (pile.is_hidden, pile.is_published) == (False, False)
