"""The frame journal becomes a table partitioned by day (`chargenet.partitions`): its rows,
ids, indexes and constraints are kept; retention then drops whole days. First it sheds
the indexes the log search does not use (each is paid by every row)."""

from django.db import migrations, models

from chargenet.partitions import TimePartitions, table_partition

FRAMES = TimePartitions("protocol_frame", "at", days=1)


def partition(apps, schema_editor):
    from django.conf import settings

    table_partition(spec=FRAMES, keep_days=settings.GATEWAY_JOURNAL_RETENTION_DAYS)


class Migration(migrations.Migration):
    dependencies = [("protocol", "0001_frame_journal")]

    operations = [
        migrations.AlterField(
            model_name="frame",
            name="action",
            field=models.CharField(blank=True, max_length=64, verbose_name="action"),
        ),
        migrations.AlterField(
            model_name="frame",
            name="order_no",
            field=models.CharField(blank=True, max_length=20, verbose_name="order number"),
        ),
        migrations.AlterField(
            model_name="frame",
            name="pile_code",
            field=models.CharField(max_length=64, verbose_name="pile code"),
        ),
        migrations.AddIndex(
            model_name="frame",
            index=models.Index(fields=["order_no"], name="frame_order_no"),
        ),
        migrations.RunPython(partition, migrations.RunPython.noop, elidable=False),
    ]
