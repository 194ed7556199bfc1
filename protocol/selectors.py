"""Reads of the frame journal, and its visibility rule for staff."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from chargenet.scope import is_active_staff
from stations.selectors import piles_visible_to

from .models import Frame


def frames_visible_to(staff) -> QuerySet[Frame]:
    """Frames of the piles ``staff`` may see (`piles_visible_to`: the operator's piles, a
    sub-operator's stations' piles). Frames of unknown piles (refused connections) have no
    operator: only a superuser sees them."""
    if is_active_staff(staff) and staff.is_superuser:
        return Frame.objects.all()
    return Frame.objects.filter(pile_code__in=piles_visible_to(staff).values("code"))


def frames_of_session(*, session, begin: dt.datetime, end: dt.datetime, limit: int) -> list[Frame]:
    """The frames of a charging session: those carrying its order number, plus its pile's
    frames between ``begin`` and ``end`` (status, heartbeats, boots that did not carry it)."""
    return list(
        Frame.objects.filter(
            Q(order_no=session.order_no) | Q(pile_code=session.pile.code, at__range=(begin, end))
        ).order_by("at", "id")[:limit]
    )
