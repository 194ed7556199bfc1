"""What a pile reports back about remote maintenance: the progress of a firmware update
(FirmwareStatusNotification) and of a diagnostics upload (DiagnosticsStatusNotification).

The pile keeps the latest of each, with when it was reported, for the back office, and
each report is kept in order (`MaintenanceReport`: the history a firmware campaign's
progress is read from). A repeated report is one more row in the history, harmless."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from stations.models import DiagnosticsStatus, FirmwareStatus, MaintenanceReport, Pile


@transaction.atomic
def pile_firmware_status_record(
    *, pile_id: int, status: FirmwareStatus, now: dt.datetime | None = None
) -> None:
    now = now or timezone.now()
    status = FirmwareStatus(status)
    Pile.objects.filter(pk=pile_id).update(firmware_status=status, firmware_status_at=now)
    MaintenanceReport.objects.create(
        pile_id=pile_id, kind=MaintenanceReport.Kind.FIRMWARE, status=status, at=now
    )


@transaction.atomic
def pile_diagnostics_status_record(
    *, pile_id: int, status: DiagnosticsStatus, now: dt.datetime | None = None
) -> None:
    now = now or timezone.now()
    status = DiagnosticsStatus(status)
    Pile.objects.filter(pk=pile_id).update(diagnostics_status=status, diagnostics_status_at=now)
    MaintenanceReport.objects.create(
        pile_id=pile_id, kind=MaintenanceReport.Kind.DIAGNOSTICS, status=status, at=now
    )
