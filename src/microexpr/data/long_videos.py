"""Long-video databases for spotting: whole recordings with their expression intervals.

A clip database lists one expression per clip; a long-video database lists recordings (tens of
seconds to minutes) and, inside them, the frame intervals of every micro- and
macro-expression. Spotters are trained and evaluated on them (`microexpr.evaluation.spotting`).

    from microexpr.data.long_videos import load_long_videos
    data = load_long_videos("casme2_long", "/data/CASME_sq")
    data.videos      # one row per long video: subject, video, frames folder, fps, frame range
    data.intervals   # one row per annotated interval: video, onset, apex, offset, kind, ...
    data.problems    # every row left out and every warning, with the file and row

Formats (see `list_long_video_formats`):

- `casme2_long`, CAS(ME)^2 part A, 30 fps. Frames `rawpic/s15/15_0101disgustingteeth/img1.jpg`
  (`cropped/` is used when there is no `rawpic/`). Annotation `CAS(ME)^2code_final.xlsx` (or
  `...(Updated).xlsx`, preferred): a first sheet without header row whose columns are, in
  order, participant, video name with expression number (`disgust1_1`), onset, apex, offset,
  action units, estimated emotion, expression type (`macro-expression`/`micro-expression`),
  self-reported emotion; a sheet "naming rule1" mapping participant numbers (third column) to
  subject folder numbers (first or second column: 1 -> s15), and "naming rule2" mapping video
  names (`disgust1`, second column) to the 4-digit codes of the folder names (`0101`, first).
- `samm_long`, SAMM Long Videos, 200 fps. Frames `SAMM_longvideos/006_1/006_1_0001.jpg`.
  Annotation `SAMM_LongVideos_V3_Release.xlsx` (V2, V1): a text preamble, then Subject,
  Filename (`006_1_1`: subject, video, expression), Inducement Code, Onset, Apex, Offset,
  Duration, Type (`Macro`, `Micro - 1/2`), Action Units, Notes.
- `casme3_long`, CAS(ME)^3 part A, 30 fps. Frames `part_A/spNO.1/a/color/175.jpg` (a sequence
  without a `color` folder holds its frames itself). Annotation
  `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`: Subject, Filename (the sequence, `a`), Onset,
  Apex, Offset, AU, emotion and, where the file has one, an expression-type column; without it
  every row is a micro-expression (a warning says that macro-expressions are then not
  annotated). Interval names add the onset (`a_175`): file names repeat within a sequence.

Conventions: an onset, apex or offset of 0 (or below) that is not a frame of the video means
"not annotated", as an empty cell does. A missing offset becomes the apex (as the CAS(ME)^2
authors intend), a missing apex the middle frame, both with a warning and a flag
(`offset_estimated`, `apex_estimated`); a missing onset leaves the row out. Intervals may start
at the first frame and span most of a video (SAMM's long macro intervals). Every video folder
with frames is listed, annotated or not: spotting is scored on whole videos, so a video without
intervals still counts its false positives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from microexpr.data.adapters.casme3 import expression_type as expression_kind
from microexpr.data.annotations import (
    ANNOTATION_SUFFIXES,
    column_key,
    find_annotation,
    read_annotation,
    read_sheets,
    records,
)
from microexpr.data.cells import cell_text, is_blank, is_missing, parse_frame
from microexpr.data.frames import (
    find_child,
    find_folders,
    has_subfolders_like,
    list_frames,
    subfolders,
    walk_folders,
)
from microexpr.data.problems import ERROR, WARNING, Problem, problems_frame
from microexpr.errors import ConfigError, DatasetError

__all__ = [
    "INTERVAL_COLUMNS",
    "KINDS",
    "LONG_VIDEO_FORMATS",
    "VIDEO_COLUMNS",
    "LongVideoDataset",
    "LongVideoFormat",
    "expression_kind",
    "intervals_frame",
    "list_long_video_formats",
    "load_long_videos",
    "videos_frame",
]

KINDS: tuple[str, ...] = ("micro", "macro")

# One row per long video, in this order.
VIDEO_COLUMNS: tuple[str, ...] = (
    "dataset",  # namespace, e.g. "casme2_long"
    "format",  # the format that read it
    "subject",  # namespaced subject id, e.g. "casme2_long/s15"
    "video",  # video id: its folder relative to the frames root, e.g. "s15/15_0101disgustingteeth"
    "folder",  # the folder holding its frames
    "fps",
    "n_frames",  # frame files (distinct frame numbers)
    "first_frame",  # smallest frame number
    "last_frame",  # largest frame number (last - first + 1 - n_frames frames are missing)
    "n_micro",  # annotated micro-expression intervals in `intervals`
    "n_macro",  # annotated macro-expression intervals in `intervals`
)

# One row per usable annotated interval, in this order; frame numbers are inclusive bounds.
INTERVAL_COLUMNS: tuple[str, ...] = (
    "dataset",
    "subject",
    "video",
    "name",  # the expression as the annotation names it: "disgust1_1", "006_1_1"
    "onset",
    "apex",
    "offset",
    "kind",  # "micro" or "macro"
    "emotion",  # as annotated, lower case ("" when the database annotates none)
    "action_units",  # as annotated ("" when none)
    "apex_estimated",  # True when the apex was not annotated (the middle frame is used)
    "offset_estimated",  # True when the offset was not annotated (the apex is used)
    "source_file",
    "source_row",  # spreadsheet row number, as a spreadsheet program shows it
)


def videos_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """A videos table with VIDEO_COLUMNS from row dicts (typed; empty when no rows)."""
    frame = pd.DataFrame(list(rows), columns=list(VIDEO_COLUMNS))
    frame["fps"] = frame["fps"].astype(float)
    for column in ("n_frames", "first_frame", "last_frame", "n_micro", "n_macro"):
        frame[column] = frame[column].astype("int64")
    return frame.sort_values(["subject", "video"], kind="stable").reset_index(drop=True)


def intervals_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """An intervals table with INTERVAL_COLUMNS from row dicts (typed; empty when no rows)."""
    frame = pd.DataFrame(list(rows), columns=list(INTERVAL_COLUMNS))
    for column in ("onset", "apex", "offset"):
        frame[column] = frame[column].astype("int64")
    for column in ("apex_estimated", "offset_estimated"):
        frame[column] = frame[column].astype(bool)
    frame["source_row"] = frame["source_row"].astype("Int64")
    order = ["subject", "video", "onset", "offset"]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


@dataclass
class LongVideoDataset:
    """A loaded long-video database: its videos, their annotated intervals, and the problems.

    `intervals` holds only usable intervals; every annotation row left out is an error in
    `problems` naming the file and the row, so nothing is dropped silently.
    """

    name: str
    format: str
    videos: pd.DataFrame
    intervals: pd.DataFrame
    problems: pd.DataFrame = field(default_factory=lambda: problems_frame([]))
    root: str = ""
    annotation_file: str = ""

    @property
    def subjects(self) -> list[str]:
        """The namespaced subject ids, sorted."""
        return sorted(self.videos["subject"].unique())

    @property
    def n_left_out(self) -> int:
        """Annotation rows left out (each has an error in `problems`)."""
        errors = self.problems[(self.problems["severity"] == ERROR)
                               & (self.problems["clip"] != "")]
        return len(errors[["clip", "row"]].drop_duplicates())

    def video_frames(self, video: str) -> list[tuple[int, Path]]:
        """(number, path) of the frames of `video` (a `videos["video"]` id), in order."""
        match = self.videos[self.videos["video"] == video]
        if match.empty:
            raise DatasetError(f"{self.name} has no video {video!r}; see its `videos` table "
                               f"for the ids")
        return list_frames(match.iloc[0]["folder"])

    def summary(self) -> str:
        """One line: videos, subjects, intervals per kind, rows left out, problems."""
        kinds = self.intervals["kind"].value_counts()
        n_err = int((self.problems["severity"] == ERROR).sum())
        n_warn = int((self.problems["severity"] == WARNING).sum())
        return (
            f"{self.name}: {len(self.videos)} videos of {self.videos['subject'].nunique()} "
            f"subjects; {int(kinds.get('micro', 0))} micro and {int(kinds.get('macro', 0))} "
            f"macro intervals; {self.n_left_out} annotation rows left out; {n_err} errors, "
            f"{n_warn} warnings"
        )

    def __repr__(self) -> str:
        return f"<LongVideoDataset {self.summary()}>"


# ----------------------------------------------------------------------------- cells
def _number(value: object) -> int | None:
    """An integer from a cell ('15', 15.0, 's15' -> 15), or None."""
    text = cell_text(value)
    match = re.fullmatch(r"[a-z_]*\s*0*(\d+)(?:\.0+)?", text, flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


# ----------------------------------------------------------------------------- collecting
@dataclass
class _Video:
    """A video folder on disk with its frame numbers (listed once)."""

    subject: str  # as on disk, not namespaced
    video: str
    folder: Path
    numbers: list[int]
    number_set: frozenset[int]

    @property
    def first(self) -> int:
        return self.numbers[0]

    @property
    def last(self) -> int:
        return self.numbers[-1]


class _Collector:
    """Gathers the videos, intervals and problems of one load, checking each interval against
    its video's frames, and builds the LongVideoDataset."""

    def __init__(self, namespace: str, format: str, fps: float) -> None:
        self.namespace = namespace
        self.format = format
        self.fps = float(fps)
        self.file = ""
        self.videos: dict[Path, _Video] = {}
        self.intervals: list[dict] = []
        self.problems: list[Problem] = []
        self._seen: dict[tuple[str, int, int, str], int | None] = {}
        self.rows_read = 0  # annotation rows that name an interval, usable or not

    def problem(self, severity: str, message: str, *, clip: str = "", row: int | None = None,
                file: str | None = None) -> None:
        """Record a problem (clip '' for the whole database)."""
        source = self.file if file is None else file
        self.problems.append(Problem(self.namespace, clip, severity, message, source, row))

    def add_video(self, subject: str, video: str, folder: Path) -> None:
        """List a video folder's frames; a folder without frames is a warning, not a video."""
        frames = list_frames(folder)
        if not frames:
            self.problem(WARNING, f"video folder {folder} holds no numbered image frames; it is "
                                  f"not used", clip=video, file="")
            return
        numbers = sorted({number for number, _ in frames})
        if len(numbers) < len(frames):
            self.problem(WARNING, f"{len(frames) - len(numbers)} files in {folder} repeat a "
                                  f"frame number; the first file (by name) of each is used",
                         clip=video, file="")
        self.videos[folder] = _Video(subject, video, folder, numbers, frozenset(numbers))

    def add_interval(
        self,
        video: _Video,
        *,
        name: str,
        bounds: tuple[object, object, object],
        columns: tuple[str, str, str],
        kind: object,
        kind_column: str,
        emotion: object = "",
        action_units: object = "",
        row: int | None = None,
    ) -> bool:
        """Check one annotated interval against its video and keep it; False when left out."""
        clip = f"{video.video}/{name}"
        notes: list[str] = []  # warnings, recorded only when the interval is kept

        def fail(message: str) -> bool:
            self.problem(ERROR, message, clip=clip, row=row)
            return False

        kind_name = expression_kind(kind)
        if kind_name is None:
            return fail(f"{kind_column} {cell_text(kind)!r} is neither micro nor macro; write "
                        f"e.g. 'micro-expression' or 'macro-expression' in that cell")
        parsed: list[int | None] = []
        for value, column in zip(bounds, columns, strict=True):
            if is_missing(value):
                parsed.append(None)
                continue
            try:
                number = parse_frame(value)
            except ValueError:
                return fail(f"{column} value {value!r} is not a frame number; fix that cell")
            parsed.append(None if number <= 0 and number not in video.number_set else number)
        onset, apex, offset = parsed
        if onset is None:
            return fail(f"{columns[0]} is not annotated ({cell_text(bounds[0])!r}); fill in the "
                        f"onset frame")
        offset_estimated = offset is None
        if offset is None:
            if apex is None:
                return fail(f"neither {columns[1]} nor {columns[2]} is annotated; fill in at "
                            f"least the apex frame")
            offset = apex
            notes.append(f"{columns[2]} not annotated ({cell_text(bounds[2])!r}); the apex "
                         f"{apex} is used as the offset")
        apex_estimated = apex is None
        if apex is None:
            apex = (onset + offset) // 2
            notes.append(f"{columns[1]} not annotated ({cell_text(bounds[1])!r}); estimated as "
                         f"the middle frame {apex}")
        if onset > offset:
            return fail(f"onset {onset} ({columns[0]}) is after offset {offset} ({columns[2]});"
                        f" fix the row")
        if not onset <= apex <= offset:
            return fail(f"apex {apex} ({columns[1]}) is outside onset..offset {onset}..{offset};"
                        f" fix the row")
        if onset < video.first or offset > video.last:
            return fail(f"interval {onset}..{offset} is outside the frames of {video.folder} "
                        f"({video.first}..{video.last}); fix the row or restore the frames")
        key = (video.video, onset, offset, kind_name)
        if key in self._seen:
            first = self._seen[key]
            where = f"row {first}" if first is not None else "an earlier entry"
            return fail(f"the same {kind_name} interval {onset}..{offset} of {video.video} is "
                        f"already listed by {where}; this duplicate is left out")
        self._seen[key] = row
        missing = sum(1 for n in range(onset, offset + 1) if n not in video.number_set)
        if missing:
            notes.append(f"{missing} of {offset - onset + 1} frames of the interval "
                         f"{onset}..{offset} are missing in {video.folder} (frame drops)")
        for note in notes:
            self.problem(WARNING, note, clip=clip, row=row)
        self.intervals.append({
            "dataset": self.namespace,
            "subject": f"{self.namespace}/{video.subject}",
            "video": video.video,
            "name": name,
            "onset": onset,
            "apex": apex,
            "offset": offset,
            "kind": kind_name,
            "emotion": cell_text(emotion).lower(),
            "action_units": cell_text(action_units),
            "apex_estimated": apex_estimated,
            "offset_estimated": offset_estimated,
            "source_file": self.file,
            "source_row": row,
        })
        return True

    def dataset(self, root: Path, annotation: Path) -> LongVideoDataset:
        """The LongVideoDataset; DatasetError when there is no video or no annotation row."""
        if not self.videos:
            raise DatasetError(f"no {self.namespace} video folder with frames found in {root}; "
                               f"point at the folder the database was unpacked into")
        if not self.rows_read:
            raise DatasetError(f"{self.namespace} annotation file {annotation} lists no "
                               f"intervals; use the complete annotation file of the release")
        intervals = intervals_frame(self.intervals)
        counts = intervals.groupby(["video", "kind"]).size()
        rows = []
        for video in self.videos.values():
            rows.append({
                "dataset": self.namespace,
                "format": self.format,
                "subject": f"{self.namespace}/{video.subject}",
                "video": video.video,
                "folder": str(video.folder),
                "fps": self.fps,
                "n_frames": len(video.numbers),
                "first_frame": video.first,
                "last_frame": video.last,
                "n_micro": int(counts.get((video.video, "micro"), 0)),
                "n_macro": int(counts.get((video.video, "macro"), 0)),
            })
        return LongVideoDataset(
            name=self.namespace, format=self.format, videos=videos_frame(rows),
            intervals=intervals, problems=problems_frame(self.problems), root=str(root),
            annotation_file=str(annotation),
        )


