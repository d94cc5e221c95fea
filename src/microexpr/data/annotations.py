"""Annotation sheets of the database adapters: finding the file, reading a sheet whose header
row may follow a text preamble, and matching its columns by name (case and space tolerant).

Checking each annotated clip against the frames on disk is `microexpr.data.clip_rows`."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from microexpr.data.cells import cell_text, is_blank, is_missing
from microexpr.data.frames import walk_folders
from microexpr.errors import DatasetError

# A column is named by a string, or by a tuple (canonical name, *other names it goes by).
ColumnSpec = str | tuple[str, ...]

ANNOTATION_SUFFIXES: tuple[str, ...] = (".xlsx", ".xlsm", ".xls", ".csv")
HEADER_SCAN_ROWS = 40
MAX_FALLBACK_FILES = 50


# ----------------------------------------------------------------------------- column names
def column_key(name: object) -> str:
    """A column name reduced for matching: no spaces, underscores or hyphens, lower case."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def column_names(spec: ColumnSpec) -> tuple[str, ...]:
    """All names a column spec accepts; the first is the canonical one."""
    return (spec,) if isinstance(spec, str) else tuple(spec)


def _describe(specs: Sequence[ColumnSpec]) -> str:
    """'Subject', 'AU' (or 'AUs') ... for messages."""
    parts = []
    for spec in specs:
        names = column_names(spec)
        alias = f" (or {', '.join(repr(n) for n in names[1:])})" if len(names) > 1 else ""
        parts.append(repr(names[0]) + alias)
    return ", ".join(parts)


def match_columns(header: Sequence[object], specs: Sequence[ColumnSpec]) -> dict[str, int]:
    """Canonical name -> position in `header` for each spec found (case/space tolerant)."""
    keys = [column_key(h) if not is_missing(h) else "" for h in header]
    found: dict[str, int] = {}
    for spec in specs:
        names = column_names(spec)
        for name in names:
            key = column_key(name)
            if key in keys:
                found[names[0]] = keys.index(key)
                break
    return found


# ----------------------------------------------------------------------------- reading files
def _read_csv_rows(path: Path) -> pd.DataFrame:
    """All rows of a CSV file as an object DataFrame without a header (ragged rows padded)."""
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            with open(path, newline="", encoding=encoding) as handle:
                rows = list(csv.reader(handle))
            break
        except UnicodeDecodeError:
            continue
    width = max((len(r) for r in rows), default=0)
    return pd.DataFrame([r + [None] * (width - len(r)) for r in rows], dtype=object)


def _read_tables(path: Path) -> list[tuple[str, pd.DataFrame]]:
    """(sheet name, rows without header) for every sheet of a spreadsheet or the one CSV table."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return [("", _read_csv_rows(path))]
        sheets = pd.read_excel(path, header=None, dtype=object, sheet_name=None)
    except ImportError as exc:
        raise DatasetError(
            f"cannot read {path}: {exc}. Install the reader it names (for .xls files: "
            f"`pip install xlrd`), or save the file as .xlsx and point at that."
        ) from exc
    except Exception as exc:  # corrupt or not a spreadsheet: say which file
        raise DatasetError(
            f"cannot read annotation file {path}: {type(exc).__name__}: {exc}. Check that it "
            f"is a complete, unencrypted .xlsx/.xls/.csv file (re-copy it from the release)."
        ) from exc
    return [(str(name), table) for name, table in sheets.items()]


def read_sheets(path: str | Path) -> list[tuple[str, pd.DataFrame]]:
    """Every sheet of a spreadsheet (or the one table of a CSV file) as (sheet name, cells),
    without taking any row as the header: for files whose sheets have none, such as
    CAS(ME)^2's. DatasetError naming the file when it cannot be read."""
    return _read_tables(Path(path))


def _find_header(
    table: pd.DataFrame, specs: Sequence[ColumnSpec]
) -> tuple[int | None, int, list[str]]:
    """(header row position or None, most columns matched in a row, that row's names)."""
    best_count, best_names = -1, []
    for position in range(min(HEADER_SCAN_ROWS, len(table))):
        values = list(table.iloc[position])
        count = len(match_columns(values, specs))
        if count == len(specs):
            return position, count, []
        if count > best_count:
            best_count = count
            best_names = [cell_text(v) for v in values if not is_missing(v)]
    return None, best_count, best_names


def _header_names(values: Sequence[object]) -> list[str]:
    """Clean, unique column names for a header row; empty cells become 'Unnamed: <i>'."""
    names: list[str] = []
    for i, value in enumerate(values):
        name = cell_text(value) or f"Unnamed: {i}"
        base, n = name, 1
        while name in names:
            name = f"{base}.{n}"
            n += 1
        names.append(name)
    return names


