"""The repair desk in the admin: queue, scope, the fault bill page and its buttons."""

import datetime as dt
import re
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from billing.models import Bill, LedgerEntry, OrphanStop, PaymentState
from billing.selectors import bill_samples
from billing.services.repair import BillCorrections
from billing.services.settlement import bill_settle
from faults.models import FaultCase
from faults.services.repair import fault_bill_repair
from orgs.models import Role, Staff
from protocol.models import Frame
from stations.models import HeartbeatSample, StatusEvent
from tests import factories
from tests.admin_forms import admin_messages
from tests.billing.factories import (
    OperatorFactory,
    PileFactory,
    SubOperatorFactory,
    stopped_session,
    tariffed_station,
)
from tests.events import events_delivered
from tests.faults.worked_example import SAMPLES, at, funded_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk():
    station = tariffed_station()
    member = funded_member(station.operator)
    session = stopped_session(station=station, samples=SAMPLES, member=member)
    type(session.pile).objects.filter(pk=session.pile_id).update(firmware_version="2090100")
    PileFactory(station=station, firmware_version="10002")
    for minutes, state in ((-1, "Preparing"), (0, "Charging"), (674, "Finishing")):
        StatusEvent.objects.create(
            pile=session.pile,
            connector_number=session.connector.number,
            status=state,
            received_at=SAMPLES[0][0] + dt.timedelta(minutes=minutes),
        )
    HeartbeatSample.objects.create(pile=session.pile, at=at(2019, 9, 7, 1), state="3")
    Frame.objects.create(
        at=at(2019, 9, 7, 10, 40, 41),
        pile_code=session.pile.code,
        direction="in",
        message_type=2,
        action="StopTransaction",
        unique_id="m-77",
        payload={"meterStop": 44820, "transactionId": session.pk},
        order_no=session.order_no,
    )
    bill_settle(session_id=session.pk)
    events_delivered()
    case = FaultCase.objects.get(session=session)
    return case, session, member


@pytest.fixture(autouse=True)
def _english_pages(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def staff(operator, *, sub_operator=None, username="cs", superuser=False):
    user = Staff.objects.create_user(
        username=username,
        password="pw",
        operator=operator,
        sub_operator=sub_operator,
        is_staff=True,
        is_superuser=superuser,
    )
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="faults", codename__in=["view_faultcase", "change_faultcase"]
        )
    )
    return user


def page_url(case):
    return reverse("admin:faults_faultcase_change", args=[case.pk])


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("operator staff", True),
        ("other operator", False),
        ("sub-operator without the station", False),
        ("sub-operator with the station", True),
    ],
)
def test_queue_and_page_are_scoped(client, desk, who, sees):
    case, session, _member = desk
    operator = session.operator
    if who == "operator staff":
        user = staff(operator)
    elif who == "other operator":
        user = staff(OperatorFactory())
    else:
        sub = SubOperatorFactory(operator=operator)
        if who == "sub-operator with the station":
            session.station.sub_operators.add(sub)
        user = staff(operator, sub_operator=sub)
    client.force_login(user)
    queue = client.get(reverse("admin:faults_faultcase_changelist"))
    assert queue.status_code == 200
    assert (session.order_no in queue.content.decode()) is sees
    assert client.get(page_url(case)).status_code == (200 if sees else 404)


def test_queue_filters_and_counts_per_code(client, desk):
    _case, session, _member = desk
    client.force_login(staff(session.operator))
    url = reverse("admin:faults_faultcase_changelist")
    page = client.get(url).content.decode()
    assert "8 energy differs from the platform&#x27;s</a>: <strong>1</strong>" in page
    for query, shown in [
        ({"code": "8"}, True),
        ({"code": "1"}, False),
        ({"firmware": "2090100"}, True),
        ({"firmware": "10002"}, False),
        ({"channel": session.channel}, True),
        ({"station": session.station_id}, True),
        ({"state": "open"}, True),
        ({"state": "repaired"}, False),
        ({"q": session.order_no}, True),
    ]:
        assert (session.order_no in client.get(url, query).content.decode()) is shown, query


