"""Settlement asks the fault desk's check through billing's port, and tells what happened
as a ``bill.settled`` event; the desk opens the fault bill and the driver's message from
that event, once however often it is delivered."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from billing.models import Bill, ChargingSession, PaymentState
from billing.services import settlement_check
from billing.services.settlement import bill_settle
from chargenet.events import event_deliver, events_retry
from chargenet.models import EventDelivery, OutboxEvent
from faults.models import FaultCase, Notification
from tests.billing.factories import stopped_session, tariffed_station
from tests.events import events_delivered
from tests.faults.worked_example import SAMPLES, funded_member

pytestmark = pytest.mark.django_db

PAID_SAMPLES = [*SAMPLES[:3], (SAMPLES[4][0], "34820")]  # the worked example, no glitch


@pytest.fixture
def station():
    return tariffed_station()


def test_a_paid_bill_is_told_as_an_event_and_the_driver_is_told_after_commit(station):
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=PAID_SAMPLES, member=member)
    events_delivered()  # the station's own (its tariff assignment), out of the way
    bill = bill_settle(session_id=session.pk)
    event = OutboxEvent.objects.get(kind="bill.settled", key=str(bill.pk))
    assert event.payload == {
        "bill_id": bill.pk,
        "session_id": session.pk,
        "order_no": session.order_no,
        "operator_id": station.operator_id,
        "station_id": station.pk,
        "member_id": member.pk,
        "channel": session.channel,
        "payment_state": "paid",
        "energy_wh": "34820.000",
        "electricity_fee": "14.22",
        "service_fee": "18.80",
        "total": "33.02",
        "codes": [],
        "blocking": [],
        "record": None,
    }
    # Nothing of the desk's is written in settlement's transaction: it follows the event.
    assert not Notification.objects.filter(session=session).exists()
    assert events_delivered() == 1
    notification = Notification.objects.get(session=session)
    assert (notification.kind, notification.payload["amount"]) == ("charge_finished", "33.02")
    assert not FaultCase.objects.filter(session=session).exists()


def test_a_fault_bill_opens_its_case_once_however_often_the_event_comes(station):
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=SAMPLES, member=member)
    bill = bill_settle(session_id=session.pk)
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [8])
    event = OutboxEvent.objects.get(kind="bill.settled", key=str(bill.pk))
    assert (event.payload["codes"], event.payload["blocking"]) == ([8], [8])
    assert [f["code"] for f in event.payload["record"]["findings"]] == [8]

    took = event_deliver(event_id=event.pk)
    assert [name for name in took if name.startswith("faults.")] == [
        "faults.cases_open",
        "faults.session_ended_notify",
    ]
    # At least once: a worker that died before marking the event delivered does it again.
    EventDelivery.objects.filter(event=event).delete()
    OutboxEvent.objects.filter(pk=event.pk).update(delivered_at=None)
    assert events_retry(event_ids=[event.pk]) == 1
    case = FaultCase.objects.get(session=session)
    assert (case.codes, case.blocks_payment, case.pile_values["energy_wh"]) == ([8], True, "44820")
    assert list(case.actions.values_list("kind", flat=True)) == ["detect"]
    assert Notification.objects.get(session=session).kind == "being_checked"


def test_settlement_refuses_to_run_without_the_desks_check(station, monkeypatch):
    monkeypatch.setattr(settlement_check, "_check", None)
    session = stopped_session(station=station, samples=PAID_SAMPLES)
    with pytest.raises(ImproperlyConfigured, match="never charges a bill unchecked"):
        bill_settle(session_id=session.pk)
    assert not Bill.objects.filter(session=session).exists()
    assert ChargingSession.objects.get(pk=session.pk).state == "stopped"
    assert not OutboxEvent.objects.filter(kind="bill.settled").exists()
