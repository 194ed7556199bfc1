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
from lxml import etree
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel

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

    written = 0
    append = _fast_rows(sheet, columns)
    for row in tabular.rows() if rows is None else rows:
        append(row)
        written += 1
        if progress is not None and written % PROGRESS_EVERY == 0:
            progress(written)

    totals = tabular.totals()
    if totals is not None:
        sheet.append(_totals_cells(sheet, tabular, totals, bold))
    _filters_sheet(book, tabular, written, exported_at or timezone.now())
    book.save(out)
    return written


class _DataRow(tuple):
    """A data row's values, written by `_fast_rows`' writer instead of openpyxl's."""


def _xml_text(value: str) -> str:
    value = ILLEGAL_CHARACTERS_RE.sub("", value)  # as openpyxl refuses them
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fast_rows(sheet, columns) -> Callable[[tuple], None]:
    """``append(values)`` for the data rows of write-only ``sheet``: each row becomes ONE
    XML element, built from a string in C (lxml), instead of openpyxl's cell object, dict
    of attributes and nested elements per cell (about 10x slower: a 1,000,000-row export
    took minutes of CPU). Cells are what openpyxl writes: inline strings (so a text
    starting with "=" stays text), numbers with the column's number format, dates as
    Excel serial numbers. The header and totals rows still go through openpyxl.

    This hooks two members of openpyxl's write-only worksheet (``_values_to_row`` and its
    writer's ``write_row``; openpyxl is pinned in requirements.txt) and hands every other
    row to them unchanged."""
    sheet._get_writer()
    writer = sheet._writer
    to_cells, write_row = sheet._values_to_row, writer.write_row
    epoch = sheet.parent.epoch
    letters = [get_column_letter(n) for n in range(1, len(columns) + 1)]
    styles = []
    for column in columns:
        if column.kind == "text":
            styles.append(None)
            continue
        cell = WriteOnlyCell(sheet)
        cell.number_format = NUMBER_FORMATS[column.kind]
        styles.append(cell.style_id)  # registers the format in the workbook's styles
    plan = list(zip(letters, styles, [c.kind for c in columns], strict=True))

    def cells(values: tuple, row_idx: int) -> str:
        out = []
        for (letter, style, kind), value in zip(plan, values, strict=True):
            if value is None or value == "":
                continue
            if style is None:
                text = _xml_text(value if isinstance(value, str) else str(value))
                space = ' xml:space="preserve"' if text != text.strip() else ""
                out.append(
                    f'<c r="{letter}{row_idx}" t="inlineStr"><is><t{space}>{text}</t></is></c>'
                )
                continue
            if kind in ("date", "datetime"):
                value = to_excel(_naive(value), epoch)
            elif isinstance(value, str):  # a number column showing a text ("—")
                text = _xml_text(value)
                out.append(f'<c r="{letter}{row_idx}" t="inlineStr"><is><t>{text}</t></is></c>')
                continue
            out.append(f'<c r="{letter}{row_idx}" s="{style}" t="n"><v>{value}</v></c>')
        return f'<row r="{row_idx}">{"".join(out)}</row>'

    def values_to_row(values, row_idx):
        return values if isinstance(values, _DataRow) else to_cells(values, row_idx)

    def fast_write_row(xf, row, row_idx):
        if isinstance(row, _DataRow):
            xf.write(etree.fromstring(cells(row, row_idx)))
        else:
            write_row(xf, row, row_idx)

    sheet._values_to_row, writer.write_row = values_to_row, fast_write_row
    return lambda values: sheet.append(_DataRow(values))


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
