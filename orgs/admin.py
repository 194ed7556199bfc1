"""Back office for the organisation registry: operators, sub-operators, departments (a
tree), staff accounts with role and scope, members, vehicles, cards and partnerships.

Rows, dropdowns and filters are scoped by `orgs.selectors` (see
`chargenet.admin.ScopedAdminMixin`); hiding replaces delete where money hangs on a row.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _

from chargenet.admin import (
    ExportCsvMixin,
    HideableScopedAdmin,
    OperatorInitialMixin,
    ScopedAdminMixin,
    ScopedModelAdmin,
    filtered_list_link,
    register_scope,
    scoped,
)
from chargenet.errors import DomainError
from chargenet.models import AuditLog

from . import selectors
from .models import (
    Card,
    Department,
    Member,
    Operator,
    Partner,
    PartnerAccess,
    Staff,
    SubOperator,
    Vehicle,
)
from .services import (
    department_problems,
    member_token_new,
    partner_access_set,
    staff_assign_role,
    staff_check_scope,
)

register_scope(Operator, selectors.operators_visible_to)
register_scope(SubOperator, selectors.sub_operators_visible_to)
register_scope(Department, selectors.departments_visible_to)
register_scope(Member, selectors.members_visible_to)
register_scope(Vehicle, selectors.vehicles_visible_to)
register_scope(Card, selectors.cards_visible_to)
register_scope(Staff, selectors.staff_visible_to)
register_scope(Partner, selectors.partners_visible_to)
register_scope(PartnerAccess, selectors.partner_accesses_visible_to)
register_scope(AuditLog, selectors.audit_entries_visible_to)


class SuperuserEditsMixin:
    """Platform-wide registries (operators, partners): only a superuser adds or edits rows,
    and rows are never deleted."""

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False


def _visible_station_count(model, user, through: str) -> Count:
    """Count of bound stations that the user can open in the station list: visible to
    them and not hidden, so the number equals the rows behind its link. The station
    model and its scope come through the relation and the scope registry (stations
    builds on orgs, not the other way round)."""
    station = model._meta.get_field(through).related_model
    visible = scoped(station, user).filter(hidden_at__isnull=True).values("pk")
    return Count(through, filter=Q(**{f"{through}__in": visible}), distinct=True)


@admin.register(Operator)
class OperatorAdmin(SuperuserEditsMixin, ScopedModelAdmin):
    list_display = ("name", "code", "rounding_mode", "start_min_balance", "created_at")
    search_fields = ("name", "code")


@admin.register(SubOperator)
class SubOperatorAdmin(OperatorInitialMixin, HideableScopedAdmin):
    list_display = ("name", "code", "operator", "contact", "station_count", "department_count")
    list_filter = ("operator",)
    search_fields = ("name", "code", "contact")
    list_select_related = ("operator",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_stations=_visible_station_count(self.model, request.user, "stations"),
                n_departments=Count(
                    "departments",
                    filter=Q(departments__hidden_at__isnull=True),
                    distinct=True,
                ),
            )
        )

    @admin.display(description=_("stations"), ordering="n_stations")
    def station_count(self, obj):
        return filtered_list_link("stations_station", "sub_operators", obj.pk, obj.n_stations)

    @admin.display(description=_("departments"), ordering="n_departments")
    def department_count(self, obj):
        return obj.n_departments


class DepartmentForm(forms.ModelForm):
    class Meta:
        model = Department
        fields = ("operator", "parent", "name", "sub_operator")

    def clean(self):
        data = super().clean()
        department = self.instance
        if data.get("operator"):
            department.operator = data["operator"]
        problems = department_problems(
            department=department, parent=data.get("parent"), sub_operator=data.get("sub_operator")
        )
        if problems:
            raise ValidationError(problems)
        return data


@admin.register(Department)
class DepartmentAdmin(OperatorInitialMixin, ExportCsvMixin, HideableScopedAdmin):
    form = DepartmentForm
    list_display = (
        "name",
        "parent",
        "sub_operator",
        "station_count",
        "vehicle_count",
        "card_count",
    )
    list_filter = ("sub_operator", "parent")
    search_fields = ("name", "parent__name")
    list_select_related = ("parent", "sub_operator")
    actions = ["hide_selected", "restore_selected", "export_csv"]
    export_fields = [
        (_("name"), "name"),
        (_("parent department"), "parent.name"),
        (_("sub-operator"), "sub_operator.name"),
        (_("stations"), "n_stations"),
        (_("vehicles"), "n_vehicles"),
        (_("cards"), "n_cards"),
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_stations=_visible_station_count(self.model, request.user, "stations"),
                n_vehicles=Count(
                    "vehicles", filter=Q(vehicles__hidden_at__isnull=True), distinct=True
                ),
                n_cards=Count("cards", filter=Q(cards__hidden_at__isnull=True), distinct=True),
            )
        )

    @admin.display(description=_("stations"), ordering="n_stations")
    def station_count(self, obj):
        return filtered_list_link("stations_station", "departments", obj.pk, obj.n_stations)

    @admin.display(description=_("vehicles"), ordering="n_vehicles")
    def vehicle_count(self, obj):
        return filtered_list_link("orgs_vehicle", "department", obj.pk, obj.n_vehicles)

    @admin.display(description=_("cards"), ordering="n_cards")
    def card_count(self, obj):
        return obj.n_cards


class StaffScopeForm(forms.ModelForm):
    def clean(self):
        data = super().clean()
        probe = Staff(
            operator=data.get("operator", self.instance.operator if self.instance.pk else None),
            sub_operator=data.get("sub_operator"),
            role=data.get("role", ""),
        )
        try:
            staff_check_scope(staff=probe)
        except DomainError as exc:
            raise ValidationError(str(exc)) from None
        return data


@admin.register(Staff)
class StaffAdmin(OperatorInitialMixin, ScopedAdminMixin, UserAdmin):
    list_display = ("username", "role", "operator", "sub_operator", "is_active", "last_login")
    list_filter = ("role", "is_active", "sub_operator")
    search_fields = ("username", "first_name", "last_name", "email")
    list_select_related = ("operator", "sub_operator")
    scope_fieldset = (_("role and scope"), {"fields": ("role", "operator", "sub_operator")})

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form = type("StaffAdminForm", (StaffScopeForm, form), {})
        if not request.user.is_superuser and "operator" in form.base_fields:
            # An account without operator would see nothing; only superusers make those.
            form.base_fields["operator"].required = True
        return form

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return (
                (None, {"fields": ("username", "usable_password", "password1", "password2")}),
                self.scope_fieldset,
                (_("status"), {"fields": ("is_active", "is_staff")}),
            )
        status = ("is_active", "is_staff")
        if request.user.is_superuser:
            status = (*status, "is_superuser", "groups", "user_permissions")
        return (
            (None, {"fields": ("username", "password")}),
            (_("personal info"), {"fields": ("first_name", "last_name", "email")}),
            self.scope_fieldset,
            (_("status"), {"fields": status}),
            (_("dates"), {"fields": ("last_login", "date_joined")}),
        )

    def get_readonly_fields(self, request, obj=None):
        return ("last_login", "date_joined")

    def has_delete_permission(self, request, obj=None):
        # Accounts are deactivated (is_active off), never deleted: the audit log names them.
        return False

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        staff_assign_role(staff=form.instance, actor=request.user)


class FiledInDepartmentMixin:
    """Members, vehicles and cards. Sub-operator staff see some through charges at their
    stations, but file and change only rows in a department of their own sub-operator
    (`selectors.departments_to_file_in`): a vehicle filed elsewhere would be "added" and
    then vanish from their list, and another fleet's vehicle is not theirs to edit."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "department":
            kwargs["queryset"] = selectors.departments_to_file_in(request.user)
            if request.user.sub_operator_id:
                kwargs["required"] = True
                kwargs["help_text"] = _(
                    "One of your sub-operator's departments: rows outside them are not in "
                    "your lists. None to choose? Ask the operator to bind a department to "
                    "your sub-operator."
                )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        sub_operator_id = request.user.sub_operator_id
        if obj is None or sub_operator_id is None:
            return True
        return obj.department is not None and obj.department.sub_operator_id == sub_operator_id


