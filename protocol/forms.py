"""The back office's remote-intent forms (the pile console page): each form names an
intent in the platform's words and runs it with `run(pile, user)`."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from billing.models import ChargingSession
from billing.models.sessions import ACTIVE_STATES
from billing.services.sessions import CredentialKind

from . import intents
from .adapters import Trigger

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
