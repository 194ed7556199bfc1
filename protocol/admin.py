"""Customer service's "log search" over the frame journal, and a remote-command page for
piles (a proxy model, so the orgs/stations admin stays as it is).

The command page offers the remote intents (`protocol.intents`, forms in `protocol.forms`)
and shows each outcome as an admin message; piles speaking OCPP 1.6 also get the adapter's
expert form (`protocol.ocpp16.expert`) for commands no intent covers.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from billing.models import ChargingSession
from chargenet.admin import ReadOnlyAdminMixin, ScopedModelAdmin, register_scope
from faults.admin import register_frame_source
from stations.models import Pile
from stations.selectors import piles_visible_to

from .adapters import Outcome
from .forms import INTENT_FORMS
from .models import Frame, PileConsole
from .ocpp16.expert import ExpertCommandForm
from .selectors import frames_of_session, frames_visible_to

register_scope(Frame, frames_visible_to)


@admin.register(Frame)
class FrameAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    """Search by order number, pile code, action or message id; filter by time. Rows are
    `frames_visible_to` (another operator's frame is a 404, like a missing one)."""

    list_display = (
        "at",
        "pile_code",
        "direction",
        "message_type",
        "action",
        "order_no",
        "error_code",
        "short_payload",
        "node",
    )
    list_filter = ("direction", "message_type", "action", ("at", admin.DateFieldListFilter))
    search_fields = ("=order_no", "=pile_code", "=unique_id", "action")
    date_hierarchy = "at"
    show_full_result_count = False
    list_per_page = 100
    readonly_fields = [f.name for f in Frame._meta.fields]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term.isdigit() and len(term) == 20:
            # An order number: its frames, including the StartTransaction request that was
            # journaled before the order existed (matched by the session's transaction id).
            session = ChargingSession.objects.filter(order_no=term).values("pk", "pile__code")
            session = session.first()
            match = Q(order_no=term)
            if session:
                match |= Q(pile_code=session["pile__code"], transaction_id=session["pk"])
            return queryset.filter(match | Q(pile_code=term)), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=_("payload"))
    def short_payload(self, frame: Frame) -> str:
        text = json.dumps(frame.payload, ensure_ascii=False) if frame.payload else frame.raw
        return text[:120]


# How the page shows each outcome.
MESSAGE_LEVELS = {
    Outcome.ACCEPTED: messages.SUCCESS,
    Outcome.REJECTED: messages.WARNING,
    Outcome.NOT_SUPPORTED: messages.WARNING,
    Outcome.TIMEOUT: messages.WARNING,
    Outcome.OFFLINE: messages.ERROR,
    Outcome.INVALID: messages.ERROR,
}


@admin.register(PileConsole)
class PileConsoleAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "station",
        "is_online",
        "last_heartbeat_at",
        "firmware_status",
        "diagnostics_status",
        "command_link",
    )
    list_filter = ("is_online",)
    search_fields = ("=code", "station__name")
    list_select_related = ("station",)

    def get_queryset(self, request):
        return piles_visible_to(request.user).select_related("station")

    def get_object(self, request, object_id, from_field=None):
        # "Not yours" and "does not exist" give the same answer: 404.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(_("Not found."))
        return obj

    def get_readonly_fields(self, request, obj=None):
        # "change" here means "may send commands"; the pile itself is edited on its own page.
        return [field.name for field in self.model._meta.fields]

    @admin.display(description=_("remote command"))
    def command_link(self, pile) -> str:
        url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
        return format_html('<a href="{}">{}</a>', url, _("remote commands"))

    def get_urls(self):
        return [
            path(
                "<int:pk>/command/",
                self.admin_site.admin_view(self.command_view),
                name="protocol_pileconsole_command",
            ),
            *super().get_urls(),
        ]

    def command_view(self, request, pk: int):
        pile = get_object_or_404(piles_visible_to(request.user), pk=pk)
        if not self.has_change_permission(request, pile):
            raise PermissionDenied
        posted = request.POST or None
        sent = request.POST.get("send") if posted else None
        page_forms = {
            name: form_class(posted if sent == name else None, prefix=name, pile=pile)
            for name, form_class in INTENT_FORMS.items()
        }
        if pile.protocol == Pile.Protocol.OCPP16J:
            page_forms["expert"] = ExpertCommandForm(
                posted if sent == "expert" else None, prefix="expert", pile=pile
            )
        result = None
        chosen = page_forms.get(sent)
        if chosen is not None and chosen.is_valid():
            if sent == "expert":
                took, text = chosen.send(request.user)
                messages.add_message(request, messages.SUCCESS if took else messages.ERROR, text)
            else:
                result = chosen.run(request.user)
                messages.add_message(request, MESSAGE_LEVELS[result.outcome], result.message)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Remote commands to pile %(code)s") % {"code": pile.code},
            "pile": pile,
            "forms": page_forms,
            "result": result,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/protocol/pile_command.html", context)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# The fault bill page shows the session's raw frames from the journal.
register_frame_source(frames_of_session)
