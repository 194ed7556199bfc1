from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0010_backfill_protocol_refs"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="chargingsession",
            constraint=models.UniqueConstraint(
                condition=models.Q(("protocol_ref", ""), _negated=True),
                fields=("pile", "protocol_ref"),
                name="session_protocol_ref_unique",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="orphanstop",
            name="orphan_stop_once",
        ),
        migrations.RemoveField(
            model_name="orphanstop",
            name="transaction_id",
        ),
        migrations.AddConstraint(
            model_name="orphanstop",
            constraint=models.UniqueConstraint(
                fields=("pile", "protocol_ref", "stopped_at"), name="orphan_stop_once"
            ),
        ),
    ]
