"""Back office for billing: tariff editor, station prices today, bills, wallets.

Every list and page goes through the selectors of `billing.selectors` (scope), every
change through a service of `billing.services` (rules, audit); a `DomainError` from a
service is shown on the form, a success as a message, so every click gets feedback.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from chargenet.admin import ChangelistExportMixin, ScopedModelAdmin, register_scope
from chargenet.errors import DomainError
from chargenet.money import kwh_shown
from chargenet.templatetags.local_time import local_json
from orgs.models import Operator
from stations.selectors import piles_visible_to, stations_visible_to

from .charts import PERIOD_COLOURS, legend, meter_chart, schedule_bar
from .forms import StationTariffForm, TariffVersionForm, WalletAdjustForm
from .models import (
    Bill,
    BillLine,
    ChargingSession,
    LedgerEntry,
    MeterSample,
    OrphanStop,
    PaymentState,
    Period,
    SessionTransition,
    StationTariff,
    TariffPlan,
    TariffPrice,
    TariffVersion,
    Wallet,
)
from .pricing import PricingError, period_segments
from .selectors import (
    bill_not_priced,
    bill_samples,
    bills_visible_to,
    sessions_visible_to,
    station_prices_today,
    station_tariffs_visible_to,
    tariff_plans_visible_to,
    tariff_specs_for,
    wallets_visible_to,
)
from .services.tariffs import (
    station_tariff_assign,
    tariff_plan_create,
    tariff_version_create,
    tariff_version_update,
)
from .services.wallet import wallet_adjust

# One visibility rule per model (see `chargenet.admin.ScopedAdminMixin`): changelists,
# detail pages, FK dropdowns and related filters pointing at these models all use it.
register_scope(ChargingSession, sessions_visible_to)
register_scope(Bill, bills_visible_to)
register_scope(Wallet, wallets_visible_to)
register_scope(TariffPlan, tariff_plans_visible_to)
register_scope(StationTariff, station_tariffs_visible_to)
register_scope(
    TariffVersion,
    lambda user: TariffVersion.objects.filter(plan__in=tariff_plans_visible_to(user).values("pk")),
)
register_scope(
    TariffPrice,
    lambda user: TariffPrice.objects.filter(
        version__plan__in=tariff_plans_visible_to(user).values("pk")
    ),
)
for _session_row in (MeterSample, SessionTransition):
    register_scope(
        _session_row,
        lambda user, model=_session_row: model.objects.filter(
            session__in=sessions_visible_to(user).values("pk")
        ),
    )
register_scope(
    BillLine, lambda user: BillLine.objects.filter(bill__in=bills_visible_to(user).values("pk"))
)
register_scope(
    LedgerEntry,
    lambda user: LedgerEntry.objects.filter(wallet__in=wallets_visible_to(user).values("pk")),
)
register_scope(
    OrphanStop,
    lambda user: OrphanStop.objects.filter(pile__in=piles_visible_to(user).values("pk")),
)


def _operator_wide(user) -> bool:
    """Tariffs are the operator's business: sub-operator staff only look."""
    return user.is_superuser or (user.operator_id is not None and user.sub_operator_id is None)


class ServiceFormMixin:
    """Custom admin pages whose POST calls one service: the shared form page."""

    def service_form(self, request, form, *, title, submit_label, intro="", on_valid):
        """Render ``form``; on a valid POST call ``on_valid(form)`` (a service). A
        DomainError lands on the form; success redirects where ``on_valid`` says."""
        if request.method == "POST" and form.is_valid():
            try:
                redirect_to, message = on_valid(form)
            except DomainError as error:
                form.add_error(None, str(error))
                messages.error(request, str(error))
            else:
                messages.success(request, message)
                return HttpResponseRedirect(redirect_to)
        elif request.method == "POST":
            messages.error(request, _("Please correct the errors below."))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "intro": intro,
            "form": form,
            "plain_fields": form.plain_fields(),
            "submit_label": submit_label,
            "legend": legend(),
            "colours_json": json.dumps({str(k): v for k, v in PERIOD_COLOURS.items()}),
        }
        if isinstance(form, TariffVersionForm):
            context["schedule_fields"] = form.schedule_fields()
            context["price_rows"] = form.price_rows()
        return TemplateResponse(request, "admin/billing/service_form.html", context)


