"""The back office speaks zh-hans by default and English on request, from committed .mo files."""

import pytest
from django.utils import translation

from stations.models import Connector, Pile


@pytest.mark.parametrize(
    ("language", "pile", "connector"),
    [("zh-hans", "充电桩", "充电枪"), ("en", "pile", "connector")],
)
def test_model_labels_are_translated(language, pile, connector):
    with translation.override(language):
        assert str(Pile._meta.verbose_name) == pile
        assert str(Connector._meta.verbose_name) == connector


@pytest.mark.django_db
def test_admin_login_page_defaults_to_chinese(client, settings):
    settings.LANGUAGE_CODE = "zh-hans"  # the product default (tests run in English)
    response = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="")
    assert response.status_code == 200
    assert response["Content-Language"] == "zh-hans"


def _zh(value) -> str:
    with translation.override("zh-hans"):
        return str(value)


def test_words_shared_with_django_or_between_apps_have_the_domain_terms():
    from billing.models import Bill, Channel, MeterSample, SessionTransition
    from faults.models import FaultCase
    from stations.models import Station

    assert _zh(Bill._meta.get_field("session").verbose_name) == "充电记录"
    assert _zh(MeterSample._meta.get_field("session").verbose_name) == "充电记录"
    assert _zh(SessionTransition._meta.get_field("session").verbose_name) == "充电记录"
    assert _zh(FaultCase._meta.get_field("session").verbose_name) == "充电记录"
    assert _zh(Channel.PASSWORD.label) == "密码充电"
    assert _zh(Station._meta.get_field("password").verbose_name) == "站点密码"


def test_fault_codes_speak_the_operator_terms():
    from faults.codes import FaultCode

    assert [_zh(code.label) for code in FaultCode] == [
        "账单丢失",
        "账单丢失(设备离线)",
        "时间异常",
        "充电时长异常",
        "充电电量与平台不符",
        "充电时长与平台不符",
        "占桩时长与平台不符",
        "电量丢失",
        "电价缺失",
        "电量超出充电桩功率",
        "合作方订单未确认或对账不符",
    ]
