"""Settling many sessions at once: the same bills as one by one, in a fixed number of
statements, and the beat task that settles what the per-session tasks left behind."""

import datetime as dt
import threading
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection

from billing.models import (
    Bill,
    BillLine,
    ChargingSession,
    LedgerEntry,
    PaymentState,
    SessionState,
    SessionTransition,
    Wallet,
)
from billing.services.settlement import (
    SessionNotStopped,
    bills_settle,
    sessions_settle_pending,
)
from billing.services.wallet import wallet_recharge, wallet_verify
from billing.tasks import sessions_settle_pending_task
from faults.codes import FaultCode
from faults.models import FaultCase, Notification
from tests.billing.factories import MemberFactory, StationFactory, stopped_session, tariffed_station
from tests.events import events_delivered

SH = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.django_db


def at(*args):
    return dt.datetime(*args, tzinfo=SH)


EXAMPLE = [  # the worked example of issue 4: 33.02 yuan
    (at(2019, 9, 6, 23, 26, 13), "0"),
    (at(2019, 9, 7, 0, 0), "1000"),
    (at(2019, 9, 7, 8, 0), "26980"),
    (at(2019, 9, 7, 10, 40, 40), "34820"),
]
SMALL = [(at(2019, 9, 7, 1), "0"), (at(2019, 9, 7, 2), "5000")]  # 5 kWh valley: 4.40
BACKWARDS = [
    (at(2019, 9, 7, 1), "5000"),
    (at(2019, 9, 7, 1, 30), "6000"),
    (at(2019, 9, 7, 2), "10"),
]


def funded_member(operator, amount):
    member = MemberFactory(operator=operator)
    wallet_recharge(member=member, amount=D(amount), reference=f"WX{member.pk}")
    return member


def mixed_sessions(count: int) -> list[ChargingSession]:
    """``count`` stopped sessions cycling through the cases settlement tells apart: paid,
    owed, a fault (register backwards), no member (unpaid), no tariff (fault 12)."""
    station, bare = tariffed_station(), StationFactory()
    out = []
    for n in range(count):
        case = n % 5
        if case == 0:
            member = funded_member(station.operator, "100.00")
            out.append(stopped_session(station=station, samples=EXAMPLE, member=member))
        elif case == 1:
            member = funded_member(station.operator, "10.00")
            out.append(stopped_session(station=station, samples=EXAMPLE, member=member))
        elif case == 2:
            member = funded_member(station.operator, "100.00")
            out.append(stopped_session(station=station, samples=BACKWARDS, member=member))
        elif case == 3:
            out.append(stopped_session(station=station, samples=EXAMPLE))
        else:
            member = funded_member(bare.operator, "100.00")
            out.append(stopped_session(station=bare, samples=EXAMPLE, member=member))
    return out


EXPECTED = {
    0: (PaymentState.PAID, D("33.02"), []),
    1: (PaymentState.OWED, D("33.02"), []),
    2: (PaymentState.FAULT, D("0.00"), [FaultCode.ENERGY_LOST]),
    3: (PaymentState.UNPAID, D("33.02"), []),
    4: (PaymentState.FAULT, D("0.00"), [FaultCode.TARIFF_MISSING]),
}


def test_a_batch_bills_each_session_as_settling_it_alone_would():
    sessions = mixed_sessions(10)
    # asked in any order (and one twice): the bills come back in that order
    asked = [s.pk for s in reversed(sessions)] + [sessions[0].pk]

    bills = bills_settle(session_ids=asked)
    events_delivered()

    assert [b.session_id for b in bills] == asked
    by_session = {b.session_id: b for b in bills}
    for n, session in enumerate(sessions):
        bill = by_session[session.pk]
        assert (bill.payment_state, bill.total, bill.fault_codes) == EXPECTED[n % 5]
    assert BillLine.objects.count() == 2 * 6  # two periods on each of the six priced
    assert LedgerEntry.objects.filter(kind="charge").count() == 2
    assert sorted(ChargingSession.objects.values_list("state", flat=True)) == sorted(
        [SessionState.SETTLED] * 6 + [SessionState.FAULT] * 4
    )
    assert SessionTransition.objects.count() == 10
    assert FaultCase.objects.count() == 4
    assert Notification.objects.count() == 8  # every session with a member
    assert wallet_verify() == []
    # settling again changes nothing and returns the same bills
    assert [b.pk for b in bills_settle(session_ids=asked)] == [b.pk for b in bills]
    assert (Bill.objects.count(), SessionTransition.objects.count()) == (10, 10)


