# Joins the gateway branch's orphan stops with the billing branch's tariffs/bills/wallet line.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_orphan_stop"),
        ("billing", "0004_ledger_append_only"),
    ]

    operations = []