def test_queue_query_count_does_not_grow(client, desk, django_assert_max_num_queries):
    _case, session, _member = desk
    client.force_login(staff(session.operator))
    with django_assert_max_num_queries(14):
        assert client.get(reverse("admin:faults_faultcase_changelist")).status_code == 200


def test_fault_bill_page_answers_what_happened(client, desk):
    case, session, _member = desk
    client.force_login(staff(session.operator))
    page = client.get(page_url(case)).content.decode()
    assert "The pile reported 44820 Wh, the platform&#x27;s meter samples show 34800 Wh" in page
    # Energy row in red: pile 44.820 kWh vs platform 34.800 kWh.
    assert '<tr class="differs"><th>energy</th><td>44.820 kWh</td><td>34.800 kWh</td></tr>' in page
    assert 'class="fault-timeline"' in page and "<polyline" in page
    assert "StopTransaction" in page and "m-77" in page
    assert "heartbeat" in page


def test_unmatched_stop_of_the_pile_is_shown(client, desk):
    case, session, _member = desk
    OrphanStop.objects.create(
        pile=session.pile,
        protocol_ref="999",
        meter_stop_wh=D("44820"),
        stopped_at=at(2019, 9, 7, 10, 40, 40),
        received_at=at(2019, 9, 7, 10, 40, 41),
    )
    client.force_login(staff(session.operator))
    page = client.get(page_url(case)).content.decode()
    assert "Unmatched StopTransaction from this pile: transaction 999" in page


def test_recalculate_then_apply_settles_once_with_messages(client, desk):
    case, session, member = desk
    agent = staff(session.operator, username="agent1")
    client.force_login(agent)
    form = {
        "fix-started_at": "2019-09-06 23:26:13",
        "fix-stopped_at": "2019-09-07 10:40:40",
        "fix-meter_stop_wh": "34820",
        "fix-reason": "pile register glitch",
    }
    response = client.post(page_url(case), {**form, "action": "recalculate"})
    assert response.status_code == 200
    assert admin_messages(response) == [
        "Recalculated: 34.820 kWh, 33.02 yuan. Press apply to settle it."
    ]
    assert "New amount: 33.02 yuan" in response.content.decode()
    assert Bill.objects.get(session=session).payment_state == PaymentState.FAULT

    response = client.post(page_url(case), {**form, "action": "apply"}, follow=True)
    assert admin_messages(response) == [
        f"Repaired and settled: bill {session.order_no}, 33.02 yuan, paid."
    ]
    assert "repaired and settled" in response.content.decode()  # the history row
    assert list(case.actions.values_list("kind", "actor__username", "reason")) == [
        ("detect", None, ""),
        ("recalculate", "agent1", "pile register glitch"),
        ("repair", "agent1", "pile register glitch"),
    ]
    response = client.post(page_url(case), {**form, "action": "apply"})
    (message,) = admin_messages(response)
    assert message.startswith("This fault bill was already repaired by agent1 at ")
    assert LedgerEntry.objects.filter(bill__session=session, kind="charge").count() == 1
    member.wallet.refresh_from_db()
    assert member.wallet.balance == D("66.98")


@pytest.mark.parametrize(
    ("post", "message"),
    [
        ({"action": "recalculate", "fix-reason": ""}, "Please correct the errors below"),
        (
            {"action": "apply", "fix-reason": "x", "fix-meter_stop_wh": "-5"},
            "Stop register: it cannot be below the start register (0.000 Wh).",
        ),
        ({"action": "dismiss", "dismiss-reason": ""}, "Reason: say why; nothing was changed."),
        ({"action": "nonsense"}, "Unknown action; nothing was changed."),
    ],
)
def test_every_failing_click_says_why(client, desk, post, message):
    case, session, _member = desk
    client.force_login(staff(session.operator))
    response = client.post(page_url(case), post, follow=True)
    assert any(message in m for m in admin_messages(response))
    case.refresh_from_db()
    assert case.state == "open"


