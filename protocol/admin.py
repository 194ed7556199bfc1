"""Customer service's "log search" over the frame journal, and a remote-command page for
piles (a proxy model, so the orgs/stations admin stays as it is).

The command page offers the remote intents (`protocol.intents`, forms in `protocol.forms`)
and shows each outcome as an admin message; piles speaking OCPP 1.6 also get the adapter's
expert form (`protocol.ocpp16.expert`) for commands no intent covers.
"""

from __future__ import annotations

import datetime as dt
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
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
from stations.models import (
    ChargingProfile,
    ConfigurationSetting,
    FirmwareCampaign,
    FirmwareCampaignPile,
    FirmwareStatus,
    MaintenanceReport,
    Pile,
    Reservation,
    ReservationState,
)
from stations.selectors import (
    charging_profiles_visible_to,
    configuration_settings_visible_to,
    firmware_campaigns_visible_to,
    maintenance_reports_visible_to,
    piles_visible_to,
    reservations_visible_to,
    stations_visible_to,
)
from stations.services.campaigns import (
    CANCELLED,
    NOT_SENT,
    WAITING,
    firmware_campaign_cancel,
    firmware_campaign_create,
    firmware_campaign_progress,
    firmware_campaign_targets,
    target_state,
)
from stations.services.configuration import (
    configuration_desired_set,
    configuration_value_check,
)

from . import intents
from .adapters import Outcome
from .forms import INTENT_FORMS
from .models import Frame, PileConsole
from .ocpp16.expert import ExpertCommandForm
from .selectors import frames_narrowed, frames_of_session, frames_visible_to
from .tasks import firmware_campaign_send_task

register_scope(Frame, frames_visible_to)


# The StartTransaction request is journaled as its session is made, within seconds.
START_FRAME_SLACK = dt.timedelta(hours=1)


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
            # journaled before the order existed (matched by the session's transaction id,
            # around the time the session was made). Otherwise a pile's code.
            session = ChargingSession.objects.filter(order_no=term)
            session = session.values("pk", "pile__code", "created_at").first()
            if session is None:
                return queryset.filter(pile_code=term), False
            made = session["created_at"]
            near = (made - START_FRAME_SLACK, made + START_FRAME_SLACK)
            start = Q(pile_code=session["pile__code"], transaction_id=session["pk"], at__range=near)
            return queryset.filter(frames_narrowed(Q(order_no=term) | start)), False
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


# --- OCPP 1.6 feature profiles (issue 15): reservations, profiles, desired configuration,
# maintenance history and firmware campaigns. Rows are scoped by the stations selectors.

register_scope(Reservation, reservations_visible_to)
register_scope(ChargingProfile, charging_profiles_visible_to)
register_scope(MaintenanceReport, maintenance_reports_visible_to)
register_scope(ConfigurationSetting, configuration_settings_visible_to)
register_scope(FirmwareCampaign, firmware_campaigns_visible_to)


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    """Reservations of visible piles; made from the pile console or the drivers' app."""

    list_display = ("connector", "member", "state", "expires_at", "created_at", "ended_at")
    list_filter = ("state", ("expires_at", admin.DateFieldListFilter))
    search_fields = ("=connector__pile__code", "=id_tag", "member__phone")
    list_select_related = ("connector__pile", "member")
    actions = ["cancel_selected"]

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("stations.change_reservation")

    @admin.action(permissions=["cancel"], description=_("Cancel selected reservations"))
    def cancel_selected(self, request, queryset):
        for reservation in queryset.filter(state=ReservationState.ACTIVE):
            result = intents.reservation_cancel(reservation=reservation, acting_user=request.user)
            self.message_user(request, result.message, MESSAGE_LEVELS[result.outcome])


