"""The reports' figures, exactly: daily consumption, detail, cards, fault statistics (the
2019-10 analysis), utilisation, recharges, and the monthly statement."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.models import (
    PaymentState,
    RechargeRefund,
    RechargeRefundState,
    RechargeState,
    RefundRequest,
    RefundState,
)
from billing.services.wallet import wallet_recharge
from reports.filters import Filters
from reports.models import StationBillDay, StationDayTotal
from reports.services.shares import fee_share_set
from reports.tables import REPORTS
from reports.verify import reports_verify, rollups_verify
from stations.models import FirmwareRecord, PileFault, StationOutage
from tests.factories import ConnectorFactory, PileFactory
from tests.faults.worked_example import at
from tests.reports.conftest import billed
from tests.wechatpay import paid_recharge
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


def _refunded(recharge, amount):
    """A successful WeChat refund of part of ``recharge`` (as the refund notification
    leaves it)."""
    request = RefundRequest.objects.create(
        member=recharge.member, amount=amount, state=RefundState.REFUNDED
    )
    RechargeRefund.objects.create(
        request=request,
        recharge=recharge,
        out_refund_no=f"RF{recharge.out_trade_no}",
        amount=amount,
        state=RechargeRefundState.SUCCESS,
        finished_at=timezone.now(),
    )


def test_recharges_are_wechat_pay_orders_per_day_and_channel(world):
    paid = paid_recharge(world["m_a"], D("100.00"))
    paid_recharge(world["m_x"], D("50.00"))
    paid_recharge(world["m_a"], D("30.00"), state=RechargeState.PENDING)
    paid_recharge(world["m_a"], D("20.00"), state=RechargeState.CLOSED)
    paid_recharge(world["m_b"], D("70.00"))  # operator B's
    _refunded(paid, D("25.00"))
    # A ledger credit by staff is no recharge order: not in this report.
    wallet_recharge(member=world["m_a"], amount=D("5.00"), reference="BO-1",
                    actor=world["admin_a"])  # fmt: skip
    today = timezone.localdate()
    days = {"first_day": today - dt.timedelta(days=1), "last_day": today + dt.timedelta(days=1)}
    rows, totals = table("recharges", world, filters=Filters(**days))
    assert rows == [
        (today, "WeChat Pay (official account)", 4, D("200.00"), D("150.00"), D("30.00"),
         D("25.00")),
    ]  # fmt: skip
    assert totals == ("total", "", 4, D("200.00"), D("150.00"), D("30.00"), D("25.00"))
    # The channel filter is the payment channel; sub-operator and department the member's.
    assert table("recharges", world, filters=Filters(**days, channel="wechat_jsapi"))[1] == totals
    assert table("recharges", world, filters=Filters(**days, channel="scan"))[0] == []
    by_dept = Filters(**days, department=world["dept_x"])
    assert table("recharges", world, filters=by_dept)[1] == (
        "total", "", 1, D("50.00"), D("50.00"), D("0.00"), D("0.00"),
    )  # fmt: skip
    by_sub = Filters(**days, sub_operator=world["sub_x"])
    assert table("recharges", world, filters=by_sub)[1][2:4] == (1, D("50.00"))
    assert table("recharges", world, user="admin_b", filters=Filters(**days))[1][2:4] == (
        1,
        D("70.00"),
    )
    assert reports_verify(**days) == []


def test_filters_a_report_cannot_apply_are_disabled_and_say_so(client, world):
    client_as(client, world, "admin_a")
    url = reverse("admin:reports_report", args=["recharges"])
    response = client.get(url, {"station": world["s1"].pk, "channel": "wechat_jsapi"})
    form = response.context["form"]
    assert [n for n, f in form.fields.items() if f.disabled] == ["station"]
    assert response.context["report"].filters.station is None
    assert response.context["report"].filters.channel == "wechat_jsapi"
    assert b"Not applicable to this report." in response.content
    assert b'<option value="wechat_jsapi"' in response.content
    url = reverse("admin:reports_report", args=["utilisation"])
    response = client.get(
        url, {"department": world["dept_x"].pk, "channel": "scan", "date_from": "2019-10-05",
              "date_to": "2019-10-05"},
    )  # fmt: skip
    form = response.context["form"]
    assert [n for n, f in form.fields.items() if f.disabled] == ["department", "channel"]
    assert response.context["report"].filters.department is None
    assert response.context["report"].filters.channel == ""
    assert len(response.context["rows"]) == 2  # S1's and S2's pile, neither filter applied
    response = client.get(reverse("admin:reports_report", args=["daily"]))
    assert not any(f.disabled for f in response.context["form"].fields.values())
    assert b"Not applicable to this report." not in response.content


def test_utilisation_keeps_the_piles_of_the_sub_operators_stations(world):
    day = {"first_day": dt.date(2019, 10, 5), "last_day": dt.date(2019, 10, 5)}
    rows, _totals = table("utilisation", world, filters=Filters(**day))
    assert [(r[1], r[3]) for r in rows] == [("S1", 1), ("S2", 2)]
    rows, _totals = table("utilisation", world, filters=Filters(**day, sub_operator=world["sub_x"]))
    assert [(r[1], r[3]) for r in rows] == [("S1", 1)]
    rows, _totals = table("utilisation", world, filters=Filters(**day, sub_operator=world["sub_y"]))
    assert rows == []


def test_monthly_statement_by_channel(world):
    fee_share_set(
        sub_operator=world["sub_x"],
        rate=D("0.5000"),
        effective_from=dt.date(2019, 10, 1),
        acting_user=world["admin_a"],
    )
    by_scan = Filters(first_day=OCTOBER.first_day, last_day=OCTOBER.last_day, channel="scan")
    assert table("statement", world, filters=by_scan)[0] == [
        ("sub X", 1, D("14.000"), D("9.80"), D("9.80"), D("19.60"), "50.00%", D("4.90"))
    ]
    by_card = Filters(first_day=OCTOBER.first_day, last_day=OCTOBER.last_day, channel="card")
    assert table("statement", world, filters=by_card)[0] == []


def test_reports_verify_checks_each_report_against_its_bills(world):
    assert reports_verify(first_day=OCTOBER.first_day, last_day=OCTOBER.last_day) == []
    StationBillDay.objects.filter(station=world["s2"], sub_operator=world["sub_x"]).update(
        total=D("1.00")
    )
    found = [str(d) for d in reports_verify(first_day=OCTOBER.first_day,
                                            last_day=OCTOBER.last_day)]  # fmt: skip
    StationDayTotal.objects.filter(station=world["s2"]).update(total=D("2.00"))
    assert [str(d) for d in rollups_verify(first_day=OCTOBER.first_day,
                                           last_day=OCTOBER.last_day)][-1] == (
        f"day=2019-10-05 station={world['s2'].pk}: stationdaytotal.total rollup=2.00 bills=23.80"
    )  # fmt: skip
    # The daily report by sub-operator and the statement read the station rollup; the
    # unfiltered daily report reads the station-day totals, the by-channel ones the channel
    # rollup: those still agree.
    assert found == [
        "op-a/daily [sub-operator=sub X]: total report=1.00 bills=19.60",
        "op-a/statement [all]: total report=1.00 bills=19.60",
        "op-a/statement [sub-operator=sub X]: total report=1.00 bills=19.60",
    ]


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


def test_the_page_renders_rows_and_choices_in_python_escaped():
    from reports.filters import PlainSelect
    from reports.templatetags.reports_tags import rows_html

    assert rows_html([[("<b>&", False), ("1.00", True)]]) == (
        '<tr><td>&lt;b&gt;&amp;</td><td class="num">1.00</td></tr>'
    )
    select = PlainSelect(choices=[("", "---"), (1, "<S>"), (2, "S2")])
    assert select.render("station", 1, attrs={"id": "id_station", "disabled": True}) == (
        '<select id="id_station" name="station" disabled><option value="">---</option>'
        '<option value="1" selected>&lt;S&gt;</option><option value="2">S2</option></select>'
    )
    assert 'value="" selected' in select.render("station", None)


def test_sub_operator_department_choices_come_from_the_bills_it_sees(world):
    from orgs.selectors import departments_visible_to
    from reports.filters import report_departments

    def names(user):
        return sorted(d.name for d in report_departments(world[user]))

    assert names("subop_x") == ["dept X"]
    assert names("subop_y") == []
    assert names("admin_a") == ["dept A", "dept X"]
    billed(world["c1"], start=at(2019, 10, 6, 10), wh=1000, department=world["dept_a"])
    assert names("subop_x") == ["dept A", "dept X"]
    assert names("subop_x") == sorted(d.name for d in departments_visible_to(world["subop_x"]))


@pytest.mark.parametrize("slug", ["daily", "detail"])
def test_a_page_holds_the_first_rows_of_the_report(world, slug):
    report = REPORTS[slug](staff=world["admin_a"], filters=OCTOBER)
    everything = list(report.rows())
    assert len(everything) == 3
    assert report.page_rows(2) == everything[:2]
    assert report.page_rows(200) == everything
