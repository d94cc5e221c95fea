"""SAMM (Manchester Metropolitan University): 32 subjects, 159 clips at 200 fps.

Frames: `SAMM/006/006_1_2/006_05562.jpg` (the root may be the SAMM folder itself).
Annotation: `SAMM_Micro_FACS_Codes_v2.xlsx`, a text preamble then the header (row 13) with
Subject, Filename, Onset Frame, Apex Frame, Offset Frame, Action Units, Estimated Emotion.
"""

from __future__ import annotations

import re
from pathlib import Path

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.annotations import find_annotation, read_annotation
from microexpr.data.clip_rows import ClipCollector, Resolver, add_annotated_clips
from microexpr.data.clips import Dataset
from microexpr.data.frames import find_child, find_folders, has_subfolders_like, subfolders
from microexpr.data.problems import WARNING
from microexpr.errors import DatasetError

NAME = "samm"
TITLE = "SAMM"
FPS = 200.0
KNOWN_NAMES = ("SAMM_Micro_FACS_Codes_v2.xlsx", "SAMM_20181215_Micro_FACS_Codes_v2.xlsx")
REQUIRED = (
    "Subject",
    "Filename",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    ("Estimated Emotion", "Emotion"),
)
OPTIONAL = (("Action Units", "AU", "AUs"),)
SUBJECT_PATTERN = r"\d{3}"


def is_frames_root(folder: Path) -> bool:
    """True for a folder holding 3-digit subject folders (006, 007, ...)."""
    return has_subfolders_like(folder, SUBJECT_PATTERN)


def frames_root_of(root: Path, collector: ClipCollector) -> Path:
    """The folder with the subject folders: `root`, or the shallowest one below it."""
    found = find_folders(root, is_frames_root, max_depth=3)
    if not found:
        raise DatasetError(
            f"no SAMM frames found in {root}: expected a folder (usually SAMM) holding 3-digit "
            f"subject folders such as 006/006_1_2/006_05562.jpg, at most 3 levels below it"
        )
    if len(found) > 1:
        rest = ", ".join(str(f) for f in found[1:])
        collector.problem(WARNING, f"several SAMM frames folders found; using {found[0]}, not "
                                   f"{rest}", file="")
    return found[0]


def subject_folder_name(text: str) -> str:
    """'006' from 6, '6.0', '006' or 'S006'; ValueError otherwise."""
    match = re.fullmatch(r"[a-z]*\s*(\d+)(?:\.0+)?", text.strip(), flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"Subject {text!r} is not a subject number (expected e.g. 6 or '006');"
                         f" fix that cell")
    return f"{int(match.group(1)):03d}"


def resolver(frames_root: Path) -> Resolver:
    """(subject, file name) -> (subject id '006', clip id '006/006_1_2', clip folder)."""

    def resolve(subject_text: str, name: str) -> tuple[str, str, Path]:
        subject = subject_folder_name(subject_text)
        subject_dir = find_child(frames_root, subject) or frames_root / subject
        folder = find_child(subject_dir, name) or subject_dir / name
        return subject, f"{subject}/{name}", folder

    return resolve


def clip_folders(frames_root: Path) -> list[Path]:
    """Every clip folder <subject>/<clip> below the frames root."""
    return [
        clip
        for subject in subfolders(frames_root)
        if re.fullmatch(SUBJECT_PATTERN, subject.name)
        for clip in subfolders(subject)
    ]


@register_adapter(NAME, TITLE, FPS, "SAMM: SAMM/<subject>/<clip>/ frames + SAMM FACS codes xlsx")
def load(root: Path, *, namespace: str) -> Dataset:
    """Read SAMM at `root` (the folder holding SAMM/ and the xlsx, or SAMM/ itself)."""
    root = Path(root)
    collector = ClipCollector(namespace, NAME, FPS)
    frames_root = frames_root_of(root, collector)
    extra = [root.parent] if frames_root == root else []
    annotation = find_annotation(root, KNOWN_NAMES, REQUIRED, TITLE, extra_folders=extra)
    table = read_annotation(annotation, REQUIRED, TITLE, optional_columns=OPTIONAL)
    collector.file = str(annotation)
    add_annotated_clips(
        collector, table, resolver(frames_root),
        subject="Subject", name="Filename", bounds=("Onset Frame", "Apex Frame", "Offset Frame"),
        emotion="Estimated Emotion", action_units="Action Units",
    )
    collector.report_unmentioned(clip_folders(frames_root))
    return collector.dataset(root, annotation)
