"""`statement_run`: one kept cursor per connection, Django's errors, Django's query log."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from chargenet.cursors import statement_run
from orgs.models import Operator

pytestmark = pytest.mark.django_db


def test_statements_share_one_cursor_until_the_connection_changes():
    first = statement_run("SELECT %s::int + 1", [41])
    assert first.fetchone() == (42,)
    second = statement_run("SELECT %s::text || 'b'", ["a"])
    assert second is first
    assert second.fetchone() == ("ab",)
    assert statement_run("SELECT 1 WHERE false", []).rowcount == 0


def test_a_refused_statement_raises_djangos_error_and_the_transaction_goes_on():
    Operator.objects.create(code="dup", name="First")
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        table = Operator._meta.db_table
        statement_run(f"INSERT INTO {table} SELECT * FROM {table} WHERE code = %s", ["dup"])
    assert refused.value.__cause__.diag.constraint_name == f"{Operator._meta.db_table}_pkey"
    assert list(Operator.objects.filter(code="dup").values_list("name", flat=True)) == ["First"]


def test_no_statement_runs_in_a_transaction_marked_for_rollback():
    with transaction.atomic():
        transaction.set_rollback(True)
        with pytest.raises(TransactionManagementError):
            statement_run("SELECT 1", [])


def test_logged_statements_are_counted_like_any_other():
    with CaptureQueriesContext(connection) as ctx:
        assert statement_run("SELECT %s::int * 2", [21]).fetchone() == (42,)
    assert [q["sql"] for q in ctx.captured_queries] == ["SELECT 21::int * 2"]
