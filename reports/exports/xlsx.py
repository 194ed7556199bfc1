"""A `Tabular` as an Excel workbook, streamed (openpyxl write-only: constant memory).

The data sheet: the headers in the staff member's language (Chinese in zh-hans), frozen,
then the rows, each cell typed by its column (yuan ``0.00``, kWh ``0.000``, percentages
``0.00"%"``, dates and times as Excel dates), then a bold totals row. A second sheet names
the filters used, the time of the export and the number of rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import BinaryIO

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from .tabular import Tabular

NUMBER_FORMATS = {
    "text": "@",
    "int": "0",
    "yuan": "0.00",
    "kwh": "0.000",
    "percent": '0.00"%"',
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm:ss",
}
WIDTHS = {"date": 12, "datetime": 20, "yuan": 12, "kwh": 12, "int": 10, "percent": 10}
PROGRESS_EVERY = 5000  # rows between two progress calls
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")


def sheet_name(title: str) -> str:
    """A title as Excel allows a sheet name: at most 31 characters, none of []:*?/\\."""
    return _SHEET_NAME_BAD.sub(" ", str(title))[:31] or "Sheet"


def _text(sheet, value):
    """A string as text: openpyxl would take one starting with "=" for a formula (a
    station named "=HYPERLINK(...)" must not run in the reader's Excel)."""
    text = str(value)
    if not text.startswith("="):
        return text
    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"
    return cell


def _naive(value):
    """Excel has no time zones: an aware time is written as the wall clock it carries."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    return value


def xlsx_write(
    tabular: Tabular,
    out: BinaryIO | str,
    *,
    rows: Iterable[tuple] | None = None,
    progress: Callable[[int], None] | None = None,
    exported_at: dt.datetime | None = None,
) -> int:
    """Write ``tabular`` (or its ``rows`` when given: rows already read) as a workbook to
    ``out`` (a path or a binary file); returns the number of data rows written.
    ``progress(rows_written)`` is called every `PROGRESS_EVERY` rows."""
    columns = tabular.columns
    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name(tabular.title))
    sheet.freeze_panes = "A2"
    for n, column in enumerate(columns, 1):
        sheet.column_dimensions[get_column_letter(n)].width = WIDTHS.get(column.kind, 18)
    bold = Font(bold=True)
    header = []
    for column in columns:
        cell = WriteOnlyCell(sheet, value=str(column.title))
        cell.data_type = "s"
        cell.font = bold
        header.append(cell)
    sheet.append(header)

    # One styled cell per column, given each row's value in turn: openpyxl writes a row
    # when it is appended, so the cell can carry the next row's value (and a style is
    # looked up once per column, not once per cell).
    styled = []
    for column in columns:
        if column.kind == "text":
            styled.append(None)  # plain strings: no style to carry
            continue
        cell = WriteOnlyCell(sheet)
        cell.number_format = NUMBER_FORMATS[column.kind]
        styled.append(cell)
    written = 0
    for row in tabular.rows() if rows is None else rows:
        out_row = []
        for value, cell in zip(row, styled, strict=True):
            if value is None:
                out_row.append(None)
            elif cell is None:
                out_row.append(_text(sheet, value))
            else:
                cell.value = _naive(value)
                out_row.append(cell)
        sheet.append(out_row)
        written += 1
        if progress is not None and written % PROGRESS_EVERY == 0:
            progress(written)

    totals = tabular.totals()
    if totals is not None:
        sheet.append(_totals_cells(sheet, tabular, totals, bold))
    _filters_sheet(book, tabular, written, exported_at or timezone.now())
    book.save(out)
    return written


def _totals_cells(sheet, tabular: Tabular, totals: tuple, bold: Font) -> list:
    cells = []
    for n, (column, value) in enumerate(zip(tabular.columns, totals, strict=True)):
        if value is None and n == 0:
            value = _("Total")
        text = column.kind == "text" or isinstance(value, str)
        if value is not None and text:
            value = str(value)
        cell = WriteOnlyCell(sheet, value=None if value is None else _naive(value))
        cell.font = bold
        if value is not None and text:
            cell.data_type = "s"
        elif value is not None:
            cell.number_format = NUMBER_FORMATS[column.kind]
        cells.append(cell)
    return cells


def _filters_sheet(book: Workbook, tabular: Tabular, written: int, at: dt.datetime) -> None:
    sheet = book.create_sheet(sheet_name(pgettext("export sheet", "Filters")))
    sheet.column_dimensions["A"].width = 20
    sheet.column_dimensions["B"].width = 40
    bold = Font(bold=True)
    title = WriteOnlyCell(sheet, value=str(tabular.title))
    title.data_type = "s"
    title.font = bold
    sheet.append([title])
    for label, value in tabular.filters_used():
        sheet.append([_text(sheet, label), _text(sheet, value)])
    local = timezone.localtime(at)
    sheet.append([_("Exported at"), local.strftime("%Y-%m-%d %H:%M:%S %Z")])
    sheet.append([_("Rows"), written])
