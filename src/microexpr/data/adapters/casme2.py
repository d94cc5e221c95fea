"""CASME II (Chinese Academy of Sciences, 2014): 26 subjects, 255 clips at 200 fps.

Frames: `CASME2_RAW_selected/sub01/EP02_01f/img46.jpg` (raw) or `Cropped/sub01/EP02_01f/
reg_img46.jpg` (cropped); the root may also be the frames folder itself. Annotation:
`CASME2-coding-*.xlsx` with Subject, Filename, OnsetFrame, ApexFrame ('/' when missing),
OffsetFrame, Action Units, Estimated Emotion.
"""

from __future__ import annotations

import re
from pathlib import Path

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.annotations import ColumnSpec, find_annotation, read_annotation
from microexpr.data.clip_rows import ClipCollector, Resolver, add_annotated_clips
from microexpr.data.clips import Dataset
from microexpr.data.frames import (
    find_child,
    find_folders,
    has_subfolders_like,
    list_frames,
    subfolders,
)
from microexpr.data.problems import WARNING
from microexpr.errors import ConfigError, DatasetError

NAME = "casme2"
TITLE = "CASME II"
FPS = 200.0
KNOWN_NAMES = (
    "CASME2-coding-20190701.xlsx",
    "CASME2-coding-20140508.xlsx",
    "CASME2-coding-updated.xlsx",
)
REQUIRED = (
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    ("Estimated Emotion", "Emotion"),
)
OPTIONAL = (("Action Units", "AU", "AUs"),)
SUBJECT_PATTERN = r"sub\d+"
VARIANTS = ("cropped", "raw")


def is_frames_root(folder: Path) -> bool:
    """True for a folder holding subject folders sub01, sub02, ..."""
    return has_subfolders_like(folder, SUBJECT_PATTERN)


def variant_of(folder: Path) -> str:
    """'cropped' for a cropped frames folder (by its name or `reg_` frame files), else 'raw'."""
    if "crop" in folder.name.lower():
        return "cropped"
    for subject in subfolders(folder)[:1]:
        for clip in subfolders(subject)[:1]:
            frames = list_frames(clip)
            if frames and frames[0][1].name.lower().startswith("reg_"):
                return "cropped"
    return "raw"


def choose_frames_root(
    root: Path, variant: str | None, title: str, collector: ClipCollector
) -> Path:
    """The frames folder (subNN folders inside) to read, preferring cropped over raw frames.

    Several candidates are reported as a database-level warning saying which one is used.
    """
    if variant is not None and variant not in VARIANTS:
        raise ConfigError(f"variant must be one of {', '.join(VARIANTS)} or None, not "
                          f"{variant!r}")
    found = find_folders(root, is_frames_root, max_depth=3)
    if not found:
        raise DatasetError(
            f"no {title} frames found in {root}: expected a folder with subject folders sub01, "
            f"sub02, ... (such as CASME2_RAW_selected, CASME_raw_selected or Cropped) at most "
            f"3 levels below it"
        )
    kinds = {folder: variant_of(folder) for folder in found}
    wanted = variant or ("cropped" if "cropped" in kinds.values() else "raw")
    chosen = [folder for folder in found if kinds[folder] == wanted]
    if not chosen:
        listing = ", ".join(f"{folder} ({kind})" for folder, kind in kinds.items())
        raise DatasetError(f"no {wanted} {title} frames in {root}; found only: {listing}")
    others = [folder for folder in found if folder != chosen[0]]
    if others:
        listing = ", ".join(f"{folder} ({kinds[folder]})" for folder in others)
        hint = " Pass variant='raw' to use raw frames." if wanted == "cropped" else ""
        collector.problem(WARNING, f"several frames folders found; using {chosen[0]} "
                                   f"({wanted}), not {listing}.{hint}", file="")
    return chosen[0]


def subject_folder_name(text: str, width: int = 2) -> str:
    """'sub01' from 1, '01', '1.0', 'sub1' or 'sub01'; ValueError for anything else."""
    match = re.fullmatch(r"(?:sub)?\s*(\d+)(?:\.0+)?", text.strip(), flags=re.IGNORECASE)
    if match is None:
        raise ValueError(f"Subject {text!r} is not a subject number (expected e.g. 1, '01' or "
                         f"'sub01'); fix that cell")
    return f"sub{int(match.group(1)):0{width}d}"


def clip_folders(frames_root: Path) -> list[Path]:
    """Every clip folder subNN/<clip> under a frames root."""
    return [
        clip
        for subject in subfolders(frames_root)
        if re.fullmatch(SUBJECT_PATTERN, subject.name, flags=re.IGNORECASE)
        for clip in subfolders(subject)
    ]


def resolver(frames_root: Path, width: int = 2) -> Resolver:
    """A function (subject, file name) -> (subject id, clip id, folder) for subNN/<clip> trees."""

    def resolve(subject_text: str, name: str) -> tuple[str, str, Path]:
        subject = subject_folder_name(subject_text, width)
        subject_dir = find_child(frames_root, subject) or frames_root / subject
        folder = find_child(subject_dir, name) or subject_dir / name
        return subject, f"{subject}/{name}", folder

    return resolve


def annotation_search(
    root: Path, frames_root: Path, known: tuple[str, ...], required: tuple[ColumnSpec, ...],
    title: str,
) -> Path:
    """The annotation file below `root`, also looking beside a frames folder given as root."""
    extra = [root.parent] if frames_root == root else []
    return find_annotation(root, known, required, title, extra_folders=extra)


@register_adapter(
    NAME, TITLE, FPS,
    "CASME II: raw (CASME2_RAW_selected) or cropped (Cropped) frames + CASME2-coding xlsx",
)
def load(root: Path, *, namespace: str, variant: str | None = None) -> Dataset:
    """Read CASME II at `root`; `variant` 'cropped' or 'raw' picks the frames (default:
    cropped when present)."""
    root = Path(root)
    collector = ClipCollector(namespace, NAME, FPS)
    frames_root = choose_frames_root(root, variant, TITLE, collector)
    annotation = annotation_search(root, frames_root, KNOWN_NAMES, REQUIRED, TITLE)
    table = read_annotation(annotation, REQUIRED, TITLE, optional_columns=OPTIONAL)
    collector.file = str(annotation)
    add_annotated_clips(
        collector, table, resolver(frames_root),
        subject="Subject", name="Filename", bounds=("OnsetFrame", "ApexFrame", "OffsetFrame"),
        emotion="Estimated Emotion", action_units="Action Units",
    )
    collector.report_unmentioned(clip_folders(frames_root))
    return collector.dataset(root, annotation)
