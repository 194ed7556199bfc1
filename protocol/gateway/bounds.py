"""What a pile may send, bounded by the columns that store it: the one place for those limits.

A value the OCPP 1.6 schema accepts can still overflow a column (a meterStart of 10**20, a
transactionId of 2**70, a sampled "1e12" Wh, connector 999999): the database would refuse
the write and a transaction-bearing message would stay unanswered for ever, the pile
retrying it in a loop. Handlers check such values here first and answer the CALLERROR
OCPP-J 1.6 prescribes (§4.2.3): PropertyConstraintViolation for a value out of range,
TypeConstraintViolation for a value of the wrong type; nothing is stored.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator
from ocpp.exceptions import PropertyConstraintViolationError, TypeConstraintViolationError

from billing.models import ChargingSession, MeterSample, OrphanStop
from billing.services.sessions import Sample
from stations.models import Connector

_BIGINT = 2**63  # the journal keeps transaction ids in a BigInteger column


def _decimal_limit(model, name: str) -> Decimal:
    """Values at or past this (in absolute value) overflow ``numeric(max_digits, places)``
    once PostgreSQL rounds them to its places (half away from zero)."""
    field = model._meta.get_field(name)
    step = Decimal(10) ** -field.decimal_places
    return Decimal(10) ** (field.max_digits - field.decimal_places) - step / 2


CONNECTOR_MAX = next(
    v.limit_value for v in Connector._meta.get_field("number").validators
    if isinstance(v, MaxValueValidator)
)  # fmt: skip
# Every column a register reading (Wh) is written to.
METER_WH_LIMIT = min(
    _decimal_limit(ChargingSession, "meter_start_wh"),
    _decimal_limit(ChargingSession, "meter_stop_wh"),
    _decimal_limit(OrphanStop, "meter_stop_wh"),
    _decimal_limit(MeterSample, "energy_wh"),
)
_SAMPLE_LIMITS = {
    name: _decimal_limit(MeterSample, name) for name in ("power_w", "current_a", "voltage_v")
}
SOC_MAX = 100  # a percentage


def _out_of_range(field: str, value, allowed: str) -> PropertyConstraintViolationError:
    return PropertyConstraintViolationError(
        details={"cause": f"{field} {str(value)[:40]} is out of range: {allowed}"}
    )


def integer(value, *, field: str) -> int:
    """An integer in vendor data (DataTransfer's JSON), where piles also send "2"."""
    if isinstance(value, str) and value.isdecimal() and len(value) <= 20:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeConstraintViolationError(
        details={"cause": f"{field} is not an integer: {str(value)[:40]!r}"}
    )


def connector_number(value: int, *, field: str = "connectorId", pile_itself: bool) -> int:
    """A connector number on a pile (1..CONNECTOR_MAX); 0 means the pile itself where
    ``pile_itself`` (StatusNotification, MeterValues)."""
    low = 0 if pile_itself else 1
    if not low <= value <= CONNECTOR_MAX:
        raise _out_of_range(field, value, f"{low}..{CONNECTOR_MAX}")
    return value


def transaction_id(value: int | None, *, field: str = "transactionId") -> int | None:
    if value is not None and not -_BIGINT <= value < _BIGINT:
        raise _out_of_range(field, value, "a 64-bit integer")
    return value


def meter_wh(value: int | Decimal, *, field: str) -> int | Decimal:
    """A meter register reading in Wh: not negative, and fits the sessions' columns."""
    if not 0 <= value < METER_WH_LIMIT:
        raise _out_of_range(field, value, f"0 ≤ Wh < {METER_WH_LIMIT}")
    return value


def samples(values: list[Sample], *, field: str) -> list[Sample]:
    for sample in values:
        if sample.energy_wh is not None:
            meter_wh(sample.energy_wh, field=f"{field} energy")
        for name, limit in _SAMPLE_LIMITS.items():
            value = getattr(sample, name)
            if value is not None and abs(value) >= limit:
                raise _out_of_range(f"{field} {name}", value, f"|value| < {limit}")
        if sample.soc is not None and not 0 <= sample.soc <= SOC_MAX:
            raise _out_of_range(f"{field} SoC", sample.soc, f"0..{SOC_MAX} %")
    return values


def _storable(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor a lone surrogate (which JSON can spell)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text(payload, *, field: str = "payload") -> None:
    """Every text of a CALL's payload (keys included) can be stored: a NUL in an idTag,
    a vendor name or an error code would fail the write after the schema accepted it,
    and leave a transaction-bearing message unanswered for ever."""
    pending = [(field, payload)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not _storable(key):
                    raise _unstorable(path)
                pending.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            pending.extend((f"{path}[{n}]", item) for n, item in enumerate(value))
        elif isinstance(value, str) and not _storable(value):
            raise _unstorable(path)


def _unstorable(path: str) -> PropertyConstraintViolationError:
    return PropertyConstraintViolationError(
        details={"cause": f"{path[:80]} holds a NUL or an unpaired surrogate: not text"}
    )
