"""CSV that is safe to open in a spreadsheet: every CSV the platform writes goes through ``csv_writer``.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula by Excel,
LibreOffice and Google Sheets, so a hostile external id or label such as ``=HYPERLINK(...)`` would run when a
compliance officer opens an export. Following OWASP's rule, such text cells are prefixed with a single quote,
which spreadsheets show as plain text. Numbers stay numbers: only text can smuggle a formula.
"""

import csv
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


class TextSink(Protocol):
    def write(self, text: str) -> int: ...


def csv_cell(value: Any) -> Any:
    """The value as a CSV cell a spreadsheet will not evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


class SafeCsvWriter:
    """``csv.writer`` whose rows are neutralised cell by cell."""

    def __init__(self, sink: TextSink):
        self._writer = csv.writer(sink)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(sink: TextSink) -> SafeCsvWriter:
    return SafeCsvWriter(sink)