def test_escalate_then_dismiss_are_audited_on_the_page(client, desk):
    case, session, _member = desk
    client.force_login(staff(session.operator, username="lead"))
    response = client.post(
        page_url(case), {"action": "escalate", "escalate-reason": "ask the vendor"}, follow=True
    )
    assert admin_messages(response) == [f"Fault bill {session.order_no} is now escalated."]
    response = client.post(
        page_url(case), {"action": "dismiss", "dismiss-reason": "vendor confirmed"}, follow=True
    )
    assert admin_messages(response) == [f"Fault bill {session.order_no} is now dismissed."]
    page = response.content.decode()
    assert "ask the vendor" in page and "vendor confirmed" in page
    assert list(case.actions.values_list("kind", "actor__username")) == [
        ("detect", None),
        ("escalate", "lead"),
        ("dismiss", "lead"),
    ]


def test_view_only_staff_cannot_post(client, desk):
    case, session, _member = desk
    user = staff(session.operator)
    user.user_permissions.remove(Permission.objects.get(codename="change_faultcase"))
    client.force_login(user)
    assert client.get(page_url(case)).status_code == 200
    assert (
        client.post(page_url(case), {"action": "escalate", "escalate-reason": "x"}).status_code
        == 403
    )
    case.refresh_from_db()
    assert case.state == "open"


def test_pile_timeline_for_any_period_is_scoped(client, desk):
    _case, session, _member = desk
    client.force_login(staff(session.operator))
    url = reverse("admin:faults_pile_timeline", args=[session.pile_id])
    page = client.get(url, {"begin": "2019-09-06 23:00", "end": "2019-09-07 12:00"})
    html = page.content.decode()
    assert page.status_code == 200
    # Statuses read as words (OCPP "Charging" is "charging", 充电中 in zh-hans).
    assert 'class="fault-timeline"' in html and "<td>charging</td><td>#1</td>" in html
    assert "StartTransaction received" in html
    too_long = client.get(url, {"begin": "2019-09-01 00:00", "end": "2019-09-30 00:00"})
    assert admin_messages(too_long) == ["A period is at most 7 days, end after start."]
    client.force_login(staff(OperatorFactory(), username="other"))
    assert client.get(url).status_code == 404


def test_customer_service_role_repairs_end_to_end(client, desk):
    """Permissions from the role group only (`staff_assign_role`), no hand-given ones."""
    case, session, member = desk
    agent = factories.StaffFactory(
        username="cs_role", operator=session.operator, role=Role.CUSTOMER_SERVICE
    )
    assert not agent.user_permissions.exists()
    client.force_login(agent)
    queue = client.get(reverse("admin:faults_faultcase_changelist"))
    assert [c.pk for c in queue.context["cl"].result_list] == [case.pk]
    assert client.get(page_url(case)).status_code == 200
    form = {
        "fix-started_at": "2019-09-06 23:26:13",
        "fix-stopped_at": "2019-09-07 10:40:40",
        "fix-meter_stop_wh": "34820",
        "fix-reason": "pile register glitch",
    }
    response = client.post(page_url(case), {**form, "action": "recalculate"})
    assert admin_messages(response) == [
        "Recalculated: 34.820 kWh, 33.02 yuan. Press apply to settle it."
    ]
    response = client.post(page_url(case), {**form, "action": "apply"}, follow=True)
    assert admin_messages(response) == [
        f"Repaired and settled: bill {session.order_no}, 33.02 yuan, paid."
    ]
    bill = Bill.objects.get(session=session)
    assert client.get(reverse("admin:billing_bill_change", args=[bill.pk])).status_code == 200
    member.wallet.refresh_from_db()
    assert member.wallet.balance == D("66.98")


