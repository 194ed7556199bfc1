"""Driver login over the fakes' real wire: WeChat web-page OAuth (code → openid/unionid →
API token) and phone binding with a code texted through Aliyun SMS."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chargenet.models import AuditLog
from integrations.sms.aliyun import AliyunSmsClient
from integrations.sms.fake import FakeAliyunSms
from integrations.wechat.fake import FakeWeChat
from orgs.models import DriverToken, Member, PhoneCode
from tests.drivers import driver_client
from tests.factories import MemberFactory, OperatorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def wechat(settings):
    with FakeWeChat(secret="s3cret", app_id="wxdemo") as fake:
        settings.WECHAT_API_BASE = fake.url
        settings.WECHAT_APP_ID = "wxdemo"
        settings.WECHAT_APP_SECRET = "s3cret"
        settings.WECHAT_OAUTH_AUTHORIZE_URL = f"{fake.url}/connect/oauth2/authorize"
        yield fake


@pytest.fixture
def sms(settings):
    with FakeAliyunSms(access_key_id="LTAIdemo", access_key_secret="secret") as fake:
        settings.SMS_SENDER = "aliyun"
        settings.ALIYUN_SMS_ACCESS_KEY_ID = "LTAIdemo"
        settings.ALIYUN_SMS_ACCESS_KEY_SECRET = "secret"
        settings.ALIYUN_SMS_SIGN_NAME = "充电网"
        settings.ALIYUN_SMS_TEMPLATE_CODE = "SMS_100001"
        settings.ALIYUN_SMS_ENDPOINT = fake.url
        yield fake


@pytest.fixture
def operator():
    return OperatorFactory()


def _login(code: str):
    return APIClient(headers={"accept-language": "en"}).post(
        "/api/v1/auth/wechat/", {"code": code}, format="json"
    )


def test_the_authorize_url_sends_the_browser_back_with_a_code_the_api_exchanges(wechat, operator):
    import urllib.request

    url = APIClient().get("/api/v1/auth/wechat/authorize/").json()["url"]
    query = parse_qs(urlparse(url).query)
    assert query["appid"] == ["wxdemo"]
    assert query["scope"] == ["snsapi_base"]
    assert query["redirect_uri"] == ["http://testserver/h5/login/"]

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(url)
    back = urlparse(answer.value.headers["Location"])
    assert back.path == "/h5/login/"
    code = parse_qs(back.query)["code"][0]
    login = _login(code)
    assert login.status_code == 200
    member = Member.objects.get(wechat_openid="oDemoDriver0001")
    assert login.json()["me"] == {
        "id": member.pk,
        "nickname": "",
        "phone": None,
        "phone_bound": False,
        "operator": operator.name,
    }
    token = login.json()["token"]
    me = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.json()["id"] == member.pk


def test_a_second_login_finds_the_same_member_and_records_the_unionid(wechat, operator):
    first = _login(wechat.oauth_code_for("o-1"))
    second = _login(wechat.oauth_code_for("o-1", "u-1"))
    assert first.json()["me"]["id"] == second.json()["me"]["id"]
    assert Member.objects.get().wechat_unionid == "u-1"
    # Another app of the operator (same unionid, other openid) finds the member too.
    member = Member.objects.get()
    member.wechat_openid = None
    member.save()
    third = _login(wechat.oauth_code_for("o-other-app", "u-1"))
    assert third.json()["me"]["id"] == member.pk
    assert Member.objects.get().wechat_openid == "o-other-app"


@pytest.mark.parametrize(
    ("code_of", "expected"),
    [("unknown", "wechat_code_invalid"), ("used", "wechat_code_invalid")],
)
def test_a_bad_oauth_code_is_refused_and_creates_nobody(wechat, operator, code_of, expected):
    code = "nope"
    if code_of == "used":
        code = wechat.oauth_code_for("o-1")
        assert _login(code).status_code == 200
        Member.objects.all().delete()
    answer = _login(code)
    assert answer.status_code == 400
    assert answer.json()["code"] == expected
    assert Member.objects.count() == 0


def test_wechat_down_is_a_503(settings, operator):
    settings.WECHAT_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    answer = _login("whatever")
    assert answer.status_code == 503
    assert answer.json()["code"] == "wechat_unavailable"


def test_a_blocked_member_cannot_log_in(wechat, operator):
    MemberFactory(operator=operator, wechat_openid="o-blocked", status="blocked")
    answer = _login(wechat.oauth_code_for("o-blocked"))
    assert answer.status_code == 403
    assert answer.json()["code"] == "login_refused"
    assert DriverToken.objects.count() == 0


def _send_code(client, phone="13800138000"):
    return client.post("/api/v1/auth/phone/code/", {"phone": phone}, format="json")


def _bind(client, code, phone="13800138000"):
    return client.post("/api/v1/auth/phone/", {"phone": phone, "code": code}, format="json")


def test_a_new_phone_is_bound_with_the_texted_code(sms, operator):
    member = MemberFactory(operator=operator, phone=None)
    client = driver_client(member)
    assert _send_code(client).status_code == 202
    [code] = sms.codes_sent_to("13800138000")
    assert sms.sent[0]["SignName"] == "充电网"
    assert sms.sent[0]["TemplateCode"] == "SMS_100001"
    answer = _bind(client, code)
    assert answer.status_code == 200
    assert answer.json()["me"]["phone"] == "13800138000"
    member.refresh_from_db()
    assert member.phone == "13800138000"
    assert PhoneCode.objects.get().code_hash != code  # only a keyed hash is kept
    # The code is used up.
    assert _bind(client, code).json()["code"] == "sms_code_expired"


def test_an_existing_member_with_the_phone_is_linked_not_duplicated(sms, operator):
    existing = MemberFactory(
        operator=operator, phone="13800138000", wechat_openid=None, nickname="Zhang"
    )
    login = MemberFactory(operator=operator, phone=None, wechat_openid="o-new")
    client = driver_client(login)
    _send_code(client)
    answer = _bind(client, sms.codes_sent_to("13800138000")[0])
    assert answer.status_code == 200
    assert answer.json()["me"]["id"] == existing.pk
    assert list(Member.objects.values_list("pk", "wechat_openid", "phone")) == [
        (existing.pk, "o-new", "13800138000")
    ]
    # The login account's token is gone with it; the new token is the existing member's.
    assert client.get("/api/v1/me/").status_code == 401
    token = answer.json()["token"]
    me = APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert (me["id"], me["nickname"]) == (existing.pk, "Zhang")
    assert AuditLog.objects.get(action="member_link_wechat").after == {
        "wechat_openid": "o-new",
        "wechat_unionid": None,
    }


def test_a_phone_of_another_wechat_account_is_refused(sms, operator):
    MemberFactory(operator=operator, phone="13800138000", wechat_openid="o-owner")
    login = MemberFactory(operator=operator, phone=None, wechat_openid="o-new")
    client = driver_client(login)
    _send_code(client)
    answer = _bind(client, sms.codes_sent_to("13800138000")[0])
    assert answer.status_code == 409
    assert answer.json()["code"] == "phone_taken"
    login.refresh_from_db()
    assert login.phone is None


def test_wrong_codes_are_counted_and_use_the_code_up(sms, operator, settings):
    settings.SMS_CODE_ATTEMPTS = 3
    client = driver_client(MemberFactory(operator=operator, phone=None))
    _send_code(client)
    [code] = sms.codes_sent_to("13800138000")
    wrong = "000000" if code != "000000" else "111111"
    assert [_bind(client, wrong).json()["code"] for _ in range(3)] == ["sms_code_wrong"] * 3
    assert _bind(client, code).json()["code"] == "sms_code_attempts"
    assert PhoneCode.objects.get().attempts == 3


def test_a_code_expires(sms, operator):
    client = driver_client(MemberFactory(operator=operator, phone=None))
    _send_code(client)
    PhoneCode.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    answer = _bind(client, sms.codes_sent_to("13800138000")[0])
    assert (answer.status_code, answer.json()["code"]) == (400, "sms_code_expired")


def test_one_text_per_phone_per_interval(sms, operator):
    client = driver_client(MemberFactory(operator=operator, phone=None))
    assert _send_code(client).status_code == 202
    again = _send_code(driver_client(MemberFactory(operator=operator, phone=None)))
    assert (again.status_code, again.json()["code"]) == (429, "sms_too_soon")
    assert len(sms.sent) == 1


def test_an_invalid_phone_is_refused_before_any_text(sms, operator):
    answer = _send_code(driver_client(MemberFactory(operator=operator)), phone="12345")
    assert (answer.status_code, answer.json()["code"]) == (400, "phone_invalid")
    assert sms.sent == []


def test_a_provider_refusal_is_a_503_and_the_code_is_void(sms, operator):
    sms.fail_next_with.append("isv.BUSINESS_LIMIT_CONTROL")
    client = driver_client(MemberFactory(operator=operator, phone=None))
    answer = _send_code(client)
    assert (answer.status_code, answer.json()["code"]) == (503, "sms_unavailable")
    assert PhoneCode.objects.get().expires_at <= timezone.now()


def test_the_aliyun_fake_checks_the_signature():
    from integrations.sms import SmsError

    with FakeAliyunSms(access_key_id="id", access_key_secret="right") as fake:
        client = AliyunSmsClient(
            access_key_id="id",
            access_key_secret="wrong",
            sign_name="充电网",
            template_code="SMS_1",
            endpoint=fake.url,
        )
        with pytest.raises(SmsError) as refused:
            client.send_code(phone="13800138000", code="123456")
        assert refused.value.code == "SignatureDoesNotMatch"
        client.access_key_secret = "right"
        assert client.send_code(phone="13800138000", code="123456") == "000001^0"


def test_the_log_sender_is_the_development_default(caplog, operator):
    client = driver_client(MemberFactory(operator=operator, phone=None))
    with caplog.at_level("INFO", logger="chargenet.sms"):
        assert _send_code(client).status_code == 202
    assert "13800138000" in caplog.text
