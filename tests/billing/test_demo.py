import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest

from billing.demo import load_demo_tariffs
from billing.models import StationTariff, TariffPrice, TariffVersion
from billing.services.settlement import bill_settle
from tests.billing.factories import DOMAIN_SCHEDULE, StationFactory, stopped_session

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")


def test_demo_tariffs_are_idempotent_and_price_the_worked_example():
    station = StationFactory()
    StationFactory(operator=station.operator)
    plan = load_demo_tariffs(station.operator)
    assert load_demo_tariffs(station.operator).pk == plan.pk
    assert TariffVersion.objects.get().schedule == DOMAIN_SCHEDULE
    assert TariffPrice.objects.count() == 8
    assert StationTariff.objects.count() == 2
    session = stopped_session(
        station=station,
        samples=[
            (dt.datetime(2019, 9, 6, 23, 26, 13, tzinfo=SH), "0"),
            (dt.datetime(2019, 9, 7, 0, 0, tzinfo=SH), "1000"),
            (dt.datetime(2019, 9, 7, 8, 0, tzinfo=SH), "26980"),
            (dt.datetime(2019, 9, 7, 10, 40, 40, tzinfo=SH), "34820"),
        ],
    )
    assert bill_settle(session_id=session.pk).total == D("33.02")
