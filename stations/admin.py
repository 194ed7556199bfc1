"""Back office for the network: stations (piles and opening hours inline), piles
(connectors, firmware history and latest status events), and read-only history.

Every queryset, dropdown and filter goes through `stations.selectors` (see
`chargenet.admin.ScopedAdminMixin`); form rules come from `stations.services.network`.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from chargenet.admin import (
    ExportCsvMixin,
    HideableScopedAdmin,
    OperatorInitialMixin,
    ReadOnlyAdminMixin,
    ScopedAdminMixin,
    ScopedModelAdmin,
    ValueFilter,
    distinct_choices,
    filtered_list_link,
    register_scope,
)
from chargenet.audit import audit_record
from chargenet.errors import DomainError

from .models import (
    Connector,
    FirmwareRecord,
    HeartbeatSample,
    OpeningWindow,
    Pile,
    PileFault,
    Station,
    StationOutage,
    StatusEvent,
)
from .selectors import connectors_visible_to, piles_visible_to, stations_visible_to
from .services.credentials import (
    PILE_PASSWORD_MIN_LENGTH,
    pile_credential_encode,
    pile_password_generate,
)
from .services.network import (
    MAX_POWER_REQUIRED,
    PILE_FIELDS,
    STATION_FIELDS,
    PileData,
    StationData,
    connector_power_problems,
    opening_windows_problems,
    pile_create,
    pile_hide,
    pile_publish,
    pile_publish_problems,
    pile_restore,
    pile_unpublish,
    pile_update,
    station_create,
    station_hide,
    station_restore,
    station_update,
)

register_scope(Station, stations_visible_to)
register_scope(Pile, piles_visible_to)
register_scope(Connector, connectors_visible_to)
for _history in (FirmwareRecord, StatusEvent, HeartbeatSample, PileFault):
    register_scope(
        _history,
        lambda user, model=_history: model.objects.filter(pile__in=piles_visible_to(user)),
    )
register_scope(
    StationOutage, lambda user: StationOutage.objects.filter(station__in=stations_visible_to(user))
)
register_scope(
    OpeningWindow, lambda user: OpeningWindow.objects.filter(station__in=stations_visible_to(user))
)


class CityFilter(ValueFilter):
    """City of the pile's station, with choices from the stations the user may see."""

    title = _("city")
    parameter_name = "city"
    lookup = "station__city"

    def lookups(self, request, model_admin):
        return distinct_choices(stations_visible_to(request.user), "city")


# --- station -------------------------------------------------------------------------


class OpeningWindowFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        windows = [
            (form.cleaned_data["opens"], form.cleaned_data["closes"])
            for form in self.forms
            if form.cleaned_data
            and not form.cleaned_data.get("DELETE")
            and form.cleaned_data.get("opens")
            and form.cleaned_data.get("closes")
        ]
        problems = opening_windows_problems(windows)
        if problems:
            raise ValidationError(problems)


class OpeningWindowInline(ScopedAdminMixin, admin.TabularInline):
    model = OpeningWindow
    formset = OpeningWindowFormSet
    extra = 0
    verbose_name_plural = _("opening hours (empty: open 24 hours; 19:00–06:00 is overnight)")


class StationPileInline(ScopedAdminMixin, admin.TabularInline):
    model = Pile
    fields = (
        "code",
        "current_type",
        "max_power_kw",
        "firmware_version",
        "is_online",
        "is_published",
    )
    readonly_fields = ("is_online", "is_published")
    extra = 0
    show_change_link = True
    can_delete = False


