"""Insert new rows without the ORM's per-call statement building.

`bulk_insert`: many new rows in one statement with one array parameter per column.

Django's `bulk_create` does this on PostgreSQL (INSERT … SELECT FROM UNNEST) unless a
column is an array: then it sends one placeholder per value, and quoting thousands of
them costs more than the insert. A settlement batch inserts a hundred bills, which carry
their fault codes as an integer array; `bulk_insert` sends that column as array literals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from django.contrib.postgres.fields import ArrayField
from django.db import connection, models
from django.db.models import IntegerField, Model
from django.db.models.fields import AutoFieldMixin


def _literal(values) -> str | None:
    # Integers only (see `_unnestable`): no quoting needed.
    return None if values is None else "{" + ",".join(str(int(v)) for v in values) + "}"


def _unnestable(field) -> bool:
    return not isinstance(field, ArrayField) or isinstance(field.base_field, IntegerField)


def _inserted_fields(model: type[Model]) -> list:
    """The columns an INSERT of a new ``model`` row fills (all but an identity key)."""
    return [f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)]


def _db_value(field, obj: Model):
    """What ``save()`` would store in ``field`` for the new ``obj`` (auto_now_add etc.)."""
    return field.get_db_prep_save(field.pre_save(obj, True), connection)


def bulk_insert(objs: Sequence[Model], *, unique_field: str) -> None:
    """Insert ``objs`` (new instances of one model) and set their primary keys, in ONE
    statement whatever their number. Keys are matched back by ``unique_field`` (a column
    unique in the table), not by the order RETURNING happens to give rows in, which
    PostgreSQL does not promise. Models with a non-integer array column go through
    `bulk_create`."""
    if not objs:
        return
    meta = type(objs[0])._meta
    fields = _inserted_fields(type(objs[0]))
    if not all(map(_unnestable, fields)):
        type(objs[0]).objects.bulk_create(objs)
        return
    columns, casts, params = [], [], []
    for n, field in enumerate(fields):
        values = [_db_value(field, obj) for obj in objs]
        if isinstance(field, ArrayField):
            casts.append(f"c{n}::{field.db_type(connection)}")
            params.append([_literal(v) for v in values])
            array_type = "text[]"
        else:
            casts.append(f"c{n}")
            array_type = field.db_type(connection).split("(")[0] + "[]"
            params.append(values)
        columns.append((connection.ops.quote_name(field.column), f"%s::{array_type}", f"c{n}"))
    pk = meta.pk.column
    sql = (
        f"INSERT INTO {connection.ops.quote_name(meta.db_table)} "
        f"({', '.join(c[0] for c in columns)}) "
        f"SELECT {', '.join(casts)} "
        f"FROM unnest({', '.join(c[1] for c in columns)}) WITH ORDINALITY "
        f"AS u({', '.join(c[2] for c in columns)}, n) ORDER BY n "
        f"RETURNING {connection.ops.quote_name(pk)}, "
        f"{connection.ops.quote_name(meta.get_field(unique_field).column)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pks = dict((key, pk_value) for pk_value, key in cursor.fetchall())
    for obj in objs:
        obj.pk = pks[getattr(obj, unique_field)]
        obj._state.adding = False
        obj._state.db = connection.alias


_ROW_INSERTS: dict[tuple[type[Model], str | None], tuple[list, str]] = {}


def row_insert(obj: Model, *, key_as_text: str | None = None) -> None:
    """Insert ``obj`` (a new instance) and set its primary key, as ``save()`` would (each
    field's ``pre_save`` and ``get_db_prep_save``, so ``auto_now_add`` and defaults
    apply) but with the statement's text built once per model: for the gateway's
    one-row-per-message inserts (a session a start), where ``objects.create()`` spent
    0.3–0.5 ms of CPU compiling the same INSERT every time. No signals are sent (the
    project registers none).

    ``key_as_text`` names a field that stores the new key, as text, filled by the same
    statement (the key is drawn from the table's sequence first): a session whose
    platform numbers its transactions is inserted with its reference, instead of being
    updated with it after, which rewrote the row and every index of the table."""
    sql, values = row_insert_statement(obj, key_as_text=key_as_text)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row_inserted(obj, cursor.fetchone()[0], key_as_text=key_as_text)


def row_insert_statement(obj: Model, *, key_as_text: str | None = None) -> tuple[str, list]:
    """`row_insert`'s statement and parameters, for a caller that runs it as a part of a
    larger one (``WITH new AS (…) …``: it returns the new row's key) and then calls
    `row_inserted` with the key."""
    model = type(obj)
    cached = _ROW_INSERTS.get((model, key_as_text))
    if cached is None:
        cached = _ROW_INSERTS[model, key_as_text] = _row_insert_sql(model, key_as_text)
    readers, sql = cached
    values = obj.__dict__
    return sql, [
        value
        if plain
        and type(value := values[attname]) in plain
        and (type(value) is not dt.datetime or value.tzinfo is not None)
        else _db_value(field, obj)
        for field, attname, plain in readers
    ]


def row_inserted(obj: Model, pk: int, *, key_as_text: str | None = None) -> None:
    """Make ``obj`` the saved row of key ``pk`` that `row_insert_statement` inserted."""
    obj.pk = pk
    if key_as_text is not None:
        setattr(obj, key_as_text, str(pk))
    obj._state.adding = False
    obj._state.db = connection.alias


# Fields whose stored value is the attribute itself when it is of these types: what
# ``get_db_prep_save`` gives back for them unchanged (an aware datetime only). Any other
# value, and every other field (decimals, JSON, arrays, auto_now), goes through Django.
_PLAIN = (
    ((models.CharField, models.TextField), (str, type(None))),
    ((models.IntegerField, models.ForeignKey), (int, type(None))),
    ((models.BooleanField,), (bool, type(None))),
    ((models.DateTimeField,), (dt.datetime, type(None))),
)


def _reader(field) -> tuple:
    """(field, attribute, types stored as they are) for `row_insert_statement`: reading
    the attribute is a tenth of the CPU of Django's pre_save/get_db_prep_save, which a
    session's thirty-odd columns made a sixth of the gateway's start."""
    plain = ()
    auto = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    if not auto and not isinstance(field, AutoFieldMixin):
        for classes, types in _PLAIN:
            target = field.target_field if isinstance(field, models.ForeignKey) else field
            if isinstance(field, classes) and not isinstance(target, models.DecimalField):
                plain = types
                break
    return field, field.attname, plain


def _row_insert_sql(model: type[Model], key_as_text: str | None) -> tuple[list, str]:
    """(`_reader` of each field the INSERT fills, in order; its text)."""
    meta = model._meta
    q = connection.ops.quote_name
    fields = _inserted_fields(model)
    table, pk = q(meta.db_table), q(meta.pk.column)
    if key_as_text is None:
        sql = (
            f"INSERT INTO {table} ({', '.join(q(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {pk}"
        )
        return [_reader(field) for field in fields], sql
    keyed = meta.get_field(key_as_text)
    fields = [f for f in fields if f is not keyed]
    columns = [pk, q(keyed.column), *(q(f.column) for f in fields)]
    sequence = f"pg_get_serial_sequence('{meta.db_table}', '{meta.pk.column}')"
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT k.id, k.id::text, {', '.join(['%s'] * len(fields))} "
        f"FROM (SELECT nextval({sequence}) AS id) k RETURNING {pk}"
    )
    return [_reader(field) for field in fields], sql


_SELECT_INSERTS: dict[tuple, tuple[list, str]] = {}


def rows_insert_select(
    template: Model, *, columns: Mapping[str, str], source: str
) -> tuple[str, list]:
    """An INSERT of one new ``type(template)`` row per row of ``source`` (SQL: a table
    name or an alias), for a statement that opens many rows at once (the gateway's
    batch of starts): ``columns`` gives the SQL, over the source's columns, of the fields
    that differ from row to row (the key among them if the caller draws it); every other
    field stores what ``template`` would (its ``pre_save`` and ``get_db_prep_save``, as
    `row_insert` does), sent once as a parameter. Returns the statement's text, without
    RETURNING, and its parameters."""
    model = type(template)
    key = (model, tuple(columns.items()), source)
    cached = _SELECT_INSERTS.get(key)
    if cached is None:
        meta = model._meta
        q = connection.ops.quote_name
        fields = [
            f for f in meta.concrete_fields if f.name in columns or f in _inserted_fields(model)
        ]
        constant = [f for f in fields if f.name not in columns]
        values = [
            columns[f.name] if f.name in columns else f"%s::{f.db_type(connection)}" for f in fields
        ]
        sql = (
            f"INSERT INTO {q(meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "
            f"SELECT {', '.join(values)} FROM {source}"
        )
        cached = _SELECT_INSERTS[key] = (constant, sql)
    constant, sql = cached
    return sql, [_db_value(field, template) for field in constant]
