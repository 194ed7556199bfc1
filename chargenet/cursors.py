"""One statement of a hot path, without a new cursor for it.

Django's ``connection.cursor()`` makes a psycopg cursor and Django's wrapper around it
for every statement: on this project's gateway machine that doubled a prepared
statement's CPU in the client (113 µs against 56 µs measured for the same SELECT), and
the gateway runs seven such statements for each charge. `statement_run` runs the
statement on one psycopg cursor kept per connection, with Django's error translation
(an ``IntegrityError`` is still Django's) and its refusal to run in a transaction marked
for rollback. When Django logs queries (DEBUG, or a test's ``CaptureQueriesContext``)
it takes Django's cursor, so the statement is logged and counted as any other.

The cursor is shared: fetch a statement's rows before running the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections


def statement_run(sql: str, params: Sequence[Any]):
    """Run ``sql`` with ``params``; returns the cursor to fetch its rows (and rowcount)
    from, valid until the next statement."""
    db = connections[DEFAULT_DB_ALIAS]  # once: each access through the proxy looks it up
    raw = db.connection
    if raw is None or db.queries_logged:
        cursor = db.cursor()  # connects if need be; logs the statement
        cursor.execute(sql, params)
        return cursor
    db.validate_no_broken_transaction()
    cursor = getattr(db, "_statement_cursor", None)
    if (
        cursor is None
        or cursor.connection is not raw  # reconnected
        or type(cursor) is not raw.cursor_factory  # binding changed (`protocol.db`)
        or cursor.closed
    ):
        cursor = db._statement_cursor = db.create_cursor()  # as Django makes its own
    with db.wrap_database_errors:
        cursor.execute(sql, params)
    return cursor
