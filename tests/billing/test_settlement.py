import datetime as dt
import threading
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from billing.models import (
    Bill,
    BillLine,
    LedgerEntry,
    PaymentState,
    SessionState,
    SessionTransition,
    TariffVersion,
    Wallet,
)
from billing.services.settlement import SessionNotStopped, bill_settle
from billing.services.wallet import ArrearsError, member_start_allowed, wallet_recharge
from billing.tasks import sessions_settle_task
from chargenet.models import OutboxEvent
from faults.codes import FaultCode
from tests.billing.factories import MemberFactory, StationFactory, stopped_session, tariffed_station

SH = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.django_db


def at(*args):
    return dt.datetime(*args, tzinfo=SH)


EXAMPLE = [
    (at(2019, 9, 6, 23, 26, 13), "0"),
    (at(2019, 9, 7, 0, 0), "1000"),
    (at(2019, 9, 7, 8, 0), "26980"),
    (at(2019, 9, 7, 10, 40, 40), "34820"),
]


def funded_member(operator, amount="100.00"):
    member = MemberFactory(operator=operator)
    wallet_recharge(member=member, amount=D(amount), reference=f"WX{member.pk}")
    return member


def test_settling_the_worked_example_charges_33_02_once():
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=EXAMPLE, member=member)

    bill = bill_settle(session_id=session.pk)

    assert (bill.total, bill.electricity_fee, bill.service_fee) == (
        D("33.02"),
        D("14.22"),
        D("18.80"),
    )
    assert bill.payment_state == PaymentState.PAID
    assert bill.energy_wh == D("34820.000")
    assert bill.duration_s == 11 * 3600 + 14 * 60 + 27
    assert list(
        bill.lines.values_list("period", "energy_wh", "electricity_fee", "service_fee")
    ) == [
        (2, D("8840.000"), D("5.65"), D("4.51")),
        (3, D("25980.000"), D("8.57"), D("14.29")),
    ]
    in_force = TariffVersion.objects.get(plan__assignments__station=station)
    assert bill.tariff_version_id == in_force.pk
    assert member.wallet.entries.get(kind="charge").amount == D("-33.02")
    member.wallet.refresh_from_db()
    assert member.wallet.balance == D("66.98")
    session.refresh_from_db()
    assert session.state == SessionState.SETTLED
    assert list(session.transitions.values_list("from_state", "to_state")) == [
        ("stopped", "settled")
    ]


def test_settling_again_or_through_the_task_returns_the_same_bill():
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=EXAMPLE, member=member)
    first = bill_settle(session_id=session.pk)
    assert bill_settle(session_id=session.pk).pk == first.pk
    assert sessions_settle_task([session.pk]) == [session.order_no]
    assert LedgerEntry.objects.filter(bill=first).count() == 1
    assert SessionTransition.objects.filter(session=session).count() == 1


def test_missing_tariff_makes_a_fault_bill_not_a_default_price():
    station = StationFactory()  # no plan assigned
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=EXAMPLE, member=member)

    bill = bill_settle(session_id=session.pk)

    assert bill.payment_state == PaymentState.FAULT
    assert bill.fault_codes == [FaultCode.TARIFF_MISSING]
    assert "No tariff is in force at 2019-09-06 23:26:13" in bill.fault_detail
    assert (bill.total, bill.lines.count()) == (D("0.00"), 0)
    assert not LedgerEntry.objects.filter(kind="charge").exists()
    session.refresh_from_db()
    assert session.state == SessionState.FAULT


@pytest.mark.parametrize(
    ("samples", "codes"),
    [
        # the register drops (a meter reset): energy lost, never a negative amount
        (
            [
                (at(2019, 9, 7, 1), "5000"),
                (at(2019, 9, 7, 1, 30), "6000"),
                (at(2019, 9, 7, 2), "10"),
            ],
            [FaultCode.ENERGY_LOST],
        ),
        # the pile's stop time is before its start time
        ([(at(2019, 9, 7, 2), "0"), (at(2019, 9, 7, 1), "3000")], [FaultCode.TIME_ANOMALY]),
    ],
)
def test_bad_meter_data_in_a_real_session_becomes_a_fault_bill(samples, codes):
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=samples, member=member)
    bill = bill_settle(session_id=session.pk)
    assert (bill.payment_state, bill.fault_codes, bill.total) == (
        PaymentState.FAULT,
        codes,
        D("0.00"),
    )
    assert member.wallet.entries.count() == 1  # the recharge only


