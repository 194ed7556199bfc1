"""Settlement → fault bill → repair: exact amounts, one wallet deduction, audit, conflicts."""

import datetime as dt
from decimal import Decimal as D

import pytest

from billing.models import Bill, LedgerEntry, PaymentState, SessionTransition
from billing.services.repair import BillCorrections, RepairConflict, fault_bill_quote
from billing.services.settlement import bill_settle
from chargenet.errors import DomainError
from chargenet.models import AuditLog, OutboxEvent
from faults.models import FaultCase, Notification
from faults.services.cases import fault_case_dismiss
from faults.services.repair import fault_bill_repair
from faults.services.sweep import lost_bills_sweep
from faults.tasks import lost_bills_settle_task
from tests.billing.factories import StaffFactory, stopped_session, tariffed_station
from tests.events import events_delivered
from tests.faults.races import repair_at_once
from tests.faults.worked_example import SAMPLES, at, funded_member


@pytest.fixture
def fault_bill(db):
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=SAMPLES, member=member)
    bill = bill_settle(session_id=session.pk)
    events_delivered()
    agent = StaffFactory(operator=station.operator, username="cs1")
    return session, bill, member, agent


def test_settlement_makes_a_fault_bill_with_code_8_and_tells_the_driver(fault_bill):
    session, bill, member, _agent = fault_bill
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [8])
    case = FaultCase.objects.get(session=session)
    assert case.codes == [8]
    assert case.findings[0]["reasons"][0]["params"] == {
        "pile": "44820",
        "platform": "34800",
        "diff": "10020",
        "tolerance": "2241",
    }
    assert Notification.objects.get(session=session).kind == "being_checked"
    assert member.wallet.entries.count() == 1  # the recharge only


def test_quote_prices_the_corrected_register_with_the_same_tariff(fault_bill):
    session, _bill, _member, _agent = fault_bill
    audit_rows = AuditLog.objects.count()
    quote = fault_bill_quote(
        session=session, corrections=BillCorrections(reason="x", meter_stop_wh=D(34820))
    )
    assert (quote.pricing.total, quote.pricing.energy_wh) == (D("33.02"), D("34820.000"))
    assert AuditLog.objects.count() == audit_rows  # a quote writes nothing


def test_repair_settles_and_charges_once_with_audit(fault_bill):
    session, bill, member, agent = fault_bill
    repaired = fault_bill_repair(
        session=session,
        corrections=BillCorrections(reason="pile register glitch", meter_stop_wh=D(34820)),
        acting_user=agent,
    )
    assert repaired.pk == bill.pk
    assert (repaired.total, repaired.payment_state) == (D("33.02"), PaymentState.PAID)
    assert list(repaired.lines.values_list("period", "energy_wh")) == [
        (2, D("8840.000")),
        (3, D("25980.000")),
    ]
    assert list(member.wallet.entries.order_by("id").values_list("kind", "amount")) == [
        ("recharge", D("100.00")),
        ("charge", D("-33.02")),
    ]
    session.refresh_from_db()
    assert session.state == "settled"
    assert session.meter_stop_wh == D("44820.000")  # the pile's record stays as evidence
    assert list(
        SessionTransition.objects.filter(session=session)
        .order_by("at", "pk")
        .values_list("from_state", "to_state", "reason", "actor")
    ) == [("stopped", "fault", "fault codes 8", None),
          ("fault", "repaired", "pile register glitch", agent.pk),
          ("repaired", "settled", "pile register glitch", agent.pk)]  # fmt: skip
    action = FaultCase.objects.get(session=session).actions.get(kind="repair")
    assert (action.actor, action.reason, action.from_state, action.to_state) == (
        agent,
        "pile register glitch",
        "open",
        "repaired",
    )
    assert action.before["meter_stop_wh"] == "44820.000"
    assert action.before["payment_state"] == "fault"
    assert (action.after["total"], action.after["payment_state"]) == ("33.02", "paid")
    # Billing's audit row (the money) and the fault desk's (the case), both by the agent.
    assert AuditLog.objects.filter(action="fault_bill_repair", actor=agent).count() == 1
    repaired_event = OutboxEvent.objects.get(kind="bill.repaired", key=str(bill.pk))
    assert (repaired_event.payload["total"], repaired_event.payload["payment_state"]) == (
        "33.02",
        "paid",
    )
    assert AuditLog.objects.filter(action="fault_bill.repair", actor=agent).count() == 1


def test_second_repair_is_told_who_won(fault_bill):
    session, _bill, member, agent = fault_bill
    corrections = BillCorrections(reason="glitch", meter_stop_wh=D(34820))
    fault_bill_repair(session=session, corrections=corrections, acting_user=agent)
    with pytest.raises(RepairConflict, match="already repaired by cs1 at"):
        fault_bill_repair(session=session, corrections=corrections, acting_user=agent)
    assert member.wallet.entries.filter(kind="charge").count() == 1


