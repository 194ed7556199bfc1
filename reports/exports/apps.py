from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExportsConfig(AppConfig):
    """The export machinery of `reports` as an app of its own (label ``exports``): its
    models, admin ("My exports") and translations are found like any app's, apart from
    the report tables and their migrations."""

    name = "reports.exports"
    label = "exports"
    verbose_name = _("exports")

    def ready(self):
        # Register the tabulars a worker builds again: the list exports (the bills, which
        # also answer the kernel's export buttons) and the live-sessions screen.
        from reports import live  # noqa: F401

        from . import changelists  # noqa: F401
