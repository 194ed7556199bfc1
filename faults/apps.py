from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FaultsConfig(AppConfig):
    name = "faults"
    # The back office's app header (Django would show the label, in English capitals).
    verbose_name = _("faults")

    def ready(self):
        # Settlement asks the desk's rules before charging a bill, through billing's port
        # (billing does not import the desk).
        from billing.services.settlement_check import settlement_check_register

        from .detection import FaultDeskCheck

        settlement_check_register(FaultDeskCheck())
