"""Write audit rows, and hide/restore records instead of deleting them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone

from chargenet.models import AuditLog


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, models.Model):
        return value.pk
    return value


def snapshot(obj: models.Model, fields: list[str] | None = None) -> dict:
    """The concrete field values of ``obj`` as JSON-ready data (FKs as ids)."""
    names = fields or [f.attname for f in obj._meta.concrete_fields]
    return {name: _jsonable(getattr(obj, name)) for name in names}


def _operator_id(obj: models.Model | None) -> int | None:
    if obj is None:
        return None
    if hasattr(obj, "operator_id"):
        return obj.operator_id
    # Network records reach their operator through the station (pile, connector, ...).
    for path in ("station", "pile__station"):
        holder = obj
        for step in path.split("__"):
            holder = getattr(holder, step, None)
        if holder is not None and hasattr(holder, "operator_id"):
            return holder.operator_id
    return getattr(obj, "pk", None) if obj._meta.label == "orgs.Operator" else None


def audit_record(
    *,
    actor,
    action: str,
    obj: models.Model | None = None,
    before: Any = None,
    after: Any = None,
    reason: str = "",
    operator_id: int | None = None,
) -> AuditLog:
    return AuditLog.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        operator_id=operator_id or _operator_id(obj),
        action=action,
        content_type=ContentType.objects.get_for_model(obj) if obj is not None else None,
        object_id=str(obj.pk) if obj is not None else "",
        object_repr=str(obj)[:200] if obj is not None else "",
        before=_jsonable(before),
        after=_jsonable(after),
        reason=reason,
    )


@transaction.atomic
def hide(*, obj, actor, reason: str = "", extra_before: dict | None = None) -> None:
    """Hide a Hideable record (audited, reversible with `restore`)."""
    if obj.hidden_at is not None:
        return
    before = {"hidden_at": None, **(extra_before or {})}
    obj.hidden_at = timezone.now()
    obj.hidden_by = actor if getattr(actor, "pk", None) else None
    obj.hidden_reason = reason[:200]
    obj.save(update_fields=["hidden_at", "hidden_by", "hidden_reason"])
    audit_record(
        actor=actor,
        action="hide",
        obj=obj,
        before=before,
        after={"hidden_at": obj.hidden_at},
        reason=reason,
    )


@transaction.atomic
def restore(*, obj, actor, reason: str = "") -> None:
    if obj.hidden_at is None:
        return
    before = {"hidden_at": obj.hidden_at}
    obj.hidden_at = None
    obj.hidden_by = None
    obj.hidden_reason = ""
    obj.save(update_fields=["hidden_at", "hidden_by", "hidden_reason"])
    audit_record(
        actor=actor,
        action="restore",
        obj=obj,
        before=before,
        after={"hidden_at": None},
        reason=reason,
    )
