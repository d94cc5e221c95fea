"""MMEW (2021): 36 subjects, 300 micro-expressions at 90 fps.

Frames: `Micro_Expression/<emotion>/<Filename>/<n>.jpg`. Annotation: `MMEW_Micro_Exp.xlsx`
with Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated Emotion,
remarks. Releases call the "others" folder `others` or `repression`, so a clip folder is
looked up under every emotion folder.
"""

from __future__ import annotations

from pathlib import Path

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.annotations import column_key, find_annotation, read_annotation
from microexpr.data.clip_rows import ClipCollector, Resolver, add_annotated_clips
from microexpr.data.clips import Dataset
from microexpr.data.frames import find_folders, subfolders
from microexpr.data.problems import WARNING
from microexpr.errors import DatasetError

NAME = "mmew"
TITLE = "MMEW"
FPS = 90.0
KNOWN_NAMES = ("MMEW_Micro_Exp.xlsx",)
REQUIRED = (
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    ("Estimated Emotion", "Emotion"),
)
OPTIONAL = (("Action Units", "AU", "AUs"), ("remarks", "remark", "notes"))
FRAMES_FOLDER_KEYS = frozenset({"microexpression", "microexpressions"})
EMOTION_FOLDERS = frozenset(
    {"happiness", "surprise", "disgust", "fear", "sadness", "anger", "others", "repression"}
)


def is_frames_root(folder: Path) -> bool:
    """True for Micro_Expression (by name), or a folder holding the emotion folders."""
    if column_key(folder.name) in FRAMES_FOLDER_KEYS:
        return True
    return any(child.name.lower() in EMOTION_FOLDERS for child in subfolders(folder))


def frames_root_of(root: Path, collector: ClipCollector) -> Path:
    """The Micro_Expression folder: `root` itself or the shallowest match below it."""
    named = find_folders(root, lambda f: column_key(f.name) in FRAMES_FOLDER_KEYS, max_depth=3)
    found = named or find_folders(root, is_frames_root, max_depth=3)
    if not found:
        raise DatasetError(
            f"no MMEW frames found in {root}: expected a folder Micro_Expression holding "
            f"<emotion>/<Filename>/<n>.jpg, at most 3 levels below it"
        )
    if len(found) > 1:
        rest = ", ".join(str(f) for f in found[1:])
        collector.problem(WARNING, f"several MMEW frames folders found; using {found[0]}, not "
                                   f"{rest}", file="")
    return found[0]


def clip_index(frames_root: Path) -> dict[str, list[Path]]:
    """Clip folder name (lower case) -> the folders of that name under any emotion folder."""
    index: dict[str, list[Path]] = {}
    for emotion_dir in subfolders(frames_root):
        for clip_dir in subfolders(emotion_dir):
            index.setdefault(clip_dir.name.lower(), []).append(clip_dir)
    return index


def resolver(frames_root: Path, index: dict[str, list[Path]]) -> Resolver:
    """(subject, file name) -> (subject, clip id 'subject/file name', clip folder)."""
    emotions = ", ".join(f.name for f in subfolders(frames_root)) or "none"

    def resolve(subject: str, name: str) -> tuple[str, str, Path]:
        folders = index.get(name.lower(), [])
        if not folders:
            raise ValueError(f"clip folder {name!r} not found under any emotion folder of "
                             f"{frames_root} ({emotions}); check that its frames were unpacked")
        if len(folders) > 1:
            listing = ", ".join(str(f) for f in folders)
            raise ValueError(f"clip folder {name!r} exists under several emotion folders "
                             f"({listing}); keep only the right one")
        return subject, f"{subject}/{name}", folders[0]

    return resolve


@register_adapter(
    NAME, TITLE, FPS, "MMEW: Micro_Expression/<emotion>/<clip>/<n>.jpg + MMEW_Micro_Exp.xlsx"
)
def load(root: Path, *, namespace: str) -> Dataset:
    """Read the micro-expressions of MMEW at `root`."""
    root = Path(root)
    collector = ClipCollector(namespace, NAME, FPS)
    frames_root = frames_root_of(root, collector)
    extra = [root.parent] if frames_root == root else []
    annotation = find_annotation(root, KNOWN_NAMES, REQUIRED, TITLE, extra_folders=extra)
    table = read_annotation(annotation, REQUIRED, TITLE, optional_columns=OPTIONAL)
    collector.file = str(annotation)
    index = clip_index(frames_root)
    add_annotated_clips(
        collector, table, resolver(frames_root, index),
        subject="Subject", name="Filename", bounds=("OnsetFrame", "ApexFrame", "OffsetFrame"),
        emotion="Estimated Emotion", action_units="Action Units", remarks="remarks",
    )
    collector.report_unmentioned(f for folders in index.values() for f in folders)
    return collector.dataset(root, annotation)
