"""`load_demo` builds the Zhongshan network exactly, twice without duplicates."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import override_settings
from django.urls import reverse

from orgs.models import Card, Department, Member, Operator, Partner, Staff, SubOperator, Vehicle
from stations import demo
from stations.models import Connector, OpeningWindow, Pile, Station
from stations.services.credentials import pile_credential_check
from tests.admin_forms import signed_in

pytestmark = pytest.mark.django_db


FAST_HASHES = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])


@pytest.fixture(scope="module", autouse=True)
def _fast_hashes():
    with FAST_HASHES:
        yield


@pytest.fixture(scope="module")
def loaded(django_db_setup, django_db_blocker, _fast_hashes):
    """The demo loaded once for the read-only tests of this module (rolled back after)."""
    with django_db_blocker.unblock(), transaction.atomic():
        demo.load_demo()
        yield
        transaction.set_rollback(True)


def _counts() -> dict[str, int]:
    return {
        "operators": Operator.objects.count(),
        "sub_operators": SubOperator.objects.count(),
        "departments": Department.objects.count(),
        "stations": Station.objects.count(),
        "opening_windows": OpeningWindow.objects.count(),
        "piles": Pile.objects.count(),
        "connectors": Connector.objects.count(),
        "vehicles": Vehicle.objects.count(),
        "cards": Card.objects.count(),
        "members": Member.objects.count(),
        "card_accounts": Member.objects.filter(is_virtual=True).count(),
        "partners": Partner.objects.count(),
        "staff": Staff.objects.count(),
    }


EXPECTED = {
    "operators": 1,
    "sub_operators": 2,
    "departments": 2,
    "stations": 8,
    "opening_windows": 1,
    "piles": 44,  # 40 OCPP, 4 YKC
    "connectors": 47,
    "vehicles": 6,
    "cards": 6,
    "members": 26,
    "card_accounts": 6,
    "partners": 2,
    "staff": 3,
}


def test_load_demo_twice_builds_the_network_once(capsys):
    call_command("load_demo")
    first = _counts()
    call_command("load_demo")
    assert first == _counts() == EXPECTED
    out = capsys.readouterr().out
    assert "40 piles (40 new)" in out
    assert "40 piles (0 new)" in out
    assert out.count("Created staff account") == 3


def test_demo_network_shape(loaded):
    operator = Operator.objects.get(code="zs-charge")
    assert operator.name == "中山充电运营"
    ykc = Pile.objects.filter(protocol=Pile.Protocol.YKC)
    assert sorted((p.code, p.current_type, p.connectors.count()) for p in ykc) == [
        ("44200002000001", "AC", 1),
        ("44200004000002", "DC", 2),
        ("44200006000003", "AC", 1),
        ("44200008000004", "DC", 2),
    ]
    assert all(p.is_published and not p.credential_hash for p in ykc)
    piles = Pile.objects.filter(protocol=Pile.Protocol.OCPP16J)
    assert Counter(p.current_type for p in piles) == {"AC": 18, "DC": 22}
    assert Counter(p.max_power_kw for p in piles) == {
        Decimal(7): 18,
        Decimal(60): 9,
        Decimal(120): 13,
    }
    assert {p.firmware_version for p in piles} == {"10002", "10722", "11534", "11536", "2090100"}
    assert all(p.is_published and len(p.code) == 20 and p.code[:6] == "442001" for p in piles)
    assert Connector.objects.filter(rated_power_kw__isnull=True).count() == 0
    (dual,) = [p for p in piles if p.connectors.count() == 2]
    assert list(dual.connectors.values_list("rated_power_kw", flat=True)) == [
        Decimal(60),
        Decimal(60),
    ]
    (night,) = OpeningWindow.objects.all()
    assert (str(night), night.station.name) == ("19:00–06:00", "南区城南公交场站")
    assert {
        s.code: sorted(s.stations.values_list("code", flat=True)) for s in SubOperator.objects.all()
    } == {
        "zs-bus": ["ZS003", "ZS005"],
        "torch-ev": ["ZS002", "ZS003"],
    }
    assert sorted(Card.objects.values_list("member__nickname", "vehicle__plate")) == [
        (plate, plate) for plate in demo.BUS_PLATES
    ]
    assert dict(operator.partner_accesses.values_list("partner__name", "enabled")) == {
        "滴滴": False,
        "粤易充": True,
    }


def test_pile_credentials_are_hashed_and_listed(loaded):
    credentials = demo.demo_pile_credentials()
    assert len(credentials) == 40
    assert credentials[0] == ("44200100010001000001", "demo-0001")
    for code, password in credentials:
        pile = Pile.objects.get(code=code)
        assert password not in pile.credential_hash
        # The keyed form the gateway checks in one HMAC (no slow upgrade at first boot).
        assert pile.credential_hash.startswith("hmac-sha256$")
        assert pile_credential_check(password=password, encoded=pile.credential_hash)


def test_existing_password_is_never_reset():
    demo.load_demo()
    admin = Staff.objects.get(username="admin")
    admin.set_password("changed-by-the-operator")
    admin.save()
    demo.load_demo()
    admin.refresh_from_db()
    assert admin.check_password("changed-by-the-operator")


@pytest.mark.parametrize(
    ("username", "stations"),
    [("admin", 8), ("subop", 2), ("service", 8)],
)
def test_demo_staff_log_in_and_see_their_scope(loaded, client, username, stations):
    staff = Staff.objects.get(username=username)
    assert (staff.is_staff, staff.is_superuser) == (True, False)
    assert client.login(username=username, password="chargenet")
    response = client.get(reverse("admin:stations_station_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == stations


def test_bad_demo_input_is_refused_and_nothing_saved(monkeypatch):
    before = _counts()
    monkeypatch.setattr(demo, "pile_code", lambda station, serial: f"44200{station}{serial}")
    with pytest.raises(
        CommandError, match="pile code: A pile code is 14 \\(YKC\\), 16 or 20 digits"
    ):
        call_command("load_demo")
    assert _counts() == before


@pytest.mark.parametrize("username", ["admin", "subop", "service"])
def test_every_back_office_page_renders_on_the_demo(loaded, client, username):
    """Each registered changelist, and the first row's change page, for each demo role."""
    from django.contrib import admin

    signed_in(client, Staff.objects.get(username=username))
    rendered = 0
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = client.get(changelist)
        if not model_admin.has_view_permission(response.wsgi_request):
            assert response.status_code == 403, changelist
            continue
        assert response.status_code == 200, changelist
        rendered += 1
        first = response.context["cl"].result_list[:1]
        if first:
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first[0].pk])
            assert client.get(url).status_code == 200, url
        if model_admin.has_add_permission(response.wsgi_request):
            add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
            assert client.get(add).status_code == 200, add
    assert rendered >= 9
