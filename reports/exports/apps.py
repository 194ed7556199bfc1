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
        # The list exports (the bills) and the kernel's export buttons meet here.
        from . import changelists  # noqa: F401
