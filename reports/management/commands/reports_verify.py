"""manage.py reports_verify [--from D --to D]: every report figure against the sum of its
bills; prints what differs and exits 1 if anything does."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from reports.verify import reports_verify, rollups_verify


class Command(BaseCommand):
    help = "Check that every report total equals the sum of its bills (exit 1 otherwise)."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="first_day", type=dt.date.fromisoformat)
        parser.add_argument("--to", dest="last_day", type=dt.date.fromisoformat)

    def handle(self, *args, first_day=None, last_day=None, **options):
        differences = [
            *rollups_verify(first_day=first_day, last_day=last_day),
            *reports_verify(first_day=first_day, last_day=last_day),
        ]
        for difference in differences[:200]:
            self.stdout.write(str(difference))
        if differences:
            raise CommandError(f"{len(differences)} report figures differ from their bills")
        self.stdout.write("reports agree with the bills")
