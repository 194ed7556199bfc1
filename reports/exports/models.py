"""Export jobs: a large export a Celery worker writes while the staff member waits."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ExportJob(models.Model):
    """One export a staff member asked for: what (a registered tabular ``slug`` and the
    ``filters`` to build it again), in which format, how far along, and its file."""

    class State(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        DONE = "done", pgettext_lazy("export state", "done")
        FAILED = "failed", pgettext_lazy("export state", "failed")

    class Format(models.TextChoices):
        XLSX = "xlsx", _("Excel (.xlsx)")
        CSV = "csv", _("CSV")

    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("asked by"),
        on_delete=models.CASCADE,
        related_name="+",
    )
    slug = models.CharField(_("report"), max_length=64)
    title = models.CharField(_("title"), max_length=200)
    fmt = models.CharField(_("format"), max_length=8, choices=Format.choices)
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    filters_shown = models.JSONField(_("filters used"), default=list, blank=True)
    # The staff member's language when asking: the worker writes headers in it.
    language = models.CharField(_("language"), max_length=16, blank=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.QUEUED)
    rows_done = models.PositiveIntegerField(_("rows written"), default=0)
    rows_total = models.PositiveIntegerField(_("rows in all"), null=True, blank=True)
    # Relative to settings.EXPORTS_ROOT; never served from a public URL.
    file_name = models.CharField(_("file"), max_length=200, blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("asked at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    # Moved on at every progress step: a running job silent for long lost its worker.
    heartbeat_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("export")
        verbose_name_plural = _("my exports")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["staff", "-created_at"]),
            models.Index(fields=["state", "heartbeat_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(fmt__in=["xlsx", "csv"]), name="export_job_format_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.get_fmt_display()})"
