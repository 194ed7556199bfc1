"""The repair desk: the queue of fault bills and the fault bill page.

The queue is scoped by `faults.selectors.fault_cases_visible_to` (billing's session rule),
with filters by code, state, channel, station, sub-operator, firmware and date, and the
count per code of what the filters select. The page answers "what happened?" and its
buttons call services: `billing.services.repair.fault_bill_quote`,
`faults.services.repair.fault_bill_repair` and `faults.services.cases.fault_case_dismiss`
/ `_escalate` / `_reopen`. Every click
ends in a success or an error message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import SimpleListFilter
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing.forms import BillCorrectionsForm
from billing.models import Bill, Channel
from billing.selectors import bill_not_priced
from billing.services.repair import fault_bill_quote
from chargenet.admin import (
    ReadOnlyAdminMixin,
    ScopedModelAdmin,
    ValueFilter,
    distinct_choices,
    register_scope,
    scoped,
)
from chargenet.errors import DomainError
from chargenet.money import kwh_shown
from orgs.models import SubOperator
from stations.models import StationOutage
from stations.selectors import piles_visible_to, stations_visible_to

from .codes import FaultCode
from .facts import session_facts
from .models import UNRESOLVED_STATES, FaultAction, FaultCase, FaultSettings, Notification
from .rules import Reason, explain, pile_values, platform_values
from .selectors import (
    fault_actions_visible_to,
    fault_cases_visible_to,
    fault_code_counts,
    fault_settings_visible_to,
    notifications_visible_to,
    thresholds_for,
)
from .services.cases import (
    fault_case_dismiss,
    fault_case_escalate,
    fault_case_note_quote,
    fault_case_reopen,
)
from .services.repair import fault_bill_repair
from .timeline import pile_timeline, session_timeline, timeline_svg

register_scope(FaultCase, fault_cases_visible_to)
register_scope(FaultAction, fault_actions_visible_to)
register_scope(FaultSettings, fault_settings_visible_to)
register_scope(Notification, notifications_visible_to)

FRAME_LIMIT = 300


# --- queue filters -------------------------------------------------------------------


class CodeFilter(SimpleListFilter):
    title = gettext_lazy("code")
    parameter_name = "code"

    def lookups(self, request, model_admin):
        return [(str(c.value), f"{c.value} {c.label}") for c in FaultCode]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(codes__contains=[int(self.value())])
        return queryset


class ChannelFilter(ValueFilter):
    title = gettext_lazy("channel")
    parameter_name = "channel"
    lookup = "channel"

    def lookups(self, request, model_admin):
        return Channel.choices


class StationFilter(ValueFilter):
    title = gettext_lazy("station")
    parameter_name = "station"
    lookup = "station_id"

    def lookups(self, request, model_admin):
        return list(stations_visible_to(request.user).order_by("name").values_list("pk", "name"))


class SubOperatorFilter(ValueFilter):
    title = gettext_lazy("sub-operator")
    parameter_name = "sub_operator"
    lookup = "sub_operator_id"

    def lookups(self, request, model_admin):
        return list(scoped(SubOperator, request.user).order_by("name").values_list("pk", "name"))


class FirmwareFilter(ValueFilter):
    title = gettext_lazy("firmware")
    parameter_name = "firmware"
    lookup = "firmware"

    def lookups(self, request, model_admin):
        piles = piles_visible_to(request.user).exclude(firmware_version="")
        return distinct_choices(piles, "firmware_version")


# --- forms ---------------------------------------------------------------------------


class PeriodForm(forms.Form):
    MAX_SPAN = dt.timedelta(days=7)

    begin = forms.DateTimeField(label=gettext_lazy("from"), required=False)
    end = forms.DateTimeField(label=gettext_lazy("to"), required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("reason"), widget=forms.Textarea(attrs={"rows": 2, "cols": 60})
    )


# --- the page's figures ----------------------------------------------------------------


def _minutes(delta: dt.timedelta | None) -> str:
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _time(at: dt.datetime | None) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S") if at else "—"


def _kwh(wh: Decimal | None) -> str:
    return "—" if wh is None else f"{kwh_shown(wh)} kWh"


def comparison_rows(session, facts, limits, bill) -> list[dict]:
    """Pile vs platform, one row per figure, ``differs`` when beyond the operator's
    tolerance (the row is marked red). ``bill``: the session's, lines prefetched, or None."""
    pile, platform = pile_values(facts), platform_values(facts)

    def apart(a, b, tolerance) -> bool:
        return a is not None and b is not None and abs(a - b) > tolerance

    energy_tolerance = limits.energy_tolerance_wh
    rows = [
        (_("start (service time)"), _time(pile.start), _time(platform.start),
         apart(pile.start, platform.start, limits.clock_skew)),
        (_("end (service time)"), _time(pile.end), _time(platform.end),
         apart(pile.end, platform.end, limits.clock_skew)),
        (_("duration"), _minutes(pile.duration), _minutes(platform.duration),
         apart(pile.duration, platform.duration, limits.charging_time_tolerance)),
        (_("charging time"), _minutes(pile.charging_time), _minutes(platform.charging_time),
         apart(pile.charging_time, platform.charging_time, limits.charging_time_tolerance)),
        (_("energy"), _kwh(pile.energy_wh), _kwh(platform.energy_wh),
         apart(pile.energy_wh, platform.energy_wh, energy_tolerance)),
        (_("occupancy"), _minutes(pile.occupancy), _minutes(platform.occupancy),
         apart(pile.occupancy, platform.occupancy, limits.occupancy_tolerance)),
    ]  # fmt: skip
    reported = (session.pile_reported or {}).get("periods") or {}
    ours = {}
    if bill is not None:
        for line in bill.lines.all():
            ours[line.period] = ours.get(line.period, Decimal(0)) + line.energy_wh
    from billing.models import Period

    for period in Period:
        theirs = reported.get(str(period.value))
        theirs = Decimal(str(theirs)) if theirs is not None else None
        mine = ours.get(period.value)
        if theirs is None and mine is None:
            continue
        rows.append(
            (
                _("energy, %(period)s") % {"period": period.label},
                _kwh(theirs),
                _kwh(mine),
                apart(theirs, mine, energy_tolerance),
            )
        )
    return [dict(label=r[0], pile=r[1], platform=r[2], differs=r[3]) for r in rows]