@admin.register(Station)
class StationAdmin(OperatorInitialMixin, ExportCsvMixin, HideableScopedAdmin):
    list_display = (
        "name",
        "code",
        "city",
        "address",
        "pile_counts",
        "is_public",
        "opening_hours",
    )
    list_filter = ("city", "is_public", "sub_operators", "departments")
    search_fields = ("name", "code", "address", "piles__code")
    inlines = [OpeningWindowInline, StationPileInline]
    filter_horizontal = ("sub_operators", "departments")
    actions = ["hide_selected", "restore_selected", "export_csv"]
    fieldsets = (
        (None, {"fields": ("operator", "code", "name", "is_public", "password")}),
        (
            _("location"),
            {"fields": ("address", "city", "region_code", "latitude", "longitude", "time_zone")},
        ),
        (_("bindings"), {"fields": ("sub_operators", "departments")}),
        (_("smart charging"), {"fields": ("power_limit_kw", "peak_power_limit_kw")}),
        (_("hidden"), {"fields": ("hidden_at", "hidden_by", "hidden_reason")}),
    )
    export_fields = [
        (_("station code"), "code"),
        (_("name"), "name"),
        (_("city"), "city"),
        (_("address"), "address"),
        (_("latitude"), "latitude"),
        (_("longitude"), "longitude"),
        (_("piles online"), "piles_online"),
        (_("piles"), "piles_total"),
    ]

    def get_queryset(self, request):
        visible_piles = Q(piles__hidden_at__isnull=True)
        return (
            super()
            .get_queryset(request)
            .annotate(
                piles_total=Count("piles", filter=visible_piles, distinct=True),
                piles_online=Count(
                    "piles", filter=visible_piles & Q(piles__is_online=True), distinct=True
                ),
            )
            .prefetch_related("opening_windows")
        )

    @admin.display(description=_("piles online / total"), ordering="piles_total")
    def pile_counts(self, obj):
        counts = f"{obj.piles_online} / {obj.piles_total}"
        return filtered_list_link("stations_pile", "station", obj.pk, counts)

    @admin.display(description=_("opening hours"))
    def opening_hours(self, obj):
        windows = list(obj.opening_windows.all())
        return ", ".join(str(w) for w in windows) if windows else _("24 hours")

    audit_saves = False  # station_create / station_update audit

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        # Moving a station to another operator is not a back-office edit.
        return (*readonly, "operator") if obj is not None else readonly

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changes = {f: data[f] for f in form.changed_data if f in STATION_FIELDS}
            if changes:
                station_update(station=obj, changes=changes, actor=request.user)
            return
        created = station_create(
            operator=data["operator"],
            data=StationData(**{f: data[f] for f in STATION_FIELDS}),
            actor=request.user,
        )
        obj.pk, obj.created_at = created.pk, created.created_at
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        station = form.instance
        names = ("sub_operators", "departments")
        before = {n: sorted(getattr(station, n).values_list("pk", flat=True)) for n in names}
        super().save_related(request, form, formsets, change)
        after = {n: sorted(getattr(station, n).values_list("pk", flat=True)) for n in names}
        if before != after:
            audit_record(
                actor=request.user,
                action="station_bindings",
                obj=station,
                before=before,
                after=after,
            )

    def hide_object(self, request, obj):
        station_hide(station=obj, actor=request.user, reason=str(_("hidden in the back office")))

    def restore_object(self, request, obj):
        station_restore(
            station=obj, actor=request.user, reason=str(_("restored in the back office"))
        )


# --- pile ----------------------------------------------------------------------------


