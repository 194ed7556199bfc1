"""The session state table and the two ways through it: one session (`session_transition`,
ORM, on a locked row) or a batch (`sessions_transition`, one SQL statement). Every write
of a session's state goes through one of them, so no fast path makes a move the table
forbids; opening a session checks its first moves with `transition_check`, and the one
move another statement makes as a part of itself (energy: started → charging, in the
meter's statement) is written by `energy_move_sql`, checked against the table here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connection
from django.utils.translation import gettext_lazy as _

from billing.events import SESSION_STARTED
from billing.models import ChargingSession, SessionState, SessionTransition
from chargenet.bulk import row_insert_statement, row_inserted, rows_insert_select
from chargenet.cursors import statement_run
from chargenet.errors import DomainError
from chargenet.events import events_insert_sql, events_inserted
from chargenet.sqltext import literal, literals


class IllegalTransition(DomainError):
    code = "session_illegal_transition"


# The explicit state table: from → allowed destinations.
TRANSITIONS: dict[str, frozenset[str]] = {
    SessionState.STARTED: frozenset({SessionState.CHARGING, SessionState.STOPPED}),
    # A refused start the pile charged for anyway: energy in its meter values makes it
    # live, a stop with energy closes it for settlement (billed, never debited).
    SessionState.REFUSED: frozenset({SessionState.CHARGING, SessionState.STOPPED}),
    SessionState.CHARGING: frozenset({SessionState.STOPPED}),
    SessionState.STOPPED: frozenset({SessionState.SETTLED, SessionState.FAULT}),
    SessionState.FAULT: frozenset({SessionState.REPAIRED, SessionState.SETTLED}),
    SessionState.REPAIRED: frozenset({SessionState.SETTLED}),
    SessionState.SETTLED: frozenset(),
}


# The states a session is opened in (`session_open`).
INITIAL_STATES = frozenset({SessionState.STARTED, SessionState.REFUSED})


def transition_check(*, from_state: str, to_state: str) -> None:
    """Raise `IllegalTransition` unless the table allows ``from_state`` → ``to_state``."""
    if to_state not in TRANSITIONS.get(from_state, frozenset()):
        raise IllegalTransition(
            _("A session cannot move from “%(from)s” to “%(to)s”.")
            % {"from": from_state, "to": to_state},
            details={"from": from_state, "to": to_state},
        )


# Energy delivered moves a started session to charging. The meter's statement makes this
# move as a part of itself (`energy_move_sql`): one statement fewer on the gateway's
# every charge. A refused session the pile charged anyway takes `sessions_transition`.
ENERGY_MOVE = (SessionState.STARTED, SessionState.CHARGING, "energy delivered")
transition_check(from_state=ENERGY_MOVE[0], to_state=ENERGY_MOVE[1])


def energy_move_sql(*, was: str, energy: str, meter_start: str, source: str) -> tuple[str, str]:
    """SQL for a statement that moves a session when energy flows: the new value of its
    state column (``was``: its state before, ``energy`` the highest register value
    sampled, ``meter_start`` its meter at start) and the INSERT recording the move, as a
    CTE over ``source``, rows of (id, was, state) after the update."""
    from_state, to_state, reason = (literal(value) for value in ENERGY_MOVE)
    state = (
        f"CASE WHEN {was} = {from_state} AND {energy} > {meter_start} THEN {to_state} "
        f"ELSE {was} END"
    )
    record = (
        f"INSERT INTO {SessionTransition._meta.db_table} ({_TRANSITION_COLUMNS}) "
        f"SELECT id, was, state, now(), {reason} FROM {source} WHERE state <> was"
    )
    return state, record


def _opening_check(state: str) -> None:
    if state not in INITIAL_STATES:
        raise IllegalTransition(
            _("A session cannot open as “%(to)s”.") % {"to": state}, details={"to": state}
        )


def _started_published() -> str:
    """The INSERT of the ``session.started`` event of each row of ``s`` (the opened
    sessions), its state a parameter: both ways of opening publish it in their statement.
    Built when used, not at import: whether anyone consumes the kind is known once the
    apps are ready (`chargenet.events.events_insert_sql`)."""
    return events_insert_sql(
        SESSION_STARTED,
        key="s.id::text",
        payload="jsonb_build_object('session_id', s.id, 'state', %s::text)",
        source="s",
    )


def session_open(
    session: ChargingSession,
    state: str,
    *,
    reason: str = "",
    then: tuple[str, str] | None = None,
    key_as_text: str | None = None,
) -> None:
    """Insert the new ``session`` (`chargenet.bulk.row_insert`, ``key_as_text`` as there:
    a session whose platform numbers its transactions gets its id as its reference), its
    first state (and ``then``, (state, reason), a move it made at once, inserted in that
    state) and its ``session.started`` event: one statement, the gateway's every start."""
    _opening_check(state)
    moves = [("", state, reason)]
    if then is not None:
        transition_check(from_state=state, to_state=then[0])
        moves.append((state, *then))
    insert, params = row_insert_statement(session, key_as_text=key_as_text)
    for from_state, to_state, why in moves:
        params += [from_state, to_state, why[:200]]
    params.append(then[0] if then else state)
    published = _started_published()
    sql = _OPEN_SQL.get((insert, len(moves), published))
    if sql is None:
        rows = ", ".join(["(%s::varchar, %s::varchar, %s::varchar)"] * len(moves))
        sql = _OPEN_SQL[insert, len(moves), published] = (
            f"WITH s AS ({insert}), "
            f"moves AS (INSERT INTO {SessionTransition._meta.db_table} ({_TRANSITION_COLUMNS}) "
            f"SELECT s.id, m.from_state, m.to_state, now(), m.reason "
            f"FROM s, (VALUES {rows}) AS m(from_state, to_state, reason)), "
            f"published AS ({published}) "
            "SELECT s.id, published.id FROM s, published"
        )
    session_id, event_id = statement_run(sql, params).fetchone()
    row_inserted(session, session_id, key_as_text=key_as_text)
    events_inserted(SESSION_STARTED, [event_id])


