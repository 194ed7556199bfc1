"""The filters every report takes (date range, station, sub-operator, department, channel),
with choices from the staff member's own scope."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.forms.utils import flatatt
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from billing.models import Channel
from orgs.models import Department
from orgs.selectors import departments_visible_to, sub_operators_visible_to
from stations.selectors import stations_visible_to

# A report reads at most this many days at once (a year and a day for leap years).
MAX_DAYS = 366

# The filters besides the date range; a report honours all of them unless it says which
# (`Report.honoured`): the others are shown disabled with `NOT_APPLICABLE`, never ignored
# silently.
NARROWING = ("station", "sub_operator", "department", "channel")
NOT_APPLICABLE = _("Not applicable to this report.")


@dataclass(frozen=True)
class Filters:
    first_day: dt.date
    last_day: dt.date
    station: object = None
    sub_operator: object = None
    department: object = None
    channel: str = ""
    extra: dict = field(default_factory=dict)

    def window(self, zone: dt.tzinfo | None = None) -> tuple[dt.datetime, dt.datetime]:
        """The filters' days as instants in ``zone`` (the back office's by default): from the
        first day's midnight to the midnight after the last."""
        zone = zone or timezone.get_current_timezone()
        start = dt.datetime.combine(self.first_day, dt.time(), tzinfo=zone)
        return start, dt.datetime.combine(
            self.last_day + dt.timedelta(days=1), dt.time(), tzinfo=zone
        )

    def days(self, rows: QuerySet, day: str = "day") -> QuerySet:
        return rows.filter(**{f"{day}__gte": self.first_day, f"{day}__lte": self.last_day})

    def apply(self, rows: QuerySet, *, prefix: str = "", day: str = "day") -> QuerySet:
        """``rows`` (rollups, or bills with ``prefix``/``day`` naming the lookups) narrowed."""
        rows = self.days(rows, day)
        for name in ("station", "sub_operator", "department"):
            if (value := getattr(self, name)) is not None:
                rows = rows.filter(**{f"{prefix}{name}": value})
        if self.channel:
            rows = rows.filter(**{f"{prefix}channel": self.channel})
        return rows

    def query(self) -> dict[str, list[str]]:
        """The filters as a query string's ``{name: [values]}``, days included (the page's
        default month is fixed when asked): `ReportFilterForm` takes them back, so a worker
        builds the same report (`reports.admin.report_from_query`)."""
        values = {"date_from": [str(self.first_day)], "date_to": [str(self.last_day)]}
        for name in ("station", "sub_operator", "department"):
            if (value := getattr(self, name)) is not None:
                values[name] = [str(value.pk)]
        if self.channel:
            values["channel"] = [self.channel]
        for name, value in self.extra.items():
            if value is not None and value != []:
                values[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        return values

    def used(self, channel_choices=Channel.choices) -> list[tuple[str, str]]:
        shown = [
            (str(_("date from")), str(self.first_day)),
            (str(_("date to")), str(self.last_day)),
        ]
        for label, value in (
            (_("station"), self.station),
            (_("sub-operator"), self.sub_operator),
            (_("department"), self.department),
            (_("channel"), dict(channel_choices).get(self.channel, self.channel)),
        ):
            if value:
                shown.append((str(label), str(value)))
        return shown


def report_departments(staff) -> QuerySet[Department]:
    """The departments a report may be narrowed to: `departments_visible_to`, but for
    sub-operator staff "with a charge it sees" is read from the rollups it sees (a
    department with a bill there) instead of every session of the network, which took
    about a second for the dropdown alone at 1.7 million sessions."""
    from .selectors import station_bill_days_visible_to  # the selectors import the models

    if getattr(staff, "sub_operator_id", None) is None or staff.is_superuser:
        return departments_visible_to(staff)
    billed = station_bill_days_visible_to(staff).exclude(department=None).values("department_id")
    return Department.objects.filter(operator_id=staff.operator_id).filter(
        Q(sub_operator_id=staff.sub_operator_id) | Q(pk__in=billed)
    )


class PlainSelect(forms.Select):
    """A select rendered in Python: Django renders each option through a template, which
    for a network's few hundred stations took a large part of a report page's time."""

    def render(self, name, value, attrs=None, renderer=None):
        chosen = set(self.format_value(value))
        out = [f"<select{flatatt(self.build_attrs(self.attrs, {**(attrs or {}), 'name': name}))}>"]
        for option, label in self.choices:
            option = "" if option is None else str(option)
            selected = " selected" if option in chosen else ""
            out.append(f'<option value="{escape(option)}"{selected}>{escape(label)}</option>')
        out.append("</select>")
        return mark_safe("".join(out))  # every value escaped above


class ReportFilterForm(forms.Form):
    date_from = forms.DateField(label=_("date from"), required=False)
    date_to = forms.DateField(label=_("date to"), required=False)
    station = forms.ModelChoiceField(
        queryset=None, label=_("station"), required=False, widget=PlainSelect
    )
    sub_operator = forms.ModelChoiceField(
        queryset=None, label=_("sub-operator"), required=False, widget=PlainSelect
    )
    department = forms.ModelChoiceField(
        queryset=None, label=_("department"), required=False, widget=PlainSelect
    )
    channel = forms.ChoiceField(
        label=_("channel"),
        required=False,
        choices=[("", "---------"), *Channel.choices],
        widget=PlainSelect,
    )

    def __init__(self, *args, staff, honoured=NARROWING, channel_choices=Channel.choices,
                 **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.fields["station"].queryset = stations_visible_to(staff).order_by("code")
        self.fields["sub_operator"].queryset = sub_operators_visible_to(staff).order_by("code")
        self.fields["department"].queryset = report_departments(staff).order_by("name")
        self.fields["channel"].choices = [("", "---------"), *channel_choices]
        for name in NARROWING:
            if name not in honoured:
                # A disabled field takes its initial value (none), whatever the query says:
                # the page and an export job build the report without it.
                self.fields[name].disabled = True
                self.fields[name].help_text = NOT_APPLICABLE

    def clean(self):
        data = super().clean()
        today = timezone.localdate()
        data["date_to"] = data.get("date_to") or today
        data["date_from"] = data.get("date_from") or data["date_to"].replace(day=1)
        if data["date_to"] < data["date_from"]:
            raise ValidationError(_("The end date is before the start date."))
        if (data["date_to"] - data["date_from"]).days >= MAX_DAYS:
            raise ValidationError(_("A report covers at most %(days)s days.") % {"days": MAX_DAYS})
        return data

    def filters(self, **extra) -> Filters:
        data = self.cleaned_data
        return Filters(
            first_day=data["date_from"],
            last_day=data["date_to"],
            station=data.get("station"),
            sub_operator=data.get("sub_operator"),
            department=data.get("department"),
            channel=data.get("channel") or "",
            extra=extra,
        )