def _choose_frames_root(
    root: Path, accept: Callable[[Path], bool], preferred: Sequence[str], avoid: Sequence[str],
    title: str, expected: str, collector: _Collector,
) -> Path:
    """The frames folder below `root`: folders `accept` says yes to, named as in `preferred`
    first (then by depth), never one named in `avoid`; a warning names the others."""
    found = find_folders(root, accept, max_depth=3)
    usable = [f for f in found if f.name.lower() not in avoid]
    if not usable:
        also = (f" (only {', '.join(str(f) for f in found)}, which hold selected frames, not "
                f"whole videos)") if found else ""
        raise DatasetError(f"no {title} frames found in {root}{also}: expected {expected}, at "
                           f"most 3 levels below it")
    rank = {name: i for i, name in enumerate(preferred)}
    usable.sort(key=lambda f: (rank.get(f.name.lower(), len(rank)), len(f.parts)))
    if len(found) > 1:
        others = ", ".join(str(f) for f in found if f != usable[0])
        collector.problem(WARNING, f"several frames folders found; using {usable[0]}, not "
                                   f"{others}")
    return usable[0]


def _extra_folders(root: Path, frames_root: Path) -> list[Path]:
    """Where else an annotation file may be: beside a frames folder given as the root."""
    return [root.parent] if frames_root == root else []


