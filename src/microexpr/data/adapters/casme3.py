"""CAS(ME)^3 part A (2022): 100 subjects, ~860 micro-expressions at 30 fps.

Frames: `part_A/spNO.1/a/color/175.jpg`, long sequences; a clip is the onset..offset range of
one. Annotation: `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` with Subject, Filename, Onset,
Apex, Offset, AU, Objective class, emotion and an expression-type column (micro/macro). File
names repeat within a subject, so clip ids add the onset: "spNO.1/a_175".
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.annotations import column_key, find_annotation, read_annotation, records
from microexpr.data.cells import cell_text
from microexpr.data.clip_rows import ClipCollector, subject_and_name
from microexpr.data.clips import Dataset
from microexpr.data.frames import (
    find_child,
    find_folders,
    has_subfolders_like,
    list_frames,
    subfolders,
)
from microexpr.data.problems import ERROR, WARNING
from microexpr.errors import DatasetError

NAME = "casme3"
TITLE = "CAS(ME)^3"
FPS = 30.0
KNOWN_NAMES = (
    "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
    "cas(me)3_part_A_ME_label_JpgIndex.xlsx",
)
REQUIRED = ("Subject", "Filename", "Onset", "Apex", "Offset", ("emotion", "Estimated Emotion"))
TYPE_COLUMN = "Expression type"
OPTIONAL = (
    ("AU", "AUs", "Action Units"),
    ("Objective class", "Objective classes"),
    (TYPE_COLUMN, "type", "Exp type", "ME type"),
)
SUBJECT_PATTERN = r"spNO\.?\d+"
COLOUR_FOLDERS = ("color", "colour", "rgb")


def is_frames_root(folder: Path) -> bool:
    """True for part_A: a folder holding subject folders spNO.1, spNO.2, ..."""
    return has_subfolders_like(folder, SUBJECT_PATTERN)


def frames_root_of(root: Path, collector: ClipCollector) -> Path:
    """The part_A folder: `root` itself or the shallowest folder below it with spNO.* folders."""
    found = find_folders(root, is_frames_root, max_depth=3)
    if not found:
        raise DatasetError(
            f"no CAS(ME)^3 part A frames found in {root}: expected a folder (part_A) holding "
            f"spNO.1/a/color/175.jpg and so on, at most 3 levels below it"
        )
    if len(found) > 1:
        rest = ", ".join(str(f) for f in found[1:])
        collector.problem(WARNING, f"several part A folders found; using {found[0]}, not {rest}",
                          file="")
    return found[0]


def subject_folder_name(text: str) -> str:
    """'spNO.1' from 1, '1.0' or 'spNO.1' (other spellings are kept as written)."""
    match = re.fullmatch(r"(\d+)(?:\.0+)?", text.strip())
    return f"spNO.{int(match.group(1))}" if match else text.strip()


def find_type_column(table: pd.DataFrame) -> str | None:
    """The expression-type column: 'Expression type' or another column named like '*type*'."""
    if TYPE_COLUMN in table.columns:
        return TYPE_COLUMN
    for column in table.columns:
        key = column_key(column)
        if "type" in key and "objective" not in key:
            return str(column)
    return None


def expression_type(value: object) -> str | None:
    """'micro', 'macro' or None (unreadable) from a cell such as 'micro-expression' or 'MaE'."""
    text = cell_text(value).lower()
    if "macro" in text or text in {"mae", "ma"}:
        return "macro"
    if "micro" in text or text in {"me", "mi"}:
        return "micro"
    return None


def clip_id(record: dict) -> str:
    """'spNO.1/a_175': subject, file name and onset (file names repeat within a subject)."""
    subject = subject_folder_name(cell_text(record.get("Subject")))
    return f"{subject}/{cell_text(record.get('Filename'))}_{cell_text(record.get('Onset'))}"


def micro_rows(table: pd.DataFrame, collector: ClipCollector) -> list[dict]:
    """The micro-expression rows. The release's ME label file has no type column (all rows are
    micro); a file with one (as the spotting sheet has) keeps its micro rows, counts the macro
    rows in one warning and reports unreadable types as errors."""
    column = find_type_column(table)
    rows = records(table)
    if column is None:  # the ME label file of the release lists micro-expressions only
        return rows
    kept, macro = [], 0
    for record in rows:
        kind = expression_type(record.get(column))
        if kind == "micro":
            kept.append(record)
        elif kind == "macro":
            macro += 1
        else:
            collector.problem(ERROR, f"{column} {cell_text(record.get(column))!r} is neither "
                                     f"micro nor macro; fix that cell", clip=clip_id(record),
                              row=record.get("_row"))
    if macro:
        collector.problem(WARNING, f"{macro} macro-expression row(s) (column {column!r}) are not "
                                   f"micro-expressions and are not loaded")
    return kept


class _Sequences:
    """Sequence folders of part A and their frames, each listed once."""

    def __init__(self, frames_root: Path) -> None:
        self.frames_root = frames_root
        self._frames: dict[Path, list[tuple[int, Path]]] = {}

    def folder(self, subject: str, name: str) -> tuple[Path, Path]:
        """(sequence folder, folder of its colour frames) for a subject and file name."""
        subject_dir = find_child(self.frames_root, subject) or self.frames_root / subject
        sequence = find_child(subject_dir, name) or subject_dir / name
        for colour in COLOUR_FOLDERS:
            found = find_child(sequence, colour)
            if found is not None:
                return sequence, found
        return sequence, sequence

    def frames(self, folder: Path) -> list[tuple[int, Path]]:
        """The numbered frames of a folder, listed on first use."""
        if folder not in self._frames:
            self._frames[folder] = list_frames(folder)
        return self._frames[folder]

    def all_sequences(self) -> list[Path]:
        """Every spNO.*/<sequence> folder on disk."""
        return [
            sequence
            for subject in subfolders(self.frames_root)
            if re.fullmatch(SUBJECT_PATTERN, subject.name, flags=re.IGNORECASE)
            for sequence in subfolders(subject)
        ]


@register_adapter(
    NAME, TITLE, FPS,
    "CAS(ME)^3 part A: part_A/spNO.<n>/<seq>/color/<n>.jpg + ME label xlsx (micro rows only)",
)
def load(root: Path, *, namespace: str) -> Dataset:
    """Read the micro-expressions of CAS(ME)^3 part A at `root`."""
    root = Path(root)
    collector = ClipCollector(namespace, NAME, FPS)
    frames_root = frames_root_of(root, collector)
    extra = [root.parent] if frames_root == root else []
    annotation = find_annotation(root, KNOWN_NAMES, REQUIRED, TITLE, extra_folders=extra)
    table = read_annotation(annotation, REQUIRED, TITLE, optional_columns=OPTIONAL)
    collector.file = str(annotation)
    sequences = _Sequences(frames_root)
    for record in records(table):  # macro rows also account for their sequence folder
        subject, name = cell_text(record.get("Subject")), cell_text(record.get("Filename"))
        if subject and name:
            collector.mention(sequences.folder(subject_folder_name(subject), name)[0])
    for record in micro_rows(table, collector):
        names = subject_and_name(collector, record, "Subject", "Filename")
        if names is None:
            continue
        subject = subject_folder_name(names[0])
        sequence, colour = sequences.folder(subject, names[1])
        collector.add(
            clip=clip_id(record),
            row=record.get("_row"), subject=subject, folder=colour,
            frames=sequences.frames(colour) if colour.is_dir() else None,
            onset=record.get("Onset"), apex=record.get("Apex"), offset=record.get("Offset"),
            emotion=record.get("emotion"), action_units=record.get("AU", ""),
            columns=("Onset", "Apex", "Offset"),
        )
    collector.report_unmentioned(sequences.all_sequences(), what="sequence folder")
    return collector.dataset(root, annotation)
