"""Reads of export jobs for staff."""

from __future__ import annotations

from django.db.models import QuerySet

from chargenet.scope import is_active_staff

from .models import ExportJob


def export_jobs_visible_to(staff) -> QuerySet[ExportJob]:
    """A staff member's own exports: an export holds the rows its author was allowed to
    see, so nobody else (not a superuser either) downloads it."""
    if not is_active_staff(staff):
        return ExportJob.objects.none()
    return ExportJob.objects.filter(staff_id=staff.pk)