# ----------------------------------------------------------------------------- CAS(ME)^2
CASME2_LONG = "casme2_long"
CASME2_TITLE = "CAS(ME)^2"
CASME2_FPS = 30.0
CASME2_ANNOTATIONS = (
    "CAS(ME)^2code_final(Updated).xlsx",
    "CAS(ME)^2code_final.xlsx",
    "CAS(ME)2code_final(Updated).xlsx",
    "CAS(ME)2code_final.xlsx",
    "code_final.xlsx",
)
# Columns of the first sheet, in order (it has no header row).
CASME2_COLUMNS = (
    "participant",
    "video name",
    "onset",
    "apex",
    "offset",
    "action units",
    "estimated emotion",
    "expression type",
    "self-reported emotion",
)
CASME2_FRAMES = ("rawpic", "cropped")  # preferred frames folders, in order
CASME2_AVOID = ("selectedpic",)  # expression frames only, not whole videos
CASME2_SUBJECT = r"s\d+"
CASME2_VIDEO = re.compile(r"(\d+)_(\d{4})(.*)")  # 15_0101disgustingteeth


def _casme2_is_frames_root(folder: Path) -> bool:
    """A folder of subject folders s15, s16, ... holding video folders 15_0101<name>."""
    for subject in subfolders(folder):
        if re.fullmatch(CASME2_SUBJECT, subject.name, flags=re.IGNORECASE) and any(
                CASME2_VIDEO.fullmatch(v.name) for v in subfolders(subject)):
            return True
    return False