# `session_open`'s statements, by insert, number of moves and event insert.
_OPEN_SQL: dict[tuple[str, int, str], str] = {}


def sessions_open(
    template: ChargingSession, *, source: str, params: list, columns: Mapping[str, str]
) -> list[tuple[int, int]]:
    """Open one session per row of ``source`` (SQL over ``params``; its rows numbered by
    a column ``n`` and keyed by ``id``, drawn from the sessions' sequence by the caller),
    in one statement, as `session_open` opens one: the row, its first state (the
    template's) and its ``session.started`` event. ``columns`` gives the SQL of the fields
    that differ from row to row, ``template`` every other
    (`chargenet.bulk.rows_insert_select`). A row that would break a unique rule of the
    sessions (a replayed start, a busy connector, a member already charging) is not
    inserted: returns (n, session id) of those that were."""
    state = template.state
    _opening_check(state)
    insert, constants = rows_insert_select(template, columns=columns, source="src")
    published = _started_published()
    # The rows are inserted in the order of ``source``: give it one (e.g. by pile), and
    # two batches wait for each other's keys in the same order, never in a cycle.
    sql = (
        f"WITH src AS MATERIALIZED ({source}), "
        f"s AS ({insert} ON CONFLICT DO NOTHING RETURNING id), "
        f"moves AS (INSERT INTO {SessionTransition._meta.db_table} ({_TRANSITION_COLUMNS}) "
        "SELECT s.id, '', %s::varchar, now(), '' FROM s), "
        f"published AS ({published}) "
        "SELECT src.n, s.id, published.id FROM src JOIN s ON s.id = src.id "
        "JOIN published ON published.key = s.id::text"
    )
    rows = statement_run(sql, [*params, *constants, state, state]).fetchall()
    events_inserted(SESSION_STARTED, [event_id for _n, _id, event_id in rows])
    return [(n, session_id) for n, session_id, _event_id in rows]


