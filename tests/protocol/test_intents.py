"""Remote intents through a real gateway: each intent becomes the right OCPP 1.6 CALL (as
journaled), and the pile's answer the right outcome and message; people's intents are
audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import translation

from billing.models import ChargingSession
from billing.services.sessions import CredentialKind
from chargenet.models import AuditLog
from protocol import intents
from protocol.adapters import Outcome, Setting, Trigger
from protocol.models import Frame
from protocol.simulator import connected

from . import world
from .clients import MaintainedPile, serving, silent
from .conftest import wait_for

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def sent(pile, action, *, count: int = 1):
    """The payloads of the CALLs the gateway sent ``pile`` for ``action`` (its journal,
    written in the background: waits for ``count`` of them)."""
    frames = Frame.objects.filter(pile_code=pile.code, action=action, direction="out")
    payloads = frames.order_by("pk").values_list("payload", flat=True)
    return wait_for(lambda: len(payloads.all()) >= count and list(payloads.all()))


def staff_user(pile):
    return get_user_model().objects.create_superuser(username=f"ops-{pile.code}", password="x")


def ask_online(gateway, pile, intent, *, pile_class=None):
    """Run ``intent()`` (a thread) while ``pile`` is connected and booted."""

    async def run():
        async with serving(gateway.url, pile.code, pile.password, **pile_options) as sim:
            await sim.boot()
            return sim, await asyncio.to_thread(intent)

    pile_options = {"pile_class": pile_class} if pile_class else {}
    return asyncio.run(run())


@pytest.mark.parametrize(
    "ask, action, payload, outcome, message",
    [
        (
            lambda pile, gun: intents.connector_start(
                connector=gun, credential_value="T1", credential_kind=CredentialKind.MEMBER_TOKEN
            ),
            "RemoteStartTransaction",
            {"idTag": "T1", "connectorId": 1},
            Outcome.ACCEPTED,
            "Pile {code} accepted: start connector 1 for member token T1.",
        ),
        (
            lambda pile, gun: intents.pile_reset(pile=pile, hard=True),
            "Reset",
            {"type": "Hard"},
            Outcome.ACCEPTED,
            "Pile {code} accepted: hard reset.",
        ),
        (
            lambda pile, gun: intents.pile_reset(pile=pile, hard=False),
            "Reset",
            {"type": "Soft"},
            Outcome.ACCEPTED,
            "Pile {code} accepted: soft reset.",
        ),
        (
            lambda pile, gun: intents.connector_unlock(connector=gun),
            "UnlockConnector",
            {"connectorId": 1},
            Outcome.ACCEPTED,
            "Pile {code} accepted: unlock connector 1.",
        ),
        (
            lambda pile, gun: intents.pile_trigger(pile=pile, what=Trigger.HEARTBEAT),
            "TriggerMessage",
            {"requestedMessage": "Heartbeat"},
            Outcome.ACCEPTED,
            "Pile {code} accepted: send its heartbeat now.",
        ),
        (
            lambda pile, gun: intents.pile_trigger(
                pile=pile, what=Trigger.METER_VALUES, connector=gun
            ),
            "TriggerMessage",
            {"requestedMessage": "MeterValues", "connectorId": 1},
            Outcome.NOT_SUPPORTED,
            "Pile {code} cannot do this: send its meter values now.",
        ),
        (
            lambda pile, gun: intents.pile_configuration_set(
                pile=pile, key="HeartbeatInterval", value="120"
            ),
            "ChangeConfiguration",
            {"key": "HeartbeatInterval", "value": "120"},
            Outcome.ACCEPTED,
            "Pile {code} accepted: set HeartbeatInterval to “120”.",
        ),
        (
            lambda pile, gun: intents.pile_configuration_set(pile=pile, key="Volume", value="3"),
            "ChangeConfiguration",
            {"key": "Volume", "value": "3"},
            Outcome.NOT_SUPPORTED,
            "Pile {code} cannot do this: set Volume to “3”.",
        ),
    ],
)
def test_each_intent_sends_its_ocpp_call_and_says_the_outcome(
    gateway, ask, action, payload, outcome, message
):
    pile = world.pile()
    _sim, result = ask_online(gateway, pile, lambda: ask(pile, pile.connectors.get()))
    assert (result.outcome, result.message) == (outcome, message.format(code=pile.code))
    assert sent(pile, action) == [payload]


def test_configuration_read_returns_the_settings_and_the_unknown_keys(gateway):
    pile = world.pile()
    _sim, result = ask_online(
        gateway,
        pile,
        lambda: intents.pile_configuration_get(pile=pile, keys=["HeartbeatInterval", "Volume"]),
    )
    assert (result.outcome, result.answer.settings, result.answer.unknown_keys) == (
        Outcome.ACCEPTED,
        (Setting(key="HeartbeatInterval", value="60", read_only=False),),
        ("Volume",),
    )
    assert (
        result.message
        == f"Pile {pile.code} accepted: read configuration HeartbeatInterval, Volume."
    )
    assert sent(pile, "GetConfiguration") == [{"key": ["HeartbeatInterval", "Volume"]}]


def test_stop_a_session_and_a_pile_that_refuses(gateway):
    pile = world.pile(connectors=2)
    _first, second = pile.connectors.order_by("number")
    member = world.member(pile.station.operator)
    staff = staff_user(pile)
    # A session the pile does not know (its transaction is not running there).
    unknown = world.session(pile, connector=second)

    async def charge_and_stop():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            tx = (await sim.start_tx(1, member.token)).transaction_id
            session = await asyncio.to_thread(ChargingSession.objects.get, pk=tx)
            stopped = await asyncio.to_thread(
                intents.session_stop_remote, session=session, acting_user=staff
            )
            refused = await asyncio.to_thread(intents.session_stop_remote, session=unknown)
            return session, stopped, refused, await sim.remote_stops.get()

    session, stopped, refused, queued = asyncio.run(charge_and_stop())
    assert (stopped.outcome, stopped.message, queued) == (
        Outcome.ACCEPTED,
        f"Pile {pile.code} accepted: stop session {session.order_no}.",
        session.pk,
    )
    assert (refused.outcome, refused.message) == (
        Outcome.REJECTED,
        f"Pile {pile.code} refused: stop session {unknown.order_no}.",
    )
    assert sent(pile, "RemoteStopTransaction", count=2) == [
        {"transactionId": session.pk},
        {"transactionId": unknown.pk},
    ]
    entry = AuditLog.objects.get(action="pile_intent", object_id=str(pile.pk))
    assert (entry.actor, entry.before, entry.after) == (
        staff,
        {"intent": "session_stop_remote", "session": session.order_no},
        {"outcome": "accepted", "message": stopped.message},
    )


def test_an_ended_session_is_not_sent_to_the_pile(gateway):
    pile = world.pile()
    session = world.session(pile, state="stopped")
    result = intents.session_stop_remote(session=session, acting_user=staff_user(pile))
    assert (result.outcome, result.message) == (
        Outcome.INVALID,
        f"Not sent to pile {pile.code}: stop session {session.order_no}. "
        "The session has already ended.",
    )
    entry = AuditLog.objects.get(action="pile_intent", object_id=str(pile.pk))
    assert entry.after["outcome"] == "invalid"


def test_offline_pile_is_an_offline_outcome_and_is_audited(gateway):
    pile = world.pile()
    staff = staff_user(pile)
    result = intents.pile_reset(pile=pile, hard=False, acting_user=staff, timeout=2)
    assert (result.outcome, result.message) == (
        Outcome.OFFLINE,
        f"Pile {pile.code} is offline; not sent: soft reset.",
    )
    entry = AuditLog.objects.get(action="pile_intent", object_id=str(pile.pk))
    assert (entry.actor, entry.before, entry.after) == (
        staff,
        {"intent": "pile_reset", "hard": False},
        {"outcome": "offline", "message": result.message},
    )
    with translation.override("zh-hans"):
        chinese = intents.pile_reset(pile=pile, hard=True, timeout=2).message
    assert chinese == f"充电桩 {pile.code} 离线，未发送：硬重启。"


def test_a_pile_that_does_not_answer_is_a_timeout(gateway):
    pile = world.pile()
    gun = pile.connectors.get()

    async def unanswered():
        async with silent(gateway.url, pile.code, pile.password):
            return await asyncio.to_thread(intents.connector_unlock, connector=gun, timeout=1)

    result = asyncio.run(unanswered())
    assert (result.outcome, result.message) == (
        Outcome.TIMEOUT,
        f"Pile {pile.code} did not answer in time: unlock connector 1.",
    )


def test_firmware_update_and_diagnostics_request(gateway):
    pile = world.pile()
    staff = staff_user(pile)

    def both():
        firmware = intents.pile_firmware_update(
            pile=pile,
            location="https://fw.example.com/ac7/11540.bin",
            retrieve_at=dt.datetime(2026, 12, 1, 10, tzinfo=SHANGHAI),
            retries=3,
            retry_interval=120,
            acting_user=staff,
        )
        diagnostics = intents.pile_diagnostics_request(
            pile=pile,
            location="ftp://logs.example.com/upload/",
            since=dt.datetime(2026, 11, 28, tzinfo=dt.UTC),
            until=dt.datetime(2026, 11, 29, tzinfo=SHANGHAI),
        )
        return firmware, diagnostics

    sim, (firmware, diagnostics) = ask_online(gateway, pile, both, pile_class=MaintainedPile)
    assert (firmware.outcome, firmware.message) == (
        Outcome.ACCEPTED,
        f"Pile {pile.code} accepted: update firmware from https://fw.example.com/ac7/11540.bin.",
    )
    assert (diagnostics.outcome, diagnostics.answer.file_name) == (
        Outcome.ACCEPTED,
        f"diag-{pile.code}.zip",
    )
    assert sim.requests == [
        (
            "UpdateFirmware",
            {
                "location": "https://fw.example.com/ac7/11540.bin",
                "retrieve_date": "2026-12-01T02:00:00Z",
                "retries": 3,
                "retry_interval": 120,
            },
        ),
        (
            "GetDiagnostics",
            {
                "location": "ftp://logs.example.com/upload/",
                "start_time": "2026-11-28T00:00:00Z",
                "stop_time": "2026-11-28T16:00:00Z",
            },
        ),
    ]
    entry = AuditLog.objects.get(action="pile_intent", object_id=str(pile.pk))
    assert entry.before == {
        "intent": "pile_firmware_update",
        "location": "https://fw.example.com/ac7/11540.bin",
        "retrieve_at": "2026-12-01T10:00:00+08:00",
        "retries": 3,
        "retry_interval": 120,
    }


@pytest.mark.parametrize(
    "ask, message",
    [
        (
            lambda pile, gun: intents.pile_firmware_update(
                pile=pile,
                location="file:///etc/passwd",
                retrieve_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
            ),
            "Not sent to pile {code}: update firmware from file:///etc/passwd. The location "
            "must be an ftp, ftps, http or https URL with a host; got “file:///etc/passwd”.",
        ),
        (
            lambda pile, gun: intents.pile_diagnostics_request(
                pile=pile,
                location="ftp://x/",
                since=dt.datetime(2026, 11, 28),  # noqa: DTZ001
            ),
            "Not sent to pile {code}: upload diagnostics to ftp://x/. A time needs its time zone.",
        ),
        (
            lambda pile, gun: intents.connector_start(
                connector=gun, credential_value="X" * 21, credential_kind=CredentialKind.CARD
            ),
            "Not sent to pile {code}: start connector 1 for card " + "X" * 21 + ". The "
            "credential must be 1 to 20 characters for an OCPP 1.6 pile.",
        ),
        (
            lambda pile, gun: intents.connector_start(
                connector=gun, credential_value="LFV2A21K5D3041234", credential_kind="vin"
            ),
            "Pile {code} cannot do this: start connector 1 for VIN LFV2A21K5D3041234. An OCPP "
            "1.6 pile can be started remotely for a member token, a card or a partner order "
            "only.",
        ),
        (
            lambda pile, gun: intents.pile_trigger(
                pile=pile, what=Trigger.STATUS, connector=world.pile().connectors.get()
            ),
            "Not sent to pile {code}: send its connector state now. Connector 1 is not on "
            "this pile.",
        ),
    ],
)
def test_requests_the_pile_cannot_take_are_not_sent(gateway, ask, message):
    pile = world.pile()
    sim, result = ask_online(
        gateway, pile, lambda: ask(pile, pile.connectors.get()), pile_class=MaintainedPile
    )
    assert result.message == message.format(code=pile.code)
    assert sim.requests == []
    assert (
        not Frame.objects.filter(pile_code=pile.code, direction="out")
        .exclude(action__in=["BootNotification"])
        .exists()
    )


class ResetOnlyAdapter:
    """A protocol adapter that knows how to reset a pile and nothing else."""

    def pile_reset(self, *, pile, hard, timeout):
        raise AssertionError("not asked")


def test_a_protocol_without_the_intent_answers_not_supported(monkeypatch):
    pile = world.pile()
    pile.protocol = "ykc"
    monkeypatch.setitem(intents.ADAPTERS, "ykc", ResetOnlyAdapter())
    result = intents.pile_diagnostics_request(pile=pile, location="ftp://logs.example.com/")
    assert (result.outcome, result.message) == (
        Outcome.NOT_SUPPORTED,
        f"Pile {pile.code} cannot do this: upload diagnostics to ftp://logs.example.com/. "
        "Piles speaking ykc have no such command.",
    )


def test_the_console_page_starts_and_stops_through_the_gateway(gateway):
    pile = world.pile()
    gun = pile.connectors.get()
    member = world.member(pile.station.operator)
    browser = Client()
    browser.force_login(staff_user(pile))
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])

    def post(form):
        response = browser.post(url, form, follow=True)
        return [(m.level_tag, str(m)) for m in response.context["messages"]], response

    async def play():
        async with connected(gateway.url, pile.code, pile.password) as sim:
            await sim.boot()
            started, _page = await asyncio.to_thread(
                post,
                {
                    "send": "start",
                    "start-connector": gun.pk,
                    "start-credential_kind": "member_token",
                    "start-credential_value": member.token,
                },
            )
            connector, id_tag = await sim.remote_starts.get()
            tx = (await sim.start_tx(connector, id_tag)).transaction_id
            session = await asyncio.to_thread(ChargingSession.objects.get, pk=tx)
            stopped, _page = await asyncio.to_thread(
                post, {"send": "stop", "stop-session": session.pk}
            )
            read, page = await asyncio.to_thread(
                post, {"send": "config_get", "config_get-keys": "HeartbeatInterval, Volume"}
            )
            return (
                started,
                (connector, id_tag),
                session,
                stopped,
                await sim.remote_stops.get(),
                read,
                page,
            )

    started, asked, session, stopped, queued, read, page = asyncio.run(play())
    assert started == [
        (
            "success",
            f"Pile {pile.code} accepted: start connector 1 for member token {member.token}.",
        )
    ]
    assert asked == (1, member.token)
    assert (stopped, queued) == (
        [("success", f"Pile {pile.code} accepted: stop session {session.order_no}.")],
        session.pk,
    )
    assert read == [
        ("success", f"Pile {pile.code} accepted: read configuration HeartbeatInterval, Volume.")
    ]
    html = page.content.decode()
    assert "<td>HeartbeatInterval</td><td>60</td>" in html
    assert '<td>Volume</td><td colspan="2">unknown to the pile</td>' in html
