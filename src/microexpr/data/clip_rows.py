"""Clips from annotation rows: each annotated clip is checked against the frames on disk and
becomes a clips-table row, or Problems that name the file, the row and the fix.

`ClipCollector` gathers one database load (refusing duplicate clip ids) and builds the Dataset;
`add_annotated_clips` runs the checks over a whole annotation table read by
`microexpr.data.annotations`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd

from microexpr.data.annotations import records
from microexpr.data.cells import cell_text, is_missing, parse_frame
from microexpr.data.clips import Dataset, clips_frame
from microexpr.data.frames import list_frames
from microexpr.data.problems import ERROR, WARNING, Problem, problems_frame
from microexpr.errors import DatasetError


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
