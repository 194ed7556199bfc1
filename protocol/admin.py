"""Customer service's "log search" over the frame journal, and a remote-command page for
piles (a proxy model, so the orgs/stations admin stays as it is).

The command page calls `protocol.services.pile_command_by_staff` (`send_command`, audited)
and shows the pile's answer or the error as an admin message. Other admin pages can reuse
`PileCommandForm` and `run_pile_command(request, pile, action, payload)`.
"""

from __future__ import annotations

import datetime as dt
import json

from django import forms
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
from chargenet.errors import DomainError
from faults.admin import register_frame_source
from stations.selectors import piles_visible_to

from .models import Frame, PileConsole
from .selectors import frames_of_session, frames_visible_to
from .services import COMMAND_ACTIONS, pile_command_by_staff

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


class PileCommandForm(forms.Form):
    action = forms.ChoiceField(label=_("command"), choices=[(a, a) for a in COMMAND_ACTIONS])
    payload = forms.CharField(
        label=_("payload (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=_('As in OCPP 1.6, e.g. {"type": "Soft"} for Reset.'),
    )
    timeout = forms.IntegerField(label=_("timeout (s)"), min_value=1, max_value=120, initial=30)

    def clean_payload(self):
        text = self.cleaned_data["payload"].strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(_("The payload is not valid JSON: %s") % exc) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The payload must be a JSON object {…}."))
        return value


def _wire_time(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FirmwareUpdateForm(forms.Form):
    """UpdateFirmware without writing JSON (the URL and times are checked by the service)."""

    action = "UpdateFirmware"
    location = forms.CharField(
        label=_("firmware URL"), max_length=512, help_text=_("ftp, ftps, http or https")
    )
    retrieve_date = forms.DateTimeField(
        label=_("download from"), help_text=_("e.g. 2026-12-01 02:00 (local time)")
    )
    retries = forms.IntegerField(label=_("retries"), min_value=0, required=False)
    retry_interval = forms.IntegerField(label=_("retry interval (s)"), min_value=0, required=False)

    def payload(self) -> dict:
        data = self.cleaned_data
        payload = {"location": data["location"], "retrieveDate": _wire_time(data["retrieve_date"])}
        if data["retries"] is not None:
            payload["retries"] = data["retries"]
        if data["retry_interval"] is not None:
            payload["retryInterval"] = data["retry_interval"]
        return payload


class DiagnosticsForm(forms.Form):
    """GetDiagnostics: where the pile uploads its diagnostics file, optionally a window."""

    action = "GetDiagnostics"
    location = forms.CharField(
        label=_("upload URL"), max_length=512, help_text=_("ftp, ftps, http or https")
    )
    start_time = forms.DateTimeField(label=_("from"), required=False)
    stop_time = forms.DateTimeField(label=_("until"), required=False)
    retries = forms.IntegerField(label=_("retries"), min_value=0, required=False)
    retry_interval = forms.IntegerField(label=_("retry interval (s)"), min_value=0, required=False)

    def payload(self) -> dict:
        data = self.cleaned_data
        payload = {"location": data["location"]}
        for field, key in (("start_time", "startTime"), ("stop_time", "stopTime")):
            if data[field] is not None:
                payload[key] = _wire_time(data[field])
        for field, key in (("retries", "retries"), ("retry_interval", "retryInterval")):
            if data[field] is not None:
                payload[key] = data[field]
        return payload


# The forms of the command page, by the name of their submit button (``send``).
MAINTENANCE_FORMS = {"firmware": FirmwareUpdateForm, "diagnostics": DiagnosticsForm}


def run_pile_command(request, pile, action: str, payload: dict, timeout: int = 30) -> dict | None:
    """Send a command and report the outcome as an admin message."""
    try:
        answer = pile_command_by_staff(
            pile=pile, action=action, payload=payload, timeout=timeout, actor=request.user
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return None
    messages.success(
        request,
        _("Pile %(code)s answered %(action)s: %(answer)s")
        % {"code": pile.code, "action": action, "answer": json.dumps(answer, ensure_ascii=False)},
    )
    return answer


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
        return format_html('<a href="{}">{}</a>', url, _("send a command"))

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
        sent = request.POST.get("send", "command") if posted else None
        form = PileCommandForm(posted if sent == "command" else None)
        maintenance = {
            name: form_class(posted if sent == name else None, prefix=name)
            for name, form_class in MAINTENANCE_FORMS.items()
        }
        answer = None
        if sent == "command" and form.is_valid():
            answer = run_pile_command(
                request,
                pile,
                form.cleaned_data["action"],
                form.cleaned_data["payload"],
                form.cleaned_data["timeout"],
            )
        elif sent in maintenance and maintenance[sent].is_valid():
            chosen = maintenance[sent]
            answer = run_pile_command(request, pile, chosen.action, chosen.payload())
        context = {
            **self.admin_site.each_context(request),
            "title": _("Remote command to pile %(code)s") % {"code": pile.code},
            "pile": pile,
            "form": form,
            "maintenance": maintenance,
            "answer": json.dumps(answer, ensure_ascii=False, indent=2) if answer else "",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/protocol/pile_command.html", context)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# The fault bill page shows the session's raw frames from the journal.
register_frame_source(frames_of_session)