def station_outages(session):
    """Network outages at the session's station around it: several piles dropping in the
    same minute is the operator's network, not the pile."""
    from .timeline import session_window

    begin, end = session_window(session)
    return list(
        StationOutage.objects.filter(station_id=session.station_id, started_at__lte=end)
        .exclude(ended_at__lt=begin)
        .order_by("started_at")
    )


def orphan_stops(session):
    """StopTransactions of the same pile the gateway could not match to a session, around
    this one: often the lost bill's own end, sent with a transaction id the pile invented."""
    from billing.models import OrphanStop

    from .timeline import session_window

    begin, end = session_window(session)
    return list(
        OrphanStop.objects.filter(
            pile_id=session.pile_id, received_at__range=(begin, end)
        ).order_by("received_at")[:20]
    )


# The raw frames of a session come from the protocol adapters that journaled them; each
# registers its source here (protocol/admin.py), so the fault desk does not import them.
FRAME_SOURCES: list[Callable] = []


def register_frame_source(source: Callable) -> None:
    """``source(session=, begin=, end=, limit=)`` returns journaled frames (objects with
    at, direction, action, unique_id, payload, raw) of ``session`` in time order."""
    if source not in FRAME_SOURCES:
        FRAME_SOURCES.append(source)


def session_frames(session):
    """The raw protocol frames of the session: by order number, plus the pile's frames
    in the session's window (status, heartbeats, boots that did not carry it)."""
    from .timeline import session_window

    begin, end = session_window(session)
    frames = [
        frame
        for source in FRAME_SOURCES
        for frame in source(session=session, begin=begin, end=end, limit=FRAME_LIMIT)
    ]
    return sorted(frames, key=lambda frame: frame.at)[:FRAME_LIMIT]


# --- admin ---------------------------------------------------------------------------


