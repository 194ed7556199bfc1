"""Meter samples become a table partitioned by week (`chargenet.partitions`): rows, ids,
indexes and constraints are kept; retention then drops whole weeks."""

from django.db import migrations

from chargenet.partitions import TimePartitions, table_partition

SAMPLES = TimePartitions("billing_metersample", "at", days=7)


def partition(apps, schema_editor):
    from django.conf import settings

    table_partition(spec=SAMPLES, keep_days=settings.METER_SAMPLE_RETENTION_DAYS)


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_protocol_ref_constraints")]

    operations = [migrations.RunPython(partition, migrations.RunPython.noop, elidable=False)]
