"""The lost-bill sweep on real PostgreSQL: what becomes a fault bill, with which code and
proposal, in a number of queries that does not grow with the sessions."""

from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import ChargingSession, SessionTransition
from billing.services.settlement import bill_settle
from faults.models import FaultAction, FaultCase, FaultSettings, Notification
from faults.services.sweep import lost_bills_sweep
from faults.tasks import lost_bills_settle_task
from stations.models import Pile, PileFault
from tests.events import events_delivered

from .conftest import at


def test_silent_session_becomes_code_1_with_a_proposal(make_session, status):
    session = make_session()
    status(session.connector, -1, "Preparing")
    status(session.connector, 0, "Charging")
    result = lost_bills_sweep(now=at(61))
    assert (result.candidates, result.lost, dict(result.by_code)) == (1, 1, {1: 1})
    case = FaultCase.objects.get(session=session)
    assert case.codes == [1]
    assert case.source == "sweep"
    assert case.firmware == "2090100"
    assert case.proposal == {
        "stopped_at": at(30).isoformat(),
        "meter_stop_wh": "11000",
        "energy_wh": "10000",
        "basis": {"key": "proposal_from_sample", "params": {"at": "2026-11-01 10:30:00"}},
    }
    assert case.findings == [
        {
            "code": 1,
            "reasons": [
                {"key": "silent", "params": {"minutes": "31.0", "at": "2026-11-01 10:30:00"}}
            ],
        }
    ]
    session.refresh_from_db()
    assert (session.state, session.stop_reason, session.stopped_at) == ("stopped", "Lost", None)
    assert list(
        SessionTransition.objects.filter(session=session).values_list("from_state", "to_state")
    ) == [("charging", "stopped")]
    assert list(case.actions.values_list("kind", "to_state")) == [("detect", "open")]
    # The settlement the sweep queued makes the fault bill; its event tells the driver.
    assert not Notification.objects.filter(session=session).exists()
    assert lost_bills_settle_task([session.pk]) == 1
    events_delivered()
    notification = Notification.objects.get(session=session)
    assert (notification.kind, notification.state) == ("being_checked", "pending")


def test_session_still_sampling_is_left_alone(make_session):
    session = make_session()
    assert lost_bills_sweep(now=at(59)).lost == 0
    session.refresh_from_db()
    assert session.state == "charging"


def test_connector_available_and_offline_pile_make_code_2(make_session, status):
    session = make_session()
    PileFault.objects.create(pile=session.pile, kind="offline", started_at=at(33))
    status(session.connector, 45, "Available")
    result = lost_bills_sweep(now=at(46))
    assert dict(result.by_code) == {2: 1}
    case = FaultCase.objects.get(session=session)
    assert [r["key"] for r in case.findings[0]["reasons"]] == ["connector_available", "offline"]
    # The draft stops where the pile went offline, with the last register before it.
    assert (case.proposal["stopped_at"], case.proposal["energy_wh"]) == (
        at(33).isoformat(),
        "10000",
    )


def test_rebooted_pile_makes_code_1(make_session):
    rebooted = make_session()
    Pile.objects.filter(pk=rebooted.pile_id).update(last_boot_at=at(35))
    untouched = make_session()
    assert lost_bills_sweep(now=at(42)).lost == 1
    (case,) = FaultCase.objects.all()
    assert case.session_id == rebooted.pk
    assert [r["key"] for r in case.findings[0]["reasons"]] == ["pile_rebooted"]
    untouched.refresh_from_db()
    assert untouched.state == "charging"


def test_superseded_session_settles_as_code_1(make_session):
    """A new transaction on the connector: the gateway closes the older session at once
    (stopped, no stop values) and settlement runs the rules, which see the newer one."""
    first = make_session()
    ChargingSession.objects.filter(pk=first.pk).update(state="stopped", stop_reason="Superseded")
    make_session(connector=first.connector, created=at(40), samples=((41, 1500),))
    bill = bill_settle(session_id=first.pk)
    events_delivered()
    case = FaultCase.objects.get(session=first)
    assert case.codes == [1, 12]  # no tariff at this test station: 12 as well
    assert bill.fault_codes == [1, 12]
    assert [r["key"] for r in case.findings[0]["reasons"]] == ["new_transaction", "silent"]
    assert case.proposal["meter_stop_wh"] == "11000"


def test_operator_silence_limit_applies(make_session, operator):
    FaultSettings.objects.create(operator=operator, max_silence_minutes=120)
    make_session()
    assert lost_bills_sweep(now=at(61)).lost == 0
    assert lost_bills_sweep(now=at(151)).lost == 1


def test_sweep_is_idempotent_and_member_less_sessions_get_no_message(make_session):
    session = make_session(member=None)
    assert lost_bills_sweep(now=at(61)).lost == 1
    assert lost_bills_sweep(now=at(62)).lost == 0
    assert FaultCase.objects.filter(session=session).count() == 1
    assert FaultAction.objects.count() == 1
    assert Notification.objects.count() == 0


def _sweep_queries(now) -> int:
    with CaptureQueriesContext(connection) as ctx:
        lost_bills_sweep(now=now)
    return len(ctx.captured_queries)


def test_query_count_does_not_grow_with_sessions(make_session, status):
    for _ in range(2):
        make_session()
    few = _sweep_queries(at(61))
    for _ in range(12):
        make_session(created=at(100), samples=((110, 2000),))
    many = _sweep_queries(at(200))
    assert FaultCase.objects.count() == 14
    assert many == few


def test_stopped_session_racing_the_sweep_is_not_marked(make_session):
    session = make_session()
    ChargingSession.objects.filter(pk=session.pk).update(
        state="stopped", stopped_at=at(50), meter_stop_wh=Decimal(12000)
    )
    assert lost_bills_sweep(now=at(61 + 60 * 24)).lost == 0
    assert not FaultCase.objects.exists()
