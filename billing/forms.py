"""Back-office forms of billing: they translate input for the services, nothing more."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .models import ChargingSession, LedgerEntry, Period
from .services.repair import BillCorrections
from .services.tariffs import CURRENT_TYPES, PeriodPrices
from .services.wallet import wallet_balance_problem

SLOT_CHOICES = [(str(p.value), p.label) for p in Period]


def _slot_label(slot: int) -> str:
    return f"{slot // 2:02d}:{(slot % 2) * 30:02d}"


class TariffVersionForm(forms.Form):
    """A day of 48 half-hour slots and the price grid; blank effective-from means now."""

    effective_from = forms.SplitDateTimeField(
        label=_("effective from"),
        required=False,
        widget=AdminSplitDateTime,
        help_text=_("Blank: now. A change cannot start in the past."),
    )
    note = forms.CharField(label=_("note"), max_length=200, required=False)

    def __init__(self, *args, with_time: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not with_time:
            del self.fields["effective_from"]
        for slot in range(48):
            self.fields[f"slot_{slot}"] = forms.ChoiceField(
                label=_slot_label(slot),
                choices=SLOT_CHOICES,
                widget=forms.Select(attrs={"class": "tariff-slot"}),
            )
        for current_type in CURRENT_TYPES:
            for period in Period:
                for kind in ("electricity", "service"):
                    self.fields[f"{current_type}_{period.value}_{kind}"] = forms.DecimalField(
                        label=f"{current_type} {period.label} {kind}",
                        max_digits=9,
                        decimal_places=5,
                        min_value=Decimal(0),
                        widget=forms.NumberInput(attrs={"step": "0.00001", "style": "width:7em"}),
                    )

    @staticmethod
    def initial_from(version) -> dict:
        if version is None:
            return {f"slot_{s}": "3" if s < 16 else "2" for s in range(48)}
        initial = {f"slot_{s}": p for s, p in enumerate(version.schedule)}
        for price in version.prices.all():
            initial[f"{price.current_type}_{price.period}_electricity"] = price.electricity
            initial[f"{price.current_type}_{price.period}_service"] = price.service
        return initial

    def schedule_fields(self):
        return [self[f"slot_{s}"] for s in range(48)]

    def price_rows(self):
        return [
            (
                period.label,
                [
                    self[f"{ct}_{period.value}_{kind}"]
                    for ct in CURRENT_TYPES
                    for kind in ("electricity", "service")
                ],
            )
            for period in Period
        ]

    def plain_fields(self):
        return [self[name] for name in ("effective_from", "note") if name in self.fields]

    def schedule(self) -> str:
        return "".join(self.cleaned_data[f"slot_{s}"] for s in range(48))

    def prices(self) -> dict:
        return {
            ct: [
                PeriodPrices(
                    self.cleaned_data[f"{ct}_{p.value}_electricity"],
                    self.cleaned_data[f"{ct}_{p.value}_service"],
                )
                for p in Period
            ]
            for ct in CURRENT_TYPES
        }


class StationTariffForm(forms.Form):
    station = forms.ModelChoiceField(label=_("station"), queryset=None)
    plan = forms.ModelChoiceField(label=_("plan"), queryset=None)
    effective_from = forms.SplitDateTimeField(
        label=_("effective from"),
        required=False,
        widget=AdminSplitDateTime,
        help_text=_("Blank: now. A change cannot start in the past."),
    )

    def __init__(self, *args, stations, plans, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["station"].queryset = stations
        self.fields["plan"].queryset = plans

    def plain_fields(self):
        return [self[name] for name in self.fields]


class WalletAdjustForm(forms.Form):
    amount = forms.DecimalField(
        label=_("amount (yuan)"),
        max_digits=LedgerEntry._meta.get_field("amount").max_digits,
        decimal_places=LedgerEntry._meta.get_field("amount").decimal_places,
        help_text=_("Positive credits the wallet, negative debits it."),
    )
    reason = forms.CharField(label=_("reason"), max_length=200)

    def __init__(self, *args, balance: Decimal, **kwargs):
        super().__init__(*args, **kwargs)
        self.balance = balance

    def clean_amount(self):
        # Told on the form, not as the service's error after submitting.
        amount = self.cleaned_data["amount"]
        problem = wallet_balance_problem(balance=self.balance, amount=amount)
        if problem is not None:
            raise forms.ValidationError(problem)
        return amount

    def plain_fields(self):
        return [self[name] for name in self.fields]


def _to_the_second() -> forms.DateTimeInput:
    # A time shown to the minute comes back as :00 and rewrites what nobody touched.
    return forms.DateTimeInput(
        attrs={"type": "datetime-local", "step": 1}, format="%Y-%m-%dT%H:%M:%S"
    )


class BillCorrectionsForm(forms.Form):
    """Customer service's corrections of a fault bill. Prefilled with the pile's values
    (or the lost-bill proposal); only a field that differs from the session's own value at
    the precision shown (the second, the Wh to 3 places) becomes a correction."""

    started_at = forms.DateTimeField(label=_("start"), required=False, widget=_to_the_second())
    stopped_at = forms.DateTimeField(label=_("stop"), required=False, widget=_to_the_second())
    meter_stop_wh = forms.DecimalField(
        label=_("stop register (Wh)"), required=False, decimal_places=3
    )
    reason = forms.CharField(
        label=_("reason"),
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=_("Required: why these values (read by the next person)."),
    )

    def __init__(self, *args, session: ChargingSession, proposal: dict | None = None, **kw):
        self.session = session
        proposal = proposal or {}
        stop = proposal.get("stopped_at")
        stop = dt.datetime.fromisoformat(stop) if stop else session.stopped_at
        kw.setdefault(
            "initial",
            {
                "started_at": timezone.localtime(session.started_at),
                "stopped_at": timezone.localtime(stop) if stop else None,
                "meter_stop_wh": proposal.get("meter_stop_wh") or session.meter_stop_wh,
            },
        )
        super().__init__(*args, **kw)

    def corrections(self) -> BillCorrections:
        data, session = self.cleaned_data, self.session
        changed = {
            name: data[name]
            for name, shown in (
                ("started_at", _second(session.started_at)),
                ("stopped_at", _second(session.stopped_at)),
                ("meter_stop_wh", session.meter_stop_wh),
            )
            if data.get(name) is not None and data[name] != shown
        }
        return BillCorrections(reason=data["reason"], **changed)

    def plain_fields(self):
        return [self[name] for name in self.fields]


def _second(at: dt.datetime | None) -> dt.datetime | None:
    return at.replace(microsecond=0) if at else None
