"""The back office's shared machinery, and the audit-log view.

`ScopedAdminMixin` makes a ModelAdmin (or inline) go through the visibility selectors for
everything it shows: its changelist and detail rows, every FK / M2M dropdown and every
related-field list filter. Each app registers the selector of its models with
`register_scope`; a related model without one shows nothing to non-superusers (fail
closed). Objects outside the scope answer 404, exactly like objects that do not exist.

`HideableAdminMixin` replaces "delete" on models that money or charge records hang on by
audited hide / restore actions with visible feedback.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from decimal import Decimal

from django.contrib import admin, messages
from django.contrib.admin.filters import RelatedFieldListFilter, SimpleListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import DataError, transaction
from django.db.models import Model, QuerySet
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from chargenet import audit, events
from chargenet.login import ThrottledAdminAuthenticationForm
from chargenet.models import AuditLog, Hideable, OutboxEvent, audit_action_label
from chargenet.templatetags.local_time import local_json

admin.site.login_form = ThrottledAdminAuthenticationForm
admin.site.site_header = _("chargenet")
admin.site.site_title = _("chargenet")
admin.site.index_title = _("Back office")
# The home page is the dashboard (reports/templates/admin/dashboard.html).
admin.site.index_template = "admin/dashboard.html"

Selector = Callable[[object], QuerySet]
SCOPES: dict[type[Model], Selector] = {}


def register_scope(model: type[Model], selector: Selector) -> None:
    """Declare the visibility rule of ``model`` for the back office."""
    SCOPES[model] = selector


def scoped(model: type[Model], user) -> QuerySet:
    """Rows of ``model`` that ``user`` may see in the back office."""
    selector = SCOPES.get(model)
    if selector is not None:
        return selector(user)
    if getattr(user, "is_superuser", False) and user.is_active:
        return model._default_manager.all()
    return model._default_manager.none()


class ScopedRelatedFieldListFilter(RelatedFieldListFilter):
    """A related-field filter whose choices are only the rows the user may see."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        visible = scoped(field.related_model, request.user).values("pk")
        return field.get_choices(
            include_blank=False, limit_choices_to={"pk__in": visible}, ordering=ordering
        )


class CheckedChangeList(ChangeList):
    """A changelist whose hand-typed URL filters it cannot use (``?total__gt=abc``, or
    ``?fault_codes__contains=abc`` which only the database rejects) go the admin's
    invalid-lookup way (a redirect to ``?e=1``) with a message saying so, never a 500."""

    def get_queryset(self, request, exclude_parameters=None):
        try:
            return super().get_queryset(request, exclude_parameters)
        except IncorrectLookupParameters:
            self._refuse(request)
            raise

    def get_results(self, request):
        if not self.get_filters_params():
            return super().get_results(request)  # no URL filter: nothing to reject
        try:
            with transaction.atomic():  # a savepoint: the failed query leaves no broken txn
                super().get_results(request)
        except DataError as exc:
            self._refuse(request)
            raise IncorrectLookupParameters(exc) from exc

    def _refuse(self, request) -> None:
        messages.error(
            request,
            _("The list cannot be filtered by “%(params)s”; showing the list without it.")
            % {"params": "&".join(f"{k}={v}" for k, v in request.GET.items())},
        )


class ScopedAdminMixin:
    """Route an admin (ModelAdmin or inline) through the scope selectors."""

    def get_changelist(self, request, **kwargs):
        return CheckedChangeList

    def get_queryset(self, request):
        if isinstance(self, admin.options.InlineModelAdmin):
            # An inline's rows hang from a parent the user was already allowed to open.
            return super().get_queryset(request)
        qs = scoped(self.model, request.user)
        ordering = self.get_ordering(request)
        if ordering:
            qs = qs.order_by(*ordering)
        return qs

    def get_object(self, request, object_id, from_field=None):
        # "Not yours" and "does not exist" give the same answer: 404.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(_("Not found."))
        return obj

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", scoped(db_field.related_model, request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", scoped(db_field.related_model, request.user))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # Never copied into the audit log.
    audit_secret_fields = frozenset(
        {
            "password",
            "password1",
            "password2",
            "usable_password",
            "credential_hash",
            "new_credential",
        }
    )

    # Admins whose saves go through services (which audit) turn this off.
    audit_saves = True

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not self.audit_saves:
            return
        fields = [f for f in form.changed_data if f not in self.audit_secret_fields]
        if fields or not change:
            audit.audit_record(
                actor=request.user,
                action=f"{obj._meta.model_name}_{'change' if change else 'add'}",
                obj=obj,
                before={f: _plain(form.initial.get(f)) for f in fields} if change else None,
                after={f: _plain(form.cleaned_data.get(f)) for f in fields},
            )

    def save_formset(self, request, form, formset, change):
        doomed = [
            (f.instance, audit.snapshot(f.instance))
            for f in getattr(formset, "deleted_forms", [])
            if f.instance.pk
        ]
        super().save_formset(request, form, formset, change)
        # Inline rows (opening hours, connectors) are data changes too.
        for obj in formset.new_objects:
            audit.audit_record(
                actor=request.user,
                action=f"{obj._meta.model_name}_add",
                obj=obj,
                after=audit.snapshot(obj),
            )
        for obj, fields in formset.changed_objects:
            audit.audit_record(
                actor=request.user,
                action=f"{obj._meta.model_name}_change",
                obj=obj,
                after=audit.snapshot(obj, [obj._meta.get_field(f).attname for f in fields]),
            )
        for obj, before in doomed:
            obj.pk = before["id"]  # deleted rows lose their pk; the log keeps it
            audit.audit_record(
                actor=request.user,
                action=f"{obj._meta.model_name}_delete",
                obj=obj,
                before=before,
            )

    def get_list_filter(self, request):
        filters = []
        for item in super().get_list_filter(request):
            if isinstance(item, str) and "__" not in item:
                field = self.model._meta.get_field(item)
                if field.is_relation:
                    item = (item, ScopedRelatedFieldListFilter)
            filters.append(item)
        return filters


