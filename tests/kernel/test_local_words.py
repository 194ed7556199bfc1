"""The back office in zh-hans with local times: app headers, rounding mode, audit actions,
OCPP statuses in timelines, tariff and audit titles, stored-JSON times, the bills list."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import translation

from billing.admin import BillAdmin
from billing.demo import DEMO_PLAN_NAME
from billing.models import StationTariff, TariffPlan, TariffVersion
from chargenet.models import AuditLog, audit_action_label
from chargenet.templatetags.local_time import local_json
from faults.timeline import pile_timeline
from orgs.models import Vehicle
from stations.models import StatusEvent
from tests.factories import PileFactory, StationFactory

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YEAR = dt.datetime(2019, 1, 1, tzinfo=SHANGHAI)  # 2018-12-31 16:00 UTC


def _zh(value) -> str:
    with translation.override("zh-hans"):
        return str(value)


def test_app_headers_are_chinese(admin_client):
    response = admin_client.get(reverse("admin:index"), headers={"accept-language": "zh-hans"})
    names = {app["app_label"]: app["name"] for app in response.context["app_list"]}
    assert {k: names[k] for k in ("billing", "chargenet", "faults", "stations", "protocol")} == {
        "billing": "计费",
        "chargenet": "平台",
        "faults": "故障",
        "stations": "站点",
        "protocol": "通信协议",
    }


@pytest.mark.parametrize(
    ("action", "model", "zh"),
    [
        ("wallet_adjust", None, "钱包调整"),
        ("vehicle_change", Vehicle, "车辆：修改"),
        ("station_create", None, "station：创建"),
        ("hide", Vehicle, "已隐藏"),
        ("something_new", None, "something_new"),
    ],
)
def test_audit_action_codes_read_as_words(action, model, zh):
    kind = ContentType.objects.get_for_model(model) if model else None
    with translation.override("zh-hans"):
        assert audit_action_label(action, kind) == zh


def test_audit_title_is_local_time_and_words():
    entry = AuditLog(at=NEW_YEAR, action="wallet_adjust", object_repr="m1")
    assert _zh(entry) == "2019-01-01 00:00:00 钱包调整 m1"


def test_tariff_titles_show_local_time():
    station = StationFactory(name="S", time_zone="Asia/Urumqi")  # UTC+6
    plan = TariffPlan.objects.create(operator=station.operator, name="P")
    assert str(TariffVersion(plan=plan, effective_from=NEW_YEAR)) == "P @ 2019-01-01 00:00"
    assert str(StationTariff(station=station, plan=plan, effective_from=NEW_YEAR)) == (
        "S → P @ 2018-12-31 22:00"
    )


def test_stored_json_times_are_shown_local():
    before = {"stopped_at": "2018-12-31T16:00:00+00:00", "kwh": "1.5", "note": "T 停"}
    assert local_json(before) == (
        '{\n "stopped_at": "2019-01-01 00:00:00",\n "kwh": "1.5",\n "note": "T 停"\n}'
    )
    assert local_json(before, ZoneInfo("UTC")).splitlines()[1] == (
        ' "stopped_at": "2018-12-31 16:00:00",'
    )
    assert local_json(None) == ""


def test_timeline_statuses_are_words_in_chinese():
    pile = PileFactory()
    for minute, status in enumerate(["Preparing", "Charging", "SuspendedEV"]):
        StatusEvent.objects.create(
            pile=pile,
            connector_number=1,
            status=status,
            received_at=NEW_YEAR + dt.timedelta(minutes=minute),
        )
    with translation.override("zh-hans"):
        entries = pile_timeline(pile=pile, begin=NEW_YEAR, end=NEW_YEAR + dt.timedelta(hours=1))
        labels = [(e.label, e.status) for e in entries]
    assert labels == [
        ("准备中（已插枪）", "Preparing"),
        ("充电中", "Charging"),
        ("车辆暂停（满电占桩）", "SuspendedEV"),
    ]


def test_pile_page_shows_status_events_in_the_station_zone(admin_client):
    pile = PileFactory(station=StationFactory(time_zone="Asia/Urumqi"))
    StatusEvent.objects.create(
        pile=pile, connector_number=1, status="Charging", received_at=NEW_YEAR
    )
    page = admin_client.get(reverse("admin:stations_pile_change", args=[pile.pk]))
    assert "<td>2018-12-31 22:00:00</td>" in page.content.decode()


def test_demo_plan_is_named_in_chinese():
    assert DEMO_PLAN_NAME == "标准分时电价"


def test_bills_list_puts_total_payment_and_fault_codes_first():
    columns = BillAdmin.list_display
    assert columns[:4] == ("order_no", "total", "payment_state", "fault_codes")
    assert len(columns) == 8 and "channel" not in columns and "member" not in columns