def _find_casme2_annotation(root: Path, extra: Sequence[Path]) -> Path:
    """`CAS(ME)^2code_final(Updated).xlsx` (preferred) or another known name in `root` and 2
    levels below (or in `extra`), else a spreadsheet whose name has 'code_final' in it."""
    files = [(d, path) for d, folder in walk_folders(root, 2) for path in _files(folder)]
    files += [(3, path) for folder in extra for path in _files(folder)]
    known = [name.lower() for name in CASME2_ANNOTATIONS]
    ranked = sorted((known.index(p.name.lower()), d, str(p), p) for d, p in files
                    if p.name.lower() in known)
    if ranked:
        return ranked[0][3]
    loose = sorted((d, str(p), p) for d, p in files if re.search(r"code.?final", p.name, re.I))
    if loose:
        return loose[0][2]
    raise DatasetError(
        f"no CAS(ME)^2 annotation file found in {root} (and 2 levels of sub-folders): expected "
        f"{' or '.join(CASME2_ANNOTATIONS[:2])}. Copy the annotation file of the release there."
    )


def _files(folder: Path) -> list[Path]:
    """Spreadsheet-like files directly in `folder` (no lock or hidden files)."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_file()
                      and p.name.lower().endswith(ANNOTATION_SUFFIXES)
                      and not p.name.startswith(("~$", ".")))
    except OSError:
        return []


def _naming_rule(name: str) -> int | None:
    """1 or 2 for a sheet called 'naming rule1' / 'Naming rule 2', else None."""
    match = re.fullmatch(r"naming\s*rules?\s*([12])", name.strip(), flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def _sheet(sheets: list[tuple[str, pd.DataFrame]], number: int) -> pd.DataFrame | None:
    """The 'naming rule<number>' sheet (by name, else the sheet at position `number`)."""
    for name, table in sheets:
        if _naming_rule(name) == number:
            return table
    return sheets[number][1] if len(sheets) > number else None


def _cells(table: pd.DataFrame, position: int, width: int) -> list[object]:
    """Row `position` of a headerless sheet as `width` cells (None past its last column)."""
    values = list(table.iloc[position])[:width]
    return values + [None] * (width - len(values))


def _casme2_subjects(sheet: pd.DataFrame | None, frames_root: Path) -> dict[int, int]:
    """Participant number -> subject folder number, from 'naming rule1': each row holds the
    folder number in its first or second cell (the one whose s<N> folder exists, else the
    first) and the participant number in its third. Rows that are not numbers are skipped."""
    mapping: dict[int, int] = {}
    if sheet is None:
        return mapping
    for position in range(len(sheet)):
        first, second, participant = (_number(v) for v in _cells(sheet, position, 3))
        if participant is None:
            continue
        candidates = [n for n in (first, second) if n is not None]
        on_disk = [n for n in candidates if find_child(frames_root, f"s{n}") is not None]
        chosen = on_disk or candidates
        if chosen:
            mapping.setdefault(participant, chosen[0])
    return mapping


def _casme2_codes(sheet: pd.DataFrame | None) -> dict[str, str]:
    """Video name (lower case, 'disgust1') -> 4-digit code ('0101'), from 'naming rule2'."""
    mapping: dict[str, str] = {}
    if sheet is None:
        return mapping
    for position in range(len(sheet)):
        code, name = _cells(sheet, position, 2)
        number, text = _number(code), cell_text(name).lower()
        if number is not None and text and cell_text(code).strip().isdigit():
            mapping.setdefault(text, f"{number:04d}")
    return mapping


def _casme2_videos(frames_root: Path, collector: _Collector) -> dict[tuple[str, str], _Video]:
    """Every video folder s<N>/<N>_<code><name> with frames, by (subject folder, code)."""
    found: dict[tuple[str, str], _Video] = {}
    for subject in subfolders(frames_root):
        if not re.fullmatch(CASME2_SUBJECT, subject.name, flags=re.IGNORECASE):
            continue
        for folder in subfolders(subject):
            match = CASME2_VIDEO.fullmatch(folder.name)
            if match is None:
                collector.problem(WARNING, f"folder {folder} is not named like a CAS(ME)^2 video "
                                           f"(15_0101<name>); it is not used", file="")
                continue
            collector.add_video(subject.name, f"{subject.name}/{folder.name}", folder)
            video = collector.videos.get(folder)
            key = (subject.name.lower(), match.group(2))
            if video is None:
                continue
            if key in found:
                collector.problem(WARNING, f"{folder} and {found[key].folder} have the same video "
                                           f"code {match.group(2)}; the annotation refers to the "
                                           f"first", file="")
                continue
            found[key] = video
    return found


def _looks_like_header(cells: Sequence[object]) -> bool:
    """True for a header row (text, not frame numbers, where onset/apex/offset are)."""
    bounds = cells[2:5]
    return all(isinstance(v, str) and not v.strip().lstrip("-").isdigit() and v.strip()
               for v in bounds)


def load_casme2_long(root: Path, *, namespace: str) -> LongVideoDataset:
    """Read CAS(ME)^2's long videos and their intervals at `root`."""
    collector = _Collector(namespace, CASME2_LONG, CASME2_FPS)
    expected = "a folder (rawpic) holding s15/15_0101disgustingteeth/img1.jpg and so on"
    frames_root = _choose_frames_root(
        root, _casme2_is_frames_root, CASME2_FRAMES, CASME2_AVOID, CASME2_TITLE, expected,
        collector,
    )
    annotation = _find_casme2_annotation(root, _extra_folders(root, frames_root))
    collector.file = str(annotation)
    sheets = read_sheets(annotation)
    rule1, rule2 = _sheet(sheets, 1), _sheet(sheets, 2)
    subjects = _casme2_subjects(rule1, frames_root)
    codes = _casme2_codes(rule2)
    if not codes:
        raise DatasetError(
            f"CAS(ME)^2 annotation file {annotation} has no 'naming rule2' sheet mapping video "
            f"names (disgust1) to the codes of the folder names (0101, in 15_0101...): its "
            f"sheets are {', '.join(repr(n) for n, _ in sheets)}. Use the annotation file "
            f"of the release, which has the sheets 'naming rule1' and 'naming rule2'."
        )
    if not subjects:
        collector.problem(WARNING, "no 'naming rule1' sheet mapping participant numbers to "
                                   "subject folders; participant N is looked for in folder sN")
    videos = _casme2_videos(frames_root, collector)
    coded = [table for name, table in sheets if _naming_rule(name) is None]
    table = coded[0] if coded else sheets[0][1]  # the first sheet, the naming rules aside
    width = len(CASME2_COLUMNS)
    data_seen = False
    for position in range(len(table)):
        cells = _cells(table, position, width)
        row = position + 1
        if all(is_blank(v) for v in cells):
            continue
        if not data_seen and _looks_like_header(cells):
            continue  # a header some copies of the file add
        data_seen = True
        collector.rows_read += 1
        participant, name = cell_text(cells[0]), cell_text(cells[1])
        if not participant or not name:
            missing = "participant (column 1)" if not participant else "video name (column 2)"
            collector.problem(ERROR, f"{missing} is empty; fill it in so the video can be found",
                              clip=f"{participant or '?'}/{name or '?'}", row=row)
            continue
        video = _casme2_video(collector, videos, subjects, codes, participant, name, row,
                              frames_root)
        if video is None:
            continue
        collector.add_interval(
            video, name=name, bounds=(cells[2], cells[3], cells[4]),
            columns=("onset (column 3)", "apex (column 4)", "offset (column 5)"),
            kind=cells[7], kind_column="expression type (column 8)", emotion=cells[6],
            action_units=cells[5], row=row,
        )
    return collector.dataset(root, annotation)


