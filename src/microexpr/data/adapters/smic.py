"""SMIC (University of Oulu): HS subset, 16 subjects, 164 clips at 100 fps.

Frames: `HS/s1/micro/negative/s1_ne_01/image012345.bmp` (also below `SMIC_all_cropped/` or
`SMIC/`, or the root is the HS folder). The emotion is the folder name. There is no apex
annotation: each clip runs from its first to its last frame and the apex is the middle frame.
"""

from __future__ import annotations

import re
from pathlib import Path

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.clip_rows import ClipCollector
from microexpr.data.clips import Dataset
from microexpr.data.frames import (
    find_child,
    find_folders,
    has_subfolders_like,
    list_frames,
    subfolders,
)
from microexpr.data.problems import ERROR, WARNING
from microexpr.errors import ConfigError, DatasetError

NAME = "smic"
TITLE = "SMIC"
FPS_BY_SUBSET = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
EMOTIONS = ("negative", "positive", "surprise")
SUBJECT_PATTERN = r"s\d+"


def _subject_number(folder: Path) -> int:
    """12 for s12 (subject folders sort numerically: s2 before s10)."""
    digits = re.sub(r"\D", "", folder.name)
    return int(digits) if digits else 0


def subject_folders(subset_root: Path) -> list[Path]:
    """The s<N> folders of a subset folder, in subject-number order."""
    found = [
        f for f in subfolders(subset_root)
        if re.fullmatch(SUBJECT_PATTERN, f.name, flags=re.IGNORECASE)
    ]
    return sorted(found, key=_subject_number)


def is_subset_root(folder: Path, subset: str) -> bool:
    """True for the subset folder (HS): named so, or holding s<N>/micro folders."""
    if not has_subfolders_like(folder, SUBJECT_PATTERN):
        return False
    if folder.name.lower() == subset.lower():
        return True
    return any(find_child(s, "micro") is not None for s in subject_folders(folder))


def subset_root_of(root: Path, subset: str, collector: ClipCollector) -> Path:
    """The subset folder below `root`, preferring a cropped release when there are several."""
    found = find_folders(root, lambda f: is_subset_root(f, subset), max_depth=3)
    if not found:
        raise DatasetError(
            f"no SMIC {subset} frames found in {root}: expected a folder {subset} holding "
            f"s1/micro/negative/s1_ne_01/image*.bmp (e.g. SMIC_all_cropped/{subset}), at most "
            f"3 levels below it"
        )
    found.sort(key=lambda f: "crop" not in str(f).lower())
    if len(found) > 1:
        rest = ", ".join(str(f) for f in found[1:])
        collector.problem(WARNING, f"several SMIC {subset} folders found; using {found[0]}, "
                                   f"not {rest}")
    return found[0]


def _add_clip(collector: ClipCollector, subject: str, emotion: str, folder: Path) -> None:
    """One clip from its folder: onset = first frame, offset = last, apex estimated."""
    clip = f"{subject}/{folder.name}"
    frames = list_frames(folder)
    collector.mention(folder)
    if not frames:
        collector.problem(ERROR, f"no image frames in {folder}", clip=clip, file=str(folder))
        return
    collector.add(
        clip=clip, subject=subject, folder=folder, frames=frames,
        onset=frames[0][0], apex=None, offset=frames[-1][0], emotion=emotion,
        file=str(folder), columns=("first frame", "apex", "last frame"),
        report_estimated_apex=False,
    )


def _add_subject(collector: ClipCollector, subject_dir: Path, unknown: set[str]) -> None:
    """Every clip of one subject folder: s<N>/micro/<emotion>/<clip>/."""
    micro = find_child(subject_dir, "micro")
    if micro is None:
        collector.problem(WARNING, f"subject folder {subject_dir} has no 'micro' folder; no "
                                   f"clips from it")
        return
    for emotion_dir in subfolders(micro):
        emotion = emotion_dir.name.lower()
        if emotion not in EMOTIONS:
            unknown.add(emotion)
        clips = subfolders(emotion_dir)
        if not clips:
            collector.problem(WARNING, f"emotion folder {emotion_dir} holds no clip folders")
        for clip_dir in clips:
            _add_clip(collector, subject_dir.name, emotion, clip_dir)


@register_adapter(
    NAME, TITLE, FPS_BY_SUBSET["HS"],
    "SMIC: HS/s<N>/micro/<emotion>/<clip>/ frames; emotion from the folder, apex = middle frame",
)
def load(root: Path, *, namespace: str, subset: str = "HS") -> Dataset:
    """Read SMIC (default the HS subset; `subset` 'VIS' or 'NIR' for the 25 fps cameras)."""
    root = Path(root)
    key = subset.upper()
    if key not in FPS_BY_SUBSET:
        raise ConfigError(f"SMIC subset must be one of {', '.join(FPS_BY_SUBSET)}, not "
                          f"{subset!r}")
    collector = ClipCollector(namespace, NAME, FPS_BY_SUBSET[key])
    subset_root = subset_root_of(root, key, collector)
    unknown: set[str] = set()
    for subject_dir in subject_folders(subset_root):
        _add_subject(collector, subject_dir, unknown)
    if unknown:
        collector.problem(WARNING, f"emotion folders {sorted(unknown)} are not one of "
                                   f"{', '.join(EMOTIONS)}; their clips keep that emotion")
    if collector.rows:
        collector.problem(WARNING, f"SMIC has no apex annotation: the apex of each of the "
                                   f"{len(collector.rows)} clips is estimated as its middle "
                                   f"frame (apex_estimated is True)")
    return collector.dataset(root, "")
