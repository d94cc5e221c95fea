"""Shared helpers of the database adapters: finding and reading annotation spreadsheets, and
checking each annotated clip against the frames on disk (one Problem per thing wrong)."""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd

from microexpr.data.clips import Dataset, Problem, clips_frame, problems_frame
from microexpr.data.frames import list_frames, walk_folders
from microexpr.errors import DatasetError

ERROR = "error"
WARNING = "warning"

# A column is named by a string, or by a tuple (canonical name, *other names it goes by).
ColumnSpec = str | tuple[str, ...]

ANNOTATION_SUFFIXES: tuple[str, ...] = (".xlsx", ".xlsm", ".xls", ".csv")
HEADER_SCAN_ROWS = 40
MAX_FALLBACK_FILES = 50
MISSING_MARKERS = frozenset({"", "/", "-", "--", "?", "na", "n/a", "nan", "none", "null"})


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


# ----------------------------------------------------------------------------- cell values
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


def is_blank(value: object) -> bool:
    """True for None, NaN and empty text (unlike `is_missing`, '/' is not blank)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return isinstance(value, str) and not value.strip()


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


# ----------------------------------------------------------------------------- clip checks
def _parse_bounds(
    values: Sequence[object], columns: Sequence[str]
) -> tuple[list[int | None], list[str]]:
    """Parsed onset, apex, offset (apex None when empty) and messages for unreadable ones."""
    parsed: list[int | None] = []
    errors: list[str] = []
    for i, (value, column) in enumerate(zip(values, columns, strict=True)):
        if i == 1 and is_missing(value):
            parsed.append(None)
            continue
        if is_missing(value):
            errors.append(f"{column} is empty ({cell_text(value)!r}); fill in the frame number")
            parsed.append(None)
            continue
        try:
            parsed.append(parse_frame(value))
        except ValueError:
            errors.append(f"{column} value {value!r} is not a frame number; fix that cell")
            parsed.append(None)
    return parsed, errors


def _span(numbers: Sequence[int]) -> str:
    """'frames 40..120 (81 files)' for messages about which frames a folder holds."""
    if not numbers:
        return "no frames"
    return f"frames {numbers[0]}..{numbers[-1]} ({len(numbers)} files)"


def _examples(numbers: Sequence[int], limit: int = 5) -> str:
    """'51, 52, 60' or '51, 52, 60, 61, 70, ...' for messages."""
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (", ..." if len(numbers) > limit else "")


def _unique_frames(
    frames: Sequence[tuple[int, Path]],
) -> tuple[dict[int, Path], list[int]]:
    """Number -> first path, and the numbers that more than one file claims."""
    by_number: dict[int, Path] = {}
    duplicated: list[int] = []
    for number, path in frames:
        if number in by_number:
            if not duplicated or duplicated[-1] != number:
                duplicated.append(number)
            continue
        by_number[number] = path
    return by_number, duplicated


def make_clip(
    *,
    namespace: str,
    format: str,
    subject: str,
    clip: str,
    folder: Path | None,
    onset: object,
    apex: object,
    offset: object,
    fps: float,
    emotion: object,
    action_units: object = "",
    frames: Sequence[tuple[int, Path]] | None = None,
    file: str = "",
    row: int | None = None,
    columns: Sequence[str] = ("onset", "apex", "offset"),
    report_estimated_apex: bool = True,
) -> tuple[dict | None, list[Problem]]:
    """Check one annotated clip against its frames and build its clips-table row.

    Returns (row with every CLIP_COLUMNS entry, problems); the row is None when the clip
    cannot be used (each reason is an error Problem naming `file` and `row`). `subject` is the
    subject as on disk ("sub01"); the table gets it namespaced ("casme2/sub01"). `frames` are
    the (number, path) frames of `folder` when already listed; an empty `apex` is estimated as
    the middle available frame. `columns` names the onset/apex/offset columns in messages.
    """

    def problem(severity: str, message: str) -> Problem:
        return Problem(namespace, clip, severity, message, file, row)

    (first, peak, last), messages = _parse_bounds((onset, apex, offset), columns)
    problems = [problem(ERROR, m) for m in messages]
    if folder is None or not Path(folder).is_dir():
        where = f" {folder}" if folder is not None else ""
        problems.append(problem(ERROR, f"clip folder{where} not found; check that the frames "
                                       f"of {subject}/{clip.split('/')[-1]} were unpacked"))
    if problems:
        return None, problems
    assert first is not None and last is not None
    if first > last:
        return None, [problem(ERROR, f"onset {first} ({columns[0]}) is after offset {last} "
                                     f"({columns[2]}); fix the row")]
    if peak is not None and not first <= peak <= last:
        return None, [problem(ERROR, f"apex {peak} ({columns[1]}) is outside onset..offset "
                                     f"{first}..{last}; fix the row")]
    available = list_frames(folder) if frames is None else list(frames)
    if not available:
        return None, [problem(ERROR, f"no image frames in {folder} (expected numbered "
                                     f".jpg/.png/.bmp/.tif files)")]
    by_number, duplicated = _unique_frames(available)
    numbers = sorted(by_number)
    for name, number in (("onset", first), ("apex", peak), ("offset", last)):
        if number is not None and number not in by_number:
            problems.append(problem(ERROR, f"{name} frame {number} not found in {folder} "
                                           f"(it holds {_span(numbers)})"))
    if problems:
        return None, problems
    if duplicated:
        problems.append(problem(WARNING, f"several files share frame numbers "
                                         f"{_examples(duplicated)} in {folder}; using the "
                                         f"first file (by name) of each"))
    inside = [n for n in numbers if first <= n <= last]
    missing = [n for n in range(first + 1, last) if n not in by_number]
    if missing:
        problems.append(problem(WARNING, f"{len(missing)} of {last - first + 1} frames missing "
                                         f"between onset {first} and offset {last} (frame "
                                         f"drops: {_examples(missing)})"))
    apex_estimated = peak is None
    if peak is None:
        peak = inside[len(inside) // 2]
        if report_estimated_apex:
            problems.append(problem(WARNING, f"apex not annotated ({columns[1]} "
                                             f"{cell_text(apex)!r}); estimated as frame {peak}, "
                                             f"the middle frame"))
    elif peak == first:
        problems.append(problem(WARNING, f"onset and apex are the same frame ({first})"))
    row_dict = {
        "dataset": namespace,
        "format": format,
        "subject": f"{namespace}/{subject}",
        "clip": clip,
        "frames": tuple(str(by_number[n]) for n in inside),
        "frame_numbers": tuple(inside),
        "fps": float(fps),
        "onset": first,
        "apex": peak,
        "offset": last,
        "apex_estimated": apex_estimated,
        "emotion": cell_text(emotion).lower(),
        "action_units": cell_text(action_units),
    }
    return row_dict, problems


class ClipCollector:
    """Accumulates the clips and problems of one database load, then builds the Dataset.

    It refuses a second clip with an id already used (an error naming both rows) and remembers
    which folders the annotation mentioned, so folders nobody mentions can be reported.
    """

    def __init__(self, namespace: str, format: str, fps: float, file: str | Path = "") -> None:
        self.namespace = namespace
        self.format = format
        self.fps = float(fps)
        self.file = str(file)
        self.rows: list[dict] = []
        self.problems: list[Problem] = []
        self.mentioned: set[Path] = set()
        self._first_row: dict[str, int | None] = {}
        self.attempted = 0  # clips the annotation (or the folders) named, usable or not

    def problem(
        self, severity: str, message: str, *, clip: str = "", row: int | None = None,
        file: str | None = None,
    ) -> None:
        """Record a problem (clip "" for the whole database)."""
        source = self.file if file is None else file
        self.attempted += bool(clip)
        self.problems.append(Problem(self.namespace, clip, severity, message, source, row))

    def mention(self, folder: Path | None) -> None:
        """Remember that the annotation refers to `folder`."""
        if folder is not None:
            self.mentioned.add(Path(folder))

    def add(self, *, clip: str, row: int | None = None, **fields: object) -> bool:
        """Check and add one clip (arguments of `make_clip`); False when it was left out."""
        self.attempted += 1
        if clip in self._first_row:
            first = self._first_row[clip]
            where = f"row {first}" if first is not None else "an earlier entry"
            self.problem(ERROR, f"clip id {clip!r} is already used by {where}; this duplicate "
                                f"is left out (remove or rename one of them)", clip=clip,
                         row=row)
            return False
        self._first_row[clip] = row
        folder = fields.get("folder")
        self.mention(folder if isinstance(folder, Path) else None)
        fields.setdefault("fps", self.fps)
        fields.setdefault("file", self.file)
        row_dict, problems = make_clip(
            namespace=self.namespace, format=self.format, clip=clip, row=row, **fields,
        )  # type: ignore[arg-type]
        self.problems.extend(problems)
        if row_dict is None:
            return False
        self.rows.append({**row_dict, "source_file": str(fields["file"]), "source_row": row})
        return True

    def report_unmentioned(self, folders: Iterable[Path], what: str = "clip folder") -> None:
        """A warning for each folder on disk that no annotation row refers to."""
        for folder in folders:
            if Path(folder) not in self.mentioned:
                self.problem(WARNING, f"{what} {folder} is not in the annotation file; its "
                                      f"frames are not used")

    def dataset(self, root: str | Path, annotation_file: str | Path = "") -> Dataset:
        """The Dataset of the usable clips, with every problem recorded.

        Raises DatasetError when nothing named a single clip (an annotation with only a header
        row, or no clip folders): there is nothing to check or label, so say so up front.
        """
        if not self.attempted:
            self._raise_no_clips(root, str(annotation_file or self.file))
        return Dataset(
            name=self.namespace,
            clips=clips_frame(self.rows),
            problems=problems_frame(self.problems),
            root=str(root),
            annotation_file=str(annotation_file or self.file),
        )


    def _raise_no_clips(self, root: str | Path, annotation: str) -> None:
        notes = [p.message for p in self.problems if not p.clip][:2]
        noted = f" (noted: {'; '.join(notes)})" if notes else ""
        if annotation:
            raise DatasetError(
                f"{self.namespace} annotation file {annotation} lists no clips: no row below "
                f"its header names a subject and a file name{noted}. Use the complete "
                f"annotation file that came with the release."
            )
        raise DatasetError(f"no {self.namespace} clips found in {root}{noted}; point at the "
                           f"folder the database was unpacked into")


def subject_and_name(
    collector: ClipCollector, record: dict, subject_column: str, name_column: str
) -> tuple[str, str] | None:
    """(subject text, file name text) of an annotation row, or None (with a warning) when
    the row names neither, e.g. a footnote below the table."""
    subject = cell_text(record.get(subject_column))
    name = cell_text(record.get(name_column))
    if subject and name:
        return subject, name
    if not subject and not name:
        values = {k: cell_text(v) for k, v in record.items() if k != "_row" and cell_text(v)}
        collector.problem(WARNING, f"row has no {subject_column} and no {name_column}; ignored "
                                   f"(it holds {values})", row=record.get("_row"))
        return None
    missing = subject_column if not subject else name_column
    clip = f"{subject or '?'}/{name or '?'}"
    collector.problem(ERROR, f"{missing} is empty; fill it in so the clip can be found",
                      clip=clip, row=record.get("_row"))
    return None


def records(table: pd.DataFrame) -> list[dict]:
    """The rows of an annotation table as dicts (with `_row`)."""
    return table.to_dict(orient="records")


# A resolver maps (subject text, file name text) of a row to (subject id, clip id, clip folder);
# it raises ValueError with a message when the row cannot name a clip.
Resolver = Callable[[str, str], tuple[str, str, Path]]


def add_annotated_clips(
    collector: ClipCollector,
    table: pd.DataFrame,
    resolve: Resolver,
    *,
    subject: str,
    name: str,
    bounds: tuple[str, str, str],
    emotion: str,
    action_units: str,
    remarks: str | None = None,
) -> None:
    """Add one clip per annotation row: `resolve` finds its folder, `make_clip` checks it.

    `subject`, `name`, `bounds` (onset, apex, offset), `emotion` and `action_units` are the
    canonical column names in `table`; a column absent from the table reads as empty. A
    non-empty `remarks` cell becomes a warning on its clip.
    """
    for record in records(table):
        names = subject_and_name(collector, record, subject, name)
        if names is None:
            continue
        row = record.get("_row")
        try:
            subject_id, clip, folder = resolve(*names)
        except ValueError as exc:
            collector.problem(ERROR, str(exc), clip=f"{names[0]}/{names[1]}", row=row)
            continue
        added = collector.add(
            clip=clip, row=row, subject=subject_id, folder=folder,
            onset=record.get(bounds[0]), apex=record.get(bounds[1]),
            offset=record.get(bounds[2]), emotion=record.get(emotion),
            action_units=record.get(action_units, ""), columns=bounds,
        )
        remark = cell_text(record.get(remarks)) if remarks else ""
        if added and remark:
            collector.problem(WARNING, f"annotation remark: {remark}", clip=clip, row=row)