def _casme2_video(
    collector: _Collector, videos: dict[tuple[str, str], _Video], subjects: dict[int, int],
    codes: dict[str, str], participant: str, name: str, row: int, frames_root: Path,
) -> _Video | None:
    """The video of a first-sheet row (participant, 'disgust1_1'), or None with an error."""
    clip = f"{participant}/{name}"

    def fail(message: str) -> None:
        collector.problem(ERROR, message, clip=clip, row=row)

    number = _number(participant)
    if number is None:
        return fail(f"participant {participant!r} (column 1) is not a participant number; fix "
                    f"that cell")
    if subjects and number not in subjects:
        return fail(f"participant {number} is not in the 'naming rule1' sheet, so its subject "
                    f"folder is unknown; add it there")
    folder_number = subjects.get(number, number)
    video_name = name.rsplit("_", 1)[0].strip().lower() if "_" in name else name.lower()
    code = codes.get(video_name)
    if code is None:
        return fail(f"video name {video_name!r} (from {name!r}, column 2) is not in the "
                    f"'naming rule2' sheet, so its folder code is unknown; add it there")
    subject_dir = find_child(frames_root, f"s{folder_number}")
    if subject_dir is None:
        return fail(f"subject folder s{folder_number} (participant {number}) not found in "
                    f"{frames_root}; check that its frames were unpacked")
    video = videos.get((subject_dir.name.lower(), code))
    if video is None:
        return fail(f"no video folder {folder_number}_{code}<name> with frames in {subject_dir} "
                    f"(video {video_name}); check that its frames were unpacked")
    return video


