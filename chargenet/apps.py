from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChargenetConfig(AppConfig):
    name = "chargenet"
    # The back office's app header (Django would show the label, in English capitals).
    verbose_name = _("platform")

    def ready(self):
        # Each app's consumers.py registers its event consumers (chargenet.events).
        from chargenet.events import autodiscover_consumers

        autodiscover_consumers()
