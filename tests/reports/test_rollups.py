"""Rollups follow the bills: settlement, a repair that moves the day, a late payment,
repeated events, the rebuild and the verification."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from billing.models import Bill
from billing.services.repair import BillCorrections
from billing.services.settlement import bill_settle
from billing.services.wallet import wallet_recharge
from chargenet.events import event_deliver
from chargenet.models import EventDelivery, OutboxEvent
from faults.services.repair import fault_bill_repair
from reports.models import BillDay, FaultDay, HourLoad, PileDay
from reports.services.rollups import rollups_rebuild
from reports.tasks import rollups_rebuild_recent_task
from reports.verify import rollups_verify
from tests.billing.factories import MemberFactory, StaffFactory, stopped_session, tariffed_station
from tests.events import events_delivered
from tests.faults.worked_example import SAMPLES, at, funded_member

FIGURES = ("sessions", "energy_wh", "electricity_fee", "service_fee", "total", "paid", "owed")


def day_figures(station, day):
    rows = BillDay.objects.filter(station=station, day=day)
    return [tuple(getattr(r, f) for f in FIGURES) for r in rows]


@pytest.fixture
def station(db):
    return tariffed_station()


def test_a_settled_bill_is_counted_on_its_local_day_with_its_periods(station):
    member = funded_member(station.operator)
    # 23:30–00:30 Shanghai: the local day is the 6th (UTC would say the 6th too, 15:30).
    session = stopped_session(
        station=station,
        member=member,
        samples=[(at(2019, 9, 6, 23, 30), "0"), (at(2019, 9, 7, 0, 30), "7000")],
    )
    bill = bill_settle(session_id=session.pk)
    events_delivered()
    row = BillDay.objects.get(station=station)
    assert row.day == dt.date(2019, 9, 6)
    assert (row.sessions, row.energy_wh, row.total, row.paid, row.owed) == (
        1,
        D("7000.000"),
        bill.total,
        bill.total,
        D("0.00"),
    )
    assert row.energy_flat_wh + row.energy_valley_wh == D("7000.000")
    assert (row.energy_flat_wh, row.energy_valley_wh) == (D("3500.000"), D("3500.000"))
    assert PileDay.objects.get(station=station).charging_s == 3600
    loads = dict(HourLoad.objects.filter(station=station).values_list("hour", "energy_wh"))
    assert loads == {
        at(2019, 9, 6, 23, 0): D("3500.000"),
        at(2019, 9, 7, 0, 0): D("3500.000"),
    }
    assert rollups_verify() == []


def test_repair_moves_the_bill_to_its_corrected_day_and_counts_the_recovery(station):
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=SAMPLES, member=member)
    bill_settle(session_id=session.pk)
    events_delivered()
    fault_day = dt.date(2019, 9, 6)
    [row] = BillDay.objects.filter(station=station, day=fault_day)
    assert (row.fault_bills, row.fault_waiting, row.repaired) == (1, row.total, 0)
    assert FaultDay.objects.get(station=station).code == 8
    agent = StaffFactory(operator=station.operator)
    # The agent moves the start past midnight: the bill now belongs to the 7th.
    repaired = fault_bill_repair(
        session=session,
        corrections=BillCorrections(
            reason="start clock", started_at=at(2019, 9, 7, 0, 0, 1), meter_stop_wh=D(34820)
        ),
        acting_user=agent,
    )
    events_delivered()
    assert BillDay.objects.filter(station=station, day=fault_day).count() == 0
    [row] = BillDay.objects.filter(station=station, day=dt.date(2019, 9, 7))
    assert (row.fault_bills, row.repaired, row.recovered, row.fault_waiting) == (
        1,
        1,
        repaired.total,
        D("0.00"),
    )
    assert rollups_verify() == []


def test_a_late_payment_moves_owed_to_paid_on_the_bills_day(station):
    member = MemberFactory(operator=station.operator)
    session = stopped_session(
        station=station,
        member=member,
        samples=[(at(2019, 9, 6, 10, 0), "0"), (at(2019, 9, 6, 11, 0), "7000")],
    )
    bill = bill_settle(session_id=session.pk)
    events_delivered()
    total = bill.total
    assert day_figures(station, dt.date(2019, 9, 6)) == [
        (1, D("7000.000"), D("4.48"), D("3.57"), total, D("0.00"), total)
    ]
    wallet_recharge(member=member, amount=D("50.00"), reference="WX-late")
    events_delivered()
    assert day_figures(station, dt.date(2019, 9, 6)) == [
        (1, D("7000.000"), D("4.48"), D("3.57"), total, total, D("0.00"))
    ]


def test_a_repeated_event_changes_nothing(station):
    session = stopped_session(
        station=station, samples=[(at(2019, 9, 6, 10, 0), "0"), (at(2019, 9, 6, 11, 0), "7000")]
    )
    bill_settle(session_id=session.pk)
    events_delivered()
    event = OutboxEvent.objects.get(kind="bill.settled")
    # A redelivery after a crash: the delivery row gone, the event due again.
    EventDelivery.objects.filter(event=event).delete()
    OutboxEvent.objects.filter(pk=event.pk).update(delivered_at=None)
    assert "reports.rollups_recount" in event_deliver(event_id=event.pk)
    assert day_figures(station, dt.date(2019, 9, 6)) == [
        (1, D("7000.000"), D("4.48"), D("3.57"), D("8.05"), D("0.00"), D("0.00"))
    ]


def test_rebuild_restores_lost_rollups_and_verify_names_what_differs(station, capsys):
    session = stopped_session(
        station=station, samples=[(at(2019, 9, 6, 10, 0), "0"), (at(2019, 9, 6, 11, 0), "7000")]
    )
    bill_settle(session_id=session.pk)
    events_delivered()
    BillDay.objects.filter(station=station).update(total=D("1.00"))
    with pytest.raises(CommandError, match="2 report figures differ"):
        call_command("reports_verify")
    # The rollup row, and the daily report that reads it (asked for its channel).
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("channel=unknown: billday.total rollup=1.00 bills=8.05")
    assert (
        out[1] == f"{station.operator.code}/daily [channel=unknown]: total report=1.00 bills=8.05"
    )
    call_command("reports_rebuild", "--from", "2019-09-06", "--to", "2019-09-06")
    call_command("reports_verify")
    assert day_figures(station, dt.date(2019, 9, 6))[0][4] == D("8.05")
    assert rollups_rebuild(first_day=dt.date(2019, 9, 7), last_day=dt.date(2019, 9, 8)) == (0, 0)
    assert Bill.objects.count() == 1


def test_the_nightly_task_recounts_the_last_days(station):
    start = timezone.now() - dt.timedelta(hours=3)
    session = stopped_session(
        station=station, samples=[(start, "0"), (start + dt.timedelta(hours=1), "7000")]
    )
    bill_settle(session_id=session.pk)  # its event not delivered: no rollup yet
    assert not BillDay.objects.exists()
    assert rollups_rebuild_recent_task() == {"daily_rows": 1, "fault_rows": 0}
    assert BillDay.objects.get().sessions == 1