@admin.register(FaultCase)
class FaultCaseAdmin(ScopedModelAdmin):
    list_display = (
        "order_no",
        "codes_display",
        "state",
        "station_name",
        "channel",
        "firmware",
        "detected_at",
        "blocks_payment",
    )
    list_filter = (
        CodeFilter,
        "state",
        ChannelFilter,
        StationFilter,
        SubOperatorFilter,
        FirmwareFilter,
        ("detected_at", admin.DateFieldListFilter),
    )
    search_fields = ("=session__order_no", "=session__pile__code")
    search_help_text = gettext_lazy("Order number or pile code (exact).")
    list_select_related = ("session", "station")
    ordering = ("-detected_at", "-id")
    show_full_result_count = False
    list_per_page = 50
    change_list_template = "admin/faults/faultcase/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("order number"), ordering="session__order_no")
    def order_no(self, case):
        return case.session.order_no

    @admin.display(description=gettext_lazy("codes"))
    def codes_display(self, case):
        return " + ".join(str(c) for c in case.codes)

    @admin.display(description=gettext_lazy("station"))
    def station_name(self, case):
        return case.station.name

    def get_urls(self):
        from django.urls import path

        return [
            path(
                "pile/<int:pile_id>/timeline/",
                self.admin_site.admin_view(self.pile_timeline_view),
                name="faults_pile_timeline",
            ),
            *super().get_urls(),
        ]

    def pile_timeline_view(self, request, pile_id: int):
        """A pile's heartbeat/status timeline for any period (default: the last 24 hours)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        pile = get_object_or_404(piles_visible_to(request.user), pk=pile_id)
        form = PeriodForm(request.GET or None)
        end = timezone.now()
        begin = end - dt.timedelta(hours=24)
        if form.is_bound:
            if form.is_valid():
                begin = form.cleaned_data["begin"] or begin
                end = form.cleaned_data["end"] or end
            else:
                messages.error(request, _("Please correct the period; showing the last 24 hours."))
        if end - begin > PeriodForm.MAX_SPAN or end <= begin:
            messages.error(request, _("A period is at most 7 days, end after start."))
            begin, end = end - dt.timedelta(hours=24), end
        entries = pile_timeline(pile=pile, begin=begin, end=end)
        outages = StationOutage.objects.filter(
            station_id=pile.station_id, started_at__lte=end
        ).exclude(ended_at__lt=begin)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Pile %(code)s: heartbeats and states") % {"code": pile.code},
            "pile": pile,
            "form": form
            if form.is_bound
            else PeriodForm(
                initial={"begin": timezone.localtime(begin), "end": timezone.localtime(end)}
            ),
            "timeline": entries,
            "timeline_svg": timeline_svg(entries),
            "outages": outages,
        }
        return TemplateResponse(request, "admin/faults/pile_timeline.html", context)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            # Counts per code of exactly what the filters select (one query).
            context["code_counts"] = fault_code_counts(context["cl"].queryset)
        return response

    # --- the fault bill page ----------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        case = self.get_object(request, object_id)
        if not self.has_view_or_change_permission(request, case):
            raise PermissionDenied
        corrections_form = None
        quote = None
        if request.method == "POST":
            if not self.has_change_permission(request, case):
                raise PermissionDenied
            action = request.POST.get("action", "")
            if action in ("recalculate", "apply"):
                corrections_form = self._corrections_form(case, request.POST)
                result = self._correct(request, case, corrections_form, apply=action == "apply")
                if action == "apply" and result is not None:
                    return HttpResponseRedirect(request.path)
                quote = result
            elif action in ("dismiss", "escalate", "reopen"):
                self._move(request, case, action)
                return HttpResponseRedirect(request.path)
            else:
                messages.error(request, _("Unknown action; nothing was changed."))
        return self._render(request, case, corrections_form, quote)

    def _correct(self, request, case, form, *, apply: bool):
        if not form.is_valid():
            messages.error(request, _("Please correct the errors below; nothing was changed."))
            return None
        try:
            if apply:
                bill = fault_bill_repair(
                    session=case.session, corrections=form.corrections(), acting_user=request.user
                )
            else:
                quote = fault_bill_quote(session=case.session, corrections=form.corrections())
                fault_case_note_quote(
                    case=case,
                    acting_user=request.user,
                    quote_json=quote.as_json(),
                    reason=form.cleaned_data["reason"],
                )
        except DomainError as error:
            field = (error.details or {}).get("field")
            if field in form.fields:
                form.add_error(field, str(error))
            messages.error(request, str(error))
            return None
        if apply:
            messages.success(
                request,
                _("Repaired and settled: bill %(order)s, %(amount)s yuan, %(state)s.")
                % {
                    "order": bill.order_no,
                    "amount": bill.total,
                    "state": bill.get_payment_state_display(),
                },
            )
            return bill
        messages.success(
            request,
            _("Recalculated: %(kwh)s, %(amount)s yuan. Press apply to settle it.")
            % {"kwh": _kwh(quote.pricing.energy_wh), "amount": quote.pricing.total},
        )
        return quote

    def _move(self, request, case, action: str) -> None:
        form = ReasonForm(request.POST, prefix=action)
        if not form.is_valid():
            messages.error(request, _("Reason: say why; nothing was changed."))
            return
        service = {
            "dismiss": fault_case_dismiss,
            "escalate": fault_case_escalate,
            "reopen": fault_case_reopen,
        }[action]
        try:
            case = service(case=case, acting_user=request.user, reason=form.cleaned_data["reason"])
        except DomainError as error:
            messages.error(request, str(error))
            return
        messages.success(
            request,
            _("Fault bill %(order)s is now %(state)s.")
            % {"order": case.session.order_no, "state": case.get_state_display()},
        )

    @staticmethod
    def _corrections_form(case, data=None) -> BillCorrectionsForm:
        return BillCorrectionsForm(data, prefix="fix", session=case.session, proposal=case.proposal)

    def _render(self, request, case, corrections_form, quote):
        session = (
            type(case.session)
            .objects.select_related(
                "station", "pile", "connector", "member", "sub_operator", "operator"
            )
            .get(pk=case.session_id)
        )
        case.session = session
        facts = session_facts(session=session)
        limits = thresholds_for(operator_id=session.operator_id)
        entries = session_timeline(session=session)
        bill = Bill.objects.filter(session=session).prefetch_related("lines").first()
        findings = [
            {
                "code": f["code"],
                "label": FaultCode(f["code"]).label,
                "reasons": [explain(Reason(r["key"], r["params"])) for r in f["reasons"]],
            }
            for f in case.findings
        ]
        proposal = case.proposal or {}
        if proposal.get("basis"):
            proposal = {
                **proposal,
                "basis_text": explain(
                    Reason(proposal["basis"]["key"], proposal["basis"]["params"])
                ),
                "stopped_at_local": _time(dt.datetime.fromisoformat(proposal["stopped_at"])),
            }
        unresolved = case.state in UNRESOLVED_STATES
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Fault bill %(order)s") % {"order": session.order_no},
            "case": case,
            "session": session,
            "findings": findings,
            "rows": comparison_rows(session, facts, limits, bill),
            "timeline": entries,
            "timeline_svg": timeline_svg(entries),
            "frames": session_frames(session),
            "frame_limit": FRAME_LIMIT,
            "bill": bill,
            "not_priced": bill_not_priced(bill) if bill else None,
            "proposal": proposal,
            "late_stop": (session.pile_reported or {}).get("late_stop"),
            "orphan_stops": orphan_stops(session),
            "outages": station_outages(session),
            "pile_timeline_url": reverse("admin:faults_pile_timeline", args=[session.pile_id])
            + "?"
            + urlencode(
                {
                    "begin": _time(session.created_at - dt.timedelta(hours=2))[:16],
                    "end": _time(min(timezone.now(), session.created_at + dt.timedelta(hours=22)))[
                        :16
                    ],
                }
            ),
            "quote": quote,
            "corrections_form": corrections_form or self._corrections_form(case),
            "reason_forms": {
                name: ReasonForm(prefix=name) for name in ("dismiss", "escalate", "reopen")
            },
            "can_change": self.has_change_permission(request, case),
            "unresolved": unresolved,
            "actions_log": case.actions.select_related("actor").order_by("at", "id"),
            "queue_url": reverse("admin:faults_faultcase_changelist"),
        }
        return TemplateResponse(request, "admin/faults/faultcase/fault_bill.html", context)


@admin.register(FaultSettings)
class FaultSettingsAdmin(ScopedModelAdmin):
    list_display = (
        "operator",
        "max_silence_minutes",
        "clock_skew_minutes",
        "max_duration_hours",
        "energy_tolerance_wh",
        "energy_tolerance_percent",
    )


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, ScopedModelAdmin):
    list_display = (
        "created_at", "member", "session", "subject", "kind", "state", "attempts", "sent_at",
        "last_error",
    )  # fmt: skip
    list_filter = ("kind", "state")
    search_fields = ("=session__order_no", "=subject")
    list_select_related = ("session", "member")
    readonly_fields = [f.name for f in Notification._meta.fields]
