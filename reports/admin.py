"""The report pages (admin views under 报表) and the service-fee share rates.

A report page is the report's table for the signed-in staff member under the filters in
the query string, with its totals, a chart where it helps, and links that export the same
table (`reports.exports.admin.export_response`). Whoever may view bills may view reports:
each is a sum of the bills the staff member sees (`reports.selectors`).
"""

from __future__ import annotations

import datetime as dt
from functools import partial

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, QueryDict
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.admin import ReadOnlyAdminMixin, ScopedModelAdmin, register_scope
from chargenet.errors import DomainError
from faults.codes import FaultCode
from orgs.models import Role
from orgs.selectors import sub_operators_visible_to

from .exports.admin import export_response
from .exports.registry import tabular_register
from .filters import ReportFilterForm
from .models import BillDay, ServiceFeeShare
from .selectors import bill_days_visible_to, fee_shares_visible_to
from .services.shares import fee_share_set
from .tables import REPORTS
from .tables.base import PAGE_ROWS
from .tables.faults import DEFAULT_GROUPS, DIMENSIONS
from .templatetags.reports_tags import numeric, rows_html, shown_cells

register_scope(ServiceFeeShare, fee_shares_visible_to)
register_scope(BillDay, bill_days_visible_to)

EXPORT_FORMATS = ("xlsx", "csv")


def may_view_reports(user) -> bool:
    return user.is_active and user.has_perm("billing.view_bill")


def report_page_context(request, report_class) -> dict:
    """The report for ``request.user`` under the query string's filters (or the form's
    errors), for the page and the export alike."""
    data = request.GET.copy()
    if not data.get("date_from") and not data.get("date_to"):
        # The page shows the days it covers: this month so far by default.
        today = timezone.localdate()
        data["date_from"], data["date_to"] = str(today.replace(day=1)), str(today)
    form = ReportFilterForm(
        data,
        staff=request.user,
        honoured=report_class.honoured,
        channel_choices=report_class.channel_choices,
    )
    extra = {}
    if report_class.slug == "faults":
        extra["group_by"] = [g for g in data.getlist("group_by") if g in DIMENSIONS]
        code = data.get("code", "")
        extra["code"] = int(code) if code.isdigit() and int(code) in FaultCode.values else None
    report = (
        report_class(staff=request.user, filters=form.filters(**extra)) if form.is_valid() else None
    )
    return {"form": form, "report": report, "extra": extra}


def report_from_query(report_class, *, staff, filters: dict):
    """The report an export job asked for, built again by a worker: ``filters`` is the
    report's ``filter_values`` (its days fixed), validated again in ``staff``'s scope."""
    request = HttpRequest()
    request.user = staff
    request.GET = QueryDict(mutable=True)
    for name, values in filters.items():
        request.GET.setlist(name, values)
    context = report_page_context(request, report_class)
    if context["report"] is None:
        raise ValueError(f"{report_class.slug}: filters no longer valid: {context['form'].errors}")
    return context["report"]


for _slug, _report_class in REPORTS.items():
    tabular_register(_slug, partial(report_from_query, _report_class))


class ReportsAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    """报表: the list of reports above the daily rollup rows they sum (read-only, scoped),
    and each report's page."""

    change_list_template = "admin/reports/billday_change_list.html"
    list_display = ("day", "station", "sub_operator", "department", "channel", "firmware",
                    "sessions", "energy_wh", "total")  # fmt: skip
    list_select_related = ("station", "sub_operator", "department")
    list_filter = ("channel",)
    date_hierarchy = "day"
    ordering = ("-day", "station")

    def has_module_permission(self, request):
        return may_view_reports(request.user)

    def has_view_permission(self, request, obj=None):
        return may_view_reports(request.user)

    def get_urls(self):
        report = path(
            "<slug:slug>/", self.admin_site.admin_view(self.report_view), name="reports_report"
        )
        return [report, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        reports = [
            (r.title, reverse("admin:reports_report", args=[slug])) for slug, r in REPORTS.items()
        ]
        return super().changelist_view(request, {**(extra_context or {}), "reports": reports})

    def report_view(self, request, slug: str):
        if not may_view_reports(request.user):
            raise PermissionDenied
        report_class = REPORTS.get(slug)
        if report_class is None:
            raise Http404(_("Not found."))
        context = report_page_context(request, report_class)
        report = context["report"]
        if report is not None and request.GET.get("export") in EXPORT_FORMATS:
            return export_response(request, report, fmt=request.GET["export"])
        rows = report.page_rows(PAGE_ROWS + 1) if report is not None else []
        more = len(rows) > PAGE_ROWS
        rows = rows[:PAGE_ROWS]
        columns = report.columns if report else []
        totals = report.totals() if report else None
        query = request.GET.copy()
        query.pop("export", None)
        context.update(
            self.admin_site.each_context(request),
            title=report_class.title,
            opts=self.model._meta,
            rows=rows,
            cells=(cells := [shown_cells(row, columns) for row in rows]),
            rows_html=rows_html(cells),
            more=more,
            page_rows=PAGE_ROWS,
            totals=totals,
            total_cells=shown_cells(totals, columns) if totals else None,
            chart=report.chart() if report else None,
            columns=[(c, numeric(c.kind)) for c in columns],
            query=query.urlencode(),
            dimensions=[(g, DIMENSIONS[g][1].title) for g in DEFAULT_GROUPS],
            october_2019=_october_2019(),
        )
        return TemplateResponse(request, "admin/reports/report.html", context)


def _october_2019() -> dict:
    """The operator's own fault analysis of 2019-10, one click each (by channel, by firmware)."""
    first, last = dt.date(2019, 10, 1), dt.date(2019, 10, 31)
    base = f"date_from={first}&date_to={last}&group_by="
    return {"channel": base + "channel", "firmware": base + "firmware"}


admin.site.register(BillDay, ReportsAdmin)


@admin.register(ServiceFeeShare)
class ServiceFeeShareAdmin(ScopedModelAdmin):
    """Versions of each sub-operator's share of the service fee (结算单); a version is never
    edited: a new rate is a new version from a day on."""

    list_display = ("sub_operator", "rate_shown", "effective_from", "created_by", "created_at")
    list_filter = ("sub_operator",)
    fields = ("sub_operator", "rate", "effective_from")
    ordering = ("sub_operator", "-effective_from")

    def _operator_admin(self, request) -> bool:
        user = request.user
        return user.is_active and (
            user.is_superuser or (user.role == Role.OPERATOR_ADMIN and user.sub_operator_id is None)
        )

    def has_module_permission(self, request):
        return may_view_reports(request.user)

    def has_view_permission(self, request, obj=None):
        return may_view_reports(request.user)

    def has_add_permission(self, request):
        return self._operator_admin(request)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "sub_operator":
            kwargs["queryset"] = sub_operators_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description=_("share of the service fee"), ordering="rate")
    def rate_shown(self, share: ServiceFeeShare) -> str:
        return f"{share.rate * 100:.2f}%"

    def save_model(self, request, obj, form, change):
        try:
            created = fee_share_set(
                sub_operator=obj.sub_operator,
                rate=obj.rate,
                effective_from=obj.effective_from,
                acting_user=request.user,
            )
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
            raise PermissionDenied(str(error)) from error
        obj.pk = created.pk
