import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from billing.models import LedgerEntry, TariffVersion
from billing.services.settlement import bill_settle
from billing.services.wallet import wallet_recharge
from chargenet.models import AuditLog
from orgs.models import Role
from tests.billing.factories import (
    MemberFactory,
    StaffFactory,
    SubOperatorFactory,
    stopped_session,
    tariffed_station,
)
from tests.factories import StaffFactory as RoleStaffFactory

pytestmark = pytest.mark.django_db
SH = ZoneInfo("Asia/Shanghai")
EXAMPLE = [
    (dt.datetime(2019, 9, 6, 23, 26, 13, tzinfo=SH), "0"),
    (dt.datetime(2019, 9, 7, 0, 0, tzinfo=SH), "1000"),
    (dt.datetime(2019, 9, 7, 8, 0, tzinfo=SH), "26980"),
    (dt.datetime(2019, 9, 7, 10, 40, 40, tzinfo=SH), "34820"),
]


def staff_client(client, operator, sub_operator=None):
    staff = StaffFactory(operator=operator, sub_operator=sub_operator)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="billing"))
    client.force_login(staff)
    return staff


@pytest.fixture
def settled():
    station = tariffed_station()
    member = MemberFactory(operator=station.operator)
    wallet_recharge(member=member, amount=D("100.00"), reference="WX-admin")
    session = stopped_session(station=station, samples=EXAMPLE, member=member)
    return bill_settle(session_id=session.pk)


