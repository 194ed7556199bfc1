"""Meter samples of a session, stored once per (session, moment); adapters convert their
protocol's values to `Sample` in platform units."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing.models import ChargingSession, MeterSample, SessionState
from billing.models.sessions import ACTIVE_STATES, METER_SAMPLE_PARTITIONS
from billing.services.sessions.batches import calls_run
from billing.services.sessions.settlement_queue import _sessions_stopped
from billing.services.sessions.states import energy_move_sql, sessions_transition
from chargenet.cursors import statement_run
from chargenet.partitions import partitions_drop_before
from chargenet.sqltext import literals
from stations.models import Connector, Pile


@dataclass(frozen=True)
class Sample:
    """One sampled moment, already converted to platform units."""

    at: dt.datetime
    energy_wh: Decimal | None = None
    power_w: Decimal | None = None
    current_a: Decimal | None = None
    voltage_v: Decimal | None = None
    soc: int | None = None
    context: str = ""


@dataclass(frozen=True)
class MeterResult:
    session_id: int | None
    order_no: str
    stored: int


def session_meter_record(
    *,
    pile: Pile,
    connector_number: int,
    protocol_ref: str | None,
    samples: list[Sample],
) -> MeterResult:
    """Store meter samples against their session (idempotent, any order).

    Without a transaction reference (clock-aligned samples) they go to the session active
    on the connector, if any; samples of no known session are only in the frame journal.

    This is the gateway's most frequent write, so it is one statement, not an ORM round
    of select-modify-save: an UPDATE that finds and locks the session (and moves its
    last-sample time forward) and, in the same statement, the INSERT … ON CONFLICT DO
    NOTHING of the samples for the session it found."""
    if protocol_ref is None and connector_number <= 0:
        return MeterResult(None, "", 0)  # the pile's own meter: no session to find
    latest, energy, unique = _marks(samples)
    rows = len(unique) if len(unique) <= _FEW else 0
    if rows:
        values = [value for s in unique for value in _sample_values(s)]
    else:
        values = [list(column) for column in zip(*map(_sample_values, unique), strict=True)]
        values = values or [[] for _type in _SAMPLE_TYPES]
    sql = (_METER_BY_REF if protocol_ref is not None else _METER_ON_CONNECTOR)[rows]
    if protocol_ref is not None:
        params = [pile.pk, protocol_ref, latest, energy, *values]
    else:
        params = [pile.pk, pile.pk, connector_number, latest, energy, *values]
    with transaction.atomic():
        # Not `cursor.description` first: psycopg builds its column objects on every
        # call, a tenth of this, the gateway's most frequent service.
        row = statement_run(sql, params).fetchone()
        if row is None:
            return MeterResult(None, "", 0)
        session_id, order_no, state, meter_start_wh, stored = row
        # A started session with energy moved to charging in the statement; a refused
        # one the pile charged anyway takes `_session_charging`.
        if state in _UNTIL_ENERGY and _energy_seen(meter_start_wh, samples):
            _session_charging(session_id, state)
    return MeterResult(session_id, order_no, stored)


def sessions_meter_record(calls: list[dict]) -> list[MeterResult]:
    """`session_meter_record` for many messages at once, as the gateway's group commit
    runs a batch's MeterValues (`protocol.db`): the same results, in one statement for
    all those that name their transaction, each of its own session; a second message for
    a session, and those without a reference, follow one by one, in their order."""
    batched, seen = [], set()
    for i, call in enumerate(calls):
        key = (call["pile"].pk, call["protocol_ref"])
        if call["protocol_ref"] is not None and key not in seen:
            seen.add(key)
            batched.append(i)
    return calls_run(calls, batched, _meter_batch, session_meter_record)


# The gateway's group commit gives a batch's MeterValues to this, all at once.
session_meter_record.many = sessions_meter_record


def _meter_batch(calls: list[dict]) -> list[MeterResult]:
    sessions, samples = [], []
    for n, call in enumerate(calls):
        latest, energy, unique = _marks(call["samples"])
        sessions.append([n, call["pile"].pk, call["protocol_ref"], _iso(latest), _number(energy)])
        for s in unique:
            samples.append(
                [n, s.at.isoformat(), _number(s.energy_wh), _number(s.power_w),
                 _number(s.current_a), _number(s.voltage_v), s.soc, s.context]
            )  # fmt: skip
    found: dict[int, tuple] = {}
    with transaction.atomic():
        rows = statement_run(_METER_BATCH, [json.dumps(sessions), json.dumps(samples)]).fetchall()
        for n, session_id, order_no, state, meter_start_wh, stored in rows:
            found[n] = (session_id, order_no, stored)
            marks = calls[n]["samples"]
            if state in _UNTIL_ENERGY and _energy_seen(meter_start_wh, marks):
                _session_charging(session_id, state)  # refused, and charging anyway
    return [MeterResult(*found[n]) if n in found else MeterResult(None, "", 0)
            for n in range(len(calls))]  # fmt: skip


def _marks(samples: list[Sample]) -> tuple:
    """A message's latest moment, highest energy register and its samples once per moment
    (the last given for a moment)."""
    latest = max((s.at for s in samples), default=None)
    energy = max((s.energy_wh for s in samples if s.energy_wh is not None), default=None)
    return latest, energy, list({s.at: s for s in samples}.values())


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _number(value) -> str | None:
    # Decimals as text: JSON numbers would go through floats on the way.
    return None if value is None else str(value)


_SAMPLE_COLUMNS = ("session_id", "at", "energy_wh", "power_w", "current_a", "voltage_v", "soc",
                   "context")  # fmt: skip
# The types of the columns after session_id, as the table has them.
_SAMPLE_TYPES = ("timestamptz", "numeric", "numeric", "numeric", "numeric", "smallint", "varchar")
# Up to this many samples a message, they are sent as rows of values; more as one array a
# column. Most messages carry one sample, and psycopg dumps an array of one value in
# Python, ten times the CPU of the value alone.
_FEW = 4


def _sample_values(s: Sample) -> tuple:
    return (s.at, s.energy_wh, s.power_w, s.current_a, s.voltage_v, s.soc, s.context)


def _samples_sql(rows: int) -> str:
    """The samples of a message as a table: ``rows`` rows of values, or (``rows`` 0) one
    array a column, for any number."""
    if not rows:
        arrays = ", ".join(f"%s::{t}[]" for t in _SAMPLE_TYPES)
        return f"unnest({arrays})"
    row = "(" + ", ".join(f"%s::{t}" for t in _SAMPLE_TYPES) + ")"
    return f"(VALUES {', '.join([row] * rows)})"


def _meter_sql(where: str) -> dict[int, str]:
    """The statement that finds and locks a session for its samples, moves its
    last-sample time forward and, when they show energy delivered, moves it from started
    to charging (`states.energy_move_sql`), with the INSERT of the samples
    (`_samples_sql`) for the session it found, by number of rows of values (1 to `_FEW`;
    0: arrays); ``where`` uses field names in braces, filled from the model. Returns the
    session's id, order number, state (after the move), meter start and how many samples
    were new."""
    return {rows: _meter_rows_sql(where, rows) for rows in range(_FEW + 1)}


def _meter_rows_sql(where: str, rows: int) -> str:
    meta = ChargingSession._meta
    c = _columns(meta)
    connectors = Connector._meta
    k = _columns(connectors)
    samples = f"{_samples_sql(rows)} AS v({', '.join(_SAMPLE_COLUMNS[1:])})"
    return (
        f"WITH old AS (SELECT {c['id']}, {c['state']} FROM {meta.db_table} "
        f"WHERE {where.format(c=c, k=k, connectors=connectors.db_table)} FOR UPDATE), "
        + _meter_write_sql(latest="%s", energy="%s::numeric", samples=f", {samples}")
        + "SELECT s.id, s.order_no, s.state, s.meter_start_wh, (SELECT count(*) FROM stored) "
        "FROM s"
    )


def _meter_write_sql(
    *, latest: str, energy: str, samples: str, messages: str = "", number: str = ""
) -> str:
    """What both meter statements do once the CTE ``old`` has locked the sessions (id,
    state): ``s``, the UPDATE (last-sample time to ``latest``, the energy move on
    ``energy``; ``messages`` joins the batch's messages, each row's ``number`` returned
    first); ``moves``, the moves recorded; ``stored``, the INSERT of the samples (``v``,
    joined to ``s`` by ``samples``)."""
    meta = ChargingSession._meta
    c = _columns(meta)
    state, moves = energy_move_sql(
        was="old.state", energy=energy, meter_start=f"x.{c['meter_start_wh']}", source="s"
    )
    return (
        f"s AS (UPDATE {meta.db_table} x SET {c['last_sample_at']} = "
        f"GREATEST(x.{c['last_sample_at']}, {latest}), {c['updated_at']} = now(), "
        f"{c['state']} = {state} FROM old{messages} WHERE x.{c['id']} = old.{c['id']} "
        f"RETURNING {number}x.{c['id']} AS id, x.{c['order_no']} AS order_no, "
        f"x.{c['state']} AS state, x.{c['meter_start_wh']} AS meter_start_wh, "
        f"old.{c['state']} AS was), "
        f"moves AS ({moves}), "
        f"stored AS (INSERT INTO {MeterSample._meta.db_table} ({', '.join(_SAMPLE_COLUMNS)}) "
        f"SELECT s.id, {', '.join('v.' + name for name in _SAMPLE_COLUMNS[1:])} FROM s{samples} "
        "ON CONFLICT (session_id, at) DO NOTHING RETURNING session_id) "
    )


def _columns(meta) -> dict[str, str]:
    return {f.name: connection.ops.quote_name(f.column) for f in meta.concrete_fields}


# The constants in the text (`chargenet.sqltext`): the reference is never empty (the
# partial unique index on pile and reference), the states are the active ones.
_METER_BY_REF = _meter_sql("{c[pile]} = %s AND {c[protocol_ref]} = %s AND {c[protocol_ref]} <> ''")
_METER_ON_CONNECTOR = _meter_sql(
    f"{{c[pile]}} = %s AND {{c[state]}} IN ({literals(ACTIVE_STATES)}) AND {{c[connector]}} = "
    "(SELECT {k[id]} FROM {connectors} WHERE {k[pile]} = %s AND {k[number]} = %s)"
)


def _meter_batch_sql() -> str:
    """`_meter_rows_sql` for many sessions, each found by pile and reference: the
    messages and their samples come as two JSON arrays of rows (one text parameter each:
    arrays of values cost psycopg Python for every element)."""
    meta = ChargingSession._meta
    c = _columns(meta)
    columns = _sample_casts()
    return (
        "WITH msg AS (SELECT (e->>0)::int AS n, (e->>1)::bigint AS pile, "
        "(e->>2)::varchar AS ref, (e->>3)::timestamptz AS latest, (e->>4)::numeric AS energy "
        "FROM jsonb_array_elements(%s::jsonb) AS e), "
        f"old AS (SELECT msg.n, x.{c['id']}, x.{c['state']} FROM msg JOIN {meta.db_table} x "
        f"ON x.{c['pile']} = msg.pile AND x.{c['protocol_ref']} = msg.ref "
        f"AND x.{c['protocol_ref']} <> '' ORDER BY x.{c['id']} FOR UPDATE OF x), "
        f"v AS (SELECT (e->>0)::int AS n, {columns} FROM jsonb_array_elements(%s::jsonb) AS e), "
        + _meter_write_sql(
            latest="msg.latest",
            energy="msg.energy",
            messages=" JOIN msg ON msg.n = old.n",
            number="msg.n, ",
            samples=" JOIN v ON v.n = s.n",
        )
        + "SELECT s.n, s.id, s.order_no, s.state, s.meter_start_wh, "
        "(SELECT count(*) FROM stored WHERE stored.session_id = s.id) FROM s"
    )


def _sample_casts() -> str:
    """A sample's columns after ``session_id`` read from ``e``, a JSON row whose first
    element is its message's number or its session's id (`_meter_batch_sql`,
    `samples_insert`)."""
    return ", ".join(
        f"(e->>{i + 1})::{kind} AS {name}"
        for i, (name, kind) in enumerate(zip(_SAMPLE_COLUMNS[1:], _SAMPLE_TYPES, strict=True))
    )


_METER_BATCH = _meter_batch_sql()
_SAMPLES_INSERT = (
    f"INSERT INTO {MeterSample._meta.db_table} ({', '.join(_SAMPLE_COLUMNS)}) "
    f"SELECT (e->>0)::bigint, {_sample_casts()} FROM jsonb_array_elements(%s::jsonb) AS e "
    "ON CONFLICT (session_id, at) DO NOTHING RETURNING session_id"
)


# States a session leaves for ``charging`` once its samples show energy delivered.
_UNTIL_ENERGY = (SessionState.STARTED, SessionState.REFUSED)


def _energy_seen(meter_start_wh: Decimal, samples: list[Sample]) -> bool:
    return any(s.energy_wh is not None and s.energy_wh > meter_start_wh for s in samples)


def _session_charging(session_id: int, state: str) -> str:
    """Energy flows: started → charging, or refused → charging when the pile ignored the
    refusal (live now: the lost-bill sweep watches it and settlement bills it). Returns
    the session's state afterwards.

    A refused session cannot go live while another session is live on its connector (or
    its member's): that energy was delivered before the newer start, so it is closed at
    once, without a stop, and settled with what is known (a fault bill)."""
    move = {"session_ids": [session_id], "from_states": [state], "now": timezone.now()}
    if state == SessionState.STARTED:
        sessions_transition(**move, to_state=SessionState.CHARGING, reason="energy delivered")
        return SessionState.CHARGING
    try:
        with transaction.atomic():
            sessions_transition(
                **move,
                to_state=SessionState.CHARGING,
                reason="energy delivered although the start was refused",
            )
        return SessionState.CHARGING
    except IntegrityError:  # the savepoint undid the move
        sessions_transition(
            **move,
            to_state=SessionState.STOPPED,
            reason="energy delivered after a refused start; another session is live now",
        )
        _sessions_stopped([session_id])
        return SessionState.STOPPED


def samples_insert(by_session: dict[int, list[Sample]]) -> Counter:
    """Insert the samples of many sessions in one statement (a batch's stops); a moment
    a session already has is kept as it is. Returns how many were new, by session."""
    rows = [
        [session_id, s.at.isoformat(), _number(s.energy_wh), _number(s.power_w),
         _number(s.current_a), _number(s.voltage_v), s.soc, s.context]
        for session_id, samples in by_session.items()
        for s in {s.at: s for s in samples}.values()
    ]  # fmt: skip
    if not rows:
        return Counter()
    stored = statement_run(_SAMPLES_INSERT, [json.dumps(rows)]).fetchall()
    return Counter(session_id for (session_id,) in stored)


def _store_samples(*, session: ChargingSession, samples: list[Sample]) -> int:
    if not samples:
        return 0
    stored = samples_insert({session.pk: samples})[session.pk]
    latest = max(s.at for s in samples)
    if session.last_sample_at is None or latest > session.last_sample_at:
        session.last_sample_at = latest
        session.save(update_fields=["last_sample_at", "updated_at"])
    if session.state in _UNTIL_ENERGY and _energy_seen(session.meter_start_wh, samples):
        session.state = _session_charging(session.pk, session.state)
    return stored


def meter_samples_prune(*, now: dt.datetime | None = None) -> int:
    """Drop the meter samples' weeks older than ``METER_SAMPLE_RETENTION_DAYS`` (whole
    partitions) and older stray samples; returns the samples removed."""
    days = settings.METER_SAMPLE_RETENTION_DAYS
    return partitions_drop_before(
        spec=METER_SAMPLE_PARTITIONS, before=(now or timezone.now()) - dt.timedelta(days=days)
    )