@pytest.mark.parametrize("action", ["recalculate", "apply", "escalate", "dismiss"])
def test_sub_operator_staff_role_sees_but_cannot_repair(client, desk, action):
    case, session, _member = desk
    sub = SubOperatorFactory(operator=session.operator)
    session.station.sub_operators.add(sub)
    viewer = factories.StaffFactory(
        username="sub_role", sub_operator=sub, role=Role.SUB_OPERATOR_STAFF
    )
    client.force_login(viewer)
    assert client.get(page_url(case)).status_code == 200
    response = client.post(
        page_url(case),
        {
            "action": action,
            "fix-meter_stop_wh": "34820",
            "fix-reason": "x",
            f"{action}-reason": "x",
        },
    )
    assert response.status_code == 403
    case.refresh_from_db()
    assert (case.state, case.actions.count()) == ("open", 1)
    assert Bill.objects.get(session=session).payment_state == PaymentState.FAULT


def _shown(html: str, name: str) -> str:
    """The value the page prefilled in input ``name`` (what a browser posts back)."""
    (value,) = re.findall(rf'name="{name}" value="([^"]*)"', html)
    return value


def test_a_repair_changing_only_the_meter_keeps_the_times_to_the_second(client, desk):
    case, session, _member = desk
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"  # the desk's language
    client.force_login(staff(session.operator, username="agent1"))
    html = client.get(page_url(case)).content.decode()
    assert 'type="datetime-local" name="fix-started_at" value="2019-09-06T23:26:13"' in html
    assert 'name="fix-stopped_at" value="2019-09-07T10:40:40" step="1"' in html
    posted = {f"fix-{name}": _shown(html, f"fix-{name}") for name in ("started_at", "stopped_at")}
    posted |= {"fix-meter_stop_wh": "34820", "fix-reason": "pile register glitch"}
    client.post(page_url(case), {**posted, "action": "apply"})

    bill = Bill.objects.get(session=session)
    assert (bill.started_at, bill.ended_at, bill.energy_wh, bill.total) == (
        at(2019, 9, 6, 23, 26, 13),
        at(2019, 9, 7, 10, 40, 40),
        D("34820.000"),
        D("33.02"),
    )
    action = case.actions.get(kind="repair")
    assert action.before == {
        "meter_stop_wh": "44820.000",
        "bill_total": "44.52",
        "payment_state": "fault",
    }
    assert action.after == {
        "meter_stop_wh": "34820",
        "energy_wh": "34820.000",
        "electricity_fee": "14.22",
        "service_fee": "18.80",
        "total": "33.02",
        "payment_state": "paid",
    }


def test_the_chart_of_a_repaired_bill_plots_the_corrected_reading(client, desk):
    _case, session, _member = desk
    bill = Bill.objects.get(session=session)
    pile_reading = [(t, D(e)) for t, e in SAMPLES]
    assert bill_samples(bill) == pile_reading
    fault_bill_repair(
        session=session,
        corrections=BillCorrections(reason="pile register glitch", meter_stop_wh=D(34820)),
        acting_user=staff(session.operator, username="agent1"),
    )
    bill.refresh_from_db()
    assert bill_samples(bill) == [*pile_reading[:-1], (at(2019, 9, 7, 10, 40, 40), D(34820))]
    client.force_login(staff(session.operator, username="boss", superuser=True))
    html = client.get(reverse("admin:billing_bill_change", args=[bill.pk])).content.decode()
    chart = html[html.index('role="img"') :]
    chart = chart[: chart.index("</svg>")]
    assert ">34.82 kWh</text>" in chart and "44.82" not in chart


def test_a_fault_bill_the_platform_could_not_price_shows_the_piles_energy_and_why(client):
    # No tariff at this station: pricing raises, the bill is 0 Wh and 0.00 yuan, but the
    # page says what the pile reported (34820 Wh) and the engine's message.
    station = factories.StationFactory()
    session = stopped_session(station=station, samples=SAMPLES[:3] + SAMPLES[4:])
    bill = bill_settle(session_id=session.pk)
    events_delivered()
    assert (bill.energy_wh, bill.total, bill.fault_codes) == (D("0.000"), D("0.00"), [12])
    client.force_login(staff(station.operator))
    html = client.get(page_url(FaultCase.objects.get(session=session))).content.decode()
    assert (
        "The pile reported 44820.000 Wh (its meterStop − meterStart); the platform did not "
        "price it. No tariff is in force at 2019-09-06 23:26:13 (station time); the bill "
        "needs one."
    ) in html