def test_bill_page_shows_the_breakdown_and_the_chart(client, settled):
    staff_client(client, settled.operator)
    page = client.get(reverse("admin:billing_bill_change", args=[settled.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "33.02" in html and "14.29" in html and "8840.000" not in html
    assert "<svg" in html and "<polyline" in html


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("q={order_no}", True),
        ("q={phone}", True),
        ("q=13000000000", False),
        ("payment_state__exact=owed", False),
        ("payment_state__exact=paid", True),
        ("station__id__exact={station}", True),
    ],
)
def test_bill_list_search_and_filters(client, settled, query, found):
    staff_client(client, settled.operator)
    query = query.format(
        order_no=settled.order_no, phone=settled.member.phone, station=settled.station_id
    )
    page = client.get(reverse("admin:billing_bill_changelist") + "?" + query)
    assert page.status_code == 200
    assert (settled.order_no in page.content.decode()) is found


def test_bills_of_another_operator_answer_404(client, settled):
    staff_client(client, tariffed_station().operator)
    page = client.get(reverse("admin:billing_bill_change", args=[settled.pk]))
    assert page.status_code == 404
    listing = client.get(reverse("admin:billing_bill_changelist"))
    assert settled.order_no not in listing.content.decode()


def test_wallet_adjustment_gives_feedback_and_is_audited(client, settled):
    staff = staff_client(client, settled.operator)
    wallet = settled.member.wallet
    url = reverse("admin:billing_wallet_adjust", args=[wallet.pk])
    refused = client.post(url, {"amount": "-500.00", "reason": "test"})
    assert "cannot be taken" in refused.content.decode()
    done = client.post(url, {"amount": "5.00", "reason": "goodwill"}, follow=True)
    assert "the balance is now 71.98 yuan" in done.content.decode()
    entry = LedgerEntry.objects.get(kind="adjustment")
    assert (entry.actor, entry.reason, entry.amount) == (staff, "goodwill", D("5.00"))
    assert AuditLog.objects.filter(action="wallet_adjust", actor=staff).count() == 1


def test_tariff_editor_creates_a_version_and_refuses_editing_a_billed_one(client, settled):
    staff_client(client, settled.operator)
    version = TariffVersion.objects.get()
    plan_page = client.get(reverse("admin:billing_tariffplan_change", args=[version.plan_id]))
    assert "used by bills: not editable" in plan_page.content.decode()
    assert plan_page.content.decode().count('style="display:inline-block;width:9px') == 48
    edit = client.post(
        reverse("admin:billing_tariffversion_edit", args=[version.pk]),
        {**{f"slot_{s}": "3" for s in range(48)}, **_prices()},
    )
    assert "cannot change" in edit.content.decode()
    new = client.post(
        reverse("admin:billing_tariffversion_new", args=[version.plan_id]),
        {**{f"slot_{s}": "2" for s in range(48)}, **_prices(), "note": "2026 prices"},
        follow=True,
    )
    assert "New version of" in new.content.decode()
    assert TariffVersion.objects.count() == 2
    assert TariffVersion.objects.latest("effective_from").schedule == "2" * 48


def test_prices_today_page_lists_visible_stations(client, settled):
    staff_client(client, settled.operator)
    page = client.get(reverse("admin:billing_stationtariff_today"))
    assert page.status_code == 200
    assert settled.station.name in page.content.decode()


def test_station_tariff_list_reads_todays_prices_once_per_page(
    client, settled, django_assert_num_queries
):
    staff_client(client, settled.operator)
    url = reverse("admin:billing_stationtariff_changelist")
    with django_assert_num_queries(9) as one_station:
        page = client.get(url)
    assert page.status_code == 200
    assert page.content.decode().count('style="display:inline-block;width:9px') == 48
    for _n in range(3):
        tariffed_station(operator=settled.operator)
    with django_assert_num_queries(len(one_station.captured_queries)):
        page = client.get(url)
    assert page.content.decode().count('style="display:inline-block;width:9px') == 4 * 48


@pytest.mark.parametrize(
    ("changelist", "queries"), [("billing_tariffplan", 7), ("billing_wallet", 8)]
)
def test_plan_and_wallet_lists_do_not_query_per_row(
    client, settled, django_assert_num_queries, changelist, queries
):
    staff_client(client, settled.operator)
    url = reverse(f"admin:{changelist}_changelist")
    with django_assert_num_queries(queries) as one_row:
        assert client.get(url).status_code == 200
    for _n in range(3):
        tariffed_station(operator=settled.operator)
        member = MemberFactory(operator=settled.operator)
        wallet_recharge(member=member, amount=D("1.00"), reference=f"WX-list-{member.pk}")
    with django_assert_num_queries(len(one_row.captured_queries)):
        assert client.get(url).status_code == 200


def test_plan_list_shows_todays_schedule_and_station_count(client, settled):
    staff_client(client, settled.operator)
    page = client.get(reverse("admin:billing_tariffplan_changelist")).content.decode()
    assert page.count('style="display:inline-block;width:9px') == 48
    assert '<td class="field-station_count">1</td>' in page


def test_sub_operator_staff_cannot_open_the_tariff_editor(client, settled):
    staff_client(client, settled.operator, SubOperatorFactory(operator=settled.operator))
    version = TariffVersion.objects.get()
    page = client.get(reverse("admin:billing_tariffversion_new", args=[version.plan_id]))
    assert page.status_code == 404


def _prices():
    return {
        f"{ct}_{p}_{kind}": "0.5"
        for ct in ("AC", "DC")
        for p in range(4)
        for kind in ("electricity", "service")
    }


def test_plan_add_and_station_assignment_through_the_back_office(client, settled):
    from billing.models import StationTariff, TariffPlan

    staff_client(client, settled.operator)
    added = client.post(
        reverse("admin:billing_tariffplan_add"),
        {"operator": settled.operator_id, "name": "Night saver"},
        follow=True,
    )
    assert added.status_code == 200
    plan = TariffPlan.objects.get(name="Night saver")
    assert AuditLog.objects.filter(action="tariff_plan_create", object_id=str(plan.pk)).exists()
    past = client.post(
        reverse("admin:billing_stationtariff_add"),
        {
            "station": settled.station_id,
            "plan": plan.pk,
            "effective_from_0": "2020-01-01",
            "effective_from_1": "00:00:00",
        },
    )
    assert "changes now or later" in past.content.decode()
    now = client.post(
        reverse("admin:billing_stationtariff_add"),
        {"station": settled.station_id, "plan": plan.pk},
        follow=True,
    )
    assert "uses Night saver from" in now.content.decode()
    assert StationTariff.objects.filter(station=settled.station).count() == 2


# What each role's group (orgs.services.ROLE_PERMISSIONS) opens; no hand-given permissions.
ROLE_PAGES = {
    "wallet adjust": lambda s: reverse("admin:billing_wallet_adjust", args=[s.member.wallet.pk]),
    "wallet": lambda s: reverse("admin:billing_wallet_change", args=[s.member.wallet.pk]),
    "new tariff version": lambda s: reverse(
        "admin:billing_tariffversion_new", args=[TariffVersion.objects.get().plan_id]
    ),
    "prices today": lambda s: reverse("admin:billing_stationtariff_today"),
    "station tariff add": lambda s: reverse("admin:billing_stationtariff_add"),
    "bill": lambda s: reverse("admin:billing_bill_change", args=[s.pk]),
}


@pytest.mark.parametrize(
    ("role", "statuses"),
    [
        (
            Role.OPERATOR_ADMIN,
            {
                "wallet adjust": 200,
                "wallet": 200,
                "new tariff version": 200,
                "prices today": 200,
                "station tariff add": 200,
                "bill": 200,
            },
        ),
        (
            Role.CUSTOMER_SERVICE,
            {
                "wallet adjust": 404,
                "wallet": 200,
                "new tariff version": 404,
                "prices today": 403,
                "station tariff add": 404,
                "bill": 200,
            },
        ),
    ],
)
def test_role_groups_open_the_billing_pages_of_the_role(client, settled, role, statuses):
    staff = RoleStaffFactory(operator=settled.operator, role=role)
    assert not staff.user_permissions.exists()
    client.force_login(staff)
    got = {name: client.get(url(settled)).status_code for name, url in ROLE_PAGES.items()}
    assert got == statuses


def test_operator_admin_role_adjusts_a_wallet(client, settled):
    staff = RoleStaffFactory(operator=settled.operator, role=Role.OPERATOR_ADMIN)
    client.force_login(staff)
    url = reverse("admin:billing_wallet_adjust", args=[settled.member.wallet.pk])
    done = client.post(url, {"amount": "5.00", "reason": "goodwill"}, follow=True)
    assert "the balance is now 71.98 yuan" in done.content.decode()
    assert LedgerEntry.objects.get(kind="adjustment").actor == staff


@pytest.mark.parametrize(
    "query", ["fault_codes__contains=abc", "fault_codes=abc", "total__gt=abc", "nosuch=1"]
)
def test_a_bill_filter_the_database_rejects_redirects_with_a_message(client, settled, query):
    staff_client(client, settled.operator)
    url = reverse("admin:billing_bill_changelist")
    response = client.get(f"{url}?{query}")
    assert (response.status_code, response.url) == (302, f"{url}?e=1")
    shown = client.get(response.url)
    assert shown.status_code == 200
    assert [str(m) for m in shown.context["messages"]] == [
        f"The list cannot be filtered by “{query}”; showing the list without it."
    ]
    assert [b.pk for b in shown.context["cl"].result_list] == [settled.pk]


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        (
            "9999999999.99",
            "The balance after this adjustment (10000000066.97 yuan) would be beyond what "
            "a wallet holds (±9999999999.99 yuan).",
        ),
        ("99999999999.99", "Ensure that there are no more than 12 digits in total."),
    ],
)
def test_an_adjustment_beyond_the_balance_column_is_a_form_error(client, settled, amount, error):
    staff_client(client, settled.operator)
    wallet = settled.member.wallet
    url = reverse("admin:billing_wallet_adjust", args=[wallet.pk])
    response = client.post(url, {"amount": amount, "reason": "typo"})
    assert response.status_code == 200
    assert response.context["form"].errors == {"amount": [error]}
    wallet.refresh_from_db()
    assert wallet.balance == D("66.98")
    assert not LedgerEntry.objects.filter(kind="adjustment").exists()


