"""What every report table has: columns of a kind, rows in column order, a totals row."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from itertools import islice

from django.db.models import QuerySet, Sum

from billing.models import Channel
from chargenet.money import FEN, KWH_QUANTUM, WH_PER_KWH

from ..exports.tabular import QUANTUM, Column
from ..filters import NARROWING, Filters

# Rows a report page shows; the export carries them all.
PAGE_ROWS = 200


def kwh(wh) -> Decimal:
    return (Decimal(wh or 0) / WH_PER_KWH).quantize(KWH_QUANTUM)


def yuan(value) -> Decimal:
    return Decimal(value or 0).quantize(FEN)  # sums of fen amounts: exact


def ratio(part, whole) -> Decimal | None:
    """part / whole as a percentage to 0.01 (Decimal("23.69") is 23.69 %, the exports'
    "percent"), None for 0 / 0."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(QUANTUM["percent"])


def sums(rows: QuerySet, names) -> dict:
    """Sums of ``names`` over ``rows``, as ``s_<name>`` (apart from the field names)."""
    return rows.aggregate(**{f"s_{n}": Sum(n) for n in names})


class Report:
    """A report for ``staff`` under ``filters``; subclasses give slug, title, columns,
    rows() and totals(), and may give chart() for the page."""

    slug: str
    title: str
    columns: list[Column]
    # The filters (besides the days) this report applies; the page disables the others.
    honoured: tuple[str, ...] = NARROWING
    # What "channel" means here: how a charge was started, unless the report says otherwise.
    channel_choices = Channel.choices

    def __init__(self, *, staff, filters: Filters):
        self.staff = staff
        self.filters = filters

    def rows(self) -> Iterator[tuple]:
        raise NotImplementedError

    def page_rows(self, n: int) -> list[tuple]:
        """The first ``n`` rows (the page shows `PAGE_ROWS`; a report may ask the database
        for no more)."""
        return list(islice(self.rows(), n))

    def totals(self) -> tuple | None:
        return None

    def filters_used(self) -> list[tuple[str, str]]:
        return self.filters.used(self.channel_choices)

    @property
    def filter_values(self) -> dict[str, list[str]]:
        """What an export job keeps to build this report again (`reports.exports.registry`)."""
        return self.filters.query()

    def chart(self) -> dict | None:
        """{"x": [...], "series": [{"name", "type", "data", "axis"}]} for the page, or None."""
        return None