@admin.register(ChargingProfile)
class ChargingProfileAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ("pile", "connector_number", "profile_id", "purpose", "limits", "daily",
                    "origin", "outcome", "created_at")  # fmt: skip
    list_filter = ("purpose", "origin", "outcome")
    search_fields = ("=pile__code",)
    list_select_related = ("pile",)

    @admin.display(description=_("limits"))
    def limits(self, profile) -> str:
        return ", ".join(f"{start // 3600:02d}:{start % 3600 // 60:02d} {limit / 1000:g} kW"
                         for start, limit in profile.periods)  # fmt: skip


@admin.register(MaintenanceReport)
class MaintenanceReportAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ("at", "pile", "kind", "status")
    list_filter = ("kind", "status", ("at", admin.DateFieldListFilter))
    search_fields = ("=pile__code",)
    list_select_related = ("pile",)
    show_full_result_count = False


class ConfigurationSettingForm(forms.ModelForm):
    class Meta:
        model = ConfigurationSetting
        fields = ("station", "pile", "key", "value")

    def clean(self):
        data = super().clean()
        if "key" in self.fields and bool(data.get("station")) == bool(data.get("pile")):
            raise forms.ValidationError(_("Choose a station or a pile, not both."))
        key = data.get("key", self.instance.key)
        if key and data.get("value") is not None:
            try:
                data["value"] = configuration_value_check(key=key, value=data["value"])
            except DomainError as exc:
                raise forms.ValidationError(exc.message) from exc
        return data


@admin.register(ConfigurationSetting)
class ConfigurationSettingAdmin(ScopedModelAdmin):
    """Desired configuration: saved through `configuration_desired_set` (validated,
    audited, pushed to the piles at once)."""

    form = ConfigurationSettingForm
    list_display = ("key", "value", "station", "pile", "updated_at")
    list_filter = ("key",)
    search_fields = ("key", "=pile__code", "station__name")
    list_select_related = ("station", "pile")

    def get_readonly_fields(self, request, obj=None):
        return ("station", "pile", "key") if obj is not None else ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "pile":
            kwargs["queryset"] = piles_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        saved = configuration_desired_set(
            key=obj.key, value=obj.value, station=obj.station, pile=obj.pile,
            acting_user=request.user,
        )  # fmt: skip
        obj.pk = saved.pk

    actions = ["stop_pushing"]

    @admin.action(permissions=["change"], description=_("Stop setting the selected keys"))
    def stop_pushing(self, request, queryset):
        for setting in queryset:
            configuration_desired_set(
                key=setting.key, value=None, station=setting.station, pile=setting.pile,
                acting_user=request.user,
            )  # fmt: skip
        self.message_user(
            request,
            _("%(n)d settings are no longer set on the piles (what the piles hold stays).")
            % {"n": len(queryset)},
            messages.SUCCESS,
        )

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        return False


class CampaignTargetInline(admin.TabularInline):
    model = FirmwareCampaignPile
    fields = ("pile", "sent_outcome", "sent_at", "state")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return FirmwareCampaignPile.objects.none()  # replaced in get_formset

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        piles = campaign_piles_scope(request.user)
        targets = firmware_campaign_targets(campaign=obj, piles=piles) if obj else None

        class WithStates(formset):
            def get_queryset(self):
                return targets

        return WithStates

    @admin.display(description=_("where it stands"))
    def state(self, target) -> str:
        return campaign_state_label(target_state(target))

    def has_add_permission(self, request, obj=None):
        return False


def campaign_piles_scope(staff):
    """The piles of a campaign ``staff`` sees: all for operator-wide staff, their own for
    sub-operator staff (`stations.selectors.firmware_campaigns_visible_to`)."""
    return piles_visible_to(staff) if staff.sub_operator_id is not None else None


def campaign_state_label(state: str) -> str:
    labels = {NOT_SENT: _("not sent yet"), WAITING: _("sent, no report yet"),
              CANCELLED: _("cancelled, not sent"),
              **dict(FirmwareStatus.choices), **dict(Outcome.choices)}  # fmt: skip
    return str(labels.get(state, state))


