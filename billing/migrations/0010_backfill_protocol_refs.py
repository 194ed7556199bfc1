from django.db import migrations

# Until now a session's id was the OCPP transactionId piles hold: the reference of every
# existing session is its id, so stops and meter values still queued in piles find it.
# Refusals were stored as OCPP idTagInfo words; they become the core's `AuthDecision`.
_DECISIONS = [("Invalid", "invalid"), ("Blocked", "blocked"), ("Expired", "expired"),
              ("ConcurrentTx", "concurrent")]  # fmt: skip


def _decisions_sql(pairs):
    return [
        ("UPDATE billing_chargingsession SET refused_as = %s WHERE refused_as = %s", [new, old])
        for old, new in pairs
    ]


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0009_session_protocol_ref"),
    ]

    operations = [
        migrations.RunSQL(
            "UPDATE billing_chargingsession SET protocol_ref = id::text",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "UPDATE billing_orphanstop SET protocol_ref = transaction_id::text",
            reverse_sql=(
                "UPDATE billing_orphanstop SET transaction_id = protocol_ref::bigint "
                "WHERE protocol_ref ~ '^-?[0-9]{1,18}$'"
            ),
        ),
        migrations.RunSQL(
            _decisions_sql(_DECISIONS),
            reverse_sql=_decisions_sql([(new, old) for old, new in _DECISIONS]),
        ),
    ]
