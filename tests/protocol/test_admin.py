"""Customer service's log search and the remote-command page."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from billing.models import ChargingSession
from chargenet.models import AuditLog
from protocol.models import Direction, Frame, MessageType
from stations.models import Pile

from . import world

pytestmark = pytest.mark.django_db


def _frame(pile_code, action, **kwargs):
    return Frame.objects.create(
        at=dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC),
        pile_code=pile_code,
        direction=kwargs.pop("direction", Direction.IN),
        message_type=MessageType.CALL,
        action=action,
        **kwargs,
    )


def test_log_search_by_order_number_finds_the_sessions_frames(admin_client):
    pile = world.pile()
    session = ChargingSession.objects.create(
        order_no="20261127160000123456",
        operator=pile.station.operator,
        station=pile.station,
        pile=pile,
        connector=pile.connectors.get(),
        id_tag="T",
        started_at=dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC),
        meter_start_wh=0,
    )
    start = _frame(pile.code, "StartTransaction", transaction_id=session.pk)
    stop = _frame(pile.code, "StopTransaction", order_no=session.order_no)
    _frame(pile.code, "Heartbeat")
    _frame(world.pile().code, "StopTransaction", order_no="20261127160000999999")

    response = admin_client.get(reverse("admin:protocol_frame_changelist"), {"q": session.order_no})
    assert response.status_code == 200
    assert {f.pk for f in response.context["cl"].result_list} == {start.pk, stop.pk}


def test_log_search_by_pile_and_action_filter(admin_client):
    pile = world.pile()
    beat = _frame(pile.code, "Heartbeat")
    _frame(pile.code, "BootNotification")
    response = admin_client.get(
        reverse("admin:protocol_frame_changelist"), {"q": pile.code, "action": "Heartbeat"}
    )
    assert [f.pk for f in response.context["cl"].result_list] == [beat.pk]


def test_command_page_shows_the_error_when_the_pile_is_offline(admin_client):
    pile = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    response = admin_client.post(
        url, {"action": "Reset", "payload": '{"type": "Soft"}', "timeout": 2}, follow=True
    )
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [
        f"Pile {pile.code} is offline: it is not connected to any gateway."
    ]
    # A person's command is audited with its outcome, even when it failed.
    entry = AuditLog.objects.get(action="pile_command", object_id=str(pile.pk))
    assert (entry.actor.username, entry.before, entry.after["error"]) == (
        "admin",
        {"action": "Reset", "payload": {"type": "Soft"}},
        "pile_offline",
    )


def test_command_page_rejects_a_payload_that_is_not_json(admin_client):
    pile = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    response = admin_client.post(url, {"action": "Reset", "payload": "{type", "timeout": 2})
    assert response.context["form"].errors["payload"][0].startswith("The payload is not valid JSON")


def test_firmware_form_builds_the_command_and_shows_the_services_error(admin_client):
    pile = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    form = {
        "send": "firmware",
        "firmware-location": "file:///fw.bin",
        "firmware-retrieve_date": "2026-12-01 10:00",
        "firmware-retries": "2",
    }
    response = admin_client.post(url, form, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        "The location must be an ftp, ftps, http or https URL with a host; got “file:///fw.bin”."
    ]
    response = admin_client.post(
        url, {**form, "firmware-location": "https://fw.example.com/fw.bin"}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == [
        f"Pile {pile.code} is offline: it is not connected to any gateway."
    ]
    # Local time (Asia/Shanghai) on the page, UTC on the wire; both attempts audited.
    assert list(
        AuditLog.objects.filter(action="pile_command", object_id=str(pile.pk))
        .order_by("pk")
        .values_list("before", "after__error")
    ) == [
        (
            {
                "action": "UpdateFirmware",
                "payload": {
                    "location": "file:///fw.bin",
                    "retrieveDate": "2026-12-01T02:00:00Z",
                    "retries": 2,
                },
            },
            "pile_command_invalid",
        ),
        (
            {
                "action": "UpdateFirmware",
                "payload": {
                    "location": "https://fw.example.com/fw.bin",
                    "retrieveDate": "2026-12-01T02:00:00Z",
                    "retries": 2,
                },
            },
            "pile_offline",
        ),
    ]


def test_diagnostics_form_refuses_a_negative_retry_count_and_sends_nothing(admin_client):
    pile = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    response = admin_client.post(
        url,
        {"send": "diagnostics", "diagnostics-location": "ftp://x/", "diagnostics-retries": "-1"},
    )
    assert response.context["maintenance"]["diagnostics"].errors == {
        "retries": ["Ensure this value is greater than or equal to 0."]
    }
    assert not AuditLog.objects.filter(action="pile_command", object_id=str(pile.pk)).exists()


def test_the_pile_page_shows_the_latest_firmware_and_diagnostics_status(admin_client):
    pile = world.pile()
    at = dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC)
    Pile.objects.filter(pk=pile.pk).update(
        firmware_status="InstallationFailed",
        firmware_status_at=at,
        diagnostics_status="Uploaded",
        diagnostics_status_at=at,
    )
    page = admin_client.get(reverse("admin:stations_pile_change", args=[pile.pk])).content.decode()
    console = admin_client.get(
        reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    ).content.decode()
    for html in (page, console):
        assert "installation failed" in html
        assert "uploaded" in html
