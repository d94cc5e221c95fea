"""4DME (2022): micro-expressions at 60 fps, registered under the name "4dme".

Frames: `gray_micro/<sub_ID>/<fold_name>/`. Annotation: `4DME_Labelling_Micro_release v1.xlsx`
with sub_ID, fold_name, Onset, Apex, Offset, AUs, Emotion.
"""

from __future__ import annotations

from pathlib import Path

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.annotations import column_key, find_annotation, read_annotation
from microexpr.data.clip_rows import ClipCollector, Resolver, add_annotated_clips
from microexpr.data.clips import Dataset
from microexpr.data.frames import find_child, find_folders, subfolders
from microexpr.data.problems import WARNING
from microexpr.errors import DatasetError

NAME = "4dme"
TITLE = "4DME"
FPS = 60.0
KNOWN_NAMES = (
    "4DME_Labelling_Micro_release v1.xlsx",
    "4DME_Labelling_Micro_releasev1.xlsx",
    "4DME_Labelling_Micro_release_v1.xlsx",
    "4DME_Labelling_Micro_release.xlsx",
)
REQUIRED = (
    ("sub_ID", "Subject"),
    ("fold_name", "Filename"),
    "Onset",
    "Apex",
    "Offset",
    ("Emotion", "Estimated Emotion"),
)
OPTIONAL = (("AUs", "AU", "Action Units"),)
FRAMES_FOLDER_KEY = "graymicro"


def frames_root_of(root: Path, collector: ClipCollector) -> Path:
    """The gray_micro folder: `root` itself or the shallowest one below it."""
    found = find_folders(root, lambda f: column_key(f.name) == FRAMES_FOLDER_KEY, max_depth=3)
    if not found:
        raise DatasetError(
            f"no 4DME frames found in {root}: expected a folder gray_micro holding "
            f"<sub_ID>/<fold_name>/ frame folders, at most 3 levels below it"
        )
    if len(found) > 1:
        rest = ", ".join(str(f) for f in found[1:])
        collector.problem(WARNING, f"several gray_micro folders found; using {found[0]}, not "
                                   f"{rest}", file="")
    return found[0]


def resolver(frames_root: Path) -> Resolver:
    """(sub_ID, fold_name) -> (subject folder name, 'subject/fold_name', clip folder)."""

    def resolve(subject_text: str, name: str) -> tuple[str, str, Path]:
        subject_dir = find_child(frames_root, subject_text) or frames_root / subject_text
        folder = find_child(subject_dir, name) or subject_dir / name
        return subject_dir.name, f"{subject_dir.name}/{name}", folder

    return resolve


@register_adapter(
    NAME, TITLE, FPS, "4DME: gray_micro/<sub_ID>/<fold_name>/ frames + 4DME_Labelling_Micro xlsx"
)
def load(root: Path, *, namespace: str) -> Dataset:
    """Read the micro-expressions of 4DME at `root` (grey-level 2D frames)."""
    root = Path(root)
    collector = ClipCollector(namespace, NAME, FPS)
    frames_root = frames_root_of(root, collector)
    extra = [root.parent] if frames_root == root else []
    annotation = find_annotation(root, KNOWN_NAMES, REQUIRED, TITLE, extra_folders=extra)
    table = read_annotation(annotation, REQUIRED, TITLE, optional_columns=OPTIONAL)
    collector.file = str(annotation)
    add_annotated_clips(
        collector, table, resolver(frames_root),
        subject="sub_ID", name="fold_name", bounds=("Onset", "Apex", "Offset"),
        emotion="Emotion", action_units="AUs",
    )
    folders = [clip for subject in subfolders(frames_root) for clip in subfolders(subject)]
    collector.report_unmentioned(folders)
    return collector.dataset(root, annotation)
