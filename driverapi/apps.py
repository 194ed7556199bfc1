from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DriverApiConfig(AppConfig):
    name = "driverapi"
    verbose_name = _("driver API")
