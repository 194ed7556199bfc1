import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from billing.models import LedgerEntry, PaymentState, SessionState
from billing.pricing import RegisterBackwards
from billing.services.settlement import BillNotFault, bill_repair_apply, bill_settle
from billing.services.wallet import wallet_recharge
from chargenet.errors import DomainError
from chargenet.models import AuditLog
from faults.codes import FaultCode
from tests.billing.factories import MemberFactory, StaffFactory, stopped_session, tariffed_station

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")
START, STOP = dt.datetime(2019, 9, 7, 1, tzinfo=SH), dt.datetime(2019, 9, 7, 2, tzinfo=SH)


@pytest.fixture
def fault_bill():
    station = tariffed_station()
    member = MemberFactory(operator=station.operator)
    wallet_recharge(member=member, amount=D("50.00"), reference="WX-repair")
    # the register drops to 10 Wh: energy lost, a fault bill
    session = stopped_session(
        station=station, samples=[(START, "5000"), (STOP, "10")], member=member
    )
    bill = bill_settle(session_id=session.pk)
    assert bill.fault_codes == [FaultCode.ENERGY_LOST]
    return bill


def test_a_repair_prices_the_corrections_and_charges_once(fault_bill):
    agent = StaffFactory(operator=fault_bill.operator)
    bill = bill_repair_apply(
        bill_id=fault_bill.pk,
        samples=[(START, D("5000")), (STOP, D("15000"))],
        actor=agent,
        reason="meter reset; energy from the pile's record",
    )
    # valley 10 kWh × (0.33 + 0.55)
    assert (bill.total, bill.payment_state, bill.energy_wh) == (
        D("8.80"),
        PaymentState.PAID,
        D("10000.000"),
    )
    assert LedgerEntry.objects.get(kind="charge", bill=bill).amount == D("-8.80")
    assert list(bill.session.transitions.values_list("to_state", flat=True)) == [
        SessionState.FAULT,
        SessionState.REPAIRED,
        SessionState.SETTLED,
    ]
    audit = AuditLog.objects.get(action="fault_bill_repair")
    assert (audit.actor, audit.before["total"], audit.after["total"]) == (agent, "0.00", "8.80")
    with pytest.raises(BillNotFault, match="someone applied a repair already"):
        bill_repair_apply(
            bill_id=fault_bill.pk,
            samples=[(START, D("0")), (STOP, D("1"))],
            actor=agent,
            reason="again",
        )
    assert LedgerEntry.objects.filter(kind="charge").count() == 1


@pytest.mark.parametrize(
    ("samples", "reason", "error"),
    [
        ([(START, D("0")), (STOP, D("1000"))], " ", DomainError),
        ([(START, D("5000")), (STOP, D("10"))], "still wrong", RegisterBackwards),
    ],
)
def test_a_bad_repair_changes_nothing(fault_bill, samples, reason, error):
    with pytest.raises(error):
        bill_repair_apply(
            bill_id=fault_bill.pk,
            samples=samples,
            actor=StaffFactory(operator=fault_bill.operator),
            reason=reason,
        )
    fault_bill.refresh_from_db()
    assert (fault_bill.payment_state, fault_bill.total) == (PaymentState.FAULT, D("0.00"))
    assert not LedgerEntry.objects.filter(kind="charge").exists()


def test_a_repair_across_the_autumn_change_takes_the_corrections_as_instants(fault_bill):
    # Berlin wall clock: 02:30 CEST (fold=0) then 02:10 CET (fold=1), 40 minutes apart.
    berlin = ZoneInfo("Europe/Berlin")
    first = dt.datetime(2024, 10, 27, 2, 30, tzinfo=berlin, fold=0)
    then = dt.datetime(2024, 10, 27, 2, 10, tzinfo=berlin, fold=1)
    bill = bill_repair_apply(
        bill_id=fault_bill.pk,
        samples=[(then, D("6000")), (first, D("5000"))],
        actor=StaffFactory(operator=fault_bill.operator),
        reason="corrected from the pile's log",
    )
    assert (bill.started_at, bill.ended_at, bill.duration_s, bill.energy_wh) == (
        dt.datetime(2024, 10, 27, 0, 30, tzinfo=dt.UTC),
        dt.datetime(2024, 10, 27, 1, 10, tzinfo=dt.UTC),
        2400,
        D("1000.000"),
    )
