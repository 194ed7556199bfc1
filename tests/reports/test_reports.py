"""The reports' figures, exactly: daily consumption, detail, cards, fault statistics (the
2019-10 analysis), utilisation, recharges, and the monthly statement."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import PaymentState
from billing.services.wallet import wallet_recharge, wallet_refund
from reports.filters import Filters
from reports.services.shares import fee_share_set
from reports.tables import REPORTS
from reports.verify import rollups_verify
from stations.models import FirmwareRecord, PileFault, StationOutage
from tests.factories import ConnectorFactory, PileFactory
from tests.faults.worked_example import at
from tests.reports.conftest import billed
from tests.world import client_as

pytestmark = pytest.mark.django_db

OCTOBER = Filters(first_day=dt.date(2019, 10, 1), last_day=dt.date(2019, 10, 31))


def table(slug, world, user="admin_a", filters=OCTOBER):
    report = REPORTS[slug](staff=world[user], filters=filters)
    return list(report.rows()), report.totals()


def test_daily_report_rows_and_totals(world):
    rows, totals = table("daily", world)
    assert rows == [
        (
            dt.date(2019, 10, 5),
            "S1",
            "",
            "dept X",
            1,
            D("7.000"),
            D("0.000"),
            D("0.000"),
            D("7.000"),
            D("0.000"),
            D("4.90"),
            D("4.90"),
            D("9.80"),
            D("0.00"),
            D("0.00"),
        ),
        (
            dt.date(2019, 10, 5),
            "S2",
            "sub X",
            "",
            1,
            D("14.000"),
            D("0.000"),
            D("0.000"),
            D("14.000"),
            D("0.000"),
            D("9.80"),
            D("9.80"),
            D("19.60"),
            D("0.00"),
            D("0.00"),
        ),
        (
            dt.date(2019, 10, 5),
            "S2",
            "",
            "",
            1,
            D("3.000"),
            D("0.000"),
            D("0.000"),
            D("3.000"),
            D("0.000"),
            D("2.10"),
            D("2.10"),
            D("4.20"),
            D("0.00"),
            D("0.00"),
        ),
    ]
    assert totals[4:] == (
        3,
        D("24.000"),
        D("0.000"),
        D("0.000"),
        D("24.000"),
        D("0.000"),
        D("16.80"),
        D("16.80"),
        D("33.60"),
        D("0.00"),
        D("0.00"),
    )
    # DC piles (the world's): flat 0.70 + 0.70 yuan/kWh.
    assert world["a1"].payment_state == PaymentState.UNPAID  # no member: billed, not debited
    assert rollups_verify() == []


def test_daily_report_filters_narrow_to_the_same_bills(world):
    by_station = Filters(
        first_day=OCTOBER.first_day, last_day=OCTOBER.last_day, station=world["s2"], channel="scan"
    )
    _rows, totals = table("daily", world, filters=by_station)
    detail, detail_totals = table("detail", world, filters=by_station)
    assert totals[4] == len(detail) == 2
    assert totals[12] == detail_totals[13] == D("23.80")
    assert sorted(r[0] for r in detail) == sorted([world["a2"].order_no, world["a3"].order_no])


def test_one_card_one_car(world):
    rows, totals = table("cards", world)
    assert rows == [("C-X", "粤T-X", "粤T-X", "dept X", 1, D("7.000"), D("9.80"))]
    assert totals == ("total", "", "", "", 1, D("7.000"), D("9.80"))


def test_fault_statistics_by_channel_and_by_firmware_in_one_click(world):
    """The operator's analysis, in small: partner 3 sessions / 2 fault bills, scan 2 / 0."""
    connector = ConnectorFactory(pile=PileFactory(station=world["s2"], code="44200100000000000099"))
    FirmwareRecord.objects.create(
        pile=connector.pile,
        version="2090100",
        first_seen_at=at(2019, 9, 1),
        last_seen_at=at(2019, 9, 1),
    )
    for hour in (12, 14):  # 200 kWh in an hour on a 60 kW connector: code 13, a fault bill
        bill = billed(connector, start=at(2019, 10, 6, hour), wh=200_000, channel="partner")
        assert (bill.payment_state, bill.fault_codes) == (PaymentState.FAULT, [13])
    billed(connector, start=at(2019, 10, 6, 16), wh=1000, channel="partner")
    faults = REPORTS["faults"]
    by = {}
    for group in ("channel", "firmware"):
        filters = Filters(
            first_day=OCTOBER.first_day, last_day=OCTOBER.last_day, extra={"group_by": [group]}
        )
        report = faults(staff=world["admin_a"], filters=filters)
        by[group] = (list(report.rows()), report.totals())
    assert (
        by["channel"][0]
        == [
            ("card (one card one vehicle)", 1, 0, D("0"), 0, D("0.00")),
            ("partner app", 3, 2, D("66.67"), 0, D("0.00")),
            ("scan (WeChat)", 2, 0, D("0"), 0, D("0.00")),
        ][1:2]
    )
    assert by["channel"][1] == ("total", 6, 2, D("33.33"), 0, D("0.00"))
    assert by["firmware"][0] == [("2090100", 3, 2, D("66.67"), 0, D("0.00"))]
    per_code = faults(
        staff=world["admin_a"],
        filters=Filters(
            first_day=OCTOBER.first_day,
            last_day=OCTOBER.last_day,
            extra={"group_by": ["code", "channel"]},
        ),
    )
    assert list(per_code.rows()) == [
        (
            "13 energy implausible for the connector's power",
            "partner app",
            3,
            2,
            D("66.67"),
            0,
            D("0.00"),
        ),
    ]
    assert rollups_verify() == []


