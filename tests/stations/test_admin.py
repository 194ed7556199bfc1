"""The network back office: forms refuse bad input naming field and rule (nothing saved),
actions give feedback, counts equal the rows behind them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from chargenet.models import AuditLog
from stations.models import Connector, FirmwareRecord, OpeningWindow, Pile, Station, StatusEvent
from stations.services.credentials import pile_credential_encode
from tests.admin_forms import admin_messages, form_errors, page_data, signed_in
from tests.factories import (
    ConnectorFactory,
    DepartmentFactory,
    OperatorFactory,
    PileFactory,
    StaffFactory,
    StationFactory,
    SubOperatorFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return OperatorFactory(code="zs", name="中山")


@pytest.fixture
def admin_client(client, operator):
    return signed_in(client, StaffFactory(operator=operator))


def _add_station(admin_client, **changes):
    url = reverse("admin:stations_station_add")
    fields = {
        "code": "ZS-100",
        "name": "东区夜间站",
        "address": "中山市东区博爱六路28号",
        "city": "中山市",
        "latitude": "22.517600",
        "longitude": "113.412300",
    }
    data = page_data(admin_client.get(url), **{**fields, **changes})
    return admin_client.post(url, data)


def _windows(*pairs):
    data = {
        "opening_windows-TOTAL_FORMS": str(len(pairs)),
        "opening_windows-INITIAL_FORMS": "0",
    }
    for i, (opens, closes) in enumerate(pairs):
        data[f"opening_windows-{i}-opens"] = opens
        data[f"opening_windows-{i}-closes"] = closes
    return data


def test_add_station_with_overnight_hours(admin_client, operator):
    response = _add_station(admin_client, **_windows(("19:00", "06:00")))
    assert response.status_code == 302, form_errors(response)
    station = Station.objects.get(code="ZS-100")
    assert station.operator == operator
    assert [str(w) for w in station.opening_windows.all()] == ["19:00–06:00"]
    assert AuditLog.objects.filter(action="station_create", object_id=str(station.pk)).count() == 1
    window = AuditLog.objects.get(action="openingwindow_add")
    assert (window.operator, window.after["opens"], window.after["closes"]) == (
        operator,
        "19:00:00",
        "06:00:00",
    )


def test_overlapping_hours_are_refused_with_the_times(admin_client):
    response = _add_station(admin_client, **_windows(("19:00", "06:00"), ("05:00", "08:00")))
    assert response.status_code == 200
    assert form_errors(response) == [
        "Opening hours: the windows 19:00–06:00 and 05:00–08:00 overlap; windows of one "
        "station must not overlap."
    ]
    assert (Station.objects.count(), OpeningWindow.objects.count()) == (0, 0)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("latitude", "95", "Ensure this value is less than or equal to 90."),
        ("time_zone", "Mars/Olympus", "“Mars/Olympus” is not a time zone name"),
    ],
)
def test_bad_station_fields_are_refused(admin_client, field, value, error):
    response = _add_station(admin_client, **{field: value, **_windows()})
    assert response.status_code == 200
    assert any(e.startswith(error) for e in form_errors(response)), form_errors(response)
    assert Station.objects.count() == 0


@pytest.fixture
def pile(operator):
    station = StationFactory(operator=operator, name="岐江站")
    pile = PileFactory(station=station, code="44200100010001000001", max_power_kw=Decimal(120))
    ConnectorFactory(pile=pile, number=1, rated_power_kw=Decimal(60))
    ConnectorFactory(pile=pile, number=2, rated_power_kw=Decimal(60))
    return pile


def _pile_page(admin_client, pile):
    return admin_client.get(reverse("admin:stations_pile_change", args=[pile.pk]))


def test_publish_on_the_pile_page_needs_every_rated_power(admin_client, pile):
    data = page_data(
        _pile_page(admin_client, pile), is_published="on", **{"connectors-1-rated_power_kw": ""}
    )
    response = admin_client.post(reverse("admin:stations_pile_change", args=[pile.pk]), data)
    assert response.status_code == 200
    assert form_errors(response) == [
        "Rated power (kW): required on every connector before the pile can be published; "
        "missing on connector 2."
    ]
    pile.refresh_from_db()
    assert pile.is_published is False
    assert pile.connectors.get(number=2).rated_power_kw == Decimal("60.00")


def test_publish_without_max_power_names_the_field(admin_client, pile):
    data = page_data(_pile_page(admin_client, pile), is_published="on", max_power_kw="")
    response = admin_client.post(reverse("admin:stations_pile_change", args=[pile.pk]), data)
    assert response.status_code == 200
    assert "Max power (kW): required before the pile can be published." in form_errors(response)
    pile.refresh_from_db()
    assert (pile.is_published, pile.max_power_kw) == (False, Decimal("120.00"))


def test_publish_on_the_pile_page(admin_client, pile):
    data = page_data(
        _pile_page(admin_client, pile), is_published="on", new_credential="s3cret-s3cret-s3cret"
    )
    response = admin_client.post(reverse("admin:stations_pile_change", args=[pile.pk]), data)
    assert response.status_code == 302, form_errors(response)
    pile.refresh_from_db()
    assert pile.is_published is True
    assert pile.credential_hash == pile_credential_encode(password="s3cret-s3cret-s3cret")
    published = AuditLog.objects.get(action="pile_publish")
    assert (published.after, published.operator_id) == (
        {"is_published": True},
        pile.station.operator_id,
    )
    credential = AuditLog.objects.get(action="pile_update")  # never the hash itself
    assert (credential.before, credential.after) == (
        {"credential_hash": "…"},
        {"credential_hash": "(changed)"},
    )


def test_a_short_pile_password_is_refused_and_nothing_changes(admin_client, pile):
    before = pile.credential_hash
    data = page_data(_pile_page(admin_client, pile), new_credential="short-password")
    response = admin_client.post(reverse("admin:stations_pile_change", args=[pile.pk]), data)
    assert response.status_code == 200
    assert "Ensure this value has at least 16 characters (it has 14)." in form_errors(response)
    pile.refresh_from_db()
    assert pile.credential_hash == before


def test_a_generated_pile_password_is_shown_once_and_stored_keyed(admin_client, pile):
    data = page_data(_pile_page(admin_client, pile), generate_credential="on")
    response = admin_client.post(
        reverse("admin:stations_pile_change", args=[pile.pk]), data, follow=True
    )
    shown = [str(m) for m in response.context["messages"]]
    prefix = f"New password of pile {pile.code} (shown only this once): "
    assert len(shown) == 2 and shown[0].startswith(prefix), shown
    password = shown[0].removeprefix(prefix)
    assert len(password) == 32
    pile.refresh_from_db()
    assert pile.credential_hash == pile_credential_encode(password=password)
    assert password not in str(AuditLog.objects.filter(action="pile_update").values())


def test_removing_a_connector_on_the_pile_page_is_audited(admin_client, pile):
    second = pile.connectors.get(number=2)
    data = page_data(_pile_page(admin_client, pile), **{"connectors-1-DELETE": "on"})
    response = admin_client.post(reverse("admin:stations_pile_change", args=[pile.pk]), data)
    assert response.status_code == 302, form_errors(response)
    assert list(pile.connectors.values_list("number", flat=True)) == [1]
    entry = AuditLog.objects.get(action="connector_delete")
    assert (entry.object_id, entry.before["rated_power_kw"], entry.operator_id) == (
        str(second.pk),
        "60.00",
        pile.station.operator_id,
    )


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        (
            "code",
            "4420010001",
            "A pile code is 14 (YKC), 16 or 20 digits, e.g. 44200100020001000012; got",
        ),
        ("max_power_kw", "0", "Power must be greater than 0 kW; got 0."),
        ("connectors-0-rated_power_kw", "-1", "Power must be greater than 0 kW; got -1."),
    ],
)
def test_bad_pile_input_names_the_rule_and_saves_nothing(admin_client, pile, field, value, error):
    data = page_data(_pile_page(admin_client, pile), **{field: value})
    response = admin_client.post(reverse("admin:stations_pile_change", args=[pile.pk]), data)
    assert response.status_code == 200
    assert any(e.startswith(error) for e in form_errors(response)), form_errors(response)
    pile.refresh_from_db()
    assert (pile.code, pile.max_power_kw) == ("44200100010001000001", Decimal("120.00"))
    assert sorted(Connector.objects.values_list("rated_power_kw", flat=True)) == [
        Decimal("60.00"),
        Decimal("60.00"),
    ]


def test_publish_action_reports_each_refusal(admin_client, pile, operator):
    bare = PileFactory(station=pile.station, code="44200100010001000002")  # no connector
    response = admin_client.post(
        reverse("admin:stations_pile_changelist"),
        {"action": "publish_selected", "_selected_action": [pile.pk, bare.pk]},
    )
    assert response.status_code == 302
    assert admin_messages(response) == [
        "Pile 44200100010001000002 cannot be published. Connectors: a pile needs at least one "
        "connector before it can be published.",
        "Published 1 pile(s).",
    ]
    assert list(Pile.objects.filter(is_published=True)) == [pile]


def test_pile_page_shows_firmware_history_and_latest_status(admin_client, pile):
    now = timezone.now()
    FirmwareRecord.objects.create(pile=pile, version="2090100", first_seen_at=now, last_seen_at=now)
    StatusEvent.objects.create(
        pile=pile, connector_number=2, status="SuspendedEV", info="full", received_at=now
    )
    body = _pile_page(admin_client, pile).content.decode()
    assert "2090100" in body
    assert "suspended by vehicle (full, still plugged)" in body


def test_station_list_shows_online_and_total_piles(admin_client, pile):
    PileFactory(station=pile.station, code="44200100010001000003", is_online=True)
    hidden = PileFactory(station=pile.station, code="44200100010001000004", is_online=True)
    hidden.hidden_at = timezone.now()
    hidden.save()
    response = admin_client.get(reverse("admin:stations_station_changelist"))
    (row,) = response.context["cl"].result_list
    assert (row.piles_online, row.piles_total) == (1, 2)
    assert ">1 / 2</a>" in response.content.decode()


def test_hide_action_removes_bindings_so_department_counts_equal_rows(admin_client, operator):
    """The "80 vs 75 stations" ticket, through the back office."""
    sub = SubOperatorFactory(operator=operator)
    dept = DepartmentFactory(operator=operator, name="公交", sub_operator=sub)
    stations = [StationFactory(operator=operator, departments=[dept]) for _ in range(4)]
    response = admin_client.post(
        reverse("admin:stations_station_changelist"),
        {"action": "hide_selected", "_selected_action": [stations[0].pk]},
    )
    assert admin_messages(response) == ["Hid 1 station."]
    departments = admin_client.get(reverse("admin:orgs_department_changelist")).context["cl"]
    (row,) = departments.result_list
    listed = admin_client.get(
        reverse("admin:stations_station_changelist") + f"?departments__id__exact={dept.pk}"
    ).context["cl"]
    assert row.n_stations == listed.result_count == 3
    assert dept.stations.count() == 3

    response = admin_client.post(
        reverse("admin:stations_station_changelist") + "?hidden=yes",
        {"action": "restore_selected", "_selected_action": [stations[0].pk]},
    )
    assert admin_messages(response) == ["Restored 1 station."]
    assert dept.stations.count() == 4


def test_hideable_models_have_no_delete(admin_client, pile):
    response = admin_client.get(reverse("admin:stations_station_delete", args=[pile.station_id]))
    assert response.status_code == 403
    changelist = admin_client.get(reverse("admin:stations_station_changelist"))
    actions = [name for name, _label in changelist.context["action_form"].fields["action"].choices]
    assert actions == ["", "hide_selected", "restore_selected", "export_csv"]
    assert Station.objects.count() == 1


def test_connector_page_keeps_published_piles_complete(admin_client, pile):
    from stations.services.network import pile_publish

    pile_publish(pile=pile)
    connector = pile.connectors.get(number=1)
    url = reverse("admin:stations_connector_change", args=[connector.pk])
    response = admin_client.post(url, page_data(admin_client.get(url), rated_power_kw=""))
    assert response.status_code == 200
    assert form_errors(response) == [
        "Rated power (kW): pile 44200100010001000001 is published, so every connector needs "
        "its rated power; unpublish the pile first."
    ]
    connector.refresh_from_db()
    assert connector.rated_power_kw == Decimal("60.00")


def test_add_a_dual_gun_pile_published_in_one_page(admin_client, operator):
    station = StationFactory(operator=operator)
    url = reverse("admin:stations_pile_add")
    data = page_data(
        admin_client.get(url),
        station=str(station.pk),
        code="44200100010001000077",
        current_type="DC",
        max_power_kw="120",
        is_published="on",
        new_credential="demo-0077-demo-0077",
        **{
            "connectors-TOTAL_FORMS": "2",
            "connectors-0-number": "1",
            "connectors-0-standard": "GB/T DC",
            "connectors-0-rated_power_kw": "60",
            "connectors-1-number": "2",
            "connectors-1-standard": "GB/T DC",
            "connectors-1-rated_power_kw": "60",
        },
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, form_errors(response)
    pile = Pile.objects.get(code="44200100010001000077")
    assert (pile.is_published, pile.connectors.count()) == (True, 2)
    assert list(
        AuditLog.objects.filter(object_id=str(pile.pk), content_type__model="pile")
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["pile_create", "pile_publish"]


def test_unpublish_and_clear_max_power_in_one_save(admin_client, pile):
    from stations.services.network import pile_publish

    pile_publish(pile=pile)
    data = page_data(_pile_page(admin_client, pile), is_published=None, max_power_kw="")
    response = admin_client.post(reverse("admin:stations_pile_change", args=[pile.pk]), data)
    assert response.status_code == 302, form_errors(response)
    pile.refresh_from_db()
    assert (pile.is_published, pile.max_power_kw) == (False, None)


def test_binding_changes_are_audited(admin_client, operator):
    station = StationFactory(operator=operator)
    sub = SubOperatorFactory(operator=operator)
    url = reverse("admin:stations_station_change", args=[station.pk])
    response = admin_client.post(url, page_data(admin_client.get(url), sub_operators=[str(sub.pk)]))
    assert response.status_code == 302, form_errors(response)
    entry = AuditLog.objects.get(action="station_bindings")
    assert (entry.before, entry.after) == (
        {"sub_operators": [], "departments": []},
        {"sub_operators": [sub.pk], "departments": []},
    )
