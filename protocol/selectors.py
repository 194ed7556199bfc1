"""Reads of the protocol journal for the back office."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q

from .models import Frame


def frames_of_session(*, session, begin: dt.datetime, end: dt.datetime, limit: int) -> list[Frame]:
    """The frames of a charging session: those carrying its order number, plus its pile's
    frames between ``begin`` and ``end`` (status, heartbeats, boots that did not carry it)."""
    return list(
        Frame.objects.filter(
            Q(order_no=session.order_no) | Q(pile_code=session.pile.code, at__range=(begin, end))
        ).order_by("at", "id")[:limit]
    )