def test_short_balance_settles_as_owed_and_blocks_the_next_start_until_recharged():
    station = tariffed_station()
    member = funded_member(station.operator, amount="10.00")
    session = stopped_session(station=station, samples=EXAMPLE, member=member)

    bill = bill_settle(session_id=session.pk)

    assert bill.payment_state == PaymentState.OWED
    with pytest.raises(ArrearsError) as denied:
        member_start_allowed(member=member)
    assert str(denied.value) == (
        f"You owe 33.02 yuan from order {session.order_no}; please recharge."
    )
    wallet_recharge(member=member, amount=D("30.00"), reference="WX-second")
    bill.refresh_from_db()
    assert bill.payment_state == PaymentState.PAID
    member.wallet.refresh_from_db()
    assert member.wallet.balance == D("6.98")
    member_start_allowed(member=member)  # no longer raises
    # What consumers (reports, partner pushes) learn: the recharge, then the bill paid.
    assert [
        (e.kind, e.payload)
        for e in OutboxEvent.objects.filter(kind__in=["payment.received", "bill.paid"])
        .exclude(key=f"WX{member.pk}")  # the funding recharge
        .order_by("pk")
    ] == [
        (
            "payment.received",
            {
                "member_id": member.pk,
                "entry_id": member.wallet.entries.get(reference="WX-second").pk,
                "reference": "WX-second",
                "amount": "30.00",
                "balance_after": "40.00",
            },
        ),
        ("bill.paid", {"bill_id": bill.pk, "member_id": member.pk, "total": "33.02"}),
    ]


def test_a_session_not_yet_stopped_is_not_settled():
    station = tariffed_station()
    session = stopped_session(station=station, samples=EXAMPLE, state=SessionState.CHARGING)
    with pytest.raises(SessionNotStopped, match="only a stopped session is settled"):
        bill_settle(session_id=session.pk)
    assert not Bill.objects.exists()


def test_a_session_without_a_member_is_billed_unpaid():
    station = tariffed_station()
    session = stopped_session(station=station, samples=EXAMPLE)
    bill = bill_settle(session_id=session.pk)
    assert (bill.payment_state, bill.total) == (PaymentState.UNPAID, D("33.02"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_settlements_charge_the_wallet_exactly_once():
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=EXAMPLE, member=member)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def settle():
        try:
            barrier.wait()
            results.append(bill_settle(session_id=session.pk).pk)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=settle) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(set(results)) == 1 and len(results) == 4
    assert LedgerEntry.objects.filter(kind="charge").count() == 1
    assert BillLine.objects.count() == 2
    member.wallet.refresh_from_db()
    assert member.wallet.balance == D("66.98")
    assert SessionTransition.objects.filter(session=session).count() == 1


def test_settlement_takes_a_fixed_number_of_statements(django_assert_max_num_queries):
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=EXAMPLE, member=member)
    # bill?, lock, samples, tariffs, wallet take, bill, lines, ledger, transition, session,
    # plus the savepoint and its release (the test runs inside a transaction), plus the
    # fault rules' facts (one query) and the driver's notification (one INSERT)
    with django_assert_max_num_queries(14):
        bill_settle(session_id=session.pk)
    with django_assert_max_num_queries(3):
        bill_settle(session_id=session.pk)


def test_an_unknown_rounding_mode_is_refused_and_changes_nothing():
    from chargenet.money import MoneyError

    station = tariffed_station()
    station.operator.rounding_mode = "ROUND_UP"
    station.operator.save()
    session = stopped_session(station=station, samples=EXAMPLE)
    with pytest.raises(MoneyError, match="Unknown rounding mode ROUND_UP"):
        bill_settle(session_id=session.pk)
    session.refresh_from_db()
    assert (session.state, Bill.objects.count()) == (SessionState.STOPPED, 0)


def _in_threads(*calls):
    barrier = threading.Barrier(len(calls))
    errors = []

    def run(call):
        try:
            barrier.wait()
            call()
        except Exception as exc:  # collected and asserted by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_two_sessions_racing_for_one_balance_pay_one_and_owe_the_other():
    station = tariffed_station()
    member = funded_member(station.operator, amount="40.00")
    sessions = [stopped_session(station=station, samples=EXAMPLE, member=member) for _ in range(2)]
    errors = _in_threads(*(lambda s=s: bill_settle(session_id=s.pk) for s in sessions))
    assert errors == []
    states = sorted(Bill.objects.values_list("payment_state", flat=True))
    assert states == [PaymentState.OWED, PaymentState.PAID]
    member.wallet.refresh_from_db()
    assert member.wallet.balance == D("6.98")


@pytest.mark.django_db(transaction=True)
def test_a_recharge_racing_with_itself_is_credited_once():
    member = MemberFactory()
    errors = _in_threads(
        *(lambda: wallet_recharge(member=member, amount=D("20.00"), reference="WX-race"),) * 3
    )
    assert errors == []
    assert LedgerEntry.objects.filter(reference="WX-race").count() == 1
    # (read afresh: the threads shared ``member``, whose cached wallet may be a loser's)
    assert Wallet.objects.get(member=member).balance == D("20.00")
