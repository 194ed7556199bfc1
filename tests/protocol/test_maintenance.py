"""UpdateFirmware and GetDiagnostics from the platform, and the pile's progress reports
(FirmwareStatusNotification / DiagnosticsStatusNotification), through a real gateway."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth import get_user_model
from django.utils import translation
from ocpp.v16 import call

from chargenet.models import AuditLog
from protocol.services import CommandInvalid, pile_command_by_staff, send_command
from stations.models import Pile

from . import world
from .clients import MaintainedPile, serving
from .conftest import wait_for

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]


def test_update_firmware_reaches_the_pile_and_its_progress_is_recorded(gateway):
    pile = world.pile()
    staff = get_user_model().objects.create_superuser(username=f"ops-{pile.code}", password="x")
    payload = {
        "location": "https://fw.example.com/ac7/11540.bin",
        "retrieveDate": "2026-12-01T02:00:00Z",
        "retries": 3,
        "retryInterval": 120,
    }

    async def update():
        async with serving(gateway.url, pile.code, pile.password, pile_class=MaintainedPile) as sim:
            await sim.boot()
            answer = await asyncio.to_thread(
                pile_command_by_staff,
                pile=pile,
                action="UpdateFirmware",
                payload=payload,
                timeout=5,
                actor=staff,
            )
            for status in ("Downloading", "Downloaded", "Installing"):
                await sim.call(call.FirmwareStatusNotification(status=status))
            return answer, sim.requests

    answer, requests = asyncio.run(update())
    assert answer == {}
    assert requests == [
        (
            "UpdateFirmware",
            {
                "location": "https://fw.example.com/ac7/11540.bin",
                "retrieve_date": "2026-12-01T02:00:00Z",
                "retries": 3,
                "retry_interval": 120,
            },
        )
    ]
    pile.refresh_from_db()
    assert pile.firmware_status == "Installing"
    assert pile.firmware_status_at is not None
    entry = AuditLog.objects.get(action="pile_command", object_id=str(pile.pk))
    assert (entry.before, entry.after) == ({"action": "UpdateFirmware", "payload": payload}, {})


def test_get_diagnostics_returns_the_file_name_and_the_upload_is_recorded(gateway):
    pile = world.pile()
    payload = {
        "location": "ftp://logs.example.com/upload/",
        "startTime": "2026-11-28T00:00:00Z",
        "stopTime": "2026-11-29T00:00:00+08:00",
        "retries": 1,
    }

    async def diagnostics():
        async with serving(gateway.url, pile.code, pile.password, pile_class=MaintainedPile) as sim:
            await sim.boot()
            answer = await asyncio.to_thread(
                send_command, pile=pile, action="GetDiagnostics", payload=payload, timeout=5
            )
            await sim.call(call.DiagnosticsStatusNotification(status="Uploading"))
            await sim.call(call.DiagnosticsStatusNotification(status="Uploaded"))
            return answer, sim.requests

    answer, requests = asyncio.run(diagnostics())
    assert answer == {"fileName": f"diag-{pile.code}.zip"}
    assert requests == [
        (
            "GetDiagnostics",
            {
                "location": "ftp://logs.example.com/upload/",
                "start_time": "2026-11-28T00:00:00Z",
                "stop_time": "2026-11-29T00:00:00+08:00",
                "retries": 1,
            },
        )
    ]
    wait_for(lambda: Pile.objects.filter(pk=pile.pk, diagnostics_status="Uploaded").exists())
    assert Pile.objects.get(pk=pile.pk).firmware_status == ""


FW = {"location": "https://fw.example.com/f.bin", "retrieveDate": "2026-12-01T02:00:00Z"}


@pytest.mark.parametrize(
    "action, payload, message",
    [
        (
            "UpdateFirmware",
            {**FW, "location": "file:///etc/passwd"},
            "The location must be an ftp, ftps, http or https URL with a host; "
            "got “file:///etc/passwd”.",
        ),
        (
            "GetDiagnostics",
            {"location": "https:///no-host"},
            "The location must be an ftp, ftps, http or https URL with a host; "
            "got “https:///no-host”.",
        ),
        (
            "UpdateFirmware",
            {**FW, "retrieveDate": "2026-12-01 02:00"},
            "retrieveDate must be a date and time with a time zone, e.g. 2026-12-01T02:00:00Z; "
            "got “2026-12-01 02:00”.",
        ),
        (
            "UpdateFirmware",
            {**FW, "retryInterval": -5},
            "retryInterval cannot be negative; got -5.",
        ),
        (
            "GetDiagnostics",
            {
                "location": "ftps://logs.example.com/",
                "startTime": "2026-11-29T00:00:00Z",
                "stopTime": "2026-11-28T00:00:00Z",
            },
            "The diagnostics start time must be before its stop time.",
        ),
    ],
)
def test_invalid_maintenance_commands_are_refused_before_reaching_the_pile(
    gateway, action, payload, message
):
    pile = world.pile()

    async def refused():
        async with serving(gateway.url, pile.code, pile.password, pile_class=MaintainedPile) as sim:
            await sim.boot()
            with pytest.raises(CommandInvalid) as invalid:
                await asyncio.to_thread(
                    send_command, pile=pile, action=action, payload=payload, timeout=5
                )
            return str(invalid.value), sim.requests

    assert asyncio.run(refused()) == (message, [])


def test_maintenance_errors_read_in_chinese():
    with translation.override("zh-hans"), pytest.raises(CommandInvalid) as invalid:
        send_command(pile="44200000000000000001", action="UpdateFirmware", payload={
            **FW, "location": "file:///fw.bin"
        })  # fmt: skip
    assert str(invalid.value) == (
        "地址必须是带主机名的 ftp、ftps、http 或 https URL；收到的是“file:///fw.bin”。"
    )
