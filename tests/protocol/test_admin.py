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
        at=kwargs.pop("at", dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC)),
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
    made = session.created_at
    # The start request is journaled as the session is made; the stop came two days later
    # (queued while the pile was offline).
    start = _frame(pile.code, "StartTransaction", transaction_id=session.pk, at=made)
    meter = _frame(pile.code, "MeterValues", order_no=session.order_no, at=made)
    stop = _frame(
        pile.code, "StopTransaction", order_no=session.order_no, at=made + dt.timedelta(days=2)
    )
    _frame(pile.code, "Heartbeat", at=made)
    # The same transaction id on that pile long after: another life of the counter.
    _frame(pile.code, "StartTransaction", transaction_id=session.pk, at=made + dt.timedelta(days=3))
    _frame(world.pile().code, "StopTransaction", order_no="20261127160000999999", at=made)

    response = admin_client.get(reverse("admin:protocol_frame_changelist"), {"q": session.order_no})
    assert response.status_code == 200
    assert [f.pk for f in response.context["cl"].result_list] == [stop.pk, meter.pk, start.pk]


def test_log_search_for_an_order_nobody_journaled_finds_nothing(admin_client):
    world.pile()
    response = admin_client.get(
        reverse("admin:protocol_frame_changelist"), {"q": "20261127169999999999"}
    )
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


def test_log_search_by_pile_and_action_filter(admin_client):
    pile = world.pile()
    beat = _frame(pile.code, "Heartbeat")
    _frame(pile.code, "BootNotification")
    response = admin_client.get(
        reverse("admin:protocol_frame_changelist"), {"q": pile.code, "action": "Heartbeat"}
    )
    assert [f.pk for f in response.context["cl"].result_list] == [beat.pk]


def _messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def test_command_page_shows_the_error_when_the_pile_is_offline(admin_client):
    pile = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    response = admin_client.post(url, {"send": "reset", "reset-hard": "hard"}, follow=True)
    assert response.status_code == 200
    assert _messages(response) == [("error", f"Pile {pile.code} is offline; not sent: hard reset.")]
    # A person's intent is audited with its outcome, even when it failed.
    entry = AuditLog.objects.get(action="pile_intent", object_id=str(pile.pk))
    assert (entry.actor.username, entry.before, entry.after["outcome"]) == (
        "admin",
        {"intent": "pile_reset", "hard": True},
        "offline",
    )


def test_start_form_offers_the_piles_connectors_and_member_credentials(admin_client):
    pile = world.pile(connectors=2)
    other = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    form = admin_client.get(url).context["forms"]["start"]
    assert [c.number for c in form.fields["connector"].queryset] == [1, 2]
    assert [k for k, _label in form.fields["credential_kind"].choices] == ["member_token", "card"]
    gun = pile.connectors.get(number=2)
    posted = {"send": "start", "start-credential_kind": "card", "start-credential_value": "C42"}
    response = admin_client.post(url, {**posted, "start-connector": gun.pk}, follow=True)
    assert _messages(response) == [
        ("error", f"Pile {pile.code} is offline; not sent: start connector 2 for card C42.")
    ]
    # Another pile's connector is not a choice.
    response = admin_client.post(url, {**posted, "start-connector": other.connectors.get().pk})
    assert list(response.context["forms"]["start"].errors) == ["connector"]
    assert AuditLog.objects.filter(action="pile_intent", object_id=str(pile.pk)).count() == 1


def test_expert_form_rejects_a_payload_that_is_not_json(admin_client):
    pile = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    response = admin_client.post(
        url,
        {
            "send": "expert",
            "expert-action": "Reset",
            "expert-payload": "{type",
            "expert-timeout": 2,
        },
    )
    errors = response.context["forms"]["expert"].errors["payload"]
    assert errors[0].startswith("The payload is not valid JSON")


def test_expert_form_sends_raw_ocpp_audited(admin_client):
    pile = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    form = {
        "send": "expert",
        "expert-action": "ClearCache",
        "expert-payload": "",
        "expert-timeout": 2,
    }
    response = admin_client.post(url, form, follow=True)
    assert _messages(response) == [
        ("error", f"Pile {pile.code} is offline: it is not connected to any gateway.")
    ]
    entry = AuditLog.objects.get(action="pile_command", object_id=str(pile.pk))
    assert (entry.before, entry.after["error"]) == (
        {"action": "ClearCache", "payload": {}},
        "pile_offline",
    )


def test_firmware_form_runs_the_intent_and_shows_why_it_was_not_sent(admin_client):
    pile = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    form = {
        "send": "firmware",
        "firmware-location": "file:///fw.bin",
        "firmware-retrieve_at": "2026-12-01 10:00",
        "firmware-retries": "2",
    }
    response = admin_client.post(url, form, follow=True)
    assert _messages(response) == [
        (
            "error",
            f"Not sent to pile {pile.code}: update firmware from file:///fw.bin. The location "
            "must be an ftp, ftps, http or https URL with a host; got “file:///fw.bin”.",
        )
    ]
    response = admin_client.post(
        url, {**form, "firmware-location": "https://fw.example.com/fw.bin"}, follow=True
    )
    assert _messages(response) == [
        (
            "error",
            f"Pile {pile.code} is offline; not sent: update firmware from "
            "https://fw.example.com/fw.bin.",
        )
    ]
    # Local time (Asia/Shanghai) on the page; both attempts audited.
    assert list(
        AuditLog.objects.filter(action="pile_intent", object_id=str(pile.pk))
        .order_by("pk")
        .values_list("before", "after__outcome")
    ) == [
        (
            {
                "intent": "pile_firmware_update",
                "location": location,
                "retrieve_at": "2026-12-01T10:00:00+08:00",
                "retries": 2,
                "retry_interval": None,
            },
            outcome,
        )
        for location, outcome in (
            ("file:///fw.bin", "invalid"),
            ("https://fw.example.com/fw.bin", "offline"),
        )
    ]


def test_diagnostics_form_refuses_a_negative_retry_count_and_sends_nothing(admin_client):
    pile = world.pile()
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    response = admin_client.post(
        url,
        {"send": "diagnostics", "diagnostics-location": "ftp://x/", "diagnostics-retries": "-1"},
    )
    assert response.context["forms"]["diagnostics"].errors == {
        "retries": ["Ensure this value is greater than or equal to 0."]
    }
    assert not AuditLog.objects.filter(object_id=str(pile.pk)).exists()


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


def test_the_console_speaks_chinese_to_the_desk(admin_client):
    pile = world.pile()
    admin_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-hans"
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    page = admin_client.get(url).content.decode()
    for title in ("启动充电", "停止充电订单", "重启充电桩", "解锁充电枪", "让充电桩立即上报"):
        assert f"<h2>{title}</h2>" in page
    response = admin_client.post(
        url, {"send": "unlock", "unlock-connector": pile.connectors.get().pk}, follow=True
    )
    assert _messages(response) == [("error", f"充电桩 {pile.code} 离线，未发送：解锁 1 号枪。")]