def test_the_bills_as_stored_are_the_bills_returned():
    station = tariffed_station()
    member = funded_member(station.operator, "100.00")
    reported = {"charging_seconds": 40467, "amount": "33.02"}
    paid = stopped_session(station=station, samples=EXAMPLE, member=member, pile_reported=reported)
    fault = stopped_session(station=station, samples=BACKWARDS, member=member)

    returned = bills_settle(session_ids=[paid.pk, fault.pk])

    def columns(bill):
        return {f.attname: getattr(bill, f.attname) for f in Bill._meta.concrete_fields}

    stored = [Bill.objects.get(session=paid), Bill.objects.get(session=fault)]
    assert [columns(b) for b in stored] == [columns(b) for b in returned]
    assert (stored[0].pile_reported, stored[0].fault_codes) == (reported, [])
    assert stored[1].fault_codes == [FaultCode.ENERGY_LOST]


def test_one_member_with_several_sessions_pays_them_in_order_while_the_balance_lasts():
    station = tariffed_station()
    member = funded_member(station.operator, "40.00")
    first, second, third = (
        stopped_session(station=station, samples=samples, member=member)
        for samples in (EXAMPLE, EXAMPLE, SMALL)
    )

    bills = bills_settle(session_ids=[first.pk, second.pk, third.pk])

    # 40.00 - 33.02 = 6.98 cannot pay the second 33.02, but it still pays 4.40 after it
    assert [(b.payment_state, b.total) for b in bills] == [
        (PaymentState.PAID, D("33.02")),
        (PaymentState.OWED, D("33.02")),
        (PaymentState.PAID, D("4.40")),
    ]
    assert list(
        LedgerEntry.objects.filter(kind="charge")
        .order_by("pk")
        .values_list("amount", "balance_after")
    ) == [(D("-33.02"), D("6.98")), (D("-4.40"), D("2.58"))]
    assert Wallet.objects.get(member=member).balance == D("2.58")
    assert wallet_verify() == []


def test_a_batch_with_a_session_not_stopped_changes_nothing():
    station = tariffed_station()
    ready = stopped_session(station=station, samples=EXAMPLE)
    charging = stopped_session(station=station, samples=EXAMPLE, state=SessionState.CHARGING)
    with pytest.raises(SessionNotStopped, match="only a stopped session is settled"):
        bills_settle(session_ids=[ready.pk, charging.pk])
    ready.refresh_from_db()
    assert (ready.state, Bill.objects.count()) == (SessionState.STOPPED, 0)


@pytest.mark.parametrize(("count", "budget"), [(1, 14), (5, 17), (50, 17)])
def test_a_batch_takes_the_same_number_of_statements_whatever_its_size(
    count, budget, django_assert_max_num_queries
):
    sessions = mixed_sessions(count)  # 1: one paid bill; 5 and 50: every kind of bill
    # bills?, lock, facts (samples included), tariffs, wallets (lock, update), bills,
    # lines, ledger, transitions, sessions, messages; the fault cases (lock, insert,
    # action) when there are any; plus the savepoint and its release (the test runs
    # inside a transaction)
    with django_assert_max_num_queries(budget):
        bills_settle(session_ids=[s.pk for s in sessions])
    with django_assert_max_num_queries(3):
        bills_settle(session_ids=[s.pk for s in sessions])


def test_pending_sessions_settle_in_batches_oldest_first():
    station = tariffed_station()
    sessions = [stopped_session(station=station, samples=EXAMPLE) for _ in range(3)]
    charging = stopped_session(station=station, samples=EXAMPLE, state=SessionState.CHARGING)

    assert [b.session_id for b in sessions_settle_pending(limit=2)] == [s.pk for s in sessions[:2]]
    assert sessions_settle_pending_task() == 1
    assert sessions_settle_pending_task() == 0
    assert Bill.objects.count() == 3
    charging.refresh_from_db()
    assert charging.state == SessionState.CHARGING


def test_a_session_that_cannot_be_settled_does_not_hold_back_the_pending_batch():
    station = tariffed_station()
    broken = tariffed_station()
    broken.operator.rounding_mode = "ROUND_UP"  # not a mode we know: settlement refuses
    broken.operator.save()
    stuck = stopped_session(station=broken, samples=EXAMPLE)
    others = [stopped_session(station=station, samples=EXAMPLE) for _ in range(2)]

    bills = sessions_settle_pending()

    assert [b.session_id for b in bills] == [s.pk for s in others]
    assert [b.total for b in bills] == [D("33.02")] * 2
    stuck.refresh_from_db()
    assert stuck.state == SessionState.STOPPED
    assert not Bill.objects.filter(session=stuck).exists()


