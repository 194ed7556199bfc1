"""The live-sessions screen (实时充电) of the back office, and its remote stop.

The rows and their amounts come from `reports.live` (scope: the bills' rule); this adapter
page adds what only an adapter may do: stop a session on its pile
(`protocol.intents.session_stop_remote`, audited, its outcome shown as a message). The
page refreshes its rows from `live_sessions_json` (a static script: the CSP forbids inline
ones), and so its second table: the reservations (预约) holding a connector now, at the
stations the staff member sees. URLs are included by `chargenet.urls` under ``admin/live/``.

Permissions: seeing the screen is "view charging session"; stopping is "change pile remote
control" — the right that sends remote commands on the pile console.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from billing.models import Channel
from chargenet.admin import admin_page_register
from reports.exports.admin import export_response
from reports.exports.tabular import cell_text
from reports.live import (
    LIVE_COLUMNS,
    RESERVATION_COLUMNS,
    LiveFilters,
    LiveSession,
    LiveSessionsTabular,
    live_cells,
    live_reservation_cells,
    live_reservations_visible_to,
    live_sessions_read,
    live_sessions_visible_to,
)
from stations.selectors import stations_visible_to

from .admin import MESSAGE_LEVELS
from .intents import session_stop_remote

VIEW_PERMISSION = "billing.view_chargingsession"
STOP_PERMISSION = "protocol.change_pileconsole"
PER_PAGE = 100
REFRESH_SECONDS = 10


def _can_view(user) -> bool:
    return user.is_active and user.has_perm(VIEW_PERMISSION)


def _can_stop(user) -> bool:
    return user.is_active and user.has_perm(STOP_PERMISSION)


def _page(request):
    if not _can_view(request.user):
        raise PermissionDenied
    filters = LiveFilters.from_query(request.GET)
    sessions = filters.apply(live_sessions_visible_to(request.user)).order_by("-started_at")
    paginator = Paginator(sessions.values_list("pk", flat=True), PER_PAGE)
    page = paginator.get_page(request.GET.get("p"))
    now = timezone.now()
    rows = live_sessions_read(sessions=sessions.filter(pk__in=list(page.object_list)), now=now)
    reservations = filters.apply_reservations(live_reservations_visible_to(request.user))
    held = [_reservation_row(r, now) for r in reservations[:PER_PAGE]]
    return filters, page, rows, held


def _reservation_row(reservation, now) -> dict:
    cells = live_reservation_cells(reservation, now=now)
    shown = zip(cells, RESERVATION_COLUMNS, strict=True)
    return {"id": reservation.pk, "cells": [cell_text(value, col.kind) for value, col in shown]}


def _row(live: LiveSession, can_stop: bool) -> dict:
    cells = live_cells(live)
    shown = [
        cell_text(value, column.kind) for value, column in zip(cells, LIVE_COLUMNS, strict=True)
    ]
    if live.amount is None:
        shown[-1] = str(_("not priced: %(reason)s") % {"reason": live.not_priced})
    else:
        shown[-1] = f"≈ {shown[-1]}"
    return {
        "id": live.session.pk,
        "cells": shown,
        "stop_url": reverse("live_session_stop", args=[live.session.pk]) if can_stop else "",
    }


def live_sessions_view(request):
    filters, page, rows, reservations = _page(request)
    can_stop = _can_stop(request.user)
    query = urlencode(filters.as_query())
    context = {
        **admin.site.each_context(request),
        "title": _("Live sessions"),
        "columns": LIVE_COLUMNS,
        "rows": [_row(live, can_stop) for live in rows],
        "reservation_columns": RESERVATION_COLUMNS,
        "reservations": reservations,
        "page": page,
        "filters": filters,
        "stations": stations_visible_to(request.user).visible().order_by("name"),
        "channels": Channel.choices,
        "can_stop": can_stop,
        "json_url": reverse("live_sessions_json") + (f"?{query}" if query else ""),
        "refresh_seconds": REFRESH_SECONDS,
        "export_query": query,
        "now": timezone.now(),
    }
    return TemplateResponse(request, "admin/live/sessions.html", context)


def live_sessions_json(request):
    """The page's rows, for its script to refresh them without reloading."""
    _filters, page, rows, reservations = _page(request)
    can_stop = _can_stop(request.user)
    return JsonResponse(
        {
            "rows": [_row(live, can_stop) for live in rows],
            "reservations": reservations,
            "count": page.paginator.count,
            "at": timezone.localtime().strftime("%H:%M:%S"),
        }
    )


@require_POST
def live_session_stop(request, session_id: int):
    """Ask the pile to stop a session the staff member sees; the outcome as a message."""
    if not _can_stop(request.user):
        raise PermissionDenied
    session = live_sessions_visible_to(request.user).filter(pk=session_id)
    session = session.select_related("pile").first()
    if session is None:  # not theirs, or over already: the same 404
        raise Http404(_("Not found."))
    result = session_stop_remote(session=session, acting_user=request.user)
    messages.add_message(request, MESSAGE_LEVELS[result.outcome], result.message)
    back = request.POST.get("next", "")
    if not back.startswith(reverse("live_sessions")):
        back = reverse("live_sessions")
    return HttpResponseRedirect(back)


def live_sessions_export(request, fmt: str):
    if not _can_view(request.user):
        raise PermissionDenied
    tabular = LiveSessionsTabular(staff=request.user, filters=LiveFilters.from_query(request.GET))
    return export_response(request, tabular, fmt=fmt)


admin_page_register(title=_("Live sessions"), url_name="live_sessions", permission=VIEW_PERMISSION)

urlpatterns = [
    path("sessions/", admin.site.admin_view(live_sessions_view), name="live_sessions"),
    path("sessions.json", admin.site.admin_view(live_sessions_json), name="live_sessions_json"),
    path(
        "sessions/<int:session_id>/stop/",
        admin.site.admin_view(live_session_stop),
        name="live_session_stop",
    ),
    path(
        "sessions/export/<str:fmt>/",
        admin.site.admin_view(live_sessions_export),
        name="live_sessions_export",
    ),
]
