"""The back office's remote-intent forms (the pile console page): each form names an
intent in the platform's words and runs it with `run(pile, user)`."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.models import ChargingSession
from billing.models.sessions import ACTIVE_STATES
from billing.services.sessions import CredentialKind
from orgs.models import Member
from stations.models import ChargingProfile, ProfilePurpose, Reservation, ReservationState
from stations.selectors import pile_configuration_desired
from stations.services.charging_profiles import (
    ProfileInvalid,
    charging_profile_answered,
    charging_profile_store,
    charging_profiles_forget,
)

from . import intents
from .adapters import Outcome, PileAnswer, Trigger
from .sync import pile_local_list_sync

# Credentials staff can start a charge for from the back office.
STAFF_START_KINDS = [(k.value, k.label) for k in (CredentialKind.MEMBER_TOKEN, CredentialKind.CARD)]


class PileForm(forms.Form):
    """A form about one pile: connector choices are that pile's."""

    def __init__(self, *args, pile, **kwargs):
        super().__init__(*args, **kwargs)
        self.pile = pile
        if "connector" in self.fields:
            self.fields["connector"].queryset = pile.connectors.order_by("number")


class ConnectorChoice(forms.ModelChoiceField):
    def label_from_instance(self, connector) -> str:
        return _("connector %(number)s") % {"number": connector.number}


class StartForm(PileForm):
    title = _("Start charging")
    connector = ConnectorChoice(label=_("connector"), queryset=None)
    credential_kind = forms.ChoiceField(label=_("for"), choices=STAFF_START_KINDS)
    credential_value = forms.CharField(
        label=_("member token or card number"), max_length=20, strip=True
    )

    def run(self, user):
        data = self.cleaned_data
        return intents.connector_start(
            connector=data["connector"],
            credential_value=data["credential_value"],
            credential_kind=data["credential_kind"],
            acting_user=user,
        )


class StopForm(PileForm):
    title = _("Stop a session")
    session = forms.ModelChoiceField(label=_("active session"), queryset=None)

    def __init__(self, *args, pile, **kwargs):
        super().__init__(*args, pile=pile, **kwargs)
        self.fields["session"].queryset = ChargingSession.objects.filter(
            pile=pile, state__in=ACTIVE_STATES
        ).select_related("pile")

    def run(self, user):
        return intents.session_stop_remote(session=self.cleaned_data["session"], acting_user=user)


class ResetForm(PileForm):
    title = _("Restart the pile")
    hard = forms.TypedChoiceField(
        label=_("how"),
        coerce=lambda value: value == "hard",
        choices=[
            ("soft", _("soft (ends its sessions first)")),
            ("hard", _("hard (at once)")),
        ],
        widget=forms.RadioSelect,
        initial="soft",
    )

    def run(self, user):
        return intents.pile_reset(pile=self.pile, hard=self.cleaned_data["hard"], acting_user=user)


class UnlockForm(PileForm):
    title = _("Unlock a connector")
    connector = ConnectorChoice(label=_("connector"), queryset=None)

    def run(self, user):
        return intents.connector_unlock(connector=self.cleaned_data["connector"], acting_user=user)


class TriggerForm(PileForm):
    title = _("Ask the pile to report now")
    what = forms.ChoiceField(label=_("what"), choices=Trigger.choices)
    connector = ConnectorChoice(
        label=_("connector"), queryset=None, required=False, empty_label=_("all")
    )

    def run(self, user):
        data = self.cleaned_data
        return intents.pile_trigger(
            pile=self.pile, what=data["what"], connector=data["connector"], acting_user=user
        )


class RetriesMixin(forms.Form):
    retries = forms.IntegerField(label=_("retries"), min_value=0, required=False)
    retry_interval = forms.IntegerField(label=_("retry interval (s)"), min_value=0, required=False)


class FirmwareForm(PileForm, RetriesMixin):
    """The URL and times are checked by the adapter (local time on the page)."""

    title = _("Update firmware")
    location = forms.CharField(
        label=_("firmware URL"), max_length=512, help_text=_("ftp, ftps, http or https")
    )
    retrieve_at = forms.DateTimeField(
        label=_("download from"), help_text=_("e.g. 2026-12-01 02:00 (local time)")
    )
    field_order = ["location", "retrieve_at", "retries", "retry_interval"]

    def run(self, user):
        return intents.pile_firmware_update(pile=self.pile, acting_user=user, **self.cleaned_data)


