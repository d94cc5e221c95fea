"""Problems found while loading or labelling a database: one `Problem` per thing wrong with a
clip, and their table. Kept apart from the clips table so that label schemes, annotation checks
and the Dataset all report problems the same way without importing each other."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

# Severities: "error": the clip is unusable and left out; "warning": kept;
# "info": left out on purpose (blank emotion, not in the label scheme, protocol exclusion).
ERROR = "error"
WARNING = "warning"
INFO = "info"

PROBLEM_COLUMNS: tuple[str, ...] = (
    "dataset",
    "clip",
    "severity",  # "error": unusable, excluded; "warning": kept; "info": left out on purpose
    "file",
    "row",  # spreadsheet row number (1-based, as shown by a spreadsheet program) or None
    "message",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one clip (or with the whole database when `clip` is empty)."""

    dataset: str
    clip: str
    severity: str
    message: str
    file: str = ""
    row: int | None = None

    def __str__(self) -> str:
        where = self.file + (f", row {self.row}" if self.row is not None else "")
        prefix = f"{self.dataset}/{self.clip}" if self.clip else self.dataset
        return f"[{self.severity}] {prefix}: {self.message}" + (f" ({where})" if where else "")


def problems_frame(problems: Iterable[Problem]) -> pd.DataFrame:
    """Problems as a DataFrame with PROBLEM_COLUMNS."""
    rows = [
        {
            "dataset": p.dataset,
            "clip": p.clip,
            "severity": p.severity,
            "file": p.file,
            "row": p.row,
            "message": p.message,
        }
        for p in problems
    ]
    frame = pd.DataFrame(rows, columns=list(PROBLEM_COLUMNS))
    frame["row"] = frame["row"].astype("Int64")
    return frame
