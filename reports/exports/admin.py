"""Exports in the back office: `export_response` (what a report's or list's "export"
button returns) and the "My exports" page (state, progress, download).

`export_response(request, tabular, fmt="xlsx"|"csv")` reads up to
``EXPORTS_INLINE_MAX_ROWS`` rows: when that is all of them the file downloads at once;
otherwise it queues an `ExportJob` (the tabular must be registered with
`registry.tabular_register`, see there) and sends the staff member to "My exports", where
the progress moves and a download link appears when the file is ready.
"""

from __future__ import annotations

import io
from itertools import islice

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.http import FileResponse, Http404, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from chargenet.admin import ReadOnlyAdminMixin

from .models import ExportJob
from .registry import tabular_is_registered
from .selectors import export_jobs_visible_to
from .services import export_job_create, export_path, export_record, export_write
from .tabular import Tabular

CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}
# Parameters of the export itself, not filters of the rows.
EXPORT_PARAMETERS = {"fmt", "export", "_changelist_filters"}


def _filename(tabular: Tabular, fmt: str) -> str:
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return f"{tabular.title}-{stamp}.{fmt}"


def filter_values(request, tabular: Tabular) -> dict:
    """What a worker needs to build ``tabular`` again: its own ``filter_values`` when it
    has them, else the request's query string (without the export's own parameters)."""
    values = getattr(tabular, "filter_values", None)
    if values is not None:
        return dict(values)
    return {k: v for k, v in request.GET.lists() if k not in EXPORT_PARAMETERS}


def export_response(request, tabular: Tabular, *, fmt: str = "xlsx"):
    """The file at once when small, else a queued job and a redirect to "My exports"."""
    if fmt not in CONTENT_TYPES:
        raise Http404(_("Unknown export format."))
    rows = iter(tabular.rows())
    limit = settings.EXPORTS_INLINE_MAX_ROWS
    head = list(islice(rows, limit + 1))
    filters = filter_values(request, tabular)
    if len(head) <= limit:
        out = io.BytesIO()
        written = export_write(tabular, out, fmt=fmt, rows=head)
        export_record(staff=request.user, tabular=tabular, fmt=fmt, rows=written, filters=filters)
        out.seek(0)
        return FileResponse(
            out,
            as_attachment=True,
            filename=_filename(tabular, fmt),
            content_type=CONTENT_TYPES[fmt],
        )
    close = getattr(rows, "close", None)
    if close is not None:
        close()  # a generator over a server-side cursor lets it go now
    del head
    if not tabular_is_registered(tabular.slug):
        raise ImproperlyConfigured(
            f"{tabular.slug!r} has more than {limit} rows and is not registered "
            "(reports.exports.registry.tabular_register): a worker cannot build it."
        )
    job = export_job_create(staff=request.user, tabular=tabular, fmt=fmt, filters=filters)
    messages.success(
        request,
        _(
            "“%(title)s” has more than %(limit)s rows: it is being written in the "
            "background. Download it here when it is ready."
        )
        % {"title": job.title, "limit": limit},
    )
    return HttpResponseRedirect(reverse("admin:exports_exportjob_changelist"))


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every staff member sees their own exports (`export_jobs_visible_to`), nobody else's."""

    list_display = ("created_at", "title", "fmt", "state_shown", "progress", "download")
    list_filter = ("state", "fmt")
    readonly_fields = (
        "title",
        "fmt",
        "state_shown",
        "progress",
        "download",
        "filters_used",
        "created_at",
        "started_at",
        "finished_at",
        "size_bytes",
        "error",
    )
    fields = readonly_fields
    list_per_page = 50

    class Media:
        js = ("exports/progress.js",)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def get_queryset(self, request):
        return export_jobs_visible_to(request.user)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(_("Not found."))
        return obj

    @admin.display(description=_("state"), ordering="state")
    def state_shown(self, job: ExportJob) -> str:
        return format_html(
            '<span data-export-job="{}" data-export-state="{}" data-progress-url="{}">{}</span>',
            job.pk,
            job.state,
            reverse("admin:exports_exportjob_progress"),
            job.get_state_display(),
        )

    @admin.display(description=_("progress"))
    def progress(self, job: ExportJob) -> str:
        return format_html('<span data-export-progress="{}">{}</span>', job.pk, progress_text(job))

    @admin.display(description=_("download"))
    def download(self, job: ExportJob) -> str:
        if job.state != ExportJob.State.DONE:
            return "—"
        url = reverse("admin:exports_exportjob_download", args=[job.pk])
        return format_html('<a href="{}">{}</a>', url, _("download"))

    @admin.display(description=_("filters used"))
    def filters_used(self, job: ExportJob) -> str:
        return format_html(
            "<ul>{}</ul>",
            format_html("".join(["<li>{}: {}</li>"] * len(job.filters_shown)), *_flat(job)),
        )

    def get_urls(self):
        return [
            path(
                "<int:job_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="exports_exportjob_download",
            ),
            path(
                "progress.json",
                self.admin_site.admin_view(self.progress_view),
                name="exports_exportjob_progress",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request, job_id: int):
        """The file, to its author only ("not yours" is a 404 like "no such export")."""
        job = export_jobs_visible_to(request.user).filter(pk=job_id).first()
        if job is None or job.state != ExportJob.State.DONE or not export_path(job).is_file():
            raise Http404(_("Not found."))
        return FileResponse(
            open(export_path(job), "rb"),  # FileResponse closes it
            as_attachment=True,
            filename=f"{job.title}-{timezone.localtime(job.created_at):%Y%m%d-%H%M}.{job.fmt}",
            content_type=CONTENT_TYPES[job.fmt],
        )

    def progress_view(self, request):
        """State and progress of the asked jobs of the staff member (the page's script)."""
        ids = [int(i) for i in request.GET.getlist("id") if i.isdigit()][:100]
        jobs = export_jobs_visible_to(request.user).filter(pk__in=ids)
        return JsonResponse(
            {
                "jobs": [
                    {
                        "id": job.pk,
                        "state": job.state,
                        "state_label": str(job.get_state_display()),
                        "progress": progress_text(job),
                    }
                    for job in jobs
                ]
            }
        )


def _flat(job: ExportJob) -> list[str]:
    return [part for pair in job.filters_shown for part in pair]


def progress_text(job: ExportJob) -> str:
    if job.state == ExportJob.State.FAILED:
        return str(_("failed: %(error)s") % {"error": job.error[:200]})
    if job.rows_total:
        percent = min(100, job.rows_done * 100 // job.rows_total)
        return str(
            _("%(done)s of %(total)s rows (%(percent)s%%)")
            % {"done": job.rows_done, "total": job.rows_total, "percent": percent}
        )
    return str(_("%(done)s rows") % {"done": job.rows_done})
