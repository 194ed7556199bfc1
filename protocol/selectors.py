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
    match = Q(order_no=session.order_no) | Q(pile_code=session.pile.code, at__range=(begin, end))
    return list(Frame.objects.filter(frames_narrowed(match)).order_by("at", "id")[:limit])


# More than this and the narrowing is given up for the plain condition (a pile's
# heartbeats over months, not one order's frames).
NARROW_MOST = 50_000


def frames_narrowed(match: Q) -> Q:
    """``match`` (a condition its own indexes answer: an order number, a pile over a time
    span) restated as the ids and time span of the frames it matches.

    Why: asked for "the newest 100 frames of order X" over a journal of billions,
    PostgreSQL may walk the time index back from now, filtering, whenever its statistics
    guess that an order has thousands of frames. An order's frames are a few hundred and
    sit together in time, so that walk reads the whole journal newer than the order:
    minutes (seen at 100 million frames). Found first without an order, the frames come
    from the order number's index whatever the estimates; the page is then read by id
    within their span, from the partitions of that span only."""
    hits = list(Frame.objects.filter(match).order_by().values_list("id", "at")[:NARROW_MOST])
    if len(hits) == NARROW_MOST:
        return match
    if not hits:
        return Q(pk__in=[])
    times = [at for _id, at in hits]
    return Q(id__in=[frame_id for frame_id, _at in hits], at__range=(min(times), max(times)))
