"""Admin lists as tabulars: the export buttons of `chargenet.admin.ChangelistExportMixin`.

The rows are the list's own queryset — the ModelAdmin's scoped ``get_queryset``, its list
filters, search and date drill-down, built by Django's ChangeList from the query string —
so an export holds exactly what the screen lists, all pages. A worker builds the same
ChangeList again from the staff member and the query string (`tabular_register`).

The bills list (`billing.admin.BillAdmin`, slug "bills") is the first such export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import PAGE_VAR
from django.db.models import Count, QuerySet, Sum
from django.http import HttpRequest, HttpResponseRedirect, QueryDict
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _gettext
from django.utils.translation import gettext_lazy as _

from billing.models import Bill, Channel, PaymentState
from chargenet.admin import changelist_export_register
from chargenet.money import wh_to_kwh

from .admin import export_response
from .registry import tabular_register
from .tabular import Column, hms


@dataclass(frozen=True)
class Field:
    """A column and how to fill it: the database values it reads (``values_list``
    paths) and the function making the cell of them (default: the one value as is)."""

    column: Column
    reads: tuple[str, ...]
    cell: Callable | None = None


class ChangelistTabular:
    """The rows of a ModelAdmin changelist for ``request`` (its user and query string)."""

    slug: str
    title: str
    fields: list[Field]

    def __init__(self, *, model_admin, request):
        self.request = request
        self.changelist = model_admin.get_changelist_instance(request)
        self.queryset: QuerySet = self.changelist.queryset
        self.columns = [field.column for field in self.fields]

    def count(self) -> int:
        return self.queryset.count()

    def rows(self) -> Iterator[tuple]:
        reads = list(dict.fromkeys(path for field in self.fields for path in field.reads))
        where = {path: n for n, path in enumerate(reads)}
        plan = [([where[path] for path in field.reads], field.cell) for field in self.fields]
        for values in self.queryset.values_list(*reads).iterator(chunk_size=2000):
            yield tuple(
                cell(*(values[i] for i in at)) if cell else values[at[0]] for at, cell in plan
            )

    def totals(self) -> tuple | None:
        return None

    def filters_used(self) -> list[tuple[str, str]]:
        """The list filters chosen, the search and date drill-down, and whose scope."""
        cl, user = self.changelist, self.request.user
        used = []
        for spec in cl.filter_specs:
            if not spec.used_parameters:
                continue
            chosen = [str(c["display"]) for c in spec.choices(cl) if c.get("selected")]
            used.append((str(spec.title), ", ".join(chosen)))
        if cl.query:
            used.append((_gettext("search"), cl.query))
        if cl.date_hierarchy:
            field = cl.date_hierarchy
            parts = [cl.params.get(f"{field}__{p}") for p in ("year", "month", "day")]
            if parts[0]:
                label = cl.model._meta.get_field(field).verbose_name
                used.append((str(label), "-".join(str(p) for p in parts if p)))
        scope = user.sub_operator or user.operator or _gettext("the whole platform")
        used.append((_gettext("scope"), str(scope)))
        used.append((_gettext("exported by"), user.get_username()))
        return used


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(at, zone_name):
    return None if at is None else at.astimezone(_zone(zone_name))


CHANNELS = dict(Channel.choices)
PAYMENT_STATES = dict(PaymentState.choices)


def _label(choices: dict) -> Callable:
    """A stored code as its label, in the language of the export (looked up once)."""
    labels: dict[tuple[str, str], str] = {}

    def label(value):
        key = (get_language(), value)
        if key not in labels:
            labels[key] = str(choices.get(value, value))
        return labels[key]

    return label


class BillsTabular(ChangelistTabular):
    """The bills list (账单) as its export: every field of each bill, times on the
    station's clock, energy in kWh."""

    slug = "bills"
    title = _("Bills")
    fields = [
        Field(Column("order_no", _("order number"), "text"), ("order_no",)),
        Field(Column("station", _("station"), "text"), ("station__name",)),
        Field(Column("pile", _("pile"), "text"), ("session__pile__code",)),
        Field(Column("connector", _("connector"), "int"), ("session__connector__number",)),
        Field(Column("channel", _("channel"), "text"), ("channel",), _label(CHANNELS)),
        Field(Column("member", _("mobile number"), "text"), ("member__phone",)),
        Field(Column("plate", _("plate"), "text"), ("session__vehicle__plate",)),
        Field(Column("card", _("card"), "text"), ("session__card__number",)),
        Field(Column("department", _("department"), "text"), ("department__name",)),
        Field(Column("sub_operator", _("sub-operator"), "text"), ("sub_operator__name",)),
        Field(
            Column("started_at", _("start"), "datetime"),
            ("started_at", "station__time_zone"),
            _local,
        ),
        Field(Column("ended_at", _("end"), "datetime"), ("ended_at", "station__time_zone"), _local),
        Field(Column("duration", _("duration"), "text"), ("duration_s",), hms),
        Field(Column("energy", _("energy (kWh)"), "kwh"), ("energy_wh",), wh_to_kwh),
        Field(Column("electricity_fee", _("electricity fee (yuan)"), "yuan"), ("electricity_fee",)),
        Field(Column("service_fee", _("service fee (yuan)"), "yuan"), ("service_fee",)),
        Field(Column("total", _("total (yuan)"), "yuan"), ("total",)),
        Field(
            Column("payment_state", _("payment state"), "text"),
            ("payment_state",),
            _label(PAYMENT_STATES),
        ),
        Field(
            Column("paid_at", _("paid at"), "datetime"), ("paid_at", "station__time_zone"), _local
        ),
        Field(
            Column("fault_codes", _("fault codes"), "text"),
            ("fault_codes",),
            lambda codes: ", ".join(map(str, codes)),
        ),
    ]

    def totals(self) -> tuple:
        sums = self.queryset.order_by().aggregate(
            n=Count("pk"),
            energy=Sum("energy_wh"),
            electricity=Sum("electricity_fee"),
            service=Sum("service_fee"),
            total=Sum("total"),
        )
        by_key = {
            "order_no": _gettext("Total: %(n)s bills") % {"n": sums["n"]},
            "energy": wh_to_kwh(sums["energy"] or 0),
            "electricity_fee": sums["electricity"] or 0,
            "service_fee": sums["service"] or 0,
            "total": sums["total"] or 0,
        }
        return tuple(by_key.get(column.key) for column in self.columns)