class ConnectorFormSet(forms.BaseInlineFormSet):
    """A published pile needs max power, one connector at least, and each one's rated
    power: checked against the page as submitted, so nothing is saved on error."""

    def clean(self):
        super().clean()
        pile = self.instance
        if not pile.is_published:
            return
        powers = [
            form.cleaned_data.get("rated_power_kw")
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        problems = pile_publish_problems(max_power_kw=pile.max_power_kw, connector_powers=powers)
        if problems:
            raise ValidationError(problems)


class ConnectorInline(ScopedAdminMixin, admin.TabularInline):
    model = Connector
    formset = ConnectorFormSet
    fields = ("number", "standard", "rated_power_kw", "status", "error_code", "status_at")
    readonly_fields = ("status", "error_code", "status_at")
    extra = 0


class FirmwareRecordInline(ScopedAdminMixin, ReadOnlyAdminMixin, admin.TabularInline):
    model = FirmwareRecord
    fields = ("version", "first_seen_at", "last_seen_at")
    readonly_fields = fields
    extra = 0


class PileForm(forms.ModelForm):
    generate_credential = forms.BooleanField(
        label=_("generate a new password"),
        required=False,
        help_text=_("A random 32-character password, shown once after saving."),
    )
    new_credential = forms.CharField(
        label=_("new credential"),
        required=False,
        min_length=PILE_PASSWORD_MIN_LENGTH,
        widget=forms.PasswordInput(render_value=False),
        help_text=_(
            "Sets the password the pile authenticates with (at least 16 characters); stored hashed."
        ),
    )
    generated_password = ""  # set by save(): shown to the staff member once

    class Meta:
        model = Pile
        fields = (
            "station",
            "code",
            "name",
            "current_type",
            "max_power_kw",
            "is_published",
            "vendor",
            "model",
            "serial_number",
            "firmware_version",
            "protocol",
        )

    def clean(self):
        data = super().clean()
        if data.get("is_published") and data.get("max_power_kw") is None:
            # Named on the field (this also spares staff the raw database-constraint text).
            self.add_error("max_power_kw", MAX_POWER_REQUIRED)
        return data

    def save(self, commit=True):
        password = self.cleaned_data.get("new_credential")
        if self.cleaned_data.get("generate_credential"):
            password = self.generated_password = pile_password_generate()
        if password:
            self.instance.credential_hash = pile_credential_encode(password=password)
        return super().save(commit)


@admin.register(Pile)
class PileAdmin(ExportCsvMixin, HideableScopedAdmin):
    form = PileForm
    list_display = (
        "code",
        "station",
        "station_city",
        "current_type",
        "max_power_kw",
        "firmware_version",
        "is_online",
        "last_heartbeat_at",
        "is_published",
    )
    list_filter = (
        "current_type",
        "is_online",
        "is_published",
        "firmware_version",
        CityFilter,
        "station",
    )
    search_fields = ("code", "serial_number", "station__name")
    list_select_related = ("station",)
    inlines = [ConnectorInline, FirmwareRecordInline]
    actions = [
        "publish_selected",
        "unpublish_selected",
        "hide_selected",
        "restore_selected",
        "export_csv",
    ]
    readonly_fields = (
        "is_online",
        "last_heartbeat_at",
        "last_boot_at",
        "has_credential",
        "latest_status_events",
        "firmware_status",
        "firmware_status_at",
        "diagnostics_status",
        "diagnostics_status_at",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "station",
                    "code",
                    "name",
                    "current_type",
                    "max_power_kw",
                    "is_published",
                )
            },
        ),
        (
            _("device"),
            {"fields": ("vendor", "model", "serial_number", "firmware_version", "protocol")},
        ),
        (_("supply"), {"fields": ("supply_phases", "phase_voltage_v")}),
        (
            _("authentication"),
            {"fields": ("has_credential", "generate_credential", "new_credential")},
        ),
        (
            _("live state"),
            {
                "fields": (
                    "is_online",
                    "last_heartbeat_at",
                    "last_boot_at",
                    "firmware_status",
                    "firmware_status_at",
                    "diagnostics_status",
                    "diagnostics_status_at",
                    "latest_status_events",
                )
            },
        ),
        (_("hidden"), {"fields": ("hidden_at", "hidden_by", "hidden_reason")}),
    )
    export_fields = [
        (_("pile code"), "code"),
        (_("station"), "station.name"),
        (_("city"), "station.city"),
        (_("AC/DC"), "current_type"),
        (_("max power (kW)"), "max_power_kw"),
        (_("firmware"), "firmware_version"),
        (_("online"), "is_online"),
        (_("published"), "is_published"),
    ]

    @admin.display(description=_("city"), ordering="station__city")
    def station_city(self, obj):
        return obj.station.city

    @admin.display(description=_("credential set"), boolean=True)
    def has_credential(self, obj):
        return bool(obj.credential_hash)

    @admin.display(description=_("latest status events"))
    def latest_status_events(self, obj):
        events = obj.status_events.order_by("-received_at")[:20]
        if not events:
            return _("none yet")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(e.received_at, obj.station.zone).strftime(
                        "%Y-%m-%d %H:%M:%S"
                    ),
                    e.connector_number,
                    e.get_status_display(),
                    e.error_code,
                    e.info,
                )
                for e in events
            ),
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            _("received at"),
            _("connector"),
            _("state"),
            _("error code"),
            _("info"),
            rows,
        )

    audit_saves = False  # pile_create / pile_update / pile_publish audit

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fields = [*PILE_FIELDS, "station"]
        if change:
            changes = {f: data[f] for f in form.changed_data if f in fields}
            if data.get("new_credential") or data.get("generate_credential"):
                changes["credential_hash"] = obj.credential_hash  # hashed by PileForm
            if "is_published" in form.changed_data and not data["is_published"]:
                pile_unpublish(pile=obj, actor=request.user)
            if changes:
                pile_update(pile=obj, changes=changes, actor=request.user)
            return
        created = pile_create(
            station=data["station"],
            data=PileData(
                **{f: data[f] for f in PILE_FIELDS if f != "credential_hash"},
                credential_hash=obj.credential_hash,
            ),
            actor=request.user,
        )
        obj.pk, obj.created_at, obj.is_published = created.pk, created.created_at, False
        obj._state.adding = False

    def save_form(self, request, form, change):
        pile = super().save_form(request, form, change)
        if form.generated_password:
            # Shown once, never stored in the clear: staff copy it into the pile now.
            messages.warning(
                request,
                _("New password of pile %(code)s (shown only this once): %(password)s")
                % {"code": pile.code, "password": form.generated_password},
            )
        return pile

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Published last, once the connectors of the page are saved.
        if form.cleaned_data.get("is_published") and not (
            change and "is_published" not in form.changed_data
        ):
            pile_publish(pile=form.instance, actor=request.user)

    def hide_object(self, request, obj):
        pile_hide(pile=obj, actor=request.user, reason=str(_("hidden in the back office")))

    def restore_object(self, request, obj):
        pile_restore(pile=obj, actor=request.user, reason=str(_("restored in the back office")))

    @admin.action(permissions=["change"], description=_("Publish selected piles"))
    def publish_selected(self, request, queryset):
        published = 0
        for pile in queryset:
            try:
                pile_publish(pile=pile, actor=request.user)
                published += 1
            except DomainError as exc:
                self.message_user(request, str(exc), messages.ERROR)
        if published:
            self.message_user(
                request,
                _("Published %(n)d pile(s).") % {"n": published},
                messages.SUCCESS,
            )

    @admin.action(permissions=["change"], description=_("Unpublish selected piles"))
    def unpublish_selected(self, request, queryset):
        count = 0
        for pile in queryset:
            pile_unpublish(pile=pile, actor=request.user)
            count += 1
        self.message_user(request, _("Unpublished %(n)d pile(s).") % {"n": count}, messages.SUCCESS)


