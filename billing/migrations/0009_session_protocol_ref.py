from django.db import migrations, models


class Migration(migrations.Migration):
    """Sessions and orphan stops are found by (pile, protocol transaction reference);
    filled in by 0010, constrained by 0011."""

    dependencies = [
        ("billing", "0008_session_refused"),
    ]

    operations = [
        migrations.AddField(
            model_name="chargingsession",
            name="protocol_ref",
            field=models.CharField(
                default="", max_length=64, verbose_name="protocol transaction reference"
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="orphanstop",
            name="protocol_ref",
            field=models.CharField(
                default="", max_length=64, verbose_name="transaction reference sent"
            ),
            preserve_default=False,
        ),
    ]
