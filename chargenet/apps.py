from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChargenetConfig(AppConfig):
    name = "chargenet"
    verbose_name = _("chargenet")

    def ready(self):
        # Each app's consumers.py registers its event consumers (chargenet.events).
        from chargenet.events import autodiscover_consumers

        autodiscover_consumers()
