"""A `Tabular` as CSV, streamed: UTF-8 with a BOM (so Excel reads the Chinese headers),
the header row, the rows (numbers to their column's places: yuan 0.00, kWh 0.000), then
the totals row. Text that a spreadsheet would run as a formula is quoted as text
(`chargenet.admin.csv_cell`). CSV has no second sheet: the filters and the time of export
are in the Excel export only."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from typing import TextIO

from django.utils.translation import gettext as _

from chargenet.admin import csv_cell

from .tabular import Tabular, cell_text

PROGRESS_EVERY = 5000


def csv_write(
    tabular: Tabular,
    out: TextIO,
    *,
    rows: Iterable[tuple] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``tabular`` (or its ``rows`` when given) to the text stream ``out``; returns
    the number of data rows. ``progress(rows_written)`` every `PROGRESS_EVERY` rows."""
    kinds = [column.kind for column in tabular.columns]
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow([csv_cell(str(column.title)) for column in tabular.columns])
    written = 0
    for row in tabular.rows() if rows is None else rows:
        writer.writerow([_cell(value, kind) for value, kind in zip(row, kinds, strict=True)])
        written += 1
        if progress is not None and written % PROGRESS_EVERY == 0:
            progress(written)
    totals = tabular.totals()
    if totals is not None:
        cells = [_cell(value, kind) for value, kind in zip(totals, kinds, strict=True)]
        if totals[0] is None:
            cells[0] = _("Total")
        writer.writerow(cells)
    return written


def _cell(value, kind: str):
    return csv_cell(cell_text(value, kind)) if kind == "text" else cell_text(value, kind)
