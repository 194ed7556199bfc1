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


def test_demo_wallets_fund_each_driver_once():
    from billing.demo import DEMO_TOP_UP, load_demo_wallets
    from billing.models import LedgerEntry
    from tests.factories import MemberFactory

    station = StationFactory()
    drivers = [MemberFactory(operator=station.operator) for _ in range(2)]
    MemberFactory(operator=station.operator, is_virtual=True, phone=None)
    assert load_demo_wallets(station.operator) == 2
    assert load_demo_wallets(station.operator) == 0
    assert LedgerEntry.objects.filter(kind="recharge").count() == 2
    for driver in drivers:
        driver.wallet.refresh_from_db()
        assert driver.wallet.balance == DEMO_TOP_UP == D("500.00")
