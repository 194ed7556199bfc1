"""manage.py reports_rebuild --from 2019-10-01 --to 2019-10-31: recompute the rollups of
those local days from the bills."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from reports.services.rollups import rollups_rebuild


class Command(BaseCommand):
    help = "Recompute the report rollups of a date range (local days) from the bills."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="first_day", type=dt.date.fromisoformat, required=True)
        parser.add_argument("--to", dest="last_day", type=dt.date.fromisoformat, required=True)

    def handle(self, *args, first_day: dt.date, last_day: dt.date, **options):
        if last_day < first_day:
            raise CommandError("--to is before --from")
        bill_rows, fault_rows = rollups_rebuild(first_day=first_day, last_day=last_day)
        self.stdout.write(
            f"rebuilt {first_day}..{last_day}: {bill_rows} daily rows, {fault_rows} fault rows"
        )