class FirmwareCampaignForm(forms.ModelForm):
    station = forms.ModelChoiceField(label=_("station"), queryset=None, required=False)
    pile_model = forms.CharField(label=_("pile model"), required=False, max_length=64)
    from_version = forms.CharField(label=_("current firmware"), required=False, max_length=64)

    class Meta:
        model = FirmwareCampaign
        fields = ("name", "location", "retrieve_at", "retries", "retry_interval")

    def piles(self, staff):
        rows = piles_visible_to(staff)
        data = self.cleaned_data
        if data.get("station"):
            rows = rows.filter(station=data["station"])
        if data.get("pile_model"):
            rows = rows.filter(model=data["pile_model"])
        if data.get("from_version"):
            rows = rows.filter(firmware_version=data["from_version"])
        return rows


@admin.register(FirmwareCampaign)
class FirmwareCampaignAdmin(ScopedModelAdmin):
    """A firmware update for the piles matching a filter (station, model, current
    firmware); sent by workers, its progress read from the piles' firmware reports."""

    form = FirmwareCampaignForm
    list_display = ("name", "location", "retrieve_at", "created_at", "progress", "cancelled_at")
    actions = ["cancel_campaigns"]

    def get_inlines(self, request, obj):
        return [CampaignTargetInline] if obj is not None else []

    def get_object(self, request, object_id, from_field=None):
        campaign = super().get_object(request, object_id, from_field)
        if campaign is not None:
            campaign.scope_piles = campaign_piles_scope(request.user)
        return campaign

    def get_list_display(self, request):
        piles = campaign_piles_scope(request.user)

        @admin.display(description=_("progress"))
        def progress(campaign):
            campaign.scope_piles = piles
            return self.progress(campaign)

        return [progress if name == "progress" else name for name in self.list_display]

    def has_cancel_permission(self, request):
        """Operator-wide staff who may change campaigns; a sub-operator's staff see only
        some of a campaign's piles, so they cannot stop the others'."""
        user = request.user
        return user.has_perm("stations.change_firmwarecampaign") and user.sub_operator_id is None

    @admin.action(permissions=["cancel"], description=_("Cancel the selected campaigns"))
    def cancel_campaigns(self, request, queryset):
        for campaign in queryset.order_by("pk"):
            try:
                unsent = firmware_campaign_cancel(campaign=campaign, acting_user=request.user)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.WARNING)
                continue
            self.message_user(
                request,
                _("Campaign “%(name)s” cancelled: %(n)d piles will not be sent the update "
                  "(piles already updating carry on).") % {"name": campaign.name, "n": unsent},
                messages.SUCCESS,
            )  # fmt: skip

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.base_fields["station"].queryset = stations_visible_to(request.user)
        return form

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("name", "location", "retrieve_at", "retries", "retry_interval",
                    "station", "pile_model", "from_version")  # fmt: skip
        return ("name", "location", "retrieve_at", "retries", "retry_interval", "progress",
                "cancelled_at", "cancelled_by")  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else ()

    @admin.display(description=_("progress"))
    def progress(self, campaign) -> str:
        piles = getattr(campaign, "scope_piles", None)
        done = firmware_campaign_progress(campaign=campaign, piles=piles)
        parts = [f"{campaign_state_label(state)} {count}" for state, count in
                 sorted(done.by_state.items())]  # fmt: skip
        return _("%(installed)s of %(total)s installed (%(parts)s)") % {
            "installed": done.installed, "total": done.total, "parts": ", ".join(parts)
        }  # fmt: skip

    def save_model(self, request, obj, form, change):
        operator_id = request.user.operator_id or form.cleaned_data["station"].operator_id
        campaign = firmware_campaign_create(
            operator_id=operator_id,
            name=obj.name,
            piles=form.piles(request.user),
            location=obj.location,
            retrieve_at=obj.retrieve_at,
            retries=obj.retries,
            retry_interval=obj.retry_interval,
            acting_user=request.user,
        )
        obj.pk = campaign.pk
        transaction.on_commit(lambda: firmware_campaign_send_task.delay(campaign.pk))

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
