import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from billing.models import StationTariff, TariffPrice, TariffVersion
from billing.selectors import tariff_specs_for
from billing.services.settlement import bill_settle
from billing.services.tariffs import (
    ScheduleError,
    TariffError,
    TariffVersionInUse,
    schedule_from_ranges,
    schedule_to_ranges,
    station_tariff_assign,
    tariff_plan_create,
    tariff_version_create,
    tariff_version_update,
)
from chargenet.models import AuditLog
from chargenet.money import MoneyError
from tests.billing.factories import (
    DOMAIN_SCHEDULE,
    StationFactory,
    prices,
    stopped_session,
    tariffed_station,
)

SH = ZoneInfo("Asia/Shanghai")
pytestmark = pytest.mark.django_db


def test_domain_schedule_round_trips_through_ranges():
    assert DOMAIN_SCHEDULE == "3" * 16 + "2" * 12 + "1" * 6 + "2" * 4 + "1" * 6 + "2" * 4
    assert schedule_to_ranges(DOMAIN_SCHEDULE) == [
        ("00:00", "08:00", 3),
        ("08:00", "14:00", 2),
        ("14:00", "17:00", 1),
        ("17:00", "19:00", 2),
        ("19:00", "22:00", 1),
        ("22:00", "24:00", 2),
    ]


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ([("00:00", "08:00", 3), ("08:30", "24:00", 2)], "gap at 08:00"),
        ([("00:00", "08:00", 3), ("07:30", "24:00", 2)], "overlaps at 07:30"),
        ([("00:00", "12:00", 3)], "gap at 12:00"),
        ([("00:00", "08:15", 3)], "08:15: schedule times are on the hour or half hour"),
        ([("08:00", "00:00", 3)], "a range ends after it starts"),
        ([("00:00", "24:00", 4)], "A period is 0"),
    ],
)
def test_bad_schedules_are_rejected_naming_the_time(ranges, message):
    with pytest.raises(ScheduleError, match=message):
        schedule_from_ranges(ranges)


@pytest.mark.parametrize(
    ("schedule", "price_grid", "error", "message"),
    [
        (DOMAIN_SCHEDULE, prices(ac=[("0.123456", "0.5")] * 4), MoneyError, "at most 5 decimal"),
        (DOMAIN_SCHEDULE, prices(dc=[("-0.1", "0.5")] * 4), MoneyError, "cannot be negative"),
        ([("08:00", "24:00", 2)], prices(), ScheduleError, "gap at 00:00"),
        ("3" * 47, prices(), ScheduleError, "48 half-hour slots"),
    ],
)
def test_a_bad_version_changes_nothing(schedule, price_grid, error, message):
    plan = tariff_plan_create(operator=StationFactory().operator, name="std")
    with pytest.raises(error, match=message):
        tariff_version_create(plan=plan, schedule=schedule, prices=price_grid)
    assert not TariffVersion.objects.exists()
    assert not TariffPrice.objects.exists()


def test_a_price_change_is_a_new_version_from_now_on_never_back_dated():
    plan = tariff_plan_create(operator=StationFactory().operator, name="std")
    first = tariff_version_create(
        plan=plan,
        schedule=DOMAIN_SCHEDULE,
        prices=prices(),
        effective_from=dt.datetime(2019, 1, 1, tzinfo=SH),
    )
    assert first.prices.get(current_type="AC", period=2).electricity == D("0.64000")
    with pytest.raises(TariffError, match="takes effect now or later"):
        tariff_version_create(
            plan=plan,
            schedule=DOMAIN_SCHEDULE,
            prices=prices(),
            effective_from=timezone.now() - dt.timedelta(days=1),
        )
    later = tariff_version_create(plan=plan, schedule=DOMAIN_SCHEDULE, prices=prices())
    assert later.effective_from > first.effective_from
    assert AuditLog.objects.filter(action="tariff_version_create").count() == 2


def test_a_version_used_by_a_bill_cannot_be_edited():
    station = tariffed_station()
    version = TariffVersion.objects.get(plan__assignments__station=station)
    tariff_version_update(version=version, prices=prices(ac=[("0.64", "0.51")] * 4))
    session = stopped_session(
        station=station,
        samples=[
            (dt.datetime(2019, 9, 7, 1, tzinfo=SH), "0"),
            (dt.datetime(2019, 9, 7, 2, tzinfo=SH), "1000"),
        ],
    )
    bill_settle(session_id=session.pk)
    with pytest.raises(TariffVersionInUse, match="create a new version"):
        tariff_version_update(version=version, schedule="3" * 48)
    version.refresh_from_db()
    assert version.schedule == DOMAIN_SCHEDULE


def test_station_assignment_history_picks_the_plan_in_force():
    station = tariffed_station(since=dt.datetime(2019, 1, 1, tzinfo=SH))
    other = tariff_plan_create(operator=station.operator, name="night")
    tariff_version_create(
        plan=other,
        schedule="3" * 48,
        prices=prices(ac=[("0.20", "0.30")] * 4),
        effective_from=dt.datetime(2019, 1, 1, tzinfo=SH),
    )
    switch = timezone.now() + dt.timedelta(hours=1)
    station_tariff_assign(station=station, plan=other, effective_from=switch)
    specs = tariff_specs_for(
        station=station,
        current_type="AC",
        start=switch - dt.timedelta(hours=2),
        end=switch + dt.timedelta(hours=2),
    )
    assert [s.effective_from for s in specs] == [dt.datetime(2019, 1, 1, tzinfo=SH), switch]
    assert specs[1].prices[0].electricity == D("0.20000")
    assert StationTariff.objects.filter(station=station).count() == 2
    with pytest.raises(TariffError, match="changes now or later"):
        station_tariff_assign(
            station=station, plan=other, effective_from=timezone.now() - dt.timedelta(days=2)
        )


def test_a_plan_of_another_operator_cannot_be_assigned():
    station = StationFactory()
    plan = tariff_plan_create(operator=StationFactory().operator, name="foreign")
    with pytest.raises(TariffError, match="its own operator"):
        station_tariff_assign(station=station, plan=plan)


def test_switching_to_a_plan_without_a_version_yet_is_a_missing_tariff():
    station = tariffed_station()
    empty = tariff_plan_create(operator=station.operator, name="empty")
    switch = timezone.now() + dt.timedelta(hours=1)
    station_tariff_assign(station=station, plan=empty, effective_from=switch)
    specs = tariff_specs_for(
        station=station, current_type="DC", start=switch - dt.timedelta(hours=1), end=switch
    )
    assert [s.is_missing for s in specs] == [False, True]