class BillingAdmin(ServiceFormMixin, ScopedModelAdmin):
    """Rows through the scope registered below; changes go through services (which
    audit), and nothing money hangs on is ever deleted."""

    audit_saves = False

    def has_delete_permission(self, request, obj=None):
        return False


# ---- tariffs ------------------------------------------------------------------------


@admin.register(TariffPlan)
class TariffPlanAdmin(BillingAdmin):
    list_display = ("name", "operator", "current_schedule", "station_count")
    search_fields = ("name",)
    fields = ("operator", "name")
    readonly_fields = ("versions_overview",)

    def get_fields(self, request, obj=None):
        return ("operator", "name", "versions_overview") if obj else ("operator", "name")

    def get_readonly_fields(self, request, obj=None):
        return ("operator", "name", "versions_overview") if obj else ()

    def has_add_permission(self, request):
        return super().has_add_permission(request) and _operator_wide(request.user)

    def save_model(self, request, obj, form, change):
        if change:  # a plan's versions change through the version editor only
            return
        plan = tariff_plan_create(
            operator=form.cleaned_data["operator"], name=obj.name, actor=request.user
        )
        obj.pk = plan.pk

    def get_queryset(self, request):
        # Today's schedule and the station count in the list's one query, not two per row.
        versions = TariffVersion.objects.filter(
            plan=OuterRef("pk"), effective_from__lte=timezone.now()
        ).order_by("-effective_from")
        stations = (
            StationTariff.objects.filter(plan=OuterRef("pk"))
            .order_by()
            .values("plan")
            .annotate(n=Count("station", distinct=True))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .select_related("operator")
            .annotate(
                schedule_today=Subquery(versions.values("schedule")[:1]),
                stations_n=Coalesce(Subquery(stations[:1]), 0),
            )
        )

    @admin.display(description=_("today's schedule"))
    def current_schedule(self, plan):
        return schedule_bar(plan.schedule_today or "")

    @admin.display(description=_("stations"))
    def station_count(self, plan):
        return plan.stations_n

    @admin.display(description=_("versions"))
    def versions_overview(self, plan):
        rows = []
        for version in plan.versions.prefetch_related("prices").order_by("-effective_from"):
            prices = {(p.current_type, p.period): p for p in version.prices.all()}
            grid = format_html_join(
                "",
                "<tr><th>{}</th><td>{} + {}</td><td>{} + {}</td></tr>",
                (
                    (
                        period.label,
                        prices[("AC", period.value)].electricity,
                        prices[("AC", period.value)].service,
                        prices[("DC", period.value)].electricity,
                        prices[("DC", period.value)].service,
                    )
                    for period in Period
                    if ("AC", period.value) in prices and ("DC", period.value) in prices
                ),
            )
            used = version.bill_lines.exists() or version.bills.exists()
            edit = (
                format_html("<em>{}</em>", _("used by bills: not editable"))
                if used
                else format_html(
                    '<a href="{}">{}</a>',
                    reverse("admin:billing_tariffversion_edit", args=[version.pk]),
                    _("edit (not billed yet)"),
                )
            )
            rows.append(
                format_html(
                    "<div style='margin-bottom:1em'><strong>{}</strong> {}<br>{}<table>"
                    "<tr><th></th><th>AC</th><th>DC</th></tr>{}</table></div>",
                    timezone.localtime(version.effective_from).strftime("%Y-%m-%d %H:%M"),
                    edit,
                    schedule_bar(version.schedule),
                    grid,
                )
            )
        add = format_html(
            '<p><a class="button" href="{}">{}</a></p>',
            reverse("admin:billing_tariffversion_new", args=[plan.pk]),
            _("New version (a price change)"),
        )
        return format_html(
            "{}{}{}", legend(), add, format_html_join("", "{}", ((r,) for r in rows))
        )

    def get_urls(self):
        return [
            path(
                "<int:plan_id>/new-version/",
                self.admin_site.admin_view(self.version_new_view),
                name="billing_tariffversion_new",
            ),
            path(
                "version/<int:version_id>/edit/",
                self.admin_site.admin_view(self.version_edit_view),
                name="billing_tariffversion_edit",
            ),
            *super().get_urls(),
        ]

    def _plan_for_change(self, request, plan_id):
        plan = get_object_or_404(self.get_queryset(request), pk=plan_id)
        if not (self.has_change_permission(request, plan) and _operator_wide(request.user)):
            raise Http404(_("Not found."))
        return plan

    def version_new_view(self, request, plan_id):
        plan = self._plan_for_change(request, plan_id)
        latest = plan.versions.prefetch_related("prices").order_by("effective_from").last()
        form = TariffVersionForm(
            request.POST or None, initial=TariffVersionForm.initial_from(latest)
        )

        def create(form):
            version = tariff_version_create(
                plan=plan,
                schedule=form.schedule(),
                prices=form.prices(),
                effective_from=form.cleaned_data.get("effective_from"),
                note=form.cleaned_data["note"],
                actor=request.user,
            )
            return (
                reverse("admin:billing_tariffplan_change", args=[plan.pk]),
                _("New version of %(plan)s effective from %(time)s saved.")
                % {
                    "plan": plan,
                    "time": timezone.localtime(version.effective_from).strftime("%Y-%m-%d %H:%M"),
                },
            )

        return self.service_form(
            request,
            form,
            title=_("New tariff version of %(plan)s") % {"plan": plan},
            submit_label=_("Save new version"),
            on_valid=create,
        )

    def version_edit_view(self, request, version_id):
        version = get_object_or_404(
            TariffVersion.objects.filter(plan__in=self.get_queryset(request)), pk=version_id
        )
        self._plan_for_change(request, version.plan_id)
        form = TariffVersionForm(
            request.POST or None, initial=TariffVersionForm.initial_from(version), with_time=False
        )

        def update(form):
            tariff_version_update(
                version=version, schedule=form.schedule(), prices=form.prices(), actor=request.user
            )
            return (
                reverse("admin:billing_tariffplan_change", args=[version.plan_id]),
                _("Tariff version %(version)s corrected.") % {"version": version},
            )

        return self.service_form(
            request,
            form,
            title=_("Correct tariff version %(version)s") % {"version": version},
            intro=_("Only a version no bill has used can be corrected."),
            submit_label=_("Save correction"),
            on_valid=update,
        )


