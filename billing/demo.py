"""Demo tariffs: the DOMAIN.md schedule and prices, for `load_demo` (idempotent)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction

from orgs.models import Member

from .models import LedgerEntry, StationTariff, TariffPlan
from .services.tariffs import (
    PeriodPrices,
    station_tariff_assign,
    tariff_plan_create,
    tariff_version_create,
)
from .services.wallet import wallet_recharge

DEMO_PLAN_NAME = "标准分时电价"
DEMO_SINCE = dt.datetime(2019, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
# DOMAIN.md: peak 14–17 & 19–22, flat 8–14 & 17–19 & 22–24, valley 0–8.
DEMO_SCHEDULE = [
    ("00:00", "08:00", 3),
    ("08:00", "14:00", 2),
    ("14:00", "17:00", 1),
    ("17:00", "19:00", 2),
    ("19:00", "22:00", 1),
    ("22:00", "24:00", 2),
]
# (electricity, service) yuan/kWh for p0 sharp … p3 valley; AC flat and valley are DOMAIN.md's.
DEMO_PRICES = {
    "AC": [("1.19", "0.60"), ("0.98", "0.55"), ("0.64", "0.51"), ("0.33", "0.55")],
    "DC": [("1.19", "0.80"), ("0.98", "0.80"), ("0.64", "0.70"), ("0.33", "0.60")],
}


@transaction.atomic
def load_demo_tariffs(operator) -> TariffPlan:
    """A plan with the DOMAIN.md schedule, in force since 2019, assigned to every station
    of ``operator`` that has no tariff yet. Running it again changes nothing."""
    plan = TariffPlan.objects.filter(operator=operator, name=DEMO_PLAN_NAME).first()
    if plan is None:
        plan = tariff_plan_create(operator=operator, name=DEMO_PLAN_NAME)
    if not plan.versions.exists():
        tariff_version_create(
            plan=plan,
            schedule=DEMO_SCHEDULE,
            prices={
                ct: [PeriodPrices(Decimal(e), Decimal(s)) for e, s in periods]
                for ct, periods in DEMO_PRICES.items()
            },
            effective_from=DEMO_SINCE,
            note="演示数据",
        )
    assigned = StationTariff.objects.filter(station__operator=operator).values("station_id")
    for station in operator.stations.exclude(pk__in=assigned).order_by("pk"):
        station_tariff_assign(station=station, plan=plan, effective_from=DEMO_SINCE)
    return plan


DEMO_TOP_UP = Decimal("500.00")


@transaction.atomic
def load_demo_wallets(operator) -> int:
    """Give every demo driver a paid recharge once (payment order ``demo-topup-<id>``), so
    demo charges settle as paid. Returns the number of new recharges."""
    created = 0
    for member in Member.objects.filter(operator=operator, is_virtual=False).order_by("pk"):
        reference = f"demo-topup-{member.pk}"
        if not LedgerEntry.objects.filter(reference=reference).exists():
            wallet_recharge(member=member, amount=DEMO_TOP_UP, reference=reference)
            created += 1
    return created