# ----------------------------------------------------------------------------- SAMM-LV
SAMM_LONG = "samm_long"
SAMM_TITLE = "SAMM Long Videos"
SAMM_FPS = 200.0
SAMM_ANNOTATIONS = (
    "SAMM_LongVideos_V3_Release.xlsx",
    "SAMM_LongVideos_V2_Release.xlsx",
    "SAMM_LongVideos_V1_Release.xlsx",
)
SAMM_REQUIRED = (
    "Subject",
    "Filename",
    ("Onset", "Onset Frame"),
    ("Apex", "Apex Frame"),
    ("Offset", "Offset Frame"),
    "Type",
)
SAMM_OPTIONAL = (("Action Units", "AU", "AUs"), ("Estimated Emotion", "Emotion"))
SAMM_FRAMES = ("samm_longvideos", "samm_long_videos")
SAMM_VIDEO = re.compile(r"(\d+)_(\d+)")  # 006_1
SAMM_FILENAME = re.compile(r"\s*(\d+)_(\d+)_(\d+)\s*")  # 006_1_1


def _samm_is_frames_root(folder: Path) -> bool:
    """A folder of video folders named <subject>_<video> (006_1, 006_2, ...)."""
    return has_subfolders_like(folder, SAMM_VIDEO.pattern)