def _plain(value):
    """Form values as audit data: rows and row lists become primary keys."""
    if isinstance(value, Model):
        return value.pk
    if isinstance(value, QuerySet | list | tuple):
        return [_plain(v) for v in value]
    return value


class OperatorInitialMixin:
    """New rows start with the staff member's operator (the only one it may pick)."""

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if request.user.operator_id:
            initial.setdefault("operator", request.user.operator_id)
        return initial


class ReadOnlyAdminMixin:
    """No add, change or delete: for records only the system writes (logs, journals)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def filtered_list_link(changelist: str, lookup: str, pk: int, text) -> str:
    """``text`` (a count) linking to the ``changelist`` ("app_model") filtered to the rows
    whose ``lookup`` relation is ``pk``: the rows behind the count."""
    url = reverse(f"admin:{changelist}_changelist") + f"?{lookup}__id__exact={pk}"
    return format_html('<a href="{}">{}</a>', url, text)


class ValueFilter(SimpleListFilter):
    """A list filter that keeps the rows whose ``lookup`` equals the chosen value.
    Subclasses set ``title``, ``parameter_name``, ``lookup`` and ``lookups()``."""

    lookup: str

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.lookup: self.value()})
        return queryset


def distinct_choices(queryset: QuerySet, field: str) -> list[tuple]:
    """Each distinct value of ``field`` in ``queryset``, in order, as its own label."""
    values = queryset.order_by(field).values_list(field, flat=True).distinct()
    return [(v, v) for v in values]


class HiddenStateFilter(SimpleListFilter):
    """Shows visible rows unless staff ask for hidden ones (or all)."""

    title = _("visibility")
    parameter_name = "hidden"

    def lookups(self, request, model_admin):
        return [("no", _("visible")), ("yes", _("hidden")), ("all", _("all"))]

    def choices(self, changelist):
        value = self.value() or "no"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "no"
        if value == "no":
            return queryset.filter(hidden_at__isnull=True)
        if value == "yes":
            return queryset.filter(hidden_at__isnull=False)
        return queryset


class HideableAdminMixin:
    """No real delete; audited hide / restore actions instead. Override `hide_object` /
    `restore_object` when hiding has more to do (a station's bindings)."""

    hide_readonly_fields = ("hidden_at", "hidden_by", "hidden_reason")

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), *self.hide_readonly_fields)

    def get_list_filter(self, request):
        return [HiddenStateFilter, *super().get_list_filter(request)]

    def hide_object(self, request, obj) -> None:
        audit.hide(obj=obj, actor=request.user, reason=str(_("hidden in the back office")))

    def restore_object(self, request, obj) -> None:
        audit.restore(obj=obj, actor=request.user, reason=str(_("restored in the back office")))

    @admin.action(permissions=["change"], description=_("Hide selected (reversible, audited)"))
    def hide_selected(self, request, queryset):
        selected = list(queryset)
        rows = [obj for obj in selected if obj.hidden_at is None]
        for obj in rows:
            self.hide_object(request, obj)
        self._feedback(request, len(rows), len(selected) - len(rows), hidden=True)

    @admin.action(permissions=["change"], description=_("Restore selected"))
    def restore_selected(self, request, queryset):
        selected = list(queryset)
        rows = [obj for obj in selected if obj.hidden_at is not None]
        for obj in rows:
            self.restore_object(request, obj)
        self._feedback(request, len(rows), len(selected) - len(rows), hidden=False)

    def _feedback(self, request, done: int, skipped: int, *, hidden: bool) -> None:
        meta = self.model._meta
        name = meta.verbose_name if done == 1 else meta.verbose_name_plural
        if hidden:
            text = ngettext("Hid %(n)d %(name)s.", "Hid %(n)d %(name)s.", done)
        else:
            text = ngettext("Restored %(n)d %(name)s.", "Restored %(n)d %(name)s.", done)
        self.message_user(request, text % {"n": done, "name": name}, messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(n)d row was already in that state and was left alone.",
                    "%(n)d rows were already in that state and were left alone.",
                    skipped,
                )
                % {"n": skipped},
                messages.WARNING,
            )

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class ExportCsvMixin:
    """An "export selected as CSV" action over the (scoped) changelist selection.
    `export_fields` lists (header, attribute or callable) pairs."""

    export_fields: list[tuple[str, str | Callable]] = []

    @admin.action(permissions=["view"], description=_("Export selected as CSV"))
    def export_csv(self, request, queryset):
        name = self.model._meta.model_name
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
        response.write("\ufeff")  # Excel opens UTF-8 CSV with a BOM correctly
        writer = csv.writer(response)
        writer.writerow([str(header) for header, _ in self.export_fields])
        for obj in queryset:
            writer.writerow(
                [
                    csv_cell(accessor(obj) if callable(accessor) else _dotted(obj, accessor))
                    for _, accessor in self.export_fields
                ]
            )
        return response


