"""Any folder of labelled clips laid out as `<class>/<clip>/<frames>` (macro-expression data).

Layout: `<root>/happy/S010_003/0001.png ...`. Each sub-folder of the root is a class; its name
(lower case) is the clip's emotion, so a label scheme maps it like a macro database's emotion
(`happy`, `happiness`, `sad`, ... see `microexpr.data.labels`). Each folder inside a class folder
is one clip: its numbered image files in numeric order, onset = first frame, apex = offset =
last frame (a neutral -> peak sequence, as CK+ records them). `fps` is an option (default 30).

Subjects: the clip folder name's prefix before the first `_` (`S010_003` -> `S010`), or the
whole clip name when it has no `_` (each clip its own subject). Real subjects matter for
leave-one-subject-out and for subject-grouped splits, so a `subjects.csv` at the root with the
columns `clip,subject` names the subject of the clips it lists (`clip` is the clip folder name
or `class/clip`); clips it does not list keep the name-derived subject.

Problems: an empty class folder, image files lying directly in a class folder (a `class/image`
tree, which `microexpr pretrain --images` reads, not this adapter), a clip folder without
numbered frames. `clip_frames` is shared with the CK+ and MMI adapters.
"""

from __future__ import annotations

import os
from pathlib import Path

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.annotations import read_annotation, records
from microexpr.data.cells import cell_text
from microexpr.data.clip_rows import ClipCollector
from microexpr.data.clips import Dataset
from microexpr.data.frames import frame_number, is_image, list_frames, subfolders
from microexpr.data.problems import ERROR, WARNING
from microexpr.errors import ConfigError

NAME = "clip_folder"
TITLE = "clip folder"
FPS = 30.0
SUBJECTS_FILE = "subjects.csv"
SUBJECTS_COLUMNS = ("clip", "subject")


def _image_names(folder: Path) -> list[str]:
    """Names of the image files directly in `folder`, sorted (hidden files skipped)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries
                      if e.is_file() and is_image(e.name) and not e.name.startswith("."))


def _examples(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def clip_frames(
    collector: ClipCollector, folder: Path, clip: str
) -> list[tuple[int, Path]] | None:
    """The numbered frames (number, path) of a clip folder in order, or None after recording
    an error naming the folder.

    Frames are ordered by the last number in their name, so an image without a number cannot
    be placed: it is left out with a warning when the others are numbered, and the clip is
    unusable when none is. Files that are not images (`.DS_Store`, `Thumbs.db`) are ignored.
    """
    frames = list_frames(folder)
    unnumbered = [n for n in _image_names(folder) if frame_number(n) is None]
    if not frames:
        if unnumbered:
            message = (f"no numbered frames in {folder}: its {len(unnumbered)} image(s) "
                       f"({_examples(unnumbered)}) have no frame number in their name; rename "
                       f"them so that each holds its frame number (e.g. 0001.png)")
        else:
            inside = [f.name for f in subfolders(folder)]
            holds = f"; it holds the folders {_examples(inside)}" if inside else ""
            message = (f"no image frames in {folder} (expected numbered .jpg/.png/.bmp/.tif "
                       f"files){holds}")
        collector.problem(ERROR, message, clip=clip, file=str(folder))
        return None
    if unnumbered:
        collector.problem(WARNING, f"{len(unnumbered)} image(s) in {folder} have no frame "
                                   f"number in their name and are left out of the clip "
                                   f"({_examples(unnumbered)})", clip=clip, file=str(folder))
    return frames


def subject_of(clip_name: str) -> str:
    """The subject of a clip folder name: the part before the first `_`, else the name."""
    prefix = clip_name.split("_", 1)[0]
    return prefix or clip_name


def read_subjects(path: Path, collector: ClipCollector) -> dict[str, tuple[str, int | None]]:
    """`subjects.csv`: clip (folder name or class/clip, lower case) -> (subject, row)."""
    table = read_annotation(path, SUBJECTS_COLUMNS, f"{TITLE} {SUBJECTS_FILE}")
    found: dict[str, tuple[str, int | None]] = {}
    for record in records(table):
        clip, subject = cell_text(record.get("clip")), cell_text(record.get("subject"))
        row = record.get("_row")
        if not clip and not subject:
            continue
        if not clip or not subject or "/" in subject:
            collector.problem(WARNING, f"row names clip {clip!r} and subject {subject!r}: both "
                                       f"must be filled in, the subject without '/'; row "
                                       f"ignored", row=row, file=str(path))
            continue
        found[clip.strip("/").lower()] = (subject, row)
    return found


def _add_class(collector: ClipCollector, class_dir: Path,
               subjects: dict[str, tuple[str, int | None]], used: set[str]) -> None:
    """Every clip folder of one class folder."""
    emotion = class_dir.name.strip().lower()
    loose = _image_names(class_dir)
    if loose:
        collector.problem(WARNING, f"class folder {class_dir} holds {len(loose)} image file(s) "
                                   f"directly ({_examples(loose)}); they are not clips and are "
                                   f"ignored. Put each clip's frames in a folder of its own "
                                   f"({class_dir.name}/<clip>/0001.png), or use a class/image "
                                   f"tree with `microexpr pretrain --images`", file=str(class_dir))
    clips = subfolders(class_dir)
    if not clips and not loose:
        collector.problem(WARNING, f"class folder {class_dir} is empty: no clip folders in it",
                          file=str(class_dir))
    for folder in clips:
        clip = f"{class_dir.name}/{folder.name}"
        frames = clip_frames(collector, folder, clip)
        if frames is None:
            continue
        key = next((k for k in (clip.lower(), folder.name.lower()) if k in subjects), None)
        subject = subjects[key][0] if key is not None else subject_of(folder.name)
        if key is not None:
            used.add(key)
        collector.add(
            clip=clip, subject=subject, folder=folder, frames=frames, onset=frames[0][0],
            apex=frames[-1][0], offset=frames[-1][0], emotion=emotion, file=str(folder),
            columns=("first frame", "last frame", "last frame"),
        )


@register_adapter(
    NAME, TITLE, FPS,
    "any <class>/<clip>/<frames> folder: emotion = class folder, subject = clip name before "
    "'_' (or subjects.csv), onset = first frame, apex = offset = last frame",
    aliases=("clip-folder",),
)
def load(root: Path, *, namespace: str, fps: float = FPS) -> Dataset:
    """Read a `<class>/<clip>/<frames>` tree at `root`; `fps` is the clips' frame rate."""
    root = Path(root)
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 10000:
        raise ConfigError(f"fps must be a positive number of frames per second, not {fps!r}")
    collector = ClipCollector(namespace, NAME, float(fps))
    subjects_file = root / SUBJECTS_FILE
    subjects = read_subjects(subjects_file, collector) if subjects_file.is_file() else {}
    loose = _image_names(root)
    if loose:
        collector.problem(WARNING, f"{root} holds {len(loose)} image file(s) directly "
                                   f"({_examples(loose)}); expected <class>/<clip>/<frames> "
                                   f"folders, so they are ignored", file=str(root))
    used: set[str] = set()
    for class_dir in subfolders(root):
        _add_class(collector, class_dir, subjects, used)
    for key, (subject, row) in subjects.items():
        if key not in used:
            collector.problem(WARNING, f"clip {key!r} (subject {subject!r}) is not a usable "
                                       f"clip folder under {root}; row ignored", row=row,
                              file=str(subjects_file))
    return collector.dataset(root, subjects_file if subjects else "")
