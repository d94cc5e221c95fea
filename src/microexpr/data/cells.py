"""Cell values of annotation sheets: blank and missing markers, clean text, frame numbers.

Shared by the sheet reader (`annotations`), the clip checks (`clip_rows`) and the label
schemes (`labels`), which all need the same notion of an empty cell."""

from __future__ import annotations

import math
import re

import pandas as pd

MISSING_MARKERS = frozenset({"", "/", "-", "--", "?", "na", "n/a", "nan", "none", "null"})


def is_missing(value: object) -> bool:
    """True for empty cells: None, NaN, '' and markers such as '/', '-', 'n/a'."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        if pd.isna(value):
            return True
    except (TypeError, ValueError):
        pass
    return isinstance(value, str) and value.strip().lower() in MISSING_MARKERS


def is_blank(value: object) -> bool:
    """True for None, NaN and empty text (unlike `is_missing`, '/' is not blank)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and not value.strip()


def cell_text(value: object) -> str:
    """A cell as clean text: '' when empty, 46.0 -> '46', surrounding spaces removed."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return "" if text.lower() == "nan" else text


def parse_frame(value: object) -> int:
    """A frame number from a cell (46, 46.0, '46', ' 46 '); ValueError when it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a frame number")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(f"{value!r} is not a whole frame number")
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?\d+\.0*", text):
        return int(float(text))
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a frame number") from None
    if number.is_integer():
        return int(number)
    raise ValueError(f"{value!r} is not a whole frame number")