def session_transition(
    *,
    session: ChargingSession,
    to_state: str,
    actor=None,
    reason: str = "",
    also_save: tuple[str, ...] = (),
) -> ChargingSession:
    """Move ``session`` to ``to_state`` if the state table allows it, recording the move.

    Call inside a transaction holding the session row (``select_for_update``);
    ``also_save`` names other fields changed with the move, saved in the same UPDATE."""
    transition_check(from_state=session.state, to_state=to_state)
    SessionTransition.objects.create(
        session=session,
        from_state=session.state,
        to_state=to_state,
        actor=actor,
        reason=reason[:200],
    )
    session.state = to_state
    session.save(update_fields=["state", "updated_at", *also_save])
    return session


def sessions_transition(
    *,
    session_ids: Sequence[int],
    from_states: Iterable[str],
    to_state: str,
    reason: str | Mapping[int, str],
    now: dt.datetime,
    values: Mapping[str, Any] | None = None,
) -> dict[int, str]:
    """Move the sessions among ``session_ids`` that are in one of ``from_states`` to
    ``to_state``, recording each move with ``reason`` (one for all, or {session id:
    reason}); returns {session id: state it left}.

    One statement whatever the batch: the UPDATE re-checks the state, so a session that
    moved meanwhile is left alone. ``values`` sets other fields (by field name) in the
    same UPDATE. A from-state the table does not allow to reach ``to_state`` raises
    `IllegalTransition` before anything is touched."""
    if not session_ids:
        return {}
    # One session (the gateway's case) by equality: planned once, where a list of ids
    # (ANY) gets a new plan for every execution (`chargenet.sqltext`).
    ids = list(session_ids)
    rows = _transition(
        match={"id": ids[0] if len(ids) == 1 else ids},
        from_states=from_states,
        to_state=to_state,
        reason=reason,
        now=now,
        values=values,
    )
    return {session_id: from_state for session_id, from_state, *_rest in rows}


def _transition(
    *,
    match: Mapping[str, Any],
    from_states: Iterable[str],
    to_state: str,
    reason: str | Mapping[int, str],
    now: dt.datetime,
    values: Mapping[str, Any] | None = None,
    returning: Sequence[str] = (),
    publish: str = "",
    messages: tuple[str, list] | None = None,
    row_values: Sequence[str] = (),
) -> list[tuple]:
    """`sessions_transition` for the gateway's fast paths, which find the session by
    another key (``match``: field name → value, a list meaning any of them) and read some
    of its fields back (``returning``, by field name): rows of (id, state left, *returning).
    ``publish``: the kind of an event ({"session_id": …}) each moved session publishes,
    in the same statement.

    ``messages``: (SQL, its parameters) of rows that each find a session, for a batch of
    the gateway's messages in one statement: ``match`` then maps field names to the
    columns of those rows, ``row_values`` names fields set from the rows' columns of the
    same names (``values`` are the same for all), and each row returned starts with the
    message's column ``n``. Sessions are locked in the order of their ids."""
    from_states = tuple(str(state) for state in from_states)
    for from_state in from_states:
        transition_check(from_state=from_state, to_state=to_state)
    sets = {"state": to_state, "updated_at": now, **(values or {})}
    if messages is None:
        params = [*match.values(), *sets.values(), to_state, now]
    else:
        params = [*messages[1], *sets.values(), to_state, now]
    if isinstance(reason, str):  # one for all: no arrays to dump (psycopg does it in Python)
        params.append(reason[:200])
    else:
        params += [list(reason), [text[:200] for text in reason.values()]]
    published = ""
    if publish:
        published = events_insert_sql(
            publish,
            key="m.id::text",
            payload="jsonb_build_object('session_id', m.id)",
            source="moved m",
        )
    shape = (
        tuple(
            (name, value if messages else isinstance(value, list)) for name, value in match.items()
        ),
        from_states,
        tuple(sets),
        tuple(returning),
        isinstance(reason, str),
        published,
        messages[0] if messages else "",
        tuple(row_values),
    )
    sql = _TRANSITION_SQL.get(shape)
    if sql is None:
        sql = _TRANSITION_SQL[shape] = _transition_sql(*shape)
    rows = statement_run(sql, params).fetchall()
    if not publish:
        return rows
    events_inserted(publish, [row[-1] for row in rows])
    return [row[:-1] for row in rows]


