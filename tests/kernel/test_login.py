"""The back-office sign-in is throttled per username and per client address."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed sign-ins for this account or from this address. Try again in 15 minutes."
WRONG = (
    "Please enter the correct username and password for a staff account. "
    "Note that both fields may be case-sensitive."
)


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff():
    # Fresh names and addresses: the counters live in the shared Redis.
    return StaffFactory(username=f"desk-{uuid.uuid4().hex[:8]}", password="correct horse 42")


def _sign_in(client, username, password, address):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def _errors(response) -> list[str]:
    return [str(e) for e in response.context["form"].non_field_errors()]


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(client, staff):
    address = f"10.1.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    for _attempt in range(5):
        assert _errors(_sign_in(client, staff.username, "guess", address)) == [WRONG]
    # The right password, from another address too: still refused, and not signed in.
    for where in (address, "10.9.9.9"):
        response = _sign_in(client, staff.username, "correct horse 42", where)
        assert (response.status_code, _errors(response)) == (200, [LOCKED])
    assert "_auth_user_id" not in client.session


def test_four_failures_then_the_right_password_signs_in_and_resets(client, staff):
    address = f"10.2.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    for _attempt in range(4):
        _sign_in(client, staff.username, "guess", address)
    response = _sign_in(client, staff.username, "correct horse 42", address)
    assert (response.status_code, response.url) == (302, "/admin/")
    client.logout()
    for _attempt in range(4):  # the count started again
        _sign_in(client, staff.username, "guess", address)
    assert _sign_in(client, staff.username, "correct horse 42", address).status_code == 302


def test_one_address_trying_many_usernames_is_locked(client, staff, settings):
    address = f"10.3.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    for n in range(settings.LOGIN_FAILURES_PER_ADDRESS):
        _sign_in(client, f"nobody-{n}-{uuid.uuid4().hex[:6]}", "guess", address)
    response = _sign_in(client, staff.username, "correct horse 42", address)
    assert _errors(response) == [LOCKED]
    other = _sign_in(client, staff.username, "correct horse 42", "10.9.9.10")
    assert other.status_code == 302


def test_the_lock_message_is_in_chinese(client, staff):
    address = f"10.4.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    for _attempt in range(5):
        _sign_in(client, staff.username, "guess", address)
    response = client.post(
        reverse("admin:login"),
        {"username": staff.username, "password": "correct horse 42"},
        REMOTE_ADDR=address,
        headers={"accept-language": "zh-hans"},
    )
    assert _errors(response) == ["该账号或该地址登录失败次数过多，请 15 分钟后再试。"]