TABULARS: dict[str, type[ChangelistTabular]] = {"bills": BillsTabular}
MODELS = {"bills": Bill}


def changelist_export(request, *, model_admin, slug: str, fmt: str):
    """The export button of a list (`chargenet.admin.ChangelistExportMixin`): all the
    list's pages, so the page the staff member was on is not a filter."""
    request.GET = request.GET.copy()
    request.GET.pop(PAGE_VAR, None)
    try:
        tabular = TABULARS[slug](model_admin=model_admin, request=request)
    except IncorrectLookupParameters:
        opts = model_admin.model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        return HttpResponseRedirect(f"{url}?e=1")
    return export_response(request, tabular, fmt=fmt)


def _rebuilt(slug: str) -> Callable:
    """A worker's way back to the list: the same ModelAdmin, user and query string."""

    def build(*, staff, filters: dict) -> ChangelistTabular:
        request = HttpRequest()
        request.method = "GET"
        request.GET = QueryDict(mutable=True)
        for name, values in filters.items():
            request.GET.setlist(name, values if isinstance(values, list) else [values])
        request.user = staff
        model_admin = admin.site.get_model_admin(MODELS[slug])
        return TABULARS[slug](model_admin=model_admin, request=request)

    return build


changelist_export_register(changelist_export)
for _slug in TABULARS:
    tabular_register(_slug, _rebuilt(_slug))
