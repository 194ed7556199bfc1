"""MeterValues: OCPP sampled values to platform units, stored once per (session, moment)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, connection, transaction

from billing.models import ChargingSession, MeterSample, SessionState
from billing.services.sessions.settlement_queue import _queue_settlement
from billing.services.sessions.states import session_transition
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


_UNIT_FACTORS = {"Wh": 1, "kWh": 1000, "W": 1, "kW": 1000, "A": 1, "V": 1, "Percent": 1}
_MEASURANDS = {
    "Energy.Active.Import.Register": "energy_wh",
    "Power.Active.Import": "power_w",
    "Current.Import": "current_a",
    "Voltage": "voltage_v",
    "SoC": "soc",
}


def samples_from_ocpp(meter_values: Iterable[dict]) -> list[Sample]:
    """Convert OCPP ``meterValue`` entries (camelCase, as on the wire) to samples.

    Unknown measurands are ignored; for per-phase values the first one sent is kept;
    a value that is not a number is skipped (the frame journal keeps the original)."""
    samples = []
    for entry in meter_values:
        at = parse_pile_time(entry.get("timestamp"))
        if at is None:
            continue
        fields: dict = {}
        context = ""
        for value in entry.get("sampledValue", []):
            measurand = value.get("measurand", "Energy.Active.Import.Register")
            name = _MEASURANDS.get(measurand)
            if name is None or name in fields:
                continue
            try:
                number = Decimal(str(value.get("value"))) * _UNIT_FACTORS.get(
                    value.get("unit", "Wh" if name == "energy_wh" else ""), 1
                )
            except (ArithmeticError, TypeError):  # not a number, or beyond Decimal's range
                continue
            if not number.is_finite():
                continue
            if name == "soc" and number.adjusted() < 6:
                number = int(number)  # a huge one stays a Decimal: int() of 1e999999999
                # would take minutes on the gateway's event loop; the bounds refuse it
            fields[name] = number
            context = context or value.get("context", "")
        samples.append(Sample(at=at, context=context[:32], **fields))
    return samples


def parse_pile_time(value) -> dt.datetime | None:
    """A pile's ISO 8601 timestamp as an aware datetime (UTC when it names no zone), or
    None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class MeterResult:
    session_id: int | None
    order_no: str
    stored: int


def session_meter_record(
    *,
    pile: Pile,
    connector_number: int,
    transaction_id: int | None,
    samples: list[Sample],
) -> MeterResult:
    """Store meter samples against their session (idempotent, any order).

    Without a transaction id (clock-aligned samples) they go to the session active on the
    connector, if any; samples of no known session are only in the frame journal.

    This is the gateway's most frequent write, so it is two statements, not an ORM
    round of select-modify-save: an UPDATE that finds and locks the session (and moves
    its last-sample time forward), then one INSERT … ON CONFLICT DO NOTHING."""
    latest = max((s.at for s in samples), default=None)
    table = ChargingSession._meta.db_table
    returning = "RETURNING id, order_no, state, meter_start_wh"
    with transaction.atomic(), connection.cursor() as cursor:
        if transaction_id is not None:
            cursor.execute(
                f"UPDATE {table} SET last_sample_at = GREATEST(last_sample_at, %s), "
                f"updated_at = now() WHERE id = %s AND pile_id = %s {returning}",
                [latest, transaction_id, pile.pk],
            )
        elif connector_number > 0:
            cursor.execute(
                f"UPDATE {table} SET last_sample_at = GREATEST(last_sample_at, %s), "
                f"updated_at = now() WHERE pile_id = %s AND state IN ('started', 'charging') "
                f"AND connector_id = (SELECT id FROM {Connector._meta.db_table} "
                f"WHERE pile_id = %s AND number = %s) {returning}",
                [latest, pile.pk, pile.pk, connector_number],
            )
        row = cursor.fetchone() if cursor.description else None
        if row is None:
            return MeterResult(None, "", 0)
        session_id, order_no, state, meter_start_wh = row
        stored = _insert_samples(cursor, session_id=session_id, samples=samples)
        if state in _UNTIL_ENERGY and _energy_seen(meter_start_wh, samples):
            _session_charging(ChargingSession.objects.get(pk=session_id))
    return MeterResult(session_id, order_no, stored)


# States a session leaves for ``charging`` once its samples show energy delivered.
_UNTIL_ENERGY = (SessionState.STARTED, SessionState.REFUSED)


def _energy_seen(meter_start_wh: Decimal, samples: list[Sample]) -> bool:
    return any(s.energy_wh is not None and s.energy_wh > meter_start_wh for s in samples)


def _session_charging(session: ChargingSession) -> None:
    """Energy flows: started → charging, or refused → charging when the pile ignored the
    refusal (live now: the lost-bill sweep watches it and settlement bills it).

    A refused session cannot go live while another session is live on its connector (or
    its member's): that energy was delivered before the newer start, so it is closed at
    once, without a stop, and settled with what is known (a fault bill)."""
    if session.state == SessionState.STARTED:
        session_transition(
            session=session, to_state=SessionState.CHARGING, reason="energy delivered"
        )
        return
    try:
        with transaction.atomic():
            session_transition(
                session=session,
                to_state=SessionState.CHARGING,
                reason="energy delivered although the start was refused",
            )
    except IntegrityError:
        session.state = SessionState.REFUSED  # the savepoint undid the move
        session_transition(
            session=session,
            to_state=SessionState.STOPPED,
            reason="energy delivered after a refused start; another session is live now",
        )
        _queue_settlement([session.pk])


_SAMPLE_COLUMNS = ("session_id", "at", "energy_wh", "power_w", "current_a", "voltage_v", "soc",
                   "context")  # fmt: skip


def _insert_samples(cursor, *, session_id: int, samples: list[Sample]) -> int:
    unique = list({s.at: s for s in samples}.values())
    if not unique:
        return 0
    values, params = [], []
    for s in unique:
        values.append("(%s, %s, %s, %s, %s, %s, %s, %s)")
        params += [session_id, s.at, s.energy_wh, s.power_w, s.current_a, s.voltage_v, s.soc,
                   s.context]  # fmt: skip
    cursor.execute(
        f"INSERT INTO {MeterSample._meta.db_table} ({', '.join(_SAMPLE_COLUMNS)}) "
        f"VALUES {', '.join(values)} ON CONFLICT (session_id, at) DO NOTHING",
        params,
    )
    return cursor.rowcount


def _store_samples(*, session: ChargingSession, samples: list[Sample]) -> int:
    if not samples:
        return 0
    rows = [
        MeterSample(
            session=session,
            at=s.at,
            energy_wh=s.energy_wh,
            power_w=s.power_w,
            current_a=s.current_a,
            voltage_v=s.voltage_v,
            soc=s.soc,
            context=s.context,
        )
        for s in {s.at: s for s in samples}.values()
    ]
    created = MeterSample.objects.bulk_create(rows, ignore_conflicts=True)
    latest = max(s.at for s in samples)
    if session.last_sample_at is None or latest > session.last_sample_at:
        session.last_sample_at = latest
        session.save(update_fields=["last_sample_at", "updated_at"])
    if session.state in _UNTIL_ENERGY and _energy_seen(session.meter_start_wh, samples):
        _session_charging(session)
    return len(created)
