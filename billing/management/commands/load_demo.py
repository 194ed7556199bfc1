from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from billing.demo import load_demo_tariffs, load_demo_wallets
from chargenet.errors import DomainError
from stations.demo import DEMO_PASSWORD, demo_pile_credentials, load_demo


class Command(BaseCommand):
    help = (
        "Build the Zhongshan demo network with its tariffs and funded drivers "
        "(idempotent: run it any number of times)."
    )

    def handle(self, *args, **options):
        try:
            result = load_demo()
            # The network first, then what billing needs to price and charge demo sessions.
            load_demo_tariffs(result.operator)
            load_demo_wallets(result.operator)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        piles = len(demo_pile_credentials())
        self.stdout.write(
            _("Demo network “%(operator)s”: %(piles)d piles (%(new)d new).")
            % {"operator": result.operator.name, "piles": piles, "new": result.piles_created}
        )
        for username in result.staff_created:
            self.stdout.write(
                _("Created staff account %(user)s / %(password)s")
                % {"user": username, "password": DEMO_PASSWORD}
            )
