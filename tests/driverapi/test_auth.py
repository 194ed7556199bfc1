"""Driver authentication: a real token in ``Authorization: Bearer``, hashed at rest,
expiring, refused for blocked or hidden members; staff sessions are not drivers."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from orgs.drivers import driver_token_issue
from orgs.models import DriverToken, MemberStatus
from tests.drivers import driver_client
from tests.factories import MemberFactory, StaffFactory

pytestmark = pytest.mark.django_db


def test_a_driver_reads_their_own_account():
    member = MemberFactory(phone="13800138000", nickname="Li")
    answer = driver_client(member).get("/api/v1/me/")
    assert answer.status_code == 200
    assert answer.json() == {
        "id": member.pk,
        "nickname": "Li",
        "phone": "13800138000",
        "phone_bound": True,
        "operator": member.operator.name,
    }


def test_only_the_hash_of_a_token_is_stored():
    member = MemberFactory()
    issued = driver_token_issue(member=member)
    stored = DriverToken.objects.get(member=member)
    assert stored.key_hash == hashlib.sha256(issued.key.encode()).hexdigest()
    assert issued.key not in stored.key_hash


def _get_me(key: str | None):
    client = APIClient(headers={"accept-language": "en"})
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=key)
    return client.get("/api/v1/me/")


@pytest.mark.parametrize(
    "spoil",
    ["expired", "blocked", "hidden", "wrong", "missing", "malformed"],
)
def test_a_bad_or_missing_token_is_a_401_in_the_error_shape(spoil):
    member = MemberFactory()
    key = f"Bearer {driver_token_issue(member=member).key}"
    if spoil == "expired":
        DriverToken.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    elif spoil == "blocked":
        member.status = MemberStatus.BLOCKED
        member.save()
    elif spoil == "hidden":
        member.hidden_at = timezone.now()
        member.save()
    elif spoil == "wrong":
        key = "Bearer not-a-token"
    elif spoil == "missing":
        key = None
    elif spoil == "malformed":
        key = key + " extra"
    answer = _get_me(key)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert set(answer.json()) == {"code", "message", "details"}
    assert answer.json()["code"] in {"not_authenticated", "authentication_failed"}


def test_a_staff_session_is_not_a_driver(client):
    staff = StaffFactory()
    api = APIClient()
    api.force_login(staff)
    answer = api.get("/api/v1/me/")
    assert answer.status_code == 401


def test_logout_ends_the_token():
    member = MemberFactory()
    client = driver_client(member)
    assert client.post("/api/v1/auth/logout/").status_code == 204
    assert client.get("/api/v1/me/").status_code == 401
    assert DriverToken.objects.filter(member=member).count() == 0


def test_the_error_message_follows_the_request_language():
    answer = APIClient(headers={"accept-language": "zh-hans"}).get("/api/v1/me/")
    assert answer.status_code == 401
    assert answer.json()["message"] == "身份认证信息未提供。"


def test_requests_are_throttled_per_driver(settings):
    settings.API_THROTTLE_USER = "3/min"
    client = driver_client(MemberFactory())
    codes = [client.get("/api/v1/me/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    throttled = client.get("/api/v1/me/")
    assert throttled.json()["code"] == "throttled"
    assert int(throttled.headers["Retry-After"]) > 0
    other = driver_client(MemberFactory())
    assert other.get("/api/v1/me/").status_code == 200


def test_requests_are_throttled_per_address(settings):
    settings.API_THROTTLE_IP = "2/min"
    codes = [driver_client(MemberFactory()).get("/api/v1/me/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
