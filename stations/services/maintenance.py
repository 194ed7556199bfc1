"""What a pile reports back about remote maintenance: the progress of a firmware update
(FirmwareStatusNotification) and of a diagnostics upload (DiagnosticsStatusNotification).

The pile keeps the latest of each, with when it was reported, for the back office; the
full sequence of reports stays in the frame journal. Recording the same report twice
changes nothing but its time, so a repeated message is harmless."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from stations.models import DiagnosticsStatus, FirmwareStatus, Pile


def pile_firmware_status_record(
    *, pile_id: int, status: FirmwareStatus, now: dt.datetime | None = None
) -> None:
    Pile.objects.filter(pk=pile_id).update(
        firmware_status=FirmwareStatus(status), firmware_status_at=now or timezone.now()
    )


def pile_diagnostics_status_record(
    *, pile_id: int, status: DiagnosticsStatus, now: dt.datetime | None = None
) -> None:
    Pile.objects.filter(pk=pile_id).update(
        diagnostics_status=DiagnosticsStatus(status), diagnostics_status_at=now or timezone.now()
    )
