"""CK+ (the Extended Cohn-Kanade database, Lucey et al. 2010): 123 subjects, 593 posed
sequences at 30 fps, 327 of them with an emotion label. Macro-expressions.

Frames: `cohn-kanade-images/S005/001/S005_001_00000001.png ...`; each sequence runs from a
neutral face (its first frame) to the peak of the expression (its last frame). The root may
hold `cohn-kanade-images` (`CK+/cohn-kanade-images`,
`extended-cohn-kanade-images/cohn-kanade-images`, at most 3 levels down) or be that folder.
Frame numbers are the last digits of the file name, whatever their zero padding.

Labels: `Emotion/S005/001/S005_001_00000011_emotion.txt` holding one number in CK+'s float
format (`   3.0000000e+00`): 0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy,
6 sadness, 7 surprise. The `Emotion` folder is found below the root, or beside
`cohn-kanade-images` when that folder is the root. A sequence without an emotion file (266 of
the 593 in the release) is unlabelled: it is reported as an info problem naming it and is not a
clip. `FACS/S005/001/*_facs.txt` (one `AU intensity` pair a line), when present, fills the
action-units column (`1+2+5`); `Landmarks/` is not read.

A clip: subject `S005` (namespaced: `ckplus/S005`), clip id `S005/001`, onset = first frame,
apex = offset = last frame, the emotion's CK+ name (`happy`, `sadness`, ...).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from microexpr.data.adapters._registry import register_adapter
from microexpr.data.adapters.clip_folder import clip_frames
from microexpr.data.clip_rows import ClipCollector
from microexpr.data.clips import Dataset
from microexpr.data.frames import find_child, find_folders, has_subfolders_like, subfolders
from microexpr.data.problems import ERROR, INFO, WARNING
from microexpr.errors import DatasetError

NAME = "ckplus"
TITLE = "CK+"
FPS = 30.0
IMAGES_FOLDER = "cohn-kanade-images"
EMOTION_FOLDER = "emotion"
FACS_FOLDER = "facs"
LABEL_FOLDERS = frozenset({EMOTION_FOLDER, FACS_FOLDER, "landmarks"})
# CK+ emotion codes 0..7, in order.
EMOTIONS = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
SUBJECT_PATTERN = r"S\d+"
_CODES = ", ".join(f"{code} {name}" for code, name in enumerate(EMOTIONS))


def _named(name: str) -> Callable[[Path], bool]:
    """A test for folders called `name` (ignoring case)."""
    return lambda folder: folder.name.lower() == name


def _is_images_root(folder: Path) -> bool:
    """A folder named cohn-kanade-images, or one holding S<digits> subject folders that is not
    one of the label folders (Emotion, FACS and Landmarks hold subject folders too)."""
    if folder.name.lower() == IMAGES_FOLDER:
        return True
    return (folder.name.lower() not in LABEL_FOLDERS
            and has_subfolders_like(folder, SUBJECT_PATTERN))


def images_root_of(root: Path, collector: ClipCollector) -> Path:
    """The cohn-kanade-images folder: `root`, or the shallowest one below it (by name first)."""
    found = ([root] if root.name.lower() == IMAGES_FOLDER else
             find_folders(root, _named(IMAGES_FOLDER), max_depth=3)
             or find_folders(root, _is_images_root, max_depth=3))
    if not found:
        raise DatasetError(
            f"no CK+ images found in {root}: expected a folder {IMAGES_FOLDER} holding "
            f"S005/001/S005_001_00000001.png ... (from extended-cohn-kanade-images.zip), at "
            f"most 3 levels below it"
        )
    if len(found) > 1:
        rest = ", ".join(str(f) for f in found[1:])
        collector.problem(WARNING, f"several CK+ image folders found; using {found[0]}, not "
                                   f"{rest}")
    return found[0]


def label_root_of(root: Path, images_root: Path, name: str) -> Path | None:
    """The `Emotion` (or `FACS`) folder: below `root`, else beside the images folder given as
    root (`<parent>/Emotion` or `<parent>/Emotion_labels/Emotion`); None when there is none."""
    found = [f for f in find_folders(root, _named(name), max_depth=3)
             if not f.is_relative_to(images_root)]
    if found:
        return found[0]
    if images_root != root:
        return None
    parent = root.parent
    for base in [parent, *(f for f in subfolders(parent) if f.name.lower().startswith(name))]:
        child = find_child(base, name)
        if child is not None:
            return child
    return None


def _text_files(folder: Path | None) -> list[Path]:
    """The .txt files of a label folder, sorted (none when it does not exist)."""
    if folder is None or not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith(".")
                       and e.name.lower().endswith(".txt"))
    return [folder / n for n in names]


def _sequence_folder(label_root: Path | None, subject: str, sequence: str) -> Path | None:
    """`<label root>/<subject>/<sequence>` (case and zero padding tolerant), or None."""
    if label_root is None:
        return None
    subject_dir = find_child(label_root, subject)
    return None if subject_dir is None else find_child(subject_dir, sequence)


def read_emotion(path: Path) -> str:
    """The emotion name of a CK+ emotion file; ValueError naming the file and the fix."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as exc:
        raise ValueError(f"cannot read emotion label file {path}: {exc}") from None
    expected = f"one CK+ emotion code ({_CODES}), written like '   3.0000000e+00'"
    if not text:
        raise ValueError(f"emotion label file {path} is empty; it should hold {expected}")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"emotion label file {path} holds {text[:40]!r}, not a number; it "
                         f"should hold {expected}") from None
    if not (math.isfinite(value) and value.is_integer() and 0 <= value < len(EMOTIONS)):
        raise ValueError(f"emotion label file {path} holds {text!r}, which is not an emotion "
                         f"code; it should hold {expected}")
    return EMOTIONS[int(value)]


