"""Template filters that show stored (UTC) times as local ones."""

from __future__ import annotations

import json

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime

register = template.Library()


def _local(value, zone):
    if isinstance(value, dict):
        return {key: _local(item, zone) for key, item in value.items()}
    if isinstance(value, list):
        return [_local(item, zone) for item in value]
    if isinstance(value, str) and "T" in value:
        try:
            at = parse_datetime(value)
        except ValueError:
            at = None
        if at is not None and timezone.is_aware(at):
            return timezone.localtime(at, zone).strftime("%Y-%m-%d %H:%M:%S")
    return value


@register.filter
def local_json(value, zone=None) -> str:
    """Audit-style JSON (before/after) for people: ISO timestamps in it become local times
    (in ``zone``, e.g. the station's, else the default zone); Chinese stays readable."""
    if value is None or value == "":
        return ""
    return json.dumps(_local(value, zone), ensure_ascii=False, indent=1)
