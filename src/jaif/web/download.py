"""Downloads of the portal's tables as CSV: ``csv_response`` writes the rows with a header, as an attachment.

Cells are made safe and readable for spreadsheets on the way: text that a spreadsheet would run as a
formula (=, +, -, @ first: names are the users') gets a leading apostrophe, and floats are rounded
(``figure_cell``: 0.017499999999999998 -> 0.0175, 100.0 -> 100), never written with binary noise.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

from starlette.responses import Response

FLOAT_DIGITS = 4  # kWh to a tenth of a watt-hour, kg CO2 to a tenth of a gram, GPU-hours to a third of a second


def figure_cell(value: float, digits: int = FLOAT_DIGITS) -> int | float:
    """A float rounded to ``digits`` decimals, as an int when it is whole."""
    rounded = round(float(value), digits)
    return int(rounded) if rounded.is_integer() else rounded


def cell(value: object) -> object:
    """What csv writes for one value: floats rounded, formula-like text defused, None empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return figure_cell(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([tuple(cell(v) for v in row) for row in rows])
    return out.getvalue()


def csv_response(filename: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Response:
    """The rows as a CSV attachment called ``filename``; a character of it other than a letter, digit, '.',
    '_' or '-' (a project's name is part of some) becomes '_', so that the header needs no quoting."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return Response(csv_text(columns, rows), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{safe}"'})