def read_facs(path: Path) -> str:
    """Action units of a CK+ FACS file (`AU intensity` per line) as '1+2+5'; ValueError when
    a line is not two numbers."""
    units = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                  .splitlines(), start=1):
        if not line.strip():
            continue
        try:
            code = float(line.split()[0])
        except ValueError:
            raise ValueError(f"line {number} of FACS file {path} ({line.strip()[:40]!r}) does "
                             f"not start with an action-unit number") from None
        if not code.is_integer() or code < 0:
            raise ValueError(f"line {number} of FACS file {path} names action unit {code}, "
                             f"which is not a whole number")
        units.append(str(int(code)))
    return "+".join(units)


def label_file(folder: Path | None, what: str) -> Path | None:
    """The label file of a sequence's label folder (None when it has none); ValueError when it
    holds several, as nothing says which one is right."""
    files = _text_files(folder)
    if len(files) > 1:
        files = [f for f in files if what in f.name.lower()] or files
    if len(files) > 1:
        listing = ", ".join(f.name for f in files)
        raise ValueError(f"{folder} holds several {what} files ({listing}); keep only the one "
                         f"of the sequence's last frame")
    return files[0] if files else None


def _action_units(collector: ClipCollector, facs_root: Path | None, subject: str,
                  sequence: str, clip: str) -> str:
    """The sequence's action units from its FACS file, '' (with a warning when the file is
    unreadable) otherwise."""
    folder = _sequence_folder(facs_root, subject, sequence)
    try:
        facs = label_file(folder, FACS_FOLDER)
        return read_facs(facs) if facs is not None else ""
    except (OSError, ValueError) as exc:
        collector.problem(WARNING, f"{exc}; the clip's action units are left empty", clip=clip,
                          file=str(folder))
        return ""


