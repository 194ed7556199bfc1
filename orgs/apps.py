from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_roles_after_migrate(sender, **kwargs):
    # Permissions are created per app by auth's own post_migrate handler; sync the role
    # groups once, after the last app with models has had its permissions created.
    with_models = [config for config in apps.get_app_configs() if config.models_module]
    if sender is with_models[-1]:
        from .services import roles_sync

        roles_sync()


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = _("organisations")

    def ready(self):
        post_migrate.connect(_sync_roles_after_migrate, dispatch_uid="orgs_roles_sync")
