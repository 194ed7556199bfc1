"""Export jobs: queue one, run one (the worker), resume the ones a dead worker left, prune
old files. Staff read jobs through `selectors.export_jobs_visible_to` (their own)."""

from __future__ import annotations

import datetime as dt
import io
import os
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation

from chargenet.audit import audit_record

from .csv import csv_write
from .models import ExportJob
from .registry import tabular_build
from .tabular import Tabular
from .xlsx import xlsx_write


def export_path(job: ExportJob) -> Path:
    return Path(settings.EXPORTS_ROOT) / job.file_name


def export_write(tabular: Tabular, out, *, fmt: str, rows=None, progress=None) -> int:
    """Write ``tabular`` as ``fmt`` to the binary file ``out``; returns the rows written."""
    if fmt == ExportJob.Format.CSV:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        try:
            return csv_write(tabular, text, rows=rows, progress=progress)
        finally:
            text.detach()  # ``out`` stays open for the caller
    return xlsx_write(tabular, out, rows=rows, progress=progress)


def export_record(*, staff, tabular: Tabular, fmt: str, rows: int, filters: dict) -> None:
    """An export downloaded at once leaves the same trace as a queued one."""
    audit_record(
        actor=staff,
        action="export",
        operator_id=getattr(staff, "operator_id", None),
        after={"report": tabular.slug, "format": fmt, "rows": rows, "filters": filters},
    )


@transaction.atomic
def export_job_create(*, staff, tabular: Tabular, fmt: str, filters: dict) -> ExportJob:
    """Queue the export of ``tabular`` (registered under its slug) for ``staff``; the
    worker builds it again from the slug, ``staff`` and ``filters``, in the staff
    member's language of the moment (headers, labels)."""
    from reports.tasks import export_job_run_task  # the task module imports this one

    count = getattr(tabular, "count", None)
    job = ExportJob.objects.create(
        staff=staff,
        slug=tabular.slug,
        title=str(tabular.title)[:200],
        fmt=fmt,
        filters=filters,
        filters_shown=[[str(label), str(value)] for label, value in tabular.filters_used()],
        rows_total=count() if callable(count) else None,
        language=translation.get_language() or "",
    )
    audit_record(
        actor=staff,
        action="export",
        obj=job,
        operator_id=staff.operator_id,
        after={"report": job.slug, "format": fmt, "filters": filters},
    )
    transaction.on_commit(lambda: export_job_run_task.delay(job.pk))
    return job


def export_job_run(*, job_id: int) -> ExportJob:
    """Write the file of job ``job_id`` (the worker). Idempotent: a job done already is
    left as it is; a job run again (its worker died) starts over. The file is written
    under a temporary name and renamed when complete, so a download never sees half a
    file; progress is saved every few thousand rows, outside any transaction."""
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().select_related("staff").get(pk=job_id)
        if job.state == ExportJob.State.DONE:
            return job
        now = timezone.now()
        job.state, job.started_at, job.heartbeat_at = ExportJob.State.RUNNING, now, now
        job.rows_done, job.error = 0, ""
        job.save(update_fields=["state", "started_at", "heartbeat_at", "rows_done", "error"])

    root = Path(settings.EXPORTS_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    name = f"{job.pk}-{uuid.uuid4().hex}.{job.fmt}"
    partial = root / f"{name}.part"

    def progress(rows: int) -> None:
        ExportJob.objects.filter(pk=job.pk).update(rows_done=rows, heartbeat_at=timezone.now())

    try:
        with translation.override(job.language or settings.LANGUAGE_CODE):
            tabular = tabular_build(job.slug, staff=job.staff, filters=job.filters)
            with open(partial, "wb") as out:
                written = export_write(tabular, out, fmt=job.fmt, progress=progress)
        os.replace(partial, root / name)
    except BaseException as error:  # a time limit too: the job says it failed
        partial.unlink(missing_ok=True)
        ExportJob.objects.filter(pk=job.pk).update(
            state=ExportJob.State.FAILED, error=repr(error)[:2000], finished_at=timezone.now()
        )
        raise
    ExportJob.objects.filter(pk=job.pk).update(
        state=ExportJob.State.DONE,
        rows_done=written,
        rows_total=written,
        file_name=name,
        size_bytes=(root / name).stat().st_size,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    job.refresh_from_db()
    return job


def export_jobs_resume_stale(*, now: dt.datetime | None = None) -> list[int]:
    """Queue again the jobs whose worker died (running, no progress for
    ``EXPORTS_STALE_AFTER_S``) or whose task was lost (queued that long)."""
    from reports.tasks import export_job_run_task  # the task module imports this one

    now = now or timezone.now()
    before = now - dt.timedelta(seconds=settings.EXPORTS_STALE_AFTER_S)
    stale = list(
        ExportJob.objects.filter(
            state__in=[ExportJob.State.RUNNING, ExportJob.State.QUEUED], created_at__lt=before
        )
        .exclude(heartbeat_at__gte=before)
        .values_list("pk", flat=True)
    )
    if stale:
        ExportJob.objects.filter(pk__in=stale).update(
            state=ExportJob.State.QUEUED, heartbeat_at=now
        )
        for job_id in stale:
            export_job_run_task.delay(job_id)
    return stale


def export_jobs_prune(*, before: dt.datetime) -> int:
    """Delete the jobs (and files) finished before ``before``; returns how many."""
    old = list(ExportJob.objects.filter(finished_at__lt=before))
    for job in old:
        if job.file_name:
            export_path(job).unlink(missing_ok=True)
    ExportJob.objects.filter(pk__in=[job.pk for job in old]).delete()
    return len(old)
