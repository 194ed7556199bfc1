from django.db import migrations

# The wallet ledger is append-only: the database itself refuses to change or delete an
# entry (a correction is a new entry). TRUNCATE (test flushes) is not a row change.
APPEND_ONLY = """
CREATE FUNCTION billing_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the wallet ledger is append-only: add a correcting entry instead';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_ledger_append_only BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS billing_ledger_append_only ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_tariffs_bills_wallet"),
    ]

    operations = [migrations.RunSQL(APPEND_ONLY, DROP)]
