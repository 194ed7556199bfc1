"""A driver never reads or acts on another driver's data: every driver API endpoint, asked
by driver B about driver A's things, answers as if they did not exist (404, or B's own
empty view), and nothing of A's changes or leaks. A new endpoint must join the matrix."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.urls import get_resolver

from billing.models import ChargingSession, SessionState
from billing.services.settlement import bill_settle
from billing.services.wallet import wallet_recharge
from driverapi.models import DriverStart
from orgs.models import DriverToken
from protocol import intents
from stations.models import ConnectorState, Pile, Reservation
from tests.billing.factories import order_no, stopped_session, tariffed_station
from tests.driverapi.test_wallet import WALLET_ENDPOINT_NAMES
from tests.drivers import PileStandIn, driver_client
from tests.factories import ConnectorFactory, MemberFactory, OperatorFactory, PileFactory

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture
def two_drivers(monkeypatch):
    stand_in = PileStandIn()
    monkeypatch.setitem(intents.ADAPTERS, Pile.Protocol.OCPP16J, stand_in)
    station = tariffed_station()
    a = MemberFactory(operator=station.operator, phone="13800000001")
    b = MemberFactory(operator=station.operator, phone=None)
    for m in (a, b):
        wallet_recharge(member=m, amount=Decimal("50.00"), reference=f"r-{m.pk}")
    t0 = dt.datetime(2026, 11, 1, 10, tzinfo=SHANGHAI)
    billed = stopped_session(
        station=station, member=a, samples=[(t0, "0"), (t0 + dt.timedelta(hours=1), "10000")]
    )
    bill = bill_settle(session_id=billed.pk)
    pile = PileFactory(station=station, is_published=True, is_online=True)
    connector = ConnectorFactory(pile=pile, status=ConnectorState.CHARGING)
    running = ChargingSession.objects.create(
        order_no=order_no(), operator=a.operator, station=station, pile=pile,
        connector=connector, id_tag=a.token, member=a, state=SessionState.CHARGING,
        started_at=t0, meter_start_wh=0,
    )  # fmt: skip
    free = ConnectorFactory(pile=pile, number=2, status=ConnectorState.AVAILABLE)
    # Held for A (made directly: the core refuses a reservation while A's charge runs).
    held = Reservation.objects.create(
        connector=free, member=a, id_tag=a.token,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20),
    )  # fmt: skip
    # A's start under the key B will send too: keys are per driver, B gets none of it.
    a_start = DriverStart.objects.create(
        member=a, connector=connector, idempotency_key="k", request_id="r", action="x"
    )
    other_op = PileFactory(is_published=True, is_online=True)
    foreign = ConnectorFactory(pile=other_op, status=ConnectorState.PREPARING)
    a_client = driver_client(a)
    return {
        "a": a,
        "b": b,
        "a_client": a_client,
        "bill": bill,
        "running": running,
        "reservation": held,
        "start": a_start,
        "connector": connector,
        "foreign_connector": foreign,
        "foreign_station": other_op.station,
        "pile_side": stand_in,
    }


def _ids(w):
    return {
        "bill": w["bill"].pk,
        "session": w["running"].pk,
        "reservation": w["reservation"].pk,
        "start": w["start"].pk,
        "foreign_connector": w["foreign_connector"].pk,
        "foreign_station": w["foreign_station"].pk,
    }


# (url name, method, path, data, expected status for driver B). Paths name A's things or
# another operator's network; B must see 404 or only B's own (empty) data.
MATRIX = [
    ("me", "get", "/api/v1/me/", None, 200),
    ("sessions", "get", "/api/v1/sessions/", None, 200),
    ("session-current", "get", "/api/v1/sessions/current/", None, 404),
    ("session", "get", "/api/v1/sessions/{session}/", None, 404),
    ("session-stop", "post", "/api/v1/sessions/{session}/stop/", None, 404),
    ("bills", "get", "/api/v1/bills/", None, 200),
    ("bill", "get", "/api/v1/bills/{bill}/", None, 404),
    ("station", "get", "/api/v1/stations/{foreign_station}/", None, 404),
    ("connector", "get", "/api/v1/connectors/{foreign_connector}/", None, 404),
    ("start", "post", "/api/v1/connectors/{foreign_connector}/start/", None, 404),
    ("start-state", "get", "/api/v1/starts/{start}/", None, 404),
    ("connector-scan", "get", "/api/v1/connectors/scan/?code={foreign_pile_code}-1", None, 404),
    ("reservations", "get", "/api/v1/reservations/", None, 200),
    ("reservation", "delete", "/api/v1/reservations/{reservation}", None, 404),
    ("connector-reserve", "post", "/api/v1/connectors/{foreign_connector}/reservation", {}, 404),
    ("stations-nearby", "get", "/api/v1/stations/nearby/?lat=22.5176&lng=113.3926", None, 200),
    ("phone-code", "post", "/api/v1/auth/phone/code/", {"phone": "13800000001"}, 202),
    ("phone-bind", "post", "/api/v1/auth/phone/", {"phone": "13800000001", "code": "1"}, 400),
    ("logout", "post", "/api/v1/auth/logout/", None, 204),
    # Public: no driver's data behind them (login exchanges WeChat's code for one's own).
    ("wechat-url", "get", "/api/v1/auth/wechat/authorize/", None, 200),
    ("wechat-login", "post", "/api/v1/auth/wechat/", {"code": "not-a's"}, 503),
]


def test_every_driver_endpoint_is_in_the_matrix():
    names = {
        p.name
        for p in get_resolver().url_patterns
        if getattr(p, "namespace", "") == "driverapi"
        for p in p.url_patterns
    }
    assert names == {row[0] for row in MATRIX} | WALLET_ENDPOINT_NAMES


def _reservations(member) -> list:
    return list(member.reservations.order_by("pk").values_list("pk", "state", "expires_at"))


@pytest.mark.parametrize(("name", "method", "path", "data", "status"), MATRIX)
def test_driver_b_gets_nothing_of_driver_a(two_drivers, settings, name, method, path, data, status):
    settings.WECHAT_API_BASE = "http://127.0.0.1:9"  # no WeChat: a login attempt is a 503
    w = two_drivers
    a = w["a"]
    before = (
        ChargingSession.objects.filter(member=a).order_by("pk").values_list("pk", "state"),
        DriverToken.objects.filter(member=a).count(),
        type(a).objects.filter(pk=a.pk).values_list("phone", "wechat_openid").get(),
    )
    before = (list(before[0]), before[1], before[2], _reservations(a))
    url = path.format(**_ids(w), foreign_pile_code=w["foreign_connector"].pile.code)
    headers = {"Idempotency-Key": "k"} if name == "start" else {}
    answer = getattr(driver_client(w["b"]), method)(url, data, format="json", headers=headers)
    assert answer.status_code == status, answer.content
    text = answer.content.decode()
    for secret in (a.token, a.phone, w["bill"].order_no, w["running"].order_no):
        assert secret not in text
    if status == 200 and "results" in answer.json():
        assert answer.json()["results"] == [] or name == "stations-nearby"
    if name == "reservations":
        assert answer.json() == []
    if name == "me":
        assert answer.json()["id"] == w["b"].pk
    after = (
        list(ChargingSession.objects.filter(member=a).order_by("pk").values_list("pk", "state")),
        DriverToken.objects.filter(member=a).count(),
        type(a).objects.filter(pk=a.pk).values_list("phone", "wechat_openid").get(),
        _reservations(a),
    )
    assert after == before
    assert w["pile_side"].starts == [] and w["pile_side"].stops == []
    # A still works as before.
    assert w["a_client"].get("/api/v1/sessions/current/").json()["id"] == w["running"].pk


def test_a_driver_of_another_operator_sees_none_of_its_stations(two_drivers):
    stranger = MemberFactory(operator=OperatorFactory())
    body = (
        driver_client(stranger)
        .get("/api/v1/stations/nearby/", {"lat": "22.5176", "lng": "113.3926"})
        .json()
    )
    assert body["count"] == 0
