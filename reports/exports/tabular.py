"""What an export writes: a `Tabular` (a title, typed columns, streamed rows, a totals row
and the filters it was made with). Reports, the bills list and the live-sessions screen
each are one; the writers (`xlsx.py`, `csv.py`) know nothing else about them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

KINDS = ("text", "int", "yuan", "kwh", "percent", "date", "datetime")


@dataclass(frozen=True)
class Column:
    """One column. Values by ``kind``: "yuan" and "kwh" are Decimals (yuan; kWh, not Wh),
    "percent" the percentage itself (Decimal("23.67") is 23.67 %), "date" a date,
    "datetime" a datetime on the wall clock it should show (the station's: the writers
    drop the zone), "int" an int, "text" anything shown as text."""

    key: str
    title: str  # lazy translated, Chinese header in zh-hans
    kind: str  # one of KINDS

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column {self.key}: kind {self.kind!r} is not one of {KINDS}")


@runtime_checkable
class Tabular(Protocol):
    slug: str
    title: str
    columns: list[Column]

    def rows(self) -> Iterator[tuple]: ...  # streamed, one tuple per row, in column order

    def totals(self) -> tuple | None: ...  # the totals row (None where it makes no sense)

    def filters_used(self) -> list[tuple[str, str]]: ...  # (label, value) for the filters sheet


# How a value of each kind is shown in text (CSV, the filters sheet). Numbers keep their
# exact Decimal digits: yuan to the fen, kWh to the Wh, percentages to 0.01 %.
QUANTUM = {"yuan": Decimal("0.01"), "kwh": Decimal("0.001"), "percent": Decimal("0.01")}


def cell_text(value, kind: str) -> str:
    """``value`` of a column of ``kind`` as text (empty for None)."""
    if value is None:
        return ""
    if kind in QUANTUM and isinstance(value, Decimal | int):
        return str(Decimal(value).quantize(QUANTUM[kind]))
    if kind == "datetime" and isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if kind == "date" and isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def hms(seconds: int) -> str:
    """A duration as h:mm:ss (the bills list's way)."""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