class DiagnosticsForm(PileForm, RetriesMixin):
    title = _("Get diagnostics")
    location = forms.CharField(
        label=_("upload URL"), max_length=512, help_text=_("ftp, ftps, http or https")
    )
    since = forms.DateTimeField(label=_("from"), required=False)
    until = forms.DateTimeField(label=_("until"), required=False)
    field_order = ["location", "since", "until", "retries", "retry_interval"]

    def run(self, user):
        return intents.pile_diagnostics_request(
            pile=self.pile, acting_user=user, **self.cleaned_data
        )


class ConfigurationGetForm(PileForm):
    title = _("Read configuration")
    keys = forms.CharField(
        label=_("keys"),
        required=False,
        help_text=_("Separated by commas; empty reads every key."),
    )

    def clean_keys(self) -> list[str]:
        return [key.strip() for key in self.cleaned_data["keys"].split(",") if key.strip()]

    def run(self, user):
        return intents.pile_configuration_get(
            pile=self.pile, keys=self.cleaned_data["keys"], acting_user=user
        )


class ConfigurationSetForm(PileForm):
    title = _("Change configuration")
    key = forms.CharField(label=_("key"), max_length=50)
    value = forms.CharField(label=pgettext_lazy("configuration", "value"), max_length=500)

    def run(self, user):
        data = self.cleaned_data
        return intents.pile_configuration_set(
            pile=self.pile, key=data["key"], value=data["value"], acting_user=user
        )


# The page's forms, by the value of their submit button (``send``) and their prefix.
INTENT_FORMS = {
    "start": StartForm,
    "stop": StopForm,
    "reset": ResetForm,
    "unlock": UnlockForm,
    "trigger": TriggerForm,
    "firmware": FirmwareForm,
    "diagnostics": DiagnosticsForm,
    "config_get": ConfigurationGetForm,
    "config_set": ConfigurationSetForm,
}


# --- OCPP 1.6 feature profiles (issue 15): local list, reservations, smart charging -------


class LocalListForm(PileForm):
    title = _("Local authorisation list")
    what = forms.ChoiceField(
        label=_("what"),
        choices=[
            ("version", _("report the version the pile holds")),
            ("changes", _("send the changes")),
            ("full", _("send the whole list")),
        ],
        widget=forms.RadioSelect,
        initial="version",
    )

    def run(self, user):
        what = self.cleaned_data["what"]
        if what == "version":
            return intents.pile_local_list_version(pile=self.pile, acting_user=user)
        result = pile_local_list_sync(pile=self.pile, full=what == "full", acting_user=user)
        if result is not None:
            return result
        if pile_configuration_desired(pile=self.pile).get("LocalAuthListEnabled") != "true":
            reason = _("Set LocalAuthListEnabled to true for the pile or its station first.")
            return _said(self.pile, Outcome.INVALID, _("send the local list"), reason)
        return _said(self.pile, Outcome.ACCEPTED, _("the local list is up to date"))


def _said(pile, outcome, what, reason=""):
    """An outcome the platform decided without asking the pile, in the intents' words."""
    message = intents.MESSAGES[outcome] % {"pile": pile.code, "what": what}
    message = f"{message} {reason}" if reason else message
    return intents.IntentResult("console", outcome, message, PileAnswer(outcome, str(reason)))


class ReserveForm(PileForm):
    title = _("Reserve a connector")
    connector = ConnectorChoice(label=_("connector"), queryset=None)
    member_token = forms.CharField(label=_("member token"), max_length=20, strip=True)
    minutes = forms.IntegerField(label=_("for (minutes)"), min_value=1, max_value=120, initial=30)

    def clean_member_token(self):
        token = self.cleaned_data["member_token"]
        member = Member.objects.filter(
            token=token, operator_id=self.pile.station.operator_id
        ).first()
        if member is None:
            raise forms.ValidationError(_("No member of this operator has this token."))
        return member

    def run(self, user):
        data = self.cleaned_data
        return intents.connector_reserve(
            connector=data["connector"],
            member=data["member_token"],
            expires_at=timezone.now() + dt.timedelta(minutes=data["minutes"]),
            acting_user=user,
        )