def load_samm_long(root: Path, *, namespace: str) -> LongVideoDataset:
    """Read SAMM Long Videos and their intervals at `root`."""
    collector = _Collector(namespace, SAMM_LONG, SAMM_FPS)
    expected = "a folder (SAMM_longvideos) holding 006_1/006_1_0001.jpg and so on"
    frames_root = _choose_frames_root(
        root, _samm_is_frames_root, SAMM_FRAMES, (), SAMM_TITLE, expected, collector,
    )
    videos: dict[tuple[int, int], _Video] = {}
    for folder in subfolders(frames_root):
        match = SAMM_VIDEO.fullmatch(folder.name)
        if match is None:
            continue
        collector.add_video(f"{int(match.group(1)):03d}", folder.name, folder)
        if folder in collector.videos:
            videos.setdefault((int(match.group(1)), int(match.group(2))),
                              collector.videos[folder])
    annotation = find_annotation(root, SAMM_ANNOTATIONS, SAMM_REQUIRED, SAMM_TITLE,
                                 extra_folders=_extra_folders(root, frames_root))
    collector.file = str(annotation)
    table = read_annotation(annotation, SAMM_REQUIRED, SAMM_TITLE,
                            optional_columns=SAMM_OPTIONAL)
    for record in records(table):
        row = record.get("_row")
        subject, name = cell_text(record.get("Subject")), cell_text(record.get("Filename"))
        collector.rows_read += bool(subject or name)
        if not name:
            if subject:
                collector.problem(ERROR, "Filename is empty; fill it in so the video can be "
                                         "found", clip=f"{subject}/?", row=row)
            else:
                values = {k: cell_text(v) for k, v in record.items()
                          if k != "_row" and cell_text(v)}
                collector.problem(WARNING, f"row has no Subject and no Filename; ignored (it "
                                           f"holds {values})", row=row)
            continue
        match = SAMM_FILENAME.fullmatch(name)
        if match is None:
            collector.problem(ERROR, f"Filename {name!r} is not <subject>_<video>_<expression> "
                                     f"(e.g. 006_1_1); fix that cell", clip=name, row=row)
            continue
        key = (int(match.group(1)), int(match.group(2)))
        video = videos.get(key)
        if video is None:
            collector.problem(ERROR, f"video folder {key[0]:03d}_{key[1]} (from Filename "
                                     f"{name!r}) with frames not found in {frames_root}; check "
                                     f"that its frames were unpacked", clip=name, row=row)
            continue
        stated = _number(subject)
        if subject and stated != key[0]:
            collector.problem(WARNING, f"Subject {subject!r} differs from the subject of "
                                       f"Filename {name!r}; the file name's is used",
                              clip=f"{video.video}/{name}", row=row)
        collector.add_interval(
            video, name=name,
            bounds=(record.get("Onset"), record.get("Apex"), record.get("Offset")),
            columns=("Onset", "Apex", "Offset"), kind=record.get("Type"), kind_column="Type",
            emotion=record.get("Estimated Emotion", ""),
            action_units=record.get("Action Units", ""), row=row,
        )
    return collector.dataset(root, annotation)


# ----------------------------------------------------------------------------- CAS(ME)^3
CASME3_LONG = "casme3_long"
CASME3_TITLE = "CAS(ME)^3 part A"
CASME3_FPS = 30.0
CASME3_ANNOTATIONS = (
    "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
    "cas(me)3_part_A_ME_label_JpgIndex.xlsx",
)
CASME3_REQUIRED = ("Subject", "Filename", "Onset", "Apex", "Offset")
CASME3_OPTIONAL = (
    ("AU", "AUs", "Action Units"),
    ("emotion", "Estimated Emotion"),
    ("Expression type", "type", "Exp type", "ME type"),
)
CASME3_SUBJECT = r"spNO\.?\d+"
CASME3_COLOUR = ("color", "colour", "rgb")


def _casme3_is_frames_root(folder: Path) -> bool:
    """part_A: a folder holding subject folders spNO.1, spNO.2, ..."""
    return has_subfolders_like(folder, CASME3_SUBJECT)


def _casme3_subject(text: str) -> str:
    """'spNO.1' from 1, '1.0' or 'spNO.1' (other spellings are kept as written)."""
    number = re.fullmatch(r"(\d+)(?:\.0+)?", text.strip())
    return f"spNO.{int(number.group(1))}" if number else text.strip()


def _casme3_type_column(table: pd.DataFrame) -> str | None:
    """The expression-type column: 'Expression type' or another named like '*type*' (not the
    objective class)."""
    for column in table.columns:
        key = column_key(column)
        if "type" in key and "objective" not in key:
            return str(column)
    return None