def test_tariff_editor_script_runs_under_the_csp(client, settled, settings):
    settings.CSP_ENABLED = True
    staff_client(client, settled.operator)
    version = TariffVersion.objects.get()
    page = client.get(reverse("admin:billing_tariffversion_edit", args=[version.pk]))
    nonce = page.wsgi_request.csp_nonce
    assert f"script-src 'self' 'nonce-{nonce}'" in page["Content-Security-Policy"]
    assert page.content.decode().count(f'<script nonce="{nonce}">') == 1


def test_bill_page_names_the_rounding_mode_and_the_list_shows_local_start(client, settled):
    staff_client(client, settled.operator)
    page = client.get(
        reverse("admin:billing_bill_change", args=[settled.pk]),
        headers={"accept-language": "zh-hans"},
    )
    html = page.content.decode()
    assert '<div class="readonly">舍去分以下尾数</div>' in html
    assert "ROUND_DOWN" not in html
    listing = client.get(reverse("admin:billing_bill_changelist"))
    # Started 2019-09-06 23:26:13 in Shanghai (15:26 UTC).
    assert '<td class="field-started">09-06 23:26</td>' in listing.content.decode()


def test_bill_page_shows_pile_reported_times_in_the_station_zone(client, settled):
    staff_client(client, settled.operator)
    type(settled).objects.filter(pk=settled.pk).update(
        pile_reported={"stopped_at": "2019-09-07T02:40:40+00:00", "meter_stop_wh": 34820}
    )
    page = client.get(reverse("admin:billing_bill_change", args=[settled.pk]))
    assert (
        "<pre>{\n &quot;stopped_at&quot;: &quot;2019-09-07 10:40:40&quot;,\n"
        " &quot;meter_stop_wh&quot;: 34820\n}</pre>"
    ) in page.content.decode()