def test_beat_runs_the_pending_settlement_every_10_seconds():
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values()]
    assert {
        "task": "billing.sessions_settle_pending",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    } in entries


@pytest.mark.django_db(transaction=True)
def test_pending_batches_running_at_once_skip_each_others_sessions():
    station = tariffed_station()
    members = [funded_member(station.operator, "100.00") for _ in range(6)]
    for member in members:
        stopped_session(station=station, samples=EXAMPLE, member=member)
    barrier = threading.Barrier(3)
    counts, errors = [], []

    def run():
        try:
            barrier.wait()
            counts.append(len(sessions_settle_pending(limit=6)))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts.append(sessions_settle_pending(limit=6))  # whatever was left is settled now
    assert errors == []
    assert sum(counts[:3]) + len(counts[3]) == 6
    assert LedgerEntry.objects.filter(kind="charge").count() == 6
    assert set(Wallet.objects.values_list("balance", flat=True)) == {D("66.98")}
    assert wallet_verify() == []


def test_a_session_stopped_in_2999_is_a_fault_bill_and_the_batch_settles_the_rest(
    django_assert_max_num_queries,
):
    # The pile's clock said 2999 when the platform received the stop at 10:40:40: priced,
    # it would walk 973 years of half hours. Decided before pricing: a fault bill (3, 5).
    station = tariffed_station()
    members = [funded_member(station.operator, "100.00") for _ in range(3)]
    before = stopped_session(station=station, samples=EXAMPLE, member=members[0])
    future = stopped_session(
        station=station, samples=[*EXAMPLE[:3], (at(2999, 1, 1), "34820")], member=members[1]
    )
    ChargingSession.objects.filter(pk=future.pk).update(stop_received_at=at(2019, 9, 7, 10, 40, 40))
    after = stopped_session(station=station, samples=EXAMPLE, member=members[2])

    with django_assert_max_num_queries(40):
        bills = sessions_settle_pending()
    events_delivered()

    assert [(b.session_id, b.payment_state, b.total) for b in bills] == [
        (before.pk, PaymentState.PAID, D("33.02")),
        (future.pk, PaymentState.FAULT, D("0.00")),
        (after.pk, PaymentState.PAID, D("33.02")),
    ]
    bad = bills[1]
    assert bad.fault_codes == [FaultCode.TIME_ANOMALY, FaultCode.DURATION_ANOMALY]
    assert bad.fault_detail == (
        "Not priced: the pile's time 2999-01-01 00:00:00 is more than 24 hours later than the "
        "platform received it (2019-09-07 10:40:40). Not priced: the session would last "
        "8584536.6 hours, more than the maximum of 24 hours."
    )
    assert bad.duration_s == 2**31 - 1 and not bad.lines.exists()
    case = FaultCase.objects.get(session=future)
    assert [[r["key"] for r in f["reasons"]] for f in case.findings] == [
        ["stop_in_future", "not_priced_future"],
        ["too_long", "not_priced_too_long"],
    ]
    assert LedgerEntry.objects.filter(kind="charge").count() == 2


def test_any_failure_of_one_session_is_isolated_by_halves(monkeypatch, caplog):
    # A failure nobody foresaw (not a domain error) in the middle session of five: the
    # batch is rolled back and settled again in halves; the four others settle.
    from billing.services import settlement

    station = tariffed_station()
    sessions = [stopped_session(station=station, samples=EXAMPLE) for _ in range(5)]
    poisoned = sessions[2]
    real = settlement._bill

    def bill(check, *args):
        if check.session.pk == poisoned.pk:
            raise RuntimeError("unforeseen")
        return real(check, *args)

    monkeypatch.setattr(settlement, "_bill", bill)
    bills = sessions_settle_pending()
    events_delivered()

    assert [b.session_id for b in bills] == [s.pk for s in sessions if s != poisoned]
    assert [b.total for b in bills] == [D("33.02")] * 4
    assert ChargingSession.objects.get(pk=poisoned.pk).state == SessionState.STOPPED
    assert f"Session {poisoned.pk} cannot be settled; it stays stopped" in caplog.text
