"""Customer service's log search and the remote-command page."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from billing.models import ChargingSession
from chargenet.models import AuditLog
from protocol.models import Direction, Frame, MessageType

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