# `_transition`'s statements by shape: built once, not on every stop and every first
# energy of the gateway.
_TRANSITION_SQL: dict[tuple, str] = {}


def _transition_sql(
    match: tuple[tuple[str, bool], ...],
    from_states: tuple[str, ...],
    sets: tuple[str, ...],
    returning: tuple[str, ...],
    one_reason: bool,
    published: str,
    messages: str,
    row_values: tuple[str, ...],
) -> str:
    meta = ChargingSession._meta
    table, pk, state = meta.db_table, _column(meta, "id"), _column(meta, "state")
    if messages:  # each row of msg finds its session by its columns
        conditions = [f"s.{_column(meta, name)} = msg.{column}" for name, column in match]
    else:
        conditions = [
            f"s.{_column(meta, name)} = {'ANY(%s)' if many else '%s'}" for name, many in match
        ]
    if "protocol_ref" in dict(match):  # the partial unique index (`chargenet.sqltext`)
        conditions.append(f"s.{_column(meta, 'protocol_ref')} <> ''")
    where = " AND ".join(conditions)
    assignments = ", ".join(
        [f"{_column(meta, name)} = %s" for name in sets]
        + [f"{_column(meta, name)} = msg.{name}" for name in row_values]
    )
    extra = "".join(f", s.{_column(meta, name)}" for name in returning)
    moved_columns = "id, from_state" + "".join(f", r{i}" for i in range(len(returning)))
    if one_reason:
        why, reasons = "%s", ""
    else:
        why = "COALESCE(r.reason, '')"
        reasons = " LEFT JOIN unnest(%s::bigint[], %s::varchar[]) AS r (id, reason) ON r.id = m.id"
    states = f"s.{state} IN ({literals(from_states)})"
    if messages:
        head = (
            f"WITH msg AS ({messages}), old AS (SELECT msg.n, s.{pk}, s.{state} FROM msg "
            f"JOIN {table} s ON {where} WHERE {states} ORDER BY s.{pk} FOR UPDATE OF s), "
            f"moved (n, {moved_columns}) AS (UPDATE {table} s SET {assignments} "
            f"FROM old JOIN msg ON msg.n = old.n "
            f"WHERE s.{pk} = old.{pk} RETURNING old.n, s.{pk}, old.{state}{extra}), "
        )
    else:
        head = (
            f"WITH old AS (SELECT s.{pk}, s.{state} FROM {table} s WHERE {where} "
            f"AND {states} FOR UPDATE), "
            f"moved ({moved_columns}) AS (UPDATE {table} s SET {assignments} FROM old "
            f"WHERE s.{pk} = old.{pk} RETURNING s.{pk}, old.{state}{extra}), "
        )
    sql = (
        head
        + f"recorded AS (INSERT INTO {SessionTransition._meta.db_table} ({_TRANSITION_COLUMNS}) "
        f"SELECT m.id, m.from_state, %s, %s, {why} FROM moved m{reasons})"
    )
    if not published:
        return sql + " SELECT * FROM moved ORDER BY id"
    # Each moved session with the id of the event it published (joined by key).
    return sql + (
        f", published AS ({published}) SELECT m.*, p.id FROM moved m "
        "JOIN published p ON p.key = m.id::text ORDER BY m.id"
    )


def _column(meta, name: str) -> str:
    return connection.ops.quote_name(meta.get_field(name).column)


_TRANSITION_COLUMNS = ", ".join(
    _column(SessionTransition._meta, name)
    for name in ("session", "from_state", "to_state", "at", "reason")
)