@admin.register(StationTariff)
class StationTariffAdmin(BillingAdmin):
    list_display = ("station", "plan", "effective_from", "assigned_by", "assigned_at", "price_now")
    list_select_related = ("station", "plan", "assigned_by")
    search_fields = ("station__name", "station__code", "plan__name")

    def has_change_permission(self, request, obj=None):
        return False  # history: a change is a new assignment

    def get_changelist_instance(self, request):
        # Today's prices of the page's stations in one read, not three queries per row.
        changelist = super().get_changelist_instance(request)
        changelist.result_list = list(changelist.result_list)
        today = station_prices_today(
            stations={a.station_id: a.station for a in changelist.result_list}.values(),
            at=timezone.now(),
        )
        schedules = {row.station.pk: row.schedule for row in today}
        for assignment in changelist.result_list:
            assignment.schedule_today = schedules[assignment.station_id]
        return changelist

    @admin.display(description=_("today"))
    def price_now(self, assignment):
        return schedule_bar(assignment.schedule_today)

    def get_urls(self):
        return [
            path(
                "today/",
                self.admin_site.admin_view(self.prices_today_view),
                name="billing_stationtariff_today",
            ),
            *super().get_urls(),
        ]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and _operator_wide(request.user)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise Http404(_("Not found."))
        form = StationTariffForm(
            request.POST or None,
            stations=stations_visible_to(request.user).visible(),
            plans=tariff_plans_visible_to(request.user),
        )

        def assign(form):
            assignment = station_tariff_assign(
                station=form.cleaned_data["station"],
                plan=form.cleaned_data["plan"],
                effective_from=form.cleaned_data.get("effective_from"),
                actor=request.user,
            )
            return (
                reverse("admin:billing_stationtariff_changelist"),
                _("%(station)s uses %(plan)s from %(time)s.")
                % {
                    "station": assignment.station,
                    "plan": assignment.plan,
                    "time": timezone.localtime(assignment.effective_from).strftime(
                        "%Y-%m-%d %H:%M"
                    ),
                },
            )

        return self.service_form(
            request,
            form,
            title=_("Assign a tariff plan to a station"),
            submit_label=_("Assign"),
            on_valid=assign,
        )

    def prices_today_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        now = timezone.now()
        rows = []
        for row in station_prices_today(
            stations=stations_visible_to(request.user).visible().order_by("name"), at=now
        ):
            now_period = row.period_now

            def pair(ct, row=row, now_period=now_period):
                prices = row.prices.get(ct) or []
                if now_period is None or not prices:
                    return ""
                p = prices[now_period]
                return f"{p.electricity} + {p.service}"

            rows.append(
                {
                    "station": row.station,
                    "plan_name": row.plan_name,
                    "bar": schedule_bar(row.schedule),
                    "period_label": Period(now_period).label if now_period is not None else "",
                    "ac": pair("AC"),
                    "dc": pair("DC"),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Today's prices per station"),
            "rows": rows,
            "legend": legend(),
        }
        return TemplateResponse(request, "admin/billing/prices_today.html", context)


# ---- bills --------------------------------------------------------------------------


@admin.register(Bill)
class BillAdmin(ChangelistExportMixin, BillingAdmin):
    change_form_template = "admin/billing/bill/change_form.html"
    # "Export Excel / CSV" of every bill the list shows (its filters, scope): reports.exports.
    export_slug = "bills"
    # What the desk looks for first (total, payment state, fault codes) stays on a 1366 px
    # screen; the channel is a filter, the member is on the bill page.
    list_display = (
        "order_no",
        "total",
        "payment_state",
        "fault_codes",
        "started",
        "kwh",
        "station",
        "plate",
    )
    list_filter = (
        "station",
        "sub_operator",
        "department",
        "channel",
        "payment_state",
        ("started_at", admin.DateFieldListFilter),
    )
    date_hierarchy = "started_at"
    search_fields = ("=order_no", "session__vehicle__plate", "member__phone")
    list_select_related = ("station", "member", "session__vehicle")
    readonly_fields = (
        "order_no",
        "station",
        "pile",
        "connector",
        "channel",
        "member",
        "plate",
        "card",
        "department",
        "sub_operator",
        "started_at",
        "ended_at",
        "duration",
        "kwh",
        "electricity_fee",
        "service_fee",
        "total",
        "payment_state",
        "paid_at",
        "tariff_version",
        "rounding",
        "fault_codes",
        "fault_detail",
        "pile_reported_shown",
        "settled_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("pile"))
    def pile(self, bill):
        return bill.session.pile

    @admin.display(description=_("connector"))
    def connector(self, bill):
        return bill.session.connector

    @admin.display(description=_("card"))
    def card(self, bill):
        return bill.session.card or "—"

    @admin.display(description=_("plate"))
    def plate(self, bill):
        return bill.session.vehicle.plate if bill.session.vehicle_id else "—"

    @admin.display(description=_("energy (kWh)"), ordering="energy_wh")
    def kwh(self, bill):
        return kwh_shown(bill.energy_wh)

    @admin.display(description=_("started at"), ordering="started_at")
    def started(self, bill):
        return timezone.localtime(bill.started_at, bill.station.zone).strftime("%m-%d %H:%M")

    @admin.display(description=_("pile-reported values"))
    def pile_reported_shown(self, bill):
        return format_html("<pre>{}</pre>", local_json(bill.pile_reported, bill.station.zone))

    @admin.display(description=_("rounding"))
    def rounding(self, bill):
        labels = dict(Operator._meta.get_field("rounding_mode").flatchoices)
        return labels.get(bill.rounding_mode, bill.rounding_mode)

    @admin.display(description=_("duration"))
    def duration(self, bill):
        hours, rest = divmod(bill.duration_s, 3600)
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        bill = self.get_object(request, object_id)
        samples = bill_samples(bill)
        zone = bill.station.zone
        try:
            start, end = min(s[0] for s in samples), max(s[0] for s in samples)
            specs = tariff_specs_for(
                station=bill.station, current_type=bill.current_type, start=start, end=end
            )
            bands = period_segments(start=start, end=end, tariffs=specs, zone=zone)
        except PricingError:
            bands = []
        lines = list(bill.lines.select_related("tariff_version"))
        for line in lines:
            line.kwh = line.energy_wh / 1000
        extra = {
            "bill_lines": lines,
            "bill_kwh": bill.energy_wh / 1000,
            "chart": meter_chart(samples=samples, bands=bands, zone=zone),
            "legend": legend(),
            "not_priced": bill_not_priced(bill),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)


# ---- wallets ------------------------------------------------------------------------


class LedgerInline(admin.TabularInline):
    model = LedgerEntry
    fields = (
        "created_at",
        "kind",
        "amount",
        "balance_after",
        "bill",
        "reference",
        "reason",
        "actor",
    )
    readonly_fields = fields
    ordering = ("-id",)
    extra = 0
    can_delete = False
    verbose_name_plural = _("ledger (newest first)")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Wallet)
class WalletAdmin(BillingAdmin):
    list_display = ("member", "phone", "balance", "owed", "updated_at")
    list_select_related = ("member",)
    search_fields = ("member__phone", "member__nickname", "member__vehicles__plate")
    fields = ("member", "phone", "balance", "owed", "adjust_link")
    readonly_fields = fields
    inlines = [LedgerInline]

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("mobile number"))
    def phone(self, wallet):
        return wallet.member.phone or "—"

    def get_queryset(self, request):
        # The owed bills of a page of wallets in one query, not one per row.
        owed = Bill.objects.filter(payment_state=PaymentState.OWED)
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("member__bills", queryset=owed, to_attr="owed_bills"))
        )

    @admin.display(description=_("owed"))
    def owed(self, wallet):
        return ", ".join(f"{b.order_no}: {b.total}" for b in wallet.member.owed_bills) or "—"

    @admin.display(description=_("manual adjustment"))
    def adjust_link(self, wallet):
        return format_html(
            '<a class="button" href="{}">{}</a>',
            reverse("admin:billing_wallet_adjust", args=[wallet.pk]),
            _("Adjust balance (with reason, audited)"),
        )

    def get_urls(self):
        return [
            path(
                "<int:wallet_id>/adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="billing_wallet_adjust",
            ),
            *super().get_urls(),
        ]

    def adjust_view(self, request, wallet_id):
        wallet = get_object_or_404(
            self.get_queryset(request).select_related("member"), pk=wallet_id
        )
        if not self.has_change_permission(request, wallet):
            raise Http404(_("Not found."))
        form = WalletAdjustForm(request.POST or None, balance=wallet.balance)

        def adjust(form):
            entry = wallet_adjust(
                member=wallet.member,
                amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                actor=request.user,
            )
            return (
                reverse("admin:billing_wallet_change", args=[wallet.pk]),
                _("Adjusted by %(amount)s yuan; the balance is now %(balance)s yuan.")
                % {"amount": entry.amount, "balance": entry.balance_after},
            )

        return self.service_form(
            request,
            form,
            title=_("Adjust the wallet of %(member)s") % {"member": wallet.member},
            intro=_("The balance is %(balance)s yuan.") % {"balance": wallet.balance},
            submit_label=_("Apply adjustment"),
            on_valid=adjust,
        )


# Drivers' money (recharges, balance refunds, invoices) registers itself from its own module.
from . import admin_payments  # noqa: E402, F401
