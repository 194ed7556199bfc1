"""Charging from the phone: start (checked by the core, sent through the remote intent,
idempotent), live figures, stop, my sessions and bills. The pile's side is a stand-in for
the OCPP adapter here; tests/driverapi/test_end_to_end.py runs the real gateway."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Bill, ChargingSession, MeterSample, PaymentState, SessionState
from billing.services.settlement import bill_settle
from billing.services.wallet import wallet_recharge
from driverapi.models import DriverStart
from driverapi.starts import starts_settle
from protocol import intents
from protocol.adapters import Outcome
from stations.models import ConnectorState, OpeningWindow, Pile
from tests.billing.factories import order_no, stopped_session, tariffed_station
from tests.drivers import PileStandIn, driver_client
from tests.factories import ConnectorFactory, MemberFactory, PileFactory

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


@pytest.fixture
def pile_side(monkeypatch):
    stand_in = PileStandIn()
    monkeypatch.setitem(intents.ADAPTERS, Pile.Protocol.OCPP16J, stand_in)
    return stand_in


@pytest.fixture
def station():
    return tariffed_station()


@pytest.fixture
def driver(station):
    member = MemberFactory(operator=station.operator)
    wallet_recharge(member=member, amount=Decimal("50.00"), reference=f"r-{member.pk}")
    return member


@pytest.fixture
def connector(station):
    pile = PileFactory(station=station, is_published=True, is_online=True)
    return ConnectorFactory(pile=pile, status=ConnectorState.PREPARING)


def _start(member, connector, key="k-1"):
    headers = {"Idempotency-Key": key} if key else {}
    return driver_client(member).post(f"/api/v1/connectors/{connector.pk}/start/", headers=headers)


def _state(member, start_id):
    return driver_client(member).get(f"/api/v1/starts/{start_id}/")


def test_a_start_is_answered_at_once_and_the_piles_answer_read_later(driver, connector, pile_side):
    answer = _start(driver, connector)
    start = DriverStart.objects.get(member=driver)
    assert answer.status_code == 202
    assert answer["Location"] == f"/api/v1/starts/{start.pk}/"
    assert answer.json() == {
        "id": start.pk,
        "state": "starting",
        "connector_id": connector.pk,
        "session_id": None,
        "code": "",
        "message": "Sent to the pile; waiting for its answer.",
    }
    assert pile_side.starts == [(connector.pk, driver.token, "member_token")]
    # The pile accepted (its reply is in Redis): the start says so when asked.
    later = _state(driver, start.pk)
    assert (later.status_code, later.json()["state"], later.json()["message"]) == (
        200,
        "accepted",
        "The pile accepted; charging is starting.",
    )
    # The pile reports the start: the session opened for this start.
    session = _running(driver, connector)
    body = _state(driver, start.pk).json()
    assert (body["state"], body["session_id"], body["code"]) == ("charging", session.pk, "")
    start.refresh_from_db()
    assert (start.state, start.session_id, start.outcome) == ("charging", session.pk, "accepted")


def test_a_retried_start_is_answered_again_and_sent_once(driver, connector, pile_side):
    first = _start(driver, connector, key="same")
    again = _start(driver, connector, key="same")
    assert (again.status_code, again.json()["id"]) == (first.status_code, first.json()["id"])
    assert len(pile_side.starts) == 1
    assert DriverStart.objects.filter(member=driver).count() == 1
    # The pile's answer came (accepted) and the session opened: another start now is
    # refused by the core (one charge per driver), not by the start on its way.
    _running(driver, connector)
    assert _state(driver, first.json()["id"]).json()["state"] == "charging"
    other = _start(driver, ConnectorFactory(pile=connector.pile, number=2), key="another")
    assert (other.status_code, other.json()["code"]) == (409, "member_busy")
    assert len(pile_side.starts) == 1


def test_a_second_start_waits_for_the_first_to_be_answered(driver, connector, pile_side):
    pile_side.outcome = Outcome.TIMEOUT
    DriverStart.objects.create(member=driver, connector=connector, idempotency_key="first")
    second = _start(driver, connector, key="second")
    assert (second.status_code, second.json()["code"]) == (409, "start_in_progress")
    assert pile_side.starts == []


def test_a_key_names_one_connector(driver, connector, pile_side):
    _start(driver, connector, key="k")
    other = ConnectorFactory(pile=connector.pile, number=2, status=ConnectorState.PREPARING)
    answer = _start(driver, other, key="k")
    assert (answer.status_code, answer.json()["code"]) == (409, "idempotency_key_reused")
    assert len(pile_side.starts) == 1


def test_a_start_needs_an_idempotency_key(driver, connector, pile_side):
    answer = _start(driver, connector, key=None)
    assert (answer.status_code, answer.json()["code"]) == (400, "idempotency_key_required")
    assert pile_side.starts == []


def _owed_bill(member, station):
    t0 = dt.datetime(2026, 11, 1, 10, tzinfo=SHANGHAI)
    session = stopped_session(
        station=station, member=member, samples=[(t0, "0"), (t0 + dt.timedelta(hours=1), "1000")]
    )
    Bill.objects.filter(pk=bill_settle(session_id=session.pk).pk).update(
        payment_state=PaymentState.OWED
    )


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        (lambda m, c: Pile.objects.filter(pk=c.pile_id).update(is_online=False),
         409, "pile_offline"),
        (lambda m, c: type(c).objects.filter(pk=c.pk).update(status=ConnectorState.CHARGING),
         409, "connector_occupied"),
        (lambda m, c: type(c).objects.filter(pk=c.pk).update(status=ConnectorState.FAULTED),
         409, "connector_out_of_service"),
        (lambda m, c: type(c).objects.filter(pk=c.pk).update(status=ConnectorState.AVAILABLE),
         409, "connector_not_plugged"),
        (lambda m, c: OpeningWindow.objects.create(
            station=c.pile.station,
            opens=(timezone.now().astimezone(SHANGHAI) + dt.timedelta(hours=2)).time(),
            closes=(timezone.now().astimezone(SHANGHAI) + dt.timedelta(hours=3)).time()),
         409, "station_closed"),
        (lambda m, c: type(m.operator).objects.filter(pk=m.operator_id).update(
            start_min_balance=Decimal("50.01")), 402, "balance_too_low"),
        (lambda m, c: _owed_bill(m, c.pile.station), 409, "member_in_arrears"),
        (lambda m, c: type(m).objects.filter(pk=m.pk).update(phone=None),
         409, "phone_required"),
        (lambda m, c: ChargingSession.objects.create(
            order_no=order_no(), operator=m.operator, station=c.pile.station, pile=c.pile,
            connector=ConnectorFactory(pile=c.pile, number=2), id_tag=m.token, member=m,
            started_at=timezone.now(), meter_start_wh=0), 409, "member_busy"),
    ],
)  # fmt: skip
def test_a_start_is_refused_with_the_reason_and_nothing_is_sent(
    driver, connector, pile_side, setup, status, code
):
    setup(driver, connector)
    answer = _start(driver, connector)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert answer.json()["message"]
    assert pile_side.starts == []


def test_the_balance_refusal_says_the_figures(driver, connector, pile_side):
    type(driver.operator).objects.filter(pk=driver.operator_id).update(
        start_min_balance=Decimal("60.00")
    )
    body = _start(driver, connector).json()
    assert body["message"] == (
        "Your balance is 50.00 yuan; at least 60.00 yuan is needed to start."
    )
    assert body["details"] == {"balance": "50.00", "minimum": "60.00"}


def test_without_the_plug_rule_a_free_connector_starts(driver, connector, pile_side, settings):
    settings.DRIVER_START_REQUIRES_PLUG = False
    type(connector).objects.filter(pk=connector.pk).update(status=ConnectorState.AVAILABLE)
    assert _start(driver, connector).status_code == 202


@pytest.mark.parametrize(
    ("outcome", "state", "code", "message"),
    [
        (Outcome.REJECTED, "rejected", "pile_rejected",
         "The pile refused; please check the plug and retry."),
        (Outcome.TIMEOUT, "timeout", "pile_timeout",
         "The pile did not answer in time; please try again."),
    ],
)  # fmt: skip
def test_the_piles_answer_is_read_from_the_start(
    driver, connector, pile_side, outcome, state, code, message
):
    pile_side.outcome = outcome
    answer = _start(driver, connector)
    assert (answer.status_code, answer.json()["state"]) == (202, "starting")
    body = _state(driver, answer.json()["id"]).json()
    assert (body["state"], body["code"], body["message"], body["session_id"]) == (
        state,
        code,
        message,
        None,
    )
    # Told once, the same answer; the same key again sends nothing more.
    assert _state(driver, answer.json()["id"]).json() == body
    assert _start(driver, connector).json() == body
    assert len(pile_side.starts) == 1
    # After a failed start the driver may start again (a fresh key).
    pile_side.outcome = Outcome.ACCEPTED
    assert _start(driver, connector, key="again").status_code == 202


@pytest.mark.parametrize(
    ("outcome", "code"),
    [(Outcome.OFFLINE, "pile_offline"), (Outcome.NOT_SUPPORTED, "pile_not_supported")],
)
def test_a_start_that_cannot_be_sent_is_refused_at_once(
    driver, connector, pile_side, outcome, code
):
    pile_side.outcome = outcome
    answer = _start(driver, connector)
    assert (answer.status_code, answer.json()["code"]) == (409, code)
    again = _start(driver, connector)  # a retry: the same refusal, nothing sent again
    assert (again.status_code, again.json()) == (409, answer.json())
    assert len(pile_side.starts) == 1
    assert DriverStart.objects.get(member=driver).state == (
        "offline" if outcome == Outcome.OFFLINE else "failed"
    )


def test_another_drivers_start_is_not_found(driver, connector, pile_side, station):
    start_id = _start(driver, connector).json()["id"]
    other = MemberFactory(operator=station.operator)
    answer = _state(other, start_id)
    assert (answer.status_code, answer.json()["code"]) == (404, "not_found")


def _running(member, connector, *, samples=(), t0=None):
    t0 = t0 or timezone.now() - dt.timedelta(minutes=30)
    session = ChargingSession.objects.create(
        order_no=order_no(),
        operator=member.operator,
        station=connector.pile.station,
        pile=connector.pile,
        connector=connector,
        id_tag=member.token,
        member=member,
        state=SessionState.CHARGING,
        started_at=t0,
        meter_start_wh=Decimal("1000"),
    )
    for minutes, wh, power, soc in samples:
        MeterSample.objects.create(
            session=session,
            at=t0 + dt.timedelta(minutes=minutes),
            energy_wh=Decimal(wh),
            power_w=power,
            soc=soc,
        )
    return session


def test_the_live_charge_shows_energy_power_soc_and_the_amount_so_far(driver, connector):
    t0 = dt.datetime(2026, 11, 1, 10, tzinfo=SHANGHAI)  # flat period: DC 0.70 + 0.70 yuan/kWh
    session = _running(
        driver,
        connector,
        t0=t0,
        samples=[(10, "4000", 18000, 40), (20, "7000", Decimal("18500.5"), 47)],
    )
    body = driver_client(driver).get("/api/v1/sessions/current/").json()
    assert (body["id"], body["state"], body["bill_id"]) == (session.pk, "charging", None)
    live = body["live"]
    assert (live["energy_kwh"], live["power_kw"], live["soc"]) == ("6.000", "18.50", 47)
    assert live["amount_so_far"] == "8.40"  # 6 kWh × 1.40
    assert live["duration_s"] >= int((timezone.now() - t0).total_seconds()) - 5


def test_the_amount_so_far_is_unknown_without_a_tariff(driver):
    from tests.factories import StationFactory

    pile = PileFactory(
        station=StationFactory(operator=driver.operator), is_published=True, is_online=True
    )
    _running(driver, ConnectorFactory(pile=pile), samples=[(10, "4000", None, None)])
    live = driver_client(driver).get("/api/v1/sessions/current/").json()["live"]
    assert (live["energy_kwh"], live["amount_so_far"], live["power_kw"]) == ("3.000", None, None)


def test_no_running_charge_is_a_404(driver):
    assert driver_client(driver).get("/api/v1/sessions/current/").status_code == 404


def test_stop_asks_the_pile_and_an_ended_charge_is_refused(driver, connector, pile_side):
    session = _running(driver, connector)
    client = driver_client(driver)
    answer = client.post(f"/api/v1/sessions/{session.pk}/stop/")
    assert answer.status_code == 202
    assert pile_side.stops == [session.pk]
    ChargingSession.objects.filter(pk=session.pk).update(state=SessionState.STOPPED)
    ended = client.post(f"/api/v1/sessions/{session.pk}/stop/")
    assert (ended.status_code, ended.json()["code"]) == (409, "session_ended")
    assert pile_side.stops == [session.pk]


def _billed(member, station, *, kwh="10", at=None, fault=False):
    t0 = at or dt.datetime(2026, 11, 1, 10, tzinfo=SHANGHAI)
    # A fault: the pile's stop time before its start time (a time anomaly).
    t1 = t0 + dt.timedelta(hours=-1 if fault else 1)
    session = stopped_session(
        station=station, member=member, samples=[(t0, "0"), (t1, str(Decimal(kwh) * 1000))]
    )
    return bill_settle(session_id=session.pk)


def test_my_bills_have_their_period_lines(driver, station):
    bill = _billed(driver, station)
    body = driver_client(driver).get(f"/api/v1/bills/{bill.pk}/").json()
    assert (body["total"], body["state"], body["energy_kwh"]) == ("11.50", "paid", "10.000")
    assert body["lines"] == [
        {
            "period": 2,
            "period_label": "flat",
            "energy_kwh": "10.000",
            "electricity_price": "0.64000",
            "service_price": "0.51000",
            "electricity_fee": "6.40",
            "service_fee": "5.10",
        }
    ]


def test_a_fault_bill_shows_being_checked(driver, station):
    bill = _billed(driver, station, fault=True)
    assert bill.payment_state == PaymentState.FAULT
    body = driver_client(driver).get(f"/api/v1/bills/{bill.pk}/").json()
    assert body["state"] == "being_checked"
    assert body["state_label"].startswith("being checked")
    assert body["lines"] == []


def test_lists_are_mine_newest_first_filtered_and_within_a_query_budget(
    driver, station, django_assert_max_num_queries
):
    older = _billed(driver, station, at=dt.datetime(2026, 10, 1, 10, tzinfo=SHANGHAI))
    newer = _billed(driver, station)
    faulty = _billed(driver, station, fault=True, at=dt.datetime(2026, 9, 1, 10, tzinfo=SHANGHAI))
    _billed(MemberFactory(operator=station.operator), station)  # someone else's
    client = driver_client(driver)
    with django_assert_max_num_queries(5):
        bills = client.get("/api/v1/bills/").json()
    assert [b["id"] for b in bills["results"]] == [newer.pk, older.pk, faulty.pk]
    checking = client.get("/api/v1/bills/", {"state": "being_checked"}).json()
    assert [b["id"] for b in checking["results"]] == [faulty.pk]
    with django_assert_max_num_queries(4):
        sessions = client.get("/api/v1/sessions/").json()
    assert [s["bill_id"] for s in sessions["results"]] == [newer.pk, older.pk, faulty.pk]
    assert [s["state"] for s in sessions["results"]] == ["settled", "settled", "fault"]
    fault_only = client.get("/api/v1/sessions/", {"state": "fault"}).json()
    assert fault_only["count"] == 1


@pytest.mark.parametrize(
    ("value", "status"),
    [("2026-11-01T10:00:00+23:19", 200), ("9999-12-31T23:59:59-23:59", 400), ("soon", 400)],
)
def test_time_filters_take_any_iso_offset_and_refuse_the_impossible(driver, value, status):
    answer = driver_client(driver).get("/api/v1/sessions/", {"started_from": value})
    assert answer.status_code == status
    if status == 400:
        assert set(answer.json()["details"]) == {"started_from"}


def test_an_unknown_api_url_answers_in_the_error_shape(driver):
    answer = driver_client(driver).get("/api/v1/sessions/-1/")
    assert (answer.status_code, answer.json()["code"]) == (404, "not_found")


def test_the_beat_job_records_starts_nobody_asked_about(driver, connector, pile_side):
    first = _start(driver, connector, key="a").json()["id"]
    DriverStart.objects.filter(pk=first).update(
        created_at=timezone.now() - dt.timedelta(seconds=30)
    )
    fresh = DriverStart.objects.create(
        member=MemberFactory(operator=driver.operator), connector=connector, idempotency_key="b"
    )
    # The first start's reply (accepted) is in Redis: recorded; the fresh one (5 s grace,
    # never sent) stays open.
    assert starts_settle() == 1
    assert DriverStart.objects.get(pk=first).state == "accepted"
    assert DriverStart.objects.get(pk=fresh.pk).state == "starting"
    assert starts_settle() == 0
