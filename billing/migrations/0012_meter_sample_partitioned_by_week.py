"""Meter samples become a table partitioned by week (`chargenet.partitions`): rows, ids,
indexes and constraints are kept; retention then drops whole weeks. First the session's
own index goes: the (session, at) unique constraint serves every lookup by session."""

import django.db.models.deletion
from django.db import migrations, models

from chargenet.partitions import TimePartitions, table_partition

SAMPLES = TimePartitions("billing_metersample", "at", days=7)


def partition(apps, schema_editor):
    from django.conf import settings

    table_partition(spec=SAMPLES, keep_days=settings.METER_SAMPLE_RETENTION_DAYS)


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_protocol_ref_constraints")]

    operations = [
        migrations.AlterField(
            model_name="metersample",
            name="session",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="samples",
                to="billing.chargingsession",
                verbose_name="charging session",
            ),
        ),
        migrations.RunPython(partition, migrations.RunPython.noop, elidable=False),
    ]
