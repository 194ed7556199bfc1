"""OCPP 1.6 sampled values and timestamps in platform units."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

from billing.services.sessions import Sample

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
