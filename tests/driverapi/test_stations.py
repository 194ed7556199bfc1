"""Stations for drivers: nearby (distance order, radius, AC/DC, free only), a station's
page with live connector states, today's prices and opening hours, and QR codes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.services.tariffs import (
    station_tariff_assign,
    tariff_plan_create,
    tariff_version_create,
)
from stations.models import ConnectorState, CurrentType, OpeningWindow
from tests.billing.factories import DOMAIN_SCHEDULE, prices
from tests.drivers import driver_client
from tests.factories import (
    ConnectorFactory,
    DepartmentFactory,
    MemberFactory,
    OperatorFactory,
    PileFactory,
    StationFactory,
)

pytestmark = pytest.mark.django_db

HERE = (Decimal("22.517600"), Decimal("113.392600"))


def _station(operator, name, dlat="0", *, current_type=CurrentType.DC, status="Available",
             online=True, **kw):  # fmt: skip
    station = StationFactory(
        operator=operator,
        name=name,
        latitude=HERE[0] + Decimal(dlat),
        longitude=HERE[1],
        **kw,
    )
    pile = PileFactory(
        station=station, current_type=current_type, is_published=True, is_online=online
    )
    ConnectorFactory(pile=pile, status=status)
    return station


@pytest.fixture
def net():
    op = OperatorFactory()
    member = MemberFactory(operator=op)
    rows = {
        "member": member,
        "here": _station(op, "here"),
        "north_1km": _station(
            op, "north 1km", "0.009", current_type=CurrentType.AC, status=ConnectorState.CHARGING
        ),
        "north_3km": _station(op, "north 3km", "0.027", status=ConnectorState.PREPARING),
        "far": _station(op, "far", "0.1"),
        "private": _station(
            op, "private", "0.001", is_public=False, departments=[DepartmentFactory(operator=op)]
        ),
        "other_operator": _station(OperatorFactory(), "other", "0.001"),
    }
    unpublished = StationFactory(
        operator=op, name="unpublished", latitude=HERE[0] + Decimal("0.002")
    )
    ConnectorFactory(pile=PileFactory(station=unpublished, is_published=False))
    return rows


def _nearby(member, **query):
    params = {"lat": "22.5176", "lng": "113.3926", **query}
    return driver_client(member).get("/api/v1/stations/nearby/", params)


def test_nearby_is_sorted_by_distance_within_the_radius(net):
    answer = _nearby(net["member"], radius=5000)
    assert answer.status_code == 200
    body = answer.json()
    assert body["count"] == 3
    assert [(s["name"], s["distance_m"]) for s in body["results"]] == [
        ("here", 0),
        ("north 1km", 1001),
        ("north 3km", 3002),
    ]
    assert body["results"][0]["connectors"] == [{"current_type": "DC", "total": 1, "free": 1}]
    assert body["results"][1]["connectors"] == [{"current_type": "AC", "total": 1, "free": 0}]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"radius": 2000}, ["here", "north 1km"]),
        ({"radius": 20000}, ["here", "north 1km", "north 3km", "far"]),
        ({"current_type": "AC"}, ["north 1km"]),
        ({"current_type": "DC"}, ["here", "north 3km"]),
        ({"free_only": "true"}, ["here", "north 3km"]),
        ({"free_only": "true", "current_type": "AC"}, []),
        ({"limit": 1, "offset": 1}, ["north 1km"]),
        ({"limit": 1, "offset": 5}, []),
    ],
)
def test_nearby_filters(net, query, names):
    body = _nearby(net["member"], **query).json()
    assert [s["name"] for s in body["results"]] == names
    assert body["count"] == (3 if "limit" in query else len(names))


def test_a_fleet_member_also_sees_its_private_station(net):
    private = net["private"]
    member = MemberFactory(operator=net["member"].operator, department=private.departments.get())
    names = [s["name"] for s in _nearby(member, radius=2000).json()["results"]]
    assert names == ["here", "private", "north 1km"]


def test_nearby_checks_its_input(net):
    answer = _nearby(net["member"], lat="91")
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid"
    assert set(answer.json()["details"]) == {"lat"}


def test_a_position_is_kept_to_seven_decimals(net):
    """A subnormal latitude (found by schemathesis) underflowed PostgreSQL: a 500."""
    answer = _nearby(net["member"], lat="-5e-324", lng="113.39260004", radius=200)
    assert answer.status_code == 200
    assert answer.json()["count"] == 0  # the equator, nowhere near the stations
    here = _nearby(net["member"], lat="22.51760004", lng="113.39259996", radius=1)
    assert [(s["name"], s["distance_m"]) for s in here.json()["results"]] == [("here", 0)]


def test_nearby_costs_three_queries(net, django_assert_num_queries):
    client = driver_client(net["member"])
    # token, the page with its total, connector counts
    with django_assert_num_queries(3):
        client.get("/api/v1/stations/nearby/", {"lat": "22.5176", "lng": "113.3926"})


def test_station_page_has_live_connectors_prices_and_hours(net):
    station = net["here"]
    since = timezone.now() - dt.timedelta(days=30)
    plan = tariff_plan_create(operator=station.operator, name="standard")
    tariff_version_create(
        plan=plan, schedule=DOMAIN_SCHEDULE, prices=prices(), effective_from=since
    )
    station_tariff_assign(station=station, plan=plan, effective_from=since)
    OpeningWindow.objects.create(station=station, opens=dt.time(6), closes=dt.time(23))
    offline = PileFactory(station=station, is_published=True, is_online=False)
    ConnectorFactory(pile=offline, status="Available")
    body = driver_client(net["member"]).get(f"/api/v1/stations/{station.pk}/").json()
    assert body["address"] == "中山市东区中山四路1号"
    assert body["opening_hours"] == [{"opens": "06:00", "closes": "23:00"}]
    assert [(c["pile_code"], c["state"]) for c in body["connectors"]] == sorted(
        [(station.piles.get(is_online=True).code, "free"), (offline.code, "offline")]
    )
    prices_today = body["prices_today"]
    assert prices_today["plan"] == "standard"
    assert [(p["start"], p["end"], p["period"]) for p in prices_today["dc"]] == [
        ("00:00", "08:00", 3),
        ("08:00", "14:00", 2),
        ("14:00", "17:00", 1),
        ("17:00", "19:00", 2),
        ("19:00", "22:00", 1),
        ("22:00", "24:00", 2),
    ]
    assert prices_today["dc"][0] == {
        "start": "00:00",
        "end": "08:00",
        "period": 3,
        "period_label": "valley",
        "electricity": "0.38000",
        "service": "0.60000",
        "total": "0.98000",
    }
    assert prices_today["ac"][1]["total"] == "1.15000"  # flat 0.64 + 0.51


def test_a_station_without_a_tariff_says_so(net):
    body = driver_client(net["member"]).get(f"/api/v1/stations/{net['here'].pk}/").json()
    assert body["prices_today"] == {"plan": "", "period_now": None, "ac": [], "dc": []}
    assert body["opening_hours"] == []
    assert body["open_now"] is True


@pytest.mark.parametrize("name", ["private", "other_operator", "far_unpublished"])
def test_a_station_the_driver_may_not_use_is_not_found(net, name):
    if name == "far_unpublished":
        station = StationFactory(operator=net["member"].operator)
    else:
        station = net[name]
    answer = driver_client(net["member"]).get(f"/api/v1/stations/{station.pk}/")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "content",
    [
        "{code}-1",
        "{code}#1",
        "https://cn.example/h5/c/{code}/1",
        "{code}",
        " {code} / 01 ",
    ],
)
def test_a_qr_code_resolves_to_its_connector(net, content):
    pile = net["here"].piles.get()
    connector = pile.connectors.get()
    answer = driver_client(net["member"]).get(
        "/api/v1/connectors/scan/", {"code": content.format(code=pile.code)}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["id"], body["station_name"], body["state"]) == (connector.pk, "here", "free")


@pytest.mark.parametrize("which", ["unknown", "other_operator", "number_missing"])
def test_a_qr_code_of_nothing_the_driver_may_use_is_not_found(net, which):
    if which == "unknown":
        code = "99999999999999999999-1"
    elif which == "other_operator":
        code = f"{net['other_operator'].piles.get().code}-1"
    else:
        code = f"{net['here'].piles.get().code}-2"
    answer = driver_client(net["member"]).get("/api/v1/connectors/scan/", {"code": code})
    assert answer.status_code == 404