@pytest.mark.parametrize(
    ("corrections", "message"),
    [
        (BillCorrections(reason=" ", meter_stop_wh=D(34820)), "Reason"),
        (BillCorrections(reason="x", meter_stop_wh=D(-1)), "Stop register: it cannot be below"),
        (
            BillCorrections(reason="x", stopped_at=at(2019, 9, 6, 23, 0)),
            "Stop time: it must be after the start",
        ),
    ],
)
def test_bad_corrections_change_nothing(fault_bill, corrections, message):
    session, bill, member, agent = fault_bill
    with pytest.raises(DomainError, match=message):
        fault_bill_repair(session=session, corrections=corrections, acting_user=agent)
    bill.refresh_from_db()
    assert bill.payment_state == PaymentState.FAULT
    assert FaultCase.objects.get(session=session).state == "open"
    assert member.wallet.entries.count() == 1


def test_dismissed_fault_bill_cannot_be_repaired(fault_bill):
    session, _bill, _member, agent = fault_bill
    fault_case_dismiss(
        case=FaultCase.objects.get(session=session), acting_user=agent, reason="checked"
    )
    with pytest.raises(RepairConflict, match="already dismissed by cs1"):
        fault_bill_repair(
            session=session,
            corrections=BillCorrections(reason="x", meter_stop_wh=D(34820)),
            acting_user=agent,
        )


@pytest.mark.parametrize("settled_first", [True, False])
def test_lost_bill_is_repaired_from_the_proposal(db, settled_first):
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=SAMPLES, member=member)
    # The StopTransaction never came: the session is still charging, its last sample 10:40.
    type(session).objects.filter(pk=session.pk).update(
        state="charging",
        stopped_at=None,
        meter_stop_wh=None,
        stop_received_at=None,
        last_sample_at=at(2019, 9, 7, 10, 40),
    )
    result = lost_bills_sweep(now=at(2019, 9, 7, 11, 30))
    assert dict(result.by_code) == {1: 1}
    case = FaultCase.objects.get(session=session)
    assert (case.proposal["stopped_at"], case.proposal["meter_stop_wh"]) == (
        "2019-09-07T02:40:00+00:00",
        "34800",
    )
    assert not Bill.objects.filter(session=session).exists()
    if settled_first:  # what the queued settlement does: an uncharged fault bill
        assert lost_bills_settle_task([session.pk]) == 1
        bill = Bill.objects.get(session=session)
        assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [1])
        assert FaultCase.objects.get(session=session).codes == [1]
    agent = StaffFactory(operator=station.operator, username="cs2")
    bill = fault_bill_repair(
        session=session,
        corrections=BillCorrections(
            reason="stop from the last sample (proposal)",
            stopped_at=dt.datetime.fromisoformat(case.proposal["stopped_at"]),
            meter_stop_wh=D(case.proposal["meter_stop_wh"]),
        ),
        acting_user=agent,
    )
    # flat 1000 + 7820 Wh, valley 25980 Wh: 8.82 × 1.15 + 25.98 × 0.88 = 33.0054 → 33.00
    assert (bill.total, bill.payment_state, bill.fault_codes) == (
        D("33.00"),
        PaymentState.PAID,
        [1],
    )
    assert member.wallet.entries.filter(kind="charge").get().amount == D("-33.00")


@pytest.mark.django_db(transaction=True)
def test_two_agents_apply_at_once_one_wins_one_is_told():
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=SAMPLES, member=member)
    bill_settle(session_id=session.pk)
    events_delivered()
    agents = [StaffFactory(operator=station.operator, username=f"agent{i}") for i in (1, 2)]
    outcomes = repair_at_once(
        session=session,
        corrections=BillCorrections(reason="glitch", meter_stop_wh=D(34820)),
        agents=agents,
    )
    winner = [name for name, outcome in outcomes.items() if outcome == "won"]
    assert len(winner) == 1
    (loser_message,) = [o for o in outcomes.values() if o != "won"]
    assert loser_message.startswith(f"This fault bill was already repaired by {winner[0]} at ")
    assert LedgerEntry.objects.filter(kind="charge").count() == 1
    member.wallet.refresh_from_db()
    assert member.wallet.balance == D("66.98")


def test_late_stop_after_the_sweep_keeps_the_fault_bill(db):
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=SAMPLES, member=member)
    type(session).objects.filter(pk=session.pk).update(
        state="charging", stopped_at=None, meter_stop_wh=None, stop_received_at=None,
        last_sample_at=at(2019, 9, 7, 10, 40),
    )  # fmt: skip
    assert lost_bills_sweep(now=at(2019, 9, 7, 11, 30)).lost == 1
    # The pile rebooted and sends its queued StopTransaction (what the gateway's
    # session_stop writes on a session closed without its stop); then settlement runs.
    type(session.pile).objects.filter(pk=session.pile_id).update(
        last_boot_at=at(2019, 9, 7, 11, 39)
    )
    type(session).objects.filter(pk=session.pk).update(
        stopped_at=at(2019, 9, 7, 10, 40, 40),
        meter_stop_wh=D("34820"),
        stop_received_at=at(2019, 9, 7, 11, 40),
    )
    bill = bill_settle(session_id=session.pk)
    events_delivered()
    assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [1])
    assert member.wallet.entries.filter(kind="charge").count() == 0