class MemberForm(forms.ModelForm):
    class Meta:
        model = Member
        fields = (
            "operator",
            "phone",
            "wechat_openid",
            "nickname",
            "status",
            "department",
            "expires_at",
        )


@admin.register(Member)
class MemberAdmin(
    FiledInDepartmentMixin, OperatorInitialMixin, ExportCsvMixin, HideableScopedAdmin
):
    form = MemberForm
    list_display = (
        "__str__",
        "phone",
        "wechat_openid",
        "status",
        "department",
        "expires_at",
        "is_virtual",
        "created_at",
    )
    list_filter = ("status", "is_virtual", "department")
    search_fields = ("phone", "wechat_openid", "nickname", "token")
    list_select_related = ("department",)
    readonly_fields = ("token", "is_virtual", "created_at")
    actions = ["hide_selected", "restore_selected", "export_csv"]
    export_fields = [
        (_("nickname"), "nickname"),
        (_("mobile number"), "phone"),
        (_("WeChat openid"), "wechat_openid"),
        (_("status"), "status"),
        (_("department"), "department.name"),
    ]

    def save_model(self, request, obj, form, change):
        if not obj.token:
            obj.token = member_token_new()
        super().save_model(request, obj, form, change)


@admin.register(Vehicle)
class VehicleAdmin(
    FiledInDepartmentMixin, OperatorInitialMixin, ExportCsvMixin, HideableScopedAdmin
):
    list_display = ("plate", "vin", "department", "member")
    list_filter = ("department",)
    search_fields = ("plate", "vin")
    list_select_related = ("department", "member")
    actions = ["hide_selected", "restore_selected", "export_csv"]
    export_fields = [
        (_("plate"), "plate"),
        (_("VIN"), "vin"),
        (_("department"), "department.name"),
    ]


