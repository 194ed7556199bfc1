"""`manage.py wallet_verify`: every wallet's cached balance equals the sum of its ledger."""

from django.core.management.base import BaseCommand, CommandError

from billing.services.wallet import wallet_verify


class Command(BaseCommand):
    help = "Check that every wallet balance equals the sum of its ledger entries."

    def handle(self, *args, **options):
        drifts = wallet_verify()
        for d in drifts:
            self.stderr.write(
                f"wallet {d.wallet_id}: cached balance {d.cached} != ledger sum {d.ledger}"
            )
        if drifts:
            raise CommandError(f"{len(drifts)} wallet(s) drifted from their ledger.")
        self.stdout.write("All wallet balances match their ledgers.")
