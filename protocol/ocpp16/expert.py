"""The OCPP 1.6 adapter's expert command: any command the platform sends (`COMMAND_ACTIONS`)
with a payload typed as on the wire, for support engineers when no intent fits (e.g.
ChangeAvailability, ClearCache). Shown on the pile console for OCPP 1.6 piles only; audited
through `pile_command_by_staff`."""

from __future__ import annotations

import json

from django import forms
from django.utils.translation import gettext_lazy as _

from chargenet.errors import DomainError
from protocol.services import COMMAND_ACTIONS, pile_command_by_staff


class ExpertCommandForm(forms.Form):
    title = _("OCPP 1.6 expert command")
    action = forms.ChoiceField(label=_("command"), choices=[(a, a) for a in COMMAND_ACTIONS])
    payload = forms.CharField(
        label=_("payload (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=_('As in OCPP 1.6, e.g. {"type": "Soft"} for Reset.'),
    )
    timeout = forms.IntegerField(label=_("timeout (s)"), min_value=1, max_value=120, initial=30)

    def __init__(self, *args, pile, **kwargs):
        super().__init__(*args, **kwargs)
        self.pile = pile

    def clean_payload(self):
        text = self.cleaned_data["payload"].strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(_("The payload is not valid JSON: %s") % exc) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError(_("The payload must be a JSON object {…}."))
        return value

    def send(self, user) -> tuple[bool, str]:
        """Send it; whether the pile took it, and the answer or the error to show."""
        data = self.cleaned_data
        try:
            answer = pile_command_by_staff(
                pile=self.pile,
                action=data["action"],
                payload=data["payload"],
                timeout=data["timeout"],
                actor=user,
            )
        except DomainError as exc:
            return False, str(exc.message)
        return True, _("Pile %(code)s answered %(action)s: %(answer)s") % {
            "code": self.pile.code,
            "action": data["action"],
            "answer": json.dumps(answer, ensure_ascii=False),
        }