class CancelReservationForm(PileForm):
    title = _("Cancel a reservation")
    reservation = forms.ModelChoiceField(label=_("active reservation"), queryset=None)

    def __init__(self, *args, pile, **kwargs):
        super().__init__(*args, pile=pile, **kwargs)
        self.fields["reservation"].queryset = Reservation.objects.filter(
            connector__pile=pile, state=ReservationState.ACTIVE
        ).select_related("connector__pile")

    def run(self, user):
        return intents.reservation_cancel(
            reservation=self.cleaned_data["reservation"], acting_user=user
        )


class ChargingProfileForm(PileForm):
    title = _("Limit power (charging profile)")
    purpose = forms.ChoiceField(label=_("purpose"), choices=ProfilePurpose.choices)
    connector = ConnectorChoice(
        label=_("connector"), queryset=None, required=False, empty_label=_("the whole pile")
    )
    session = forms.ModelChoiceField(
        label=_("session"),
        queryset=None,
        required=False,
        help_text=_("Only for a profile of one session."),
    )
    limit_kw = forms.DecimalField(
        label=_("limit (kW)"), min_value=Decimal("0.1"), max_digits=7, decimal_places=1
    )
    stack_level = forms.IntegerField(label=_("stack level"), min_value=0, initial=0)

    def __init__(self, *args, pile, **kwargs):
        super().__init__(*args, pile=pile, **kwargs)
        self.fields["session"].queryset = ChargingSession.objects.filter(
            pile=pile, state__in=ACTIVE_STATES
        )

    def run(self, user):
        data = self.cleaned_data
        try:
            profile = charging_profile_store(
                pile=self.pile,
                purpose=data["purpose"],
                periods=[(0, int(data["limit_kw"] * 1000))],
                origin=ChargingProfile.Origin.STAFF,
                connector_number=data["connector"].number if data["connector"] else 0,
                stack_level=data["stack_level"],
                session_id=data["session"].pk if data["session"] else None,
                acting_user=user,
            )
        except ProfileInvalid as exc:
            return _said(self.pile, Outcome.INVALID, _("limit power"), exc.message)
        result = intents.pile_charging_profile_set(profile=profile, acting_user=user)
        charging_profile_answered(profile=profile, outcome=result.outcome)
        return result


class ClearProfilesForm(PileForm):
    title = _("Clear charging profiles")
    profile = forms.ModelChoiceField(
        label=_("profile"), queryset=None, required=False, empty_label=_("all")
    )

    def __init__(self, *args, pile, **kwargs):
        super().__init__(*args, pile=pile, **kwargs)
        self.fields["profile"].queryset = ChargingProfile.objects.filter(pile=pile)

    def run(self, user):
        profile = self.cleaned_data["profile"]
        profile_id = profile.profile_id if profile else None
        result = intents.pile_charging_profile_clear(
            pile=self.pile, profile_id=profile_id, acting_user=user
        )
        if result.outcome == Outcome.ACCEPTED:
            charging_profiles_forget(pile=self.pile, profile_id=profile_id)
        return result


class CompositeScheduleForm(PileForm):
    title = _("Read the power schedule")
    connector = ConnectorChoice(
        label=_("connector"), queryset=None, required=False, empty_label=_("the whole pile")
    )
    hours = forms.IntegerField(label=_("next (hours)"), min_value=1, max_value=48, initial=24)

    def run(self, user):
        data = self.cleaned_data
        return intents.pile_composite_schedule(
            pile=self.pile,
            connector_number=data["connector"].number if data["connector"] else 0,
            seconds=data["hours"] * 3600,
            acting_user=user,
        )


INTENT_FORMS |= {
    "local_list": LocalListForm,
    "reserve": ReserveForm,
    "reservation_cancel": CancelReservationForm,
    "profile_set": ChargingProfileForm,
    "profile_clear": ClearProfilesForm,
    "schedule": CompositeScheduleForm,
}