@admin.register(Card)
class CardAdmin(FiledInDepartmentMixin, OperatorInitialMixin, ExportCsvMixin, HideableScopedAdmin):
    list_display = ("number", "member", "vehicle", "department", "status", "expires_at")
    list_filter = ("status", "department")
    search_fields = ("number", "member__nickname", "vehicle__plate")
    list_select_related = ("member", "vehicle", "department")
    actions = ["hide_selected", "restore_selected", "export_csv"]
    export_fields = [
        (_("card number"), "number"),
        (_("member account"), "member.nickname"),
        (_("plate"), "vehicle.plate"),
        (_("department"), "department.name"),
        (_("status"), "status"),
    ]


def _switch_partnerships(model_admin, request, pairs, *, enabled: bool) -> None:
    """Switch each (partner, operator) pair on or off and tell the user which partners."""
    names = []
    for partner, operator in pairs:
        partner_access_set(partner=partner, operator=operator, enabled=enabled, actor=request.user)
        names.append(str(partner))
    if enabled:
        text = _("Switched on: %(names)s. Takes effect at once.")
    else:
        text = _("Switched off: %(names)s. Their calls are refused from now on.")
    model_admin.message_user(request, text % {"names": ", ".join(names)}, messages.SUCCESS)


@admin.register(Partner)
class PartnerAdmin(SuperuserEditsMixin, ScopedModelAdmin):
    list_display = ("name", "code", "kind", "enabled_for_me")
    list_filter = ("kind",)
    search_fields = ("name", "code")

    actions = ["switch_on_for_me", "switch_off_for_me"]

    def has_switch_permission(self, request):
        return bool(request.user.operator_id) and request.user.has_perm("orgs.change_partneraccess")

    def _switch(self, request, queryset, enabled: bool):
        operator = request.user.operator
        _switch_partnerships(
            self, request, [(partner, operator) for partner in queryset], enabled=enabled
        )

    @admin.action(permissions=["switch"], description=_("Switch on for my operator"))
    def switch_on_for_me(self, request, queryset):
        self._switch(request, queryset, True)

    @admin.action(permissions=["switch"], description=_("Switch off for my operator"))
    def switch_off_for_me(self, request, queryset):
        self._switch(request, queryset, False)

    def get_queryset(self, request):
        mine = PartnerAccess.objects.filter(
            partner=OuterRef("pk"), operator_id=request.user.operator_id, enabled=True
        )
        return super().get_queryset(request).annotate(on_for_me=Exists(mine))

    @admin.display(description=_("enabled for my operator"), boolean=True)
    def enabled_for_me(self, obj):
        return obj.on_for_me


@admin.register(PartnerAccess)
class PartnerAccessAdmin(ScopedModelAdmin):
    """The partnership switch: flipped only by the audited on/off actions."""

    list_display = ("partner", "operator", "enabled", "changed_at")
    list_filter = ("enabled", "partner")
    list_select_related = ("partner", "operator")
    readonly_fields = ("partner", "operator", "enabled", "changed_at")
    actions = ["switch_on", "switch_off"]

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else ("changed_at",)

    def _switch(self, request, queryset, enabled: bool):
        pairs = [
            (access.partner, access.operator)
            for access in queryset.select_related("partner", "operator")
        ]
        _switch_partnerships(self, request, pairs, enabled=enabled)

    @admin.action(permissions=["change"], description=_("Switch selected partnerships on"))
    def switch_on(self, request, queryset):
        self._switch(request, queryset, True)

    @admin.action(permissions=["change"], description=_("Switch selected partnerships off"))
    def switch_off(self, request, queryset):
        self._switch(request, queryset, False)
