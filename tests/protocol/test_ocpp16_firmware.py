"""Issue 15, firmware and diagnostics over real sockets: status notifications kept as a
history per pile, and a firmware campaign over a filtered set of piles with its progress
(piles accepting, offline, dropping mid-command, reporting success and failure)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from ocpp.v16 import call

from chargenet.celery import app as celery_app
from chargenet.models import AuditLog
from protocol.tasks import firmware_campaign_send_task, firmware_campaign_target_send_task
from stations.models import FirmwareCampaignPile, MaintenanceReport, Pile
from stations.services.campaigns import (
    CampaignCancelled,
    CampaignInvalid,
    firmware_campaign_cancel,
    firmware_campaign_create,
    firmware_campaign_progress,
)

from . import world
from .clients import serving
from .conftest import wait_for
from .ocpp16_pile import FeaturePile

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]

FIRMWARE = "https://fw.example.com/sim/11540.bin"


@pytest.fixture
def eager_here():
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager


def _reports(pile, kind):
    return list(
        MaintenanceReport.objects.filter(pile=pile, kind=kind).values_list("status", flat=True)
    )


def test_a_firmware_campaign_over_a_filtered_set_of_piles_with_its_progress(gateway, eager_here):
    station = world.station()
    installs, fails, away, drops = (world.pile(station, model="SIM-DC-60") for _ in range(4))
    other_model = world.pile(station, model="OLD-AC-7")
    staff = get_user_model().objects.create_superuser(username=f"f-{station.code}", password="x")
    campaign = firmware_campaign_create(
        operator_id=station.operator_id,
        name="11540 for SIM-DC-60",
        piles=Pile.objects.filter(station=station, model="SIM-DC-60"),
        location=FIRMWARE,
        retrieve_at=timezone.now() + dt.timedelta(hours=2),
        retries=3,
        acting_user=staff,
    )

    async def script():
        async with (
            serving(gateway.url, installs.code, installs.password, pile_class=FeaturePile) as a,
            serving(gateway.url, fails.code, fails.password, pile_class=FeaturePile) as b,
            serving(gateway.url, drops.code, drops.password, pile_class=FeaturePile) as d,
        ):
            for sim in (a, b, d):
                await sim.boot()
            d.drop_on = "UpdateFirmware"
            await asyncio.to_thread(firmware_campaign_send_task, campaign.pk)
            for status in ("Downloading", "Downloaded", "Installing", "Installed"):
                await a.call(call.FirmwareStatusNotification(status=status))
            for status in ("Downloading", "DownloadFailed"):
                await b.call(call.FirmwareStatusNotification(status=status))
            return [r for r in a.requests if r[0] == "UpdateFirmware"]

    asked = asyncio.run(script())
    assert asked == [("UpdateFirmware", {"location": FIRMWARE, "retries": 3,
                      "retrieve_date": f"{campaign.retrieve_at:%Y-%m-%dT%H:%M:%SZ}"})]  # fmt: skip
    progress = wait_for(
        lambda: (p := firmware_campaign_progress(campaign=campaign)).by_state.get("Installed") and p
    )
    assert (progress.total, progress.by_state, progress.installed) == (
        4,
        {"Installed": 1, "DownloadFailed": 1, "offline": 2},
        1,
    )
    assert _reports(installs, "firmware") == ["Installed", "Installing", "Downloaded",
                                              "Downloading"]  # fmt: skip
    assert not campaign.targets.filter(pile=other_model).exists()
    assert AuditLog.objects.get(action="firmware_campaign_create").after == {
        "name": "11540 for SIM-DC-60",
        "location": FIRMWARE,
        "piles": 4,
    }

    # The next run sends only to the piles that were not reached.
    async def later():
        async with serving(gateway.url, away.code, away.password, pile_class=FeaturePile) as c:
            await c.boot()
            return await asyncio.to_thread(firmware_campaign_send_task, campaign.pk)

    assert asyncio.run(later()) == 2
    assert firmware_campaign_progress(campaign=campaign).by_state == {
        "Installed": 1, "DownloadFailed": 1, "waiting": 1, "offline": 1,
    }  # fmt: skip


def test_a_cancelled_campaign_sends_no_pile_it_had_not_reached(gateway, eager_here):
    station = world.station()
    reached, away, queued = (world.pile(station, model="SIM-DC-60") for _ in range(3))
    staff = get_user_model().objects.create_superuser(username=f"c-{station.code}", password="x")
    campaign = firmware_campaign_create(
        operator_id=station.operator_id,
        name="to cancel",
        piles=Pile.objects.filter(pk__in=[reached.pk, away.pk]),
        location=FIRMWARE,
        retrieve_at=timezone.now(),
    )
    target_queued = FirmwareCampaignPile.objects.create(campaign=campaign, pile=queued)

    async def first():
        async with serving(
            gateway.url, reached.code, reached.password, pile_class=FeaturePile
        ) as a:
            await a.boot()
            await asyncio.to_thread(firmware_campaign_send_task, campaign.pk)
            await a.call(call.FirmwareStatusNotification(status="Downloading"))

    asyncio.run(first())  # "away" was offline; "queued" too
    unsent = firmware_campaign_cancel(campaign=campaign, acting_user=staff)
    with pytest.raises(CampaignCancelled):
        firmware_campaign_cancel(campaign=campaign, acting_user=staff)

    # The piles come back: neither a new run nor a send queued before the cancel sends them.
    async def later():
        async with (
            serving(gateway.url, away.code, away.password, pile_class=FeaturePile) as b,
            serving(gateway.url, queued.code, queued.password, pile_class=FeaturePile) as c,
        ):
            for sim in (b, c):
                await sim.boot()
            sent = await asyncio.to_thread(firmware_campaign_send_task, campaign.pk)
            late = await asyncio.to_thread(firmware_campaign_target_send_task, target_queued.pk)
            return sent, late, b.requests + c.requests

    sent, late, asked = asyncio.run(later())
    assert (unsent, sent, late, asked) == (2, 0, "cancelled", [])
    progress = wait_for(
        lambda: (
            (p := firmware_campaign_progress(campaign=campaign)).by_state.get("Downloading") and p
        )
    )
    assert progress.by_state == {"Downloading": 1, "cancelled": 2}
    campaign.refresh_from_db()
    assert campaign.cancelled_by == staff
    entry = AuditLog.objects.get(action="firmware_campaign_cancel", object_id=str(campaign.pk))
    assert (entry.actor, entry.after) == (staff, {"not_sent": 2})


def test_a_campaign_matching_no_pile_is_refused():
    station = world.station()
    with pytest.raises(CampaignInvalid):
        firmware_campaign_create(
            operator_id=station.operator_id,
            name="none",
            piles=Pile.objects.filter(station=station),
            location=FIRMWARE,
            retrieve_at=timezone.now(),
        )


def test_diagnostics_status_history(gateway):
    pile = world.pile()

    async def script():
        async with serving(gateway.url, pile.code, pile.password, pile_class=FeaturePile) as sim:
            for status in ("Uploading", "UploadFailed", "Uploading", "Uploaded"):
                await sim.call(call.DiagnosticsStatusNotification(status=status))

    asyncio.run(script())
    assert _reports(pile, "diagnostics") == ["Uploaded", "Uploading", "UploadFailed", "Uploading"]
    pile.refresh_from_db()
    assert pile.diagnostics_status == "Uploaded"