def _clean_cell(value: object) -> object:
    """Strip text cells; empty text becomes None."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _table_from_header(
    table: pd.DataFrame, header: int, specs: Sequence[ColumnSpec]
) -> pd.DataFrame:
    """Rows below `header` named by it, empty rows and empty unnamed columns dropped."""
    names = _header_names(list(table.iloc[header]))
    rows = table.iloc[header + 1 :]
    body = pd.DataFrame(
        {
            name: pd.Series([_clean_cell(v) for v in rows.iloc[:, i]], dtype=object)
            for i, name in enumerate(names)
        }
    )
    body["_row"] = [int(i) + 1 for i in range(header + 1, header + 1 + len(body))]
    empty_row = body[names].map(is_blank).all(axis=1)
    body = body[~empty_row]
    for name in names:
        if name.startswith("Unnamed") and body[name].map(is_blank).all():
            body = body.drop(columns=name)
    found = match_columns(list(body.columns), specs)
    renames = {body.columns[pos]: canonical for canonical, pos in found.items()}
    return body.rename(columns=renames).reset_index(drop=True)


def read_annotation(
    path: str | Path,
    required_columns: Sequence[ColumnSpec],
    dataset: str,
    *,
    optional_columns: Sequence[ColumnSpec] = (),
) -> pd.DataFrame:
    """Read an annotation sheet whose header row may follow a text preamble.

    The header is the first row (of the first 40, on any sheet) holding every required column,
    matched ignoring case, spaces and underscores; matched columns are renamed to their
    canonical names. Fully empty rows and empty unnamed columns are dropped, and `_row` holds
    each row's number as a spreadsheet shows it, so problems can point at it.
    """
    path = Path(path)
    tables = _read_tables(path)
    best: tuple[int, str, list[str]] = (-1, "", [])
    for sheet, table in tables:
        header, count, names = _find_header(table, required_columns)
        if header is not None:
            frame = _table_from_header(table, header, [*required_columns, *optional_columns])
            frame.attrs.update(source=str(path), sheet=sheet, header_row=header + 1)
            return frame
        if count > best[0]:
            best = (count, sheet, names)
    _, sheet, names = best
    present = match_columns(names, required_columns)
    missing = [spec for spec in required_columns if column_names(spec)[0] not in present]
    where = f" (sheet {sheet!r})" if sheet and len(tables) > 1 else ""
    raise DatasetError(
        f"{dataset} annotation file {path}{where} lacks the columns {_describe(missing)}. "
        f"The closest header row in its first {HEADER_SCAN_ROWS} rows has: "
        f"{', '.join(repr(n) for n in names) or 'nothing'}. Use the annotation file that came "
        f"with the release, or rename the columns to {_describe(required_columns)}."
    )


def has_columns(path: Path, required_columns: Sequence[ColumnSpec]) -> bool:
    """True when some sheet of the file has a header row with every required column."""
    try:
        tables = _read_tables(path)
    except DatasetError:
        return False
    return any(_find_header(table, required_columns)[0] is not None for _, table in tables)


# ----------------------------------------------------------------------------- finding files
def _files_below(root: Path, max_depth: int) -> list[tuple[int, Path]]:
    """(depth, file) for the spreadsheet-like files in `root` and `max_depth` levels below."""
    found: list[tuple[int, Path]] = []
    for depth, folder in walk_folders(root, max_depth):
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if e.is_file())
        except OSError:
            continue
        for name in names:
            if name.lower().endswith(ANNOTATION_SUFFIXES) and not name.startswith(("~$", ".")):
                found.append((depth, folder / name))
    return found


def find_annotation(
    root: str | Path,
    known_names: Sequence[str],
    required_columns: Sequence[ColumnSpec],
    dataset: str,
    *,
    extra_folders: Sequence[Path] = (),
) -> Path:
    """The annotation file of a database: a known file name in `root` or 2 levels below
    (ignoring case), else any spreadsheet there whose header has the required columns.

    `extra_folders` (e.g. the parent of a frames folder) are searched too, without going
    below them. Raises DatasetError naming the folders, the known names and the columns.
    """
    root = Path(root)
    files = _files_below(root, 2)
    for folder in extra_folders:
        files.extend((3, path) for _, path in _files_below(Path(folder), 0))
    lowered = [name.lower() for name in known_names]
    known = [(d, lowered.index(p.name.lower()), p) for d, p in files if p.name.lower() in lowered]
    if known:
        return min(known, key=lambda item: (item[0], item[1], str(item[2])))[2]
    for _, path in sorted(files, key=lambda item: (item[0], str(item[1])))[:MAX_FALLBACK_FILES]:
        if has_columns(path, required_columns):
            return path
    searched = ", ".join(str(f) for f in [root, *extra_folders])
    raise DatasetError(
        f"no {dataset} annotation file found in {searched} (and 2 levels of sub-folders of "
        f"{root}). Expected one of {', '.join(known_names)}, or any .xlsx/.xls/.csv file whose "
        f"header has the columns {_describe(required_columns)}. Copy the annotation file "
        f"that came with the database into {root}."
    )


# ----------------------------------------------------------------------------- rows
def records(table: pd.DataFrame) -> list[dict]:
    """The rows of an annotation table as dicts (with `_row`)."""
    return table.to_dict(orient="records")