class ConnectorForm(forms.ModelForm):
    class Meta:
        model = Connector
        fields = ("pile", "number", "standard", "rated_power_kw")

    def clean(self):
        data = super().clean()
        pile = data.get("pile")
        if pile is not None:
            for problem in connector_power_problems(
                pile=pile, rated_power_kw=data.get("rated_power_kw")
            ):
                self.add_error("rated_power_kw", problem)
        return data


@admin.register(Connector)
class ConnectorAdmin(ScopedModelAdmin):
    form = ConnectorForm
    list_display = ("__str__", "pile", "number", "standard", "rated_power_kw", "status")
    list_filter = ("status", "standard")
    search_fields = ("pile__code",)
    list_select_related = ("pile",)
    readonly_fields = ("status", "error_code", "status_at")

    def has_delete_permission(self, request, obj=None):
        # Sessions (money) hang on connectors; remove a connector from its pile page.
        return False


@admin.register(StatusEvent)
class StatusEventAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ("received_at", "pile", "connector_number", "status", "error_code", "info")
    list_filter = ("status",)
    search_fields = ("pile__code",)
    list_select_related = ("pile",)
    date_hierarchy = "received_at"


@admin.register(PileFault)
class PileFaultAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ("pile", "kind", "connector_number", "error_code", "started_at", "ended_at")
    list_filter = ("kind",)
    search_fields = ("pile__code",)
    list_select_related = ("pile",)
    date_hierarchy = "started_at"


@admin.register(StationOutage)
class StationOutageAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = ("station", "started_at", "ended_at", "pile_count")
    list_select_related = ("station",)
    date_hierarchy = "started_at"
