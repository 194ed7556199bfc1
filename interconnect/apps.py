from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InterconnectConfig(AppConfig):
    name = "interconnect"
    # The back office's app header (Django would show the label, in English capitals).
    verbose_name = _("partner platforms (T/CEC 102)")
