"""Reads of sessions and bills, and the one visibility rule for them."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from stations.selectors import stations_visible_to

from .models import ChargingSession


def sessions_visible_to(staff) -> QuerySet[ChargingSession]:
    """Sessions ``staff`` may see (DOMAIN.md, attribution): operator-wide staff see the
    operator's; sub-operator staff see the sessions attributed to their sub-operator plus
    every session at a station they are authorised on — live and history alike."""
    if staff is None or not getattr(staff, "is_authenticated", False) or not staff.is_active:
        return ChargingSession.objects.none()
    if staff.is_superuser:
        return ChargingSession.objects.all()
    if staff.operator_id is None:
        return ChargingSession.objects.none()
    sessions = ChargingSession.objects.filter(operator_id=staff.operator_id)
    if staff.sub_operator_id is not None:
        sessions = sessions.filter(
            Q(sub_operator_id=staff.sub_operator_id)
            | Q(station__in=stations_visible_to(staff).values("pk"))
        )
    return sessions