def test_fault_analysis_link_is_on_the_page(client, world):
    response = client_as(client, world, "admin_a").get(
        reverse("admin:reports_report", args=["faults"])
    )
    assert b"date_from=2019-10-01&amp;date_to=2019-10-31&amp;group_by=channel" in response.content


def test_utilisation_counts_charging_time_offline_time_and_outages(world):
    p1 = world["p1"]
    PileFault.objects.filter(pile=p1).delete()
    PileFault.objects.create(
        pile=p1,
        kind="offline",
        started_at=at(2019, 10, 5, 18),
        ended_at=at(2019, 10, 5, 24 - 1, 59, 59) + dt.timedelta(seconds=1),
    )
    StationOutage.objects.create(
        station=world["s1"],
        started_at=at(2019, 10, 5, 18),
        ended_at=at(2019, 10, 5, 19),
        pile_count=1,
    )
    day = Filters(
        first_day=dt.date(2019, 10, 5), last_day=dt.date(2019, 10, 5), station=world["s1"]
    )
    rows, _totals = table("utilisation", world, filters=day)
    assert rows == [(dt.date(2019, 10, 5), "S1", p1.code, 1, "1.00", D("4.17"), D("75.00"), 1, 1)]


def test_recharges_per_day_and_channel(world, django_user_model):
    member = world["m_a"]
    wallet_recharge(member=member, amount=D("100.00"), reference="WX-R1")
    wallet_recharge(member=member, amount=D("50.00"), reference="WX-R2", actor=world["admin_a"])
    wallet_refund(member=member, amount=D("20.00"), reference="RF-1", reason="left")
    today = timezone.localdate()
    rows, totals = table(
        "recharges",
        world,
        filters=Filters(
            first_day=today - dt.timedelta(days=1), last_day=today + dt.timedelta(days=1)
        ),
    )
    assert [r[1:] for r in rows] == [
        ("online payment", 1, D("100.00"), D("100.00"), D("0.00"), D("20.00")),
        ("back office", 1, D("50.00"), D("50.00"), D("0.00"), D("0.00")),
    ]
    assert totals == ("total", "", 2, D("150.00"), D("150.00"), D("0.00"), D("20.00"))
    assert (
        table(
            "recharges",
            world,
            user="admin_b",
            filters=Filters(
                first_day=today - dt.timedelta(days=1), last_day=today + dt.timedelta(days=1)
            ),
        )[0]
        == []
    )


def test_monthly_statement_applies_each_days_share_rate(world):
    fee_share_set(
        sub_operator=world["sub_x"],
        rate=D("0.3000"),
        effective_from=dt.date(2019, 10, 1),
        acting_user=world["admin_a"],
    )
    fee_share_set(
        sub_operator=world["sub_x"],
        rate=D("0.5000"),
        effective_from=dt.date(2019, 10, 6),
        acting_user=world["admin_a"],
    )
    billed(world["c2"], start=at(2019, 10, 7, 10), wh=7000, sub_operator=world["sub_x"])
    late = billed(world["c2"], start=at(2019, 10, 8, 10), wh=1000, sub_operator=world["sub_x"])
    assert (late.total, late.sub_operator_id) == (D("1.40"), world["sub_x"].pk)
    rows, totals = table("statement", world)
    # 9.80 × 30% + (4.90 + 0.70) × 50% = 2.94 + 2.80 = 5.74
    assert rows == [
        ("sub X", 3, D("22.000"), D("15.40"), D("15.40"), D("30.80"), "30.00% / 50.00%", D("5.74"))
    ]
    assert totals == ("total", 3, D("22.000"), D("15.40"), D("15.40"), D("30.80"), "", D("5.74"))
    assert table("statement", world, user="subop_y")[0] == []