def load_casme3_long(root: Path, *, namespace: str) -> LongVideoDataset:
    """Read CAS(ME)^3 part A's long sequences and their intervals at `root`."""
    collector = _Collector(namespace, CASME3_LONG, CASME3_FPS)
    expected = "a folder (part_A) holding spNO.1/a/color/175.jpg and so on"
    frames_root = _choose_frames_root(
        root, _casme3_is_frames_root, ("part_a",), (), CASME3_TITLE, expected, collector,
    )
    videos: dict[tuple[str, str], _Video] = {}
    for subject in subfolders(frames_root):
        if not re.fullmatch(CASME3_SUBJECT, subject.name, flags=re.IGNORECASE):
            continue
        for sequence in subfolders(subject):
            colour = next((c for c in (find_child(sequence, n) for n in CASME3_COLOUR) if c),
                          sequence)
            video_id = f"{subject.name}/{sequence.name}"
            collector.add_video(subject.name, video_id, colour)
            if colour in collector.videos:
                videos[(subject.name.lower(), sequence.name.lower())] = collector.videos[colour]
    annotation = find_annotation(root, CASME3_ANNOTATIONS, CASME3_REQUIRED, CASME3_TITLE,
                                 extra_folders=_extra_folders(root, frames_root))
    collector.file = str(annotation)
    table = read_annotation(annotation, CASME3_REQUIRED, CASME3_TITLE,
                            optional_columns=CASME3_OPTIONAL)
    type_column = _casme3_type_column(table)
    if type_column is None:
        collector.problem(WARNING, "the label file has no expression-type column, so every "
                                   "interval is taken as a micro-expression (the ME label file "
                                   "lists no macro-expressions: macro predictions on these "
                                   "videos count as false positives)")
    for record in records(table):
        row = record.get("_row")
        subject, name = cell_text(record.get("Subject")), cell_text(record.get("Filename"))
        if not subject and not name:
            continue
        collector.rows_read += 1
        clip = f"{subject or '?'}/{name or '?'}"
        if not subject or not name:
            missing = "Subject" if not subject else "Filename"
            collector.problem(ERROR, f"{missing} is empty; fill it in so the sequence can be "
                                     f"found", clip=clip, row=row)
            continue
        folder = _casme3_subject(subject)
        video = videos.get((folder.lower(), name.lower()))
        if video is None:
            collector.problem(ERROR, f"sequence folder {folder}/{name} with frames not found in "
                                     f"{frames_root}; check that its frames were unpacked",
                              clip=clip, row=row)
            continue
        collector.add_interval(
            video, name=f"{name}_{cell_text(record.get('Onset'))}",
            bounds=(record.get("Onset"), record.get("Apex"), record.get("Offset")),
            columns=("Onset", "Apex", "Offset"),
            kind=record.get(type_column) if type_column else "micro",
            kind_column=type_column or "type", emotion=record.get("emotion", ""),
            action_units=record.get("AU", ""), row=row,
        )
    return collector.dataset(root, annotation)


# ----------------------------------------------------------------------------- registry
Loader = Callable[..., LongVideoDataset]


@dataclass(frozen=True)
class LongVideoFormat:
    """A long-video database format: its name, what it reads, and the loader function."""

    name: str
    title: str
    fps: float
    description: str
    loader: Loader


LONG_VIDEO_FORMATS: dict[str, LongVideoFormat] = {
    spec.name: spec
    for spec in (
        LongVideoFormat(CASME2_LONG, CASME2_TITLE, CASME2_FPS,
                        "CAS(ME)^2: rawpic/s<N>/<N>_<code><name>/img<n>.jpg + "
                        "CAS(ME)^2code_final.xlsx (headerless sheet, naming rules)",
                        load_casme2_long),
        LongVideoFormat(SAMM_LONG, SAMM_TITLE, SAMM_FPS,
                        "SAMM Long Videos: SAMM_longvideos/<subject>_<video>/<...>_<n>.jpg + "
                        "SAMM_LongVideos_V<k>_Release.xlsx",
                        load_samm_long),
        LongVideoFormat(CASME3_LONG, CASME3_TITLE, CASME3_FPS,
                        "CAS(ME)^3 part A: part_A/spNO.<n>/<sequence>/color/<n>.jpg + "
                        "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
                        load_casme3_long),
    )
}


def list_long_video_formats() -> pd.DataFrame:
    """The supported long-video formats: name, title, fps and what each reads."""
    return pd.DataFrame([
        {"name": f.name, "title": f.title, "fps": f.fps, "reads": f.description}
        for f in sorted(LONG_VIDEO_FORMATS.values(), key=lambda f: f.name)
    ])


def load_long_videos(
    name: str, root: str | Path, *, namespace: str | None = None
) -> LongVideoDataset:
    """Read the long-video database `name` unpacked at `root` (videos, intervals, problems).

    `namespace` prefixes subject ids (default: the format name, as in 'casme2_long/s15').
    """
    key = name.strip().lower()
    if key not in LONG_VIDEO_FORMATS:
        known = ", ".join(sorted(LONG_VIDEO_FORMATS))
        raise DatasetError(f"unknown long-video format {name!r}; known formats: {known}")
    spec = LONG_VIDEO_FORMATS[key]
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise DatasetError(f"{spec.title} folder {path} does not exist or is not a folder; "
                           f"pass the folder where the database was unpacked")
    prefix = spec.name if namespace is None else namespace.strip()
    if not prefix or "/" in prefix:
        raise ConfigError(f"namespace {namespace!r} must be a non-empty name without '/'; it "
                          f"prefixes subject ids ('{spec.name}/s15')")
    return spec.loader(path, namespace=prefix)
