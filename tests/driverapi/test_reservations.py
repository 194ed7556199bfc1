"""Reservations from the phone: reserve a connector (through the remote intent
`connector_reserve`), list mine, cancel mine; the core's and the pile's refusals as clear
errors; another driver's connector shows *reserved*. The pile is a stand-in for the OCPP
adapter (answers recorded), or the real adapter with the pile not connected (offline)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import ChargingSession, SessionState
from billing.services.reservations import reservation_create
from billing.services.wallet import wallet_recharge
from protocol import intents
from protocol.adapters import Outcome, PileAnswer
from stations.models import ConnectorState, Pile, Reservation, ReservationState
from tests.billing.factories import order_no, tariffed_station
from tests.drivers import PileStandIn, driver_client
from tests.factories import ConnectorFactory, MemberFactory, PileFactory

pytestmark = pytest.mark.django_db


class ReservingPile(PileStandIn):
    """The stand-in, answering ReserveNow / CancelReservation too."""

    def __init__(self):
        super().__init__()
        self.reserved: list[tuple[int, int]] = []
        self.cancelled: list[int] = []

    def connector_reserve(self, *, connector, reservation, timeout):
        self.reserved.append((connector.pk, reservation.pk))
        return PileAnswer(self.outcome)

    def reservation_cancel(self, *, reservation, timeout):
        self.cancelled.append(reservation.pk)
        return PileAnswer(self.outcome)


@pytest.fixture
def pile_side(monkeypatch):
    stand_in = ReservingPile()
    monkeypatch.setitem(intents.ADAPTERS, Pile.Protocol.OCPP16J, stand_in)
    return stand_in


@pytest.fixture
def station():
    return tariffed_station()


def _driver(station):
    member = MemberFactory(operator=station.operator)
    wallet_recharge(member=member, amount=Decimal("50.00"), reference=f"r-{member.pk}")
    return member


@pytest.fixture
def driver(station):
    return _driver(station)


@pytest.fixture
def connector(station):
    pile = PileFactory(station=station, is_published=True, is_online=True)
    return ConnectorFactory(pile=pile, status=ConnectorState.AVAILABLE)


def _reserve(member, connector, **data):
    return driver_client(member).post(
        f"/api/v1/connectors/{connector.pk}/reservation", data, format="json"
    )


def test_a_reservation_is_sent_to_the_pile_and_listed_as_mine(driver, connector, pile_side):
    before = timezone.now()
    answer = _reserve(driver, connector, minutes=20)
    assert answer.status_code == 201, answer.content
    reservation = Reservation.objects.get()
    assert (reservation.member, reservation.connector, reservation.state) == (
        driver,
        connector,
        ReservationState.ACTIVE,
    )
    assert pile_side.reserved == [(connector.pk, reservation.pk)]
    held = reservation.expires_at - before
    assert dt.timedelta(minutes=20) <= held < dt.timedelta(minutes=20, seconds=5)
    body = answer.json()
    assert body["id"] == reservation.pk
    assert (body["connector_id"], body["pile_code"], body["station_id"]) == (
        connector.pk,
        connector.pile.code,
        connector.pile.station_id,
    )
    assert body["minutes_left"] in (19, 20)
    listed = driver_client(driver).get("/api/v1/reservations/").json()
    assert [row["id"] for row in listed] == [reservation.pk]


@pytest.mark.parametrize("minutes", [0, 31, "x"])
def test_the_minutes_are_bounded(driver, connector, pile_side, minutes):
    answer = _reserve(driver, connector, minutes=minutes)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid"
    assert "minutes" in answer.json()["details"]
    assert not Reservation.objects.exists() and pile_side.reserved == []


def test_an_offline_pile_is_a_clear_error_and_holds_nothing(driver, connector):
    # The real OCPP adapter: the pile is not connected to any gateway.
    answer = _reserve(driver, connector, minutes=10)
    assert answer.status_code == 409
    assert answer.json()["code"] == "pile_offline"
    assert answer.json()["message"] == "The pile is offline; it cannot be reserved now."
    zh = driver_client(driver).post(
        f"/api/v1/connectors/{connector.pk}/reservation",
        {"minutes": 10},
        format="json",
        headers={"accept-language": "zh-hans"},
    )
    assert zh.json()["message"] == "充电桩离线，暂时无法预约。"
    assert [r.state for r in Reservation.objects.all()] == [ReservationState.REFUSED] * 2
    assert driver_client(driver).get("/api/v1/reservations/").json() == []


def test_a_pile_that_refuses_leaves_no_reservation(driver, connector, pile_side):
    pile_side.outcome = Outcome.REJECTED
    answer = _reserve(driver, connector)
    assert (answer.status_code, answer.json()["code"]) == (409, "pile_rejected")
    assert Reservation.objects.get().state == ReservationState.REFUSED


def test_an_already_reserved_connector_is_the_cores_refusal(station, driver, connector, pile_side):
    other = _driver(station)
    reservation_create(
        connector=connector, member=other, expires_at=timezone.now() + dt.timedelta(minutes=5)
    )
    answer = _reserve(driver, connector)
    assert answer.status_code == 409
    assert answer.json()["code"] == "reservation_refused"
    assert "The connector is already reserved." in answer.json()["message"]
    assert pile_side.reserved == []
    assert Reservation.objects.filter(member=driver).count() == 0


def test_a_charging_connector_is_the_cores_refusal(station, driver, connector, pile_side):
    ChargingSession.objects.create(
        order_no=order_no(), operator=station.operator, station=station, pile=connector.pile,
        connector=connector, id_tag="x", state=SessionState.CHARGING,
        started_at=timezone.now(), meter_start_wh=0,
    )  # fmt: skip
    answer = _reserve(driver, connector)
    assert (answer.status_code, answer.json()["code"]) == (409, "reservation_refused")
    assert "The connector is charging." in answer.json()["message"]
    assert not Reservation.objects.exists()


def test_another_operators_connector_is_not_found(driver, pile_side):
    foreign = ConnectorFactory(pile=PileFactory(is_published=True, is_online=True))
    answer = _reserve(driver, foreign)
    assert (answer.status_code, answer.json()["code"]) == (404, "not_found")
    assert not Reservation.objects.exists() and pile_side.reserved == []


def test_cancelling_mine_frees_the_connector_and_tells_the_pile(driver, connector, pile_side):
    reservation_id = _reserve(driver, connector).json()["id"]
    answer = driver_client(driver).delete(f"/api/v1/reservations/{reservation_id}")
    assert answer.status_code == 204
    assert Reservation.objects.get().state == ReservationState.CANCELLED
    assert pile_side.cancelled == [reservation_id]
    assert driver_client(driver).get("/api/v1/reservations/").json() == []


def test_another_drivers_reservation_cannot_be_cancelled(station, driver, connector, pile_side):
    reservation_id = _reserve(driver, connector).json()["id"]
    other = _driver(station)
    answer = driver_client(other).delete(f"/api/v1/reservations/{reservation_id}")
    assert answer.status_code == 404
    assert Reservation.objects.get().state == ReservationState.ACTIVE
    assert pile_side.cancelled == []
    assert driver_client(other).get("/api/v1/reservations/").json() == []


def test_a_connector_held_by_another_driver_shows_reserved(station, driver, connector, pile_side):
    other = _driver(station)
    _reserve(other, connector)
    theirs = driver_client(driver)
    [shown] = theirs.get(f"/api/v1/stations/{station.pk}/").json()["connectors"]
    assert (shown["state"], shown["state_label"]) == ("reserved", "reserved")
    assert theirs.get(f"/api/v1/connectors/{connector.pk}/").json()["state"] == "reserved"
    # The holder sees the connector as the pile reports it.
    assert driver_client(other).get(f"/api/v1/connectors/{connector.pk}/").json()["state"] == (
        "free"
    )
