"""Live pile services: login, boot, last-seen batches, offline sweep and network outages."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chargenet.models import OutboxEvent
from stations.models import (
    ConnectorState,
    FirmwareRecord,
    HeartbeatSample,
    Pile,
    PileFault,
    StationOutage,
)
from stations.services import credentials, live
from tests.protocol import world

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 27, 2, 30, 10, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "code_kind, password, expected",
    [
        ("known", "secret-pw", ""),
        ("known", "wrong", "wrong password"),
        ("known", None, "credentials missing"),
        ("unknown", "secret-pw", "unknown pile code"),
        ("hidden", "secret-pw", "pile is hidden"),
    ],
)
def test_pile_login(code_kind, password, expected):
    pile = world.pile()
    if code_kind == "hidden":
        Pile.objects.filter(pk=pile.pk).update(hidden_at=T0)
    code = "4420000000000000000" + "9" if code_kind == "unknown" else pile.code
    login = live.pile_login(code=code, password=password)
    assert login.reason == expected
    assert login.pile_id == (pile.pk if not expected else None)


def test_pile_login_checks_a_keyed_hash_and_hands_legacy_hashes_back_unverified():
    pile = world.pile()
    assert pile.credential_hash == credentials.pile_credential_encode(password="secret-pw")
    assert pile.credential_hash.startswith("hmac-sha256$")
    legacy = world.fast_hash("secret-pw")
    Pile.objects.filter(pk=pile.pk).update(credential_hash=legacy)
    login = live.pile_login(code=pile.code, password="secret-pw")
    assert (login.pile, login.legacy.pk, login.reason) == (
        None,
        pile.pk,
        "legacy credential not verified",
    )


def test_a_verified_legacy_credential_is_upgraded_unless_it_changed_meanwhile():
    pile = world.pile()
    legacy = world.fast_hash("secret-pw")
    Pile.objects.filter(pk=pile.pk).update(credential_hash=legacy)
    assert credentials.pile_credential_check_legacy(password="secret-pw", encoded=legacy)
    assert not credentials.pile_credential_check_legacy(password="wrong", encoded=legacy)
    assert credentials.pile_credential_upgrade(pile_id=pile.pk, legacy=legacy, password="secret-pw")
    pile.refresh_from_db()
    assert pile.credential_hash == credentials.pile_credential_encode(password="secret-pw")
    assert live.pile_login(code=pile.code, password="secret-pw").pile_id == pile.pk
    # A second upgrade of the same legacy hash (a concurrent login) changes nothing.
    assert not credentials.pile_credential_upgrade(pile_id=pile.pk, legacy=legacy, password="x")


@pytest.mark.parametrize(
    "configured, expected",
    [
        ("pepper-1", "hmac-sha256$" + hmac.new(b"pepper-1", b"pw", hashlib.sha256).hexdigest()),
        ("", None),
    ],
)
def test_the_credential_key_comes_from_settings_or_from_secret_key(settings, configured, expected):
    settings.PILE_CREDENTIAL_KEY = configured
    encoded = credentials.pile_credential_encode(password="pw")
    if expected is None:  # derived from SECRET_KEY, never SECRET_KEY itself
        derived = hmac.new(
            settings.SECRET_KEY.encode(), b"chargenet pile credential key", hashlib.sha256
        ).digest()
        expected = "hmac-sha256$" + hmac.new(derived, b"pw", hashlib.sha256).hexdigest()
    assert encoded == expected
    assert credentials.pile_credential_check(password="pw", encoded=encoded)
    assert not credentials.pile_credential_check(password="pw", encoded="")


def test_an_unknown_code_costs_one_hmac_like_a_wrong_password(monkeypatch):
    pile = world.pile()
    calls = []
    real = live.pile_credential_check

    def counting(**kwargs):
        calls.append(kwargs["encoded"][:12])
        return real(**kwargs)

    monkeypatch.setattr(live, "pile_credential_check", counting)
    live.pile_login(code="44200000000000000009", password="secret-pw")
    live.pile_login(code=pile.code, password="wrong")
    assert calls == ["", "hmac-sha256$"]


def test_boot_keeps_firmware_history_and_policy_for_unpublished_piles(settings):
    pile = world.pile()
    first = live.pile_boot(pile_id=pile.pk, vendor="V", model="M", firmware_version="10002", now=T0)
    live.pile_boot(
        pile_id=pile.pk, vendor="V", model="M", firmware_version="10002", now=T0 + dt.timedelta(1)
    )
    settings.GATEWAY_ACCEPT_UNPUBLISHED = False
    pending = live.pile_boot(
        pile_id=pile.pk, vendor="V", model="M", firmware_version="11534", now=T0 + dt.timedelta(2)
    )
    assert (first.status, first.interval, pending.status) == ("Accepted", 60, "Pending")
    assert list(
        FirmwareRecord.objects.filter(pile=pile)
        .order_by("first_seen_at")
        .values_list("version", "first_seen_at", "last_seen_at")
    ) == [
        ("10002", T0, T0 + dt.timedelta(1)),
        ("11534", T0 + dt.timedelta(2), T0 + dt.timedelta(2)),
    ]


def test_a_batch_of_logins_is_one_lookup_and_decides_each_handshake():
    known, open_pile, hidden = world.pile(), world.pile(password=None), world.pile()
    Pile.objects.filter(pk=hidden.pk).update(hidden_at=T0)
    calls = [
        {"code": known.code, "password": "secret-pw"},
        {"code": known.code, "password": "wrong"},
        {"code": known.code, "password": None},
        {"code": "44200000000000000009", "password": "secret-pw"},
        {"code": hidden.code, "password": "secret-pw"},
        {"code": open_pile.code, "password": None},
    ]
    with CaptureQueriesContext(connection) as queries:
        logins = live.pile_login.many(calls)
    assert len(queries) == 1
    assert [(login.pile_id, login.reason) for login in logins] == [
        (known.pk, ""),
        (None, "wrong password"),
        (None, "credentials missing"),
        (None, "unknown pile code"),
        (None, "pile is hidden"),
        (open_pile.pk, ""),
    ]
    assert logins[0].pile.station.pk == known.station_id  # with its station, as alone


def test_a_batch_of_boots_is_one_update_with_each_piles_firmware_history(settings):
    published = {"is_published": True, "max_power_kw": 60}
    a, b, unpublished = world.pile(**published), world.pile(**published), world.pile()
    FirmwareRecord.objects.create(pile=a, version="10002", first_seen_at=T0, last_seen_at=T0)
    later = T0 + dt.timedelta(hours=1)
    settings.GATEWAY_ACCEPT_UNPUBLISHED = False
    # b boots again in the same batch: its last boot is what it is now.
    again = dict(pile_id=b.pk, vendor="W" * 70, model="M2", firmware_version="2.1", now=later)
    calls = [
        {"pile_id": a.pk, "vendor": "V", "model": "M", "firmware_version": "10002", "now": later},
        {"pile_id": b.pk, "vendor": "Old", "model": "M0", "serial_number": "S0", "now": later},
        {"pile_id": unpublished.pk, "vendor": "U", "model": "M", "now": later},
        again,
    ]
    with CaptureQueriesContext(connection) as queries:
        results = live.pile_boot.many(calls)
    piles_updates = [q for q in queries if q["sql"].startswith(f"UPDATE {Pile._meta.db_table} ")]
    assert len(piles_updates) == 1
    assert [(r.status, r.interval) for r in results] == [
        ("Accepted", 60), ("Accepted", 60), ("Pending", 60), ("Accepted", 60),
    ]  # fmt: skip
    rows = Pile.objects.filter(pk__in=[a.pk, b.pk, unpublished.pk]).order_by("pk")
    assert list(rows.values_list("vendor", "model", "serial_number", "firmware_version")) == [
        ("V", "M", "", "10002"),
        ("W" * 64, "M2", "", "2.1"),
        ("U", "M", "", ""),
    ]
    assert set(rows.values_list("last_boot_at", flat=True)) == {later}
    assert sorted(
        FirmwareRecord.objects.filter(pile__in=[a, b]).values_list(
            "pile_id", "version", "first_seen_at", "last_seen_at"
        )
    ) == sorted([(a.pk, "10002", T0, later), (b.pk, "2.1", later, later)])


def test_a_batch_of_boots_with_a_pile_that_is_gone_changes_nothing():
    pile = world.pile()
    calls = [
        {"pile_id": pile.pk, "vendor": "V", "model": "M", "now": T0},
        {"pile_id": pile.pk + 10_000, "vendor": "V", "model": "M", "now": T0},
    ]
    with pytest.raises(Pile.DoesNotExist):
        live.pile_boot.many(calls)
    pile.refresh_from_db()
    assert (pile.vendor, pile.last_boot_at) == ("", None)


def test_piles_seen_updates_last_seen_in_one_batch_keeping_the_newest():
    a, b = world.pile(), world.pile()
    Pile.objects.filter(pk=b.pk).update(last_heartbeat_at=T0 + dt.timedelta(minutes=5))
    updated = live.piles_seen(seen={a.pk: T0, b.pk: T0}, samples=[(a.pk, T0, "Charging")])
    assert updated == 2
    assert Pile.objects.get(pk=a.pk).last_heartbeat_at == T0
    assert Pile.objects.get(pk=b.pk).last_heartbeat_at == T0 + dt.timedelta(minutes=5)
    assert list(HeartbeatSample.objects.values_list("pile_id", "state")) == [(a.pk, "Charging")]
    assert live.heartbeat_history_prune(before=T0 + dt.timedelta(seconds=1)) == 1


def _online(pile, last_seen):
    Pile.objects.filter(pk=pile.pk).update(is_online=True, last_heartbeat_at=last_seen)


def test_sweep_marks_silent_piles_offline_and_groups_a_station_outage():
    station = world.station()
    a, b, c = world.pile(station), world.pile(station), world.pile(station)
    lone = world.pile()
    fresh = world.pile(station)
    _online(a, T0)
    _online(b, T0 + dt.timedelta(seconds=40))  # same minute as a
    _online(c, T0 - dt.timedelta(minutes=2))  # dropped earlier, alone
    _online(lone, T0)
    now = T0 + dt.timedelta(minutes=10)
    _online(fresh, now - dt.timedelta(seconds=30))

    swept = live.piles_sweep_offline(now=now)
    assert sorted(swept) == sorted([a.pk, b.pk, c.pk, lone.pk])
    assert live.piles_sweep_offline(now=now) == []  # nothing twice
    offline = OutboxEvent.objects.filter(kind="pile.offline").order_by("key")
    assert sorted(
        (e.payload["pile_id"], e.payload["last_heartbeat_at"]) for e in offline
    ) == sorted(
        (p.pk, t.isoformat())
        for p, t in [
            (a, T0),
            (b, T0 + dt.timedelta(seconds=40)),
            (c, T0 - dt.timedelta(minutes=2)),
            (lone, T0),
        ]
    )
    outage = StationOutage.objects.get()
    assert (outage.station_id, outage.started_at, outage.pile_count) == (
        station.pk,
        T0.replace(second=0),
        2,
    )
    assert sorted(PileFault.objects.filter(outage=outage).values_list("pile_id", flat=True)) == [
        a.pk,
        b.pk,
    ]
    assert PileFault.objects.filter(kind="offline", ended_at__isnull=True).count() == 4
    assert Pile.objects.get(pk=fresh.pk).is_online is True

    # Reconnects close the faults; the outage ends with its last pile back.
    live.pile_connected(pile_id=a.pk, now=now + dt.timedelta(minutes=1))
    assert StationOutage.objects.get().ended_at is None
    live.piles_seen(seen={b.pk: now + dt.timedelta(minutes=2)})
    outage.refresh_from_db()
    assert outage.ended_at is not None
    assert Pile.objects.get(pk=b.pk).is_online is True
    assert PileFault.objects.filter(kind="offline", ended_at__isnull=True).count() == 2


def test_status_error_opens_and_no_error_closes_a_fault_and_full_still_plugged():
    pile = world.pile()
    faulted = live.connector_status_record(
        pile=pile,
        connector_number=1,
        state=ConnectorState.FAULTED,
        error_code="OverVoltage",
        now=T0,
    )
    other = live.connector_status_record(
        pile=pile,
        connector_number=1,
        state=ConnectorState.FAULTED,
        error_code="HighTemperature",
        now=T0,
    )
    clear = live.connector_status_record(
        pile=pile,
        connector_number=1,
        state=ConnectorState.SUSPENDED_EV,
        now=T0 + dt.timedelta(minutes=1),
    )
    assert (faulted.full_still_plugged, other.full_still_plugged) == (False, False)
    assert clear.full_still_plugged is False  # no open session on the connector
    assert list(PileFault.objects.order_by("pk").values_list("error_code", "ended_at")) == [
        ("OverVoltage", T0),
        ("HighTemperature", T0 + dt.timedelta(minutes=1)),
    ]
    changes = OutboxEvent.objects.filter(kind="pile.status_changed").order_by("pk")
    assert [
        (e.payload["connector_number"], e.payload["state"], e.payload["error_code"], e.key)
        for e in changes
    ] == [
        (1, "Faulted", "OverVoltage", str(pile.pk)),
        (1, "Faulted", "HighTemperature", str(pile.pk)),
        (1, "SuspendedEV", "", str(pile.pk)),
    ]