# Excel / CSV exports of whole changelists. The exports app (`reports.exports`, above the
# kernel) registers the handler that writes them; the kernel only offers the buttons.
ChangelistExport = Callable[..., HttpResponse]
_CHANGELIST_EXPORT: list[ChangelistExport] = []


def changelist_export_register(handler: ChangelistExport) -> None:
    """``handler(request, *, model_admin, slug, fmt)`` answers a list's export button."""
    _CHANGELIST_EXPORT[:] = [handler]


class ChangelistExportMixin:
    """ "Export Excel" / "Export CSV" buttons on a changelist: every row the list shows
    with its current filters, search and date drill-down — its own scoped queryset, all
    pages — written by the handler registered for ``export_slug``."""

    export_slug: str
    change_list_template = "admin/change_list_export.html"

    def get_urls(self):
        info = (self.model._meta.app_label, self.model._meta.model_name)
        return [
            path(
                "export/<str:fmt>/",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            *super().get_urls(),
        ]

    def export_view(self, request, fmt: str):
        if not self.has_view_permission(request) or not _CHANGELIST_EXPORT:
            raise Http404(_("Not found."))
        return _CHANGELIST_EXPORT[0](request, model_admin=self, slug=self.export_slug, fmt=fmt)


# Back-office pages that are no model's list (the live-sessions screen): a section of their
# own on the index and in the sidebar, for staff holding the page's permission.
_PAGES: list[dict] = []


def admin_page_register(*, title, url_name: str, permission: str) -> None:
    """Show the page ``url_name`` (an admin view) on the back office's index."""
    _PAGES[:] = [p for p in _PAGES if p["url_name"] != url_name]
    _PAGES.append({"title": title, "url_name": url_name, "permission": permission})


_model_app_list = admin.site.get_app_list


def _app_list_with_pages(request, app_label=None):
    app_list = _model_app_list(request, app_label)
    pages = [p for p in _PAGES if request.user.has_perm(p["permission"])]
    if app_label is None and pages:
        models = [
            {
                "name": page["title"],
                "object_name": page["url_name"],
                "admin_url": reverse(page["url_name"]),
                "add_url": None,
                "view_only": True,
                "perms": {"view": True},
            }
            for page in pages
        ]
        first = models[0]["admin_url"]
        section = {"name": _("monitoring"), "app_label": "pages", "app_url": first}
        app_list.insert(0, {**section, "has_module_perms": True, "models": models})
    return app_list


admin.site.get_app_list = _app_list_with_pages


# A spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(...)).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """``value`` as a CSV cell a spreadsheet shows as text: a leading ' before text that
    would start a formula (OWASP CSV injection). Numbers stay numbers (-1.50 is a refund,
    not a formula)."""
    if value is None or isinstance(value, int | float | Decimal):
        return value
    text = str(value)  # rows (a station's name) and lazy strings too
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _dotted(obj, path: str):
    """The value at ``path`` as people read it: a field with choices gives its label (in
    the staff member's language), not its stored code."""
    *parents, last = path.split(".")
    for part in parents:
        obj = getattr(obj, part, None)
        if obj is None:
            return ""
    display = getattr(obj, f"get_{last}_display", None)
    value = display() if callable(display) else getattr(obj, last, None)
    return "" if value is None else value


class ScopedModelAdmin(ScopedAdminMixin, admin.ModelAdmin):
    pass


class HideableScopedAdmin(HideableAdminMixin, ScopedAdminMixin, admin.ModelAdmin):
    actions = ["hide_selected", "restore_selected"]


# The audit log's scope is registered by orgs (it knows operators and staff roles).


class ActorFilter(ValueFilter):
    title = _("actor")
    parameter_name = "actor"
    lookup = "actor_id"

    def lookups(self, request, model_admin):
        staff = scoped(get_user_model(), request.user)
        return [(str(s.pk), s.get_username()) for s in staff]


class ActionFilter(ValueFilter):
    title = _("action")
    parameter_name = "action"
    lookup = "action"

    def lookups(self, request, model_admin):
        rows = model_admin.get_queryset(request).order_by("action", "content_type_id")
        pairs = rows.values_list("action", "content_type_id").distinct()
        labels = {}
        for action, ct in pairs:  # content types come from ContentType's own cache
            kind = ContentType.objects.get_for_id(ct) if ct else None
            labels.setdefault(action, audit_action_label(action, kind))
        return list(labels.items())


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    """Read-only: the audit log is append-only; rows are written by services."""

    list_display = ("at", "actor", "action_label", "content_type", "object_repr", "reason")
    list_filter = (ActionFilter, ActorFilter, ("at", admin.DateFieldListFilter))
    date_hierarchy = "at"
    search_fields = ("object_repr", "object_id", "reason")
    list_select_related = ("actor", "content_type")
    readonly_fields = (
        "at",
        "actor",
        "operator",
        "action_label",
        "content_type",
        "object_id",
        "object_repr",
        "before_shown",
        "after_shown",
        "reason",
    )
    fields = readonly_fields

    @admin.display(description=_("before"))
    def before_shown(self, entry: AuditLog) -> str:
        return format_html("<pre>{}</pre>", local_json(entry.before))

    @admin.display(description=_("after"))
    def after_shown(self, entry: AuditLog) -> str:
        return format_html("<pre>{}</pre>", local_json(entry.after))

    @admin.display(description=_("action"), ordering="action")
    def action_label(self, entry: AuditLog) -> str:
        return entry.action_label()


class EventStateFilter(SimpleListFilter):
    title = _("delivery")
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [
            ("due", _("due")),
            ("stuck", _("given up (needs a person)")),
            ("delivered", _("delivered")),
        ]

    def queryset(self, request, queryset):
        due = queryset.filter(delivered_at__isnull=True)
        if self.value() == "due":
            return due.filter(attempts__lt=events.MAX_ATTEMPTS)
        if self.value() == "stuck":
            return due.filter(attempts__gte=events.MAX_ATTEMPTS)
        if self.value() == "delivered":
            return queryset.filter(delivered_at__isnull=False)
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The platform's domain events: for the operator of the platform (superusers), to see
    a consumer that keeps failing and deliver its events again once it is fixed."""

    list_display = ("id", "kind", "key", "created_at", "delivered_at", "attempts", "taken_by")
    list_filter = (EventStateFilter, "kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("=key", "kind")
    readonly_fields = ("kind", "key", "payload", "created_at", "delivered_at", "attempts")
    fields = readonly_fields
    actions = ["deliver_again"]

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("deliveries")

    @admin.display(description=_("taken by"))
    def taken_by(self, obj: OutboxEvent) -> str:
        return ", ".join(sorted(d.consumer for d in obj.deliveries.all())) or "-"

    @admin.action(description=_("Deliver the selected events again"))
    def deliver_again(self, request, queryset):
        due = [e.pk for e in queryset if e.delivered_at is None]
        delivered = events.events_retry(event_ids=due)
        self.message_user(
            request,
            _("%(delivered)s of %(due)s due events delivered; the others are still due.")
            % {"delivered": delivered, "due": len(due)},
            messages.SUCCESS if delivered == len(due) else messages.WARNING,
        )


__all__ = [
    "ChangelistExportMixin",
    "ExportCsvMixin",
    "Hideable",
    "HideableAdminMixin",
    "HideableScopedAdmin",
    "OperatorInitialMixin",
    "ReadOnlyAdminMixin",
    "ScopedAdminMixin",
    "ScopedModelAdmin",
    "ValueFilter",
    "admin_page_register",
    "changelist_export_register",
    "distinct_choices",
    "filtered_list_link",
    "register_scope",
    "scoped",
]