def _add_sequence(collector: ClipCollector, folder: Path, subject: str,
                  emotion_root: Path, facs_root: Path | None) -> Path | None:
    """One sequence: a clip when it has frames and an emotion label. Returns its label folder,
    so that labels without a sequence can be found afterwards."""
    clip = f"{subject}/{folder.name}"
    label_dir = _sequence_folder(emotion_root, subject, folder.name)
    frames = clip_frames(collector, folder, clip)
    try:
        label = label_file(label_dir, EMOTION_FOLDER)
    except ValueError as exc:
        collector.problem(ERROR, str(exc), clip=clip, file=str(label_dir))
        return label_dir
    if frames is None:
        if label is not None:
            collector.problem(ERROR, f"emotion label {label} belongs to sequence {folder}, "
                                     f"which has no usable frames", clip=clip, file=str(label))
        return label_dir
    if label is None:
        collector.problem(INFO, f"unlabelled: no emotion file in "
                                f"{emotion_root / subject / folder.name} (CK+ labels 327 of "
                                f"its 593 sequences); this sequence is left out", clip=clip,
                          file=str(folder))
        return label_dir
    try:
        emotion = read_emotion(label)
    except ValueError as exc:
        collector.problem(ERROR, str(exc), clip=clip, file=str(label))
        return label_dir
    collector.add(
        clip=clip, subject=subject, folder=folder, frames=frames, onset=frames[0][0],
        apex=frames[-1][0], offset=frames[-1][0], emotion=emotion,
        action_units=_action_units(collector, facs_root, subject, folder.name, clip),
        file=str(label), columns=("first frame", "last frame", "last frame"),
    )
    return label_dir


def _report_orphan_labels(collector: ClipCollector, emotion_root: Path, images_root: Path,
                          seen: set[Path]) -> None:
    """An error for each emotion label whose sequence folder is not among the images."""
    for subject_dir in subfolders(emotion_root):
        for label_dir in subfolders(subject_dir):
            files = _text_files(label_dir)
            if label_dir in seen or not files:
                continue
            clip = f"{subject_dir.name}/{label_dir.name}"
            collector.problem(ERROR, f"emotion label {files[0]} has no image sequence: "
                                     f"{images_root / subject_dir.name / label_dir.name} does "
                                     f"not exist; unpack its images or remove the label",
                              clip=clip, file=str(files[0]))


@register_adapter(
    NAME, TITLE, FPS,
    "CK+: cohn-kanade-images/S005/001/*.png sequences (neutral -> peak) + "
    "Emotion/S005/001/*_emotion.txt codes; unlabelled sequences reported, not used",
    aliases=("ck+", "ck", "cohn-kanade"),
)
def load(root: Path, *, namespace: str) -> Dataset:
    """Read CK+ at `root` (the folder holding cohn-kanade-images and Emotion, or
    cohn-kanade-images itself with Emotion beside it)."""
    root = Path(root)
    collector = ClipCollector(namespace, NAME, FPS)
    images_root = images_root_of(root, collector)
    emotion_root = label_root_of(root, images_root, EMOTION_FOLDER)
    if emotion_root is None:
        raise DatasetError(
            f"no CK+ Emotion folder found in {root} (nor beside {images_root}): expected "
            f"Emotion/S005/001/S005_001_00000011_emotion.txt (from Emotion_labels.zip of the "
            f"release); without it no sequence has a label. Unpack it next to {IMAGES_FOLDER}"
        )
    facs_root = label_root_of(root, images_root, FACS_FOLDER)
    seen: set[Path] = set()
    for subject_dir in subfolders(images_root):
        if not re.fullmatch(SUBJECT_PATTERN, subject_dir.name, flags=re.IGNORECASE):
            collector.problem(WARNING, f"{subject_dir} is not a CK+ subject folder (S<digits>);"
                                       f" ignored", file=str(subject_dir))
            continue
        sequences = subfolders(subject_dir)
        if not sequences:
            collector.problem(WARNING, f"subject folder {subject_dir} holds no sequence "
                                       f"folders", file=str(subject_dir))
        for folder in sequences:
            label_dir = _add_sequence(collector, folder, subject_dir.name, emotion_root,
                                      facs_root)
            if label_dir is not None:
                seen.add(label_dir)
    _report_orphan_labels(collector, emotion_root, images_root, seen)
    return collector.dataset(root, emotion_root)
