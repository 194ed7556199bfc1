"""Property: whatever sessions settle, get repaired, paid late or refunded, in whatever
order and on whatever local days, every rollup figure equals the sum of its bills, and a
rebuild writes the same rows the events did."""

import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from billing.models import Bill, PaymentState
from billing.services.repair import BillCorrections
from billing.services.settlement import bill_settle
from billing.services.wallet import wallet_recharge, wallet_refund
from faults.services.repair import fault_bill_repair
from reports.filters import Filters
from reports.models import BillDay, FaultDay, HourLoad, PileDay, StationBillDay
from reports.services.rollups import rollups_rebuild
from reports.tables import DailyConsumption
from reports.tables.base import kwh
from reports.verify import reports_verify, rollups_verify
from tests.billing.factories import (
    MemberFactory,
    StaffFactory,
    SubOperatorFactory,
    stopped_session,
    tariffed_station,
)
from tests.events import events_delivered
from tests.faults.worked_example import at

session_plans = st.lists(
    st.fixed_dictionaries(
        {
            "station": st.integers(0, 1),
            "day": st.integers(1, 3),
            "minute": st.integers(0, 24 * 60 - 1),
            "kwh": st.integers(1, 30),
            "fault": st.booleans(),  # a stop register 10 kWh above the last sample: code 8
            "payer": st.sampled_from(["funded", "broke", "nobody"]),
            "sub_operator": st.booleans(),
            "repair_to_day": st.none() | st.integers(1, 3),
            "recharge": st.booleans(),
            "refund": st.booleans(),
        }
    ),
    min_size=1,
    max_size=6,
)


def rows(model, fields):
    return sorted(model.objects.values_list(*fields), key=str)


SNAPSHOT = {
    BillDay: ("day", "station_id", "sub_operator_id", "channel", "firmware", "sessions",
              "energy_wh", "energy_valley_wh", "total", "paid", "owed", "fault_bills",
              "repaired", "recovered"),
    StationBillDay: ("day", "station_id", "sub_operator_id", "department_id", "sessions",
                     "energy_wh", "total", "paid", "owed", "fault_bills", "charging_s"),
    FaultDay: ("day", "station_id", "code", "fault_bills", "waiting", "repaired", "recovered"),
    PileDay: ("day", "pile_id", "sessions", "charging_s"),
    HourLoad: ("day", "station_id", "hour", "energy_wh"),
}  # fmt: skip


OCTOBER = (dt.date(2019, 9, 30), dt.date(2019, 10, 4))


def report_filters(stations, sub_operator):
    first, last = OCTOBER
    yield Filters(first_day=first, last_day=last)
    yield Filters(first_day=dt.date(2019, 10, 2), last_day=dt.date(2019, 10, 2))
    for station in stations:
        yield Filters(first_day=first, last_day=last, station=station, channel="unknown")
    yield Filters(first_day=first, last_day=last, sub_operator=sub_operator)


def daily_totals(staff, filters):
    """The daily report's totals row: sessions, energy, fees, total, paid, owed."""
    totals = DailyConsumption(staff=staff, filters=filters).totals()
    return (totals[4], totals[5], *totals[10:])


def bill_totals(filters):
    """The same figures summed from the bills of the filters' local days (station zone)."""
    n, wh, fees = 0, D(0), [D(0)] * 5
    for bill in Bill.objects.select_related("station"):
        day = bill.started_at.astimezone(ZoneInfo(bill.station.time_zone)).date()
        if not filters.first_day <= day <= filters.last_day:
            continue
        if filters.station is not None and bill.station_id != filters.station.pk:
            continue
        if filters.sub_operator is not None and bill.sub_operator_id != filters.sub_operator.pk:
            continue
        if filters.channel and bill.channel != filters.channel:
            continue
        n, wh = n + 1, wh + bill.energy_wh
        paid = bill.total if bill.payment_state == PaymentState.PAID else 0
        owed = bill.total if bill.payment_state == PaymentState.OWED else 0
        figures = (bill.electricity_fee, bill.service_fee, bill.total, paid, owed)
        fees = [a + b for a, b in zip(fees, figures, strict=True)]
    return (n, kwh(wh), *fees)


@pytest.fixture
def network(db):
    stations = [tariffed_station(), tariffed_station(zone="Asia/Urumqi")]
    sub_operator = SubOperatorFactory(operator=stations[0].operator)
    agent = StaffFactory(operator=stations[0].operator)
    superuser = StaffFactory(operator=None, is_superuser=True)
    return stations, sub_operator, agent, superuser


@settings(
    max_examples=12,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plans=session_plans)
def test_rollups_always_equal_the_bills(network, plans):
    stations, sub_operator, agent, superuser = network
    with transaction.atomic():
        for n, plan in enumerate(plans):
            station = stations[plan["station"]]
            member = None
            if plan["payer"] != "nobody":
                member = MemberFactory(operator=station.operator)
            if plan["payer"] == "funded":
                wallet_recharge(member=member, amount=D("200.00"), reference=f"WX-{n}")
            start = at(2019, 10, plan["day"]) + dt.timedelta(minutes=plan["minute"])
            end = start + dt.timedelta(minutes=30 + plan["kwh"] * 5)
            kwh = plan["kwh"] * 1000
            samples = [(start, "0"), (end - dt.timedelta(seconds=40), str(kwh))]
            samples.append((end, str(kwh + (10_000 if plan["fault"] else 0))))
            session = stopped_session(
                station=station,
                samples=samples,
                member=member,
                sub_operator=sub_operator if plan["sub_operator"] else None,
            )
            bill = bill_settle(session_id=session.pk)
            events_delivered()
            if bill.payment_state == PaymentState.FAULT and plan["repair_to_day"]:
                new_start = start + dt.timedelta(days=plan["repair_to_day"] - plan["day"])
                fault_bill_repair(
                    session=session,
                    corrections=BillCorrections(
                        reason="checked",
                        started_at=new_start,
                        stopped_at=new_start + (end - start),
                        meter_stop_wh=D(kwh),
                    ),
                    acting_user=agent,
                )
            if member is not None and plan["recharge"]:
                wallet_recharge(member=member, amount=D("300.00"), reference=f"WX-late-{n}")
            if member is not None and plan["refund"]:
                wallet_refund(member=member, amount=D("1.00"), reference=f"RF-{n}", reason="x")
            events_delivered()
        assert [str(d) for d in rollups_verify()] == []
        # Each report's totals (all, per channel, per sub-operator) against its bills.
        assert [str(d) for d in reports_verify(first_day=OCTOBER[0], last_day=OCTOBER[1])] == []
        for filters in report_filters(stations, sub_operator):
            assert daily_totals(superuser, filters) == bill_totals(filters)
        assert Bill.objects.count() == len(plans)
        by_events = {model: rows(model, fields) for model, fields in SNAPSHOT.items()}
        rollups_rebuild(first_day=OCTOBER[0], last_day=OCTOBER[1])
        assert {model: rows(model, fields) for model, fields in SNAPSHOT.items()} == by_events
        transaction.set_rollback(True)
