"""Synthetic macro-expression data: large-amplitude versions of the synthetic expressions.

Pretraining data for the macro -> micro transfer path (see `microexpr.training.transfer`)::

    from microexpr.synth.macro import write_ckplus, write_macro_images
    folder = write_macro_images("data/macro")       # data/macro/<emotion>/<subject>_<clip>.png
    root = write_ckplus("data/ckplus")              # the CK+ layout, for `evaluate --macro`

The synthetic generator (`microexpr.synthesize`) is run into a temporary folder at a large
`amplitude` (pixels of peak motion at 128 px; micro-expressions use about 2). For images, the
apex frame of every clip is taken and written per emotion into a `class/image.png` tree that
`microexpr.data.image_folder.read_image_folder` reads. For clips, each clip's frames from its
onset to its apex become a CK+ sequence (neutral -> peak) with CK+'s label files, which the
`ckplus` adapter reads. Use a `seed` different from the micro-expression database's so that
pretraining sees other (synthetic) people.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from microexpr.data.adapters import load_dataset
from microexpr.data.frames import list_frames
from microexpr.errors import ConfigError
from microexpr.representations import compute_representation
from microexpr.synth.generator import SUPPORTED_EMOTIONS, synthesize

MACRO_EMOTIONS = ("disgust", "happiness", "surprise")
MAX_CLIPS_PER_CLASS = 50  # the generator's limit per subject and class
MAX_SUBJECTS = 99  # the generator's limit

# CK+ emotion codes (Emotion/*_emotion.txt) of the emotions the generator can express.
CKPLUS_CODES = {"anger": 1, "contempt": 2, "disgust": 3, "fear": 4, "happiness": 5,
                "sadness": 6, "surprise": 7}
CKPLUS_SUBJECT_BASE = 500  # synthetic CK+ subjects are S501, S502, ...
MIN_SEQUENCE_FRAMES = 16  # mimanet's frame clips hold 16 frames of onset..offset
# The generator's frame rate for CK+ sequences: at 120 fps its clips have at least 7 frames from
# onset to apex and 9 neutral ones before the onset, so every sequence reaches 16 frames.
CKPLUS_GENERATOR_FPS = 120


def write_macro_images(
    out_dir: str | os.PathLike[str],
    *,
    subjects: int = 8,
    images_per_class: int = 64,
    size: int = 96,
    seed: int = 1000,
    emotions: tuple[str, ...] = MACRO_EMOTIONS,
    amplitude: float = 8.0,
    neutral: bool = False,
    color: bool = False,
) -> Path:
    """Write `images_per_class` apex images per emotion (drawn evenly from `subjects` synthetic
    people) as `<out_dir>/<emotion>/<subject>_<clip>.png`; return `out_dir`.

    `neutral=True` adds a "neutral" class made of the onset frames of the same clips.
    Images are `size` x `size`, gray unless `color`. Existing class folders of `out_dir` named
    like the written classes are replaced; other files and folders are left alone, so write
    into a new folder (a leftover class folder would be read as one more class).
    """
    emotions = tuple(emotions)
    if subjects < 1:
        raise ConfigError(f"subjects must be >= 1, got {subjects}")
    if images_per_class < 1:
        raise ConfigError(f"images_per_class must be >= 1, got {images_per_class}")
    if neutral and "neutral" in emotions:
        raise ConfigError("'neutral' is both an emotion and the neutral=True class")
    clips_per_class = math.ceil(images_per_class / subjects)
    if clips_per_class > MAX_CLIPS_PER_CLASS:
        raise ConfigError(f"{images_per_class} images per class from {subjects} subjects needs "
                          f"{clips_per_class} clips per subject and class (at most "
                          f"{MAX_CLIPS_PER_CLASS}); use more subjects")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".macro-", dir=out))
    try:
        root = synthesize(work / "synthetic", subjects=subjects, clips_per_class=clips_per_class,
                          seed=seed, size=max(size, 64), amplitude=amplitude, emotions=emotions)
        clips = load_dataset("casme2", root).clips
        clips = clips.sort_values(["emotion", "clip"], kind="stable").reset_index(drop=True)
        # an even draw over subjects: the first k clips of each subject, then the next, ...
        clips["rank"] = clips.groupby(["emotion", "subject"]).cumcount()
        clips = clips.sort_values(["emotion", "rank", "subject"], kind="stable")
        clips = clips.groupby("emotion").head(images_per_class).reset_index(drop=True)
        config = {"size": size, "color": color, "apex": "annotated"}
        apex = compute_representation(clips, "apex_frame", config, cache_dir=None,
                                      progress=False)
        staged = work / "images"
        for i, clip in enumerate(clips.itertuples(index=False)):
            _write(staged / str(clip.emotion) / _name(clip.clip), apex[i])
        if neutral:  # onset frames, drawn evenly over subjects and emotions
            still = clips.sort_values(["rank", "subject", "emotion"], kind="stable")
            still = still.head(images_per_class).assign(apex=lambda t: t["onset"])
            onsets = compute_representation(still, "apex_frame", config, cache_dir=None,
                                            progress=False)
            for i, clip in enumerate(still.itertuples(index=False)):
                _write(staged / "neutral" / _name(clip.clip), onsets[i])
        for folder in sorted(staged.iterdir()):
            target = out / folder.name
            if target.exists():
                shutil.rmtree(target)
            os.replace(folder, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _name(clip: str) -> str:
    return str(clip).replace("/", "_") + ".png"  # sub01/EP02_01 -> sub01_EP02_01.png


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), pixels[..., 0] if pixels.shape[-1] == 1 else pixels):
        raise OSError(f"cannot write {path}")


def write_ckplus(
    out_dir: str | os.PathLike[str],
    *,
    subjects: int = 6,
    sequences_per_class: int = 4,
    size: int = 96,
    seed: int = 1000,
    emotions: tuple[str, ...] = MACRO_EMOTIONS,
    amplitude: float = 8.0,
    unlabelled: int | None = None,
) -> Path:
    """Write a synthetic macro-expression database in the CK+ layout; return `out_dir`.

    `subjects` synthetic people (S501, S502, ...) each pose `sequences_per_class` sequences of
    every emotion, written as `cohn-kanade-images/S501/001/S501_001_00000001.png ...` (gray
    `size` x `size` faces, numbered from 1): the clip's frames from its onset to its apex (the
    peak, the last frame), preceded by neutral frames when that is shorter than 16 frames.
    Labels are `Emotion/S501/001/S501_001_<last frame>_emotion.txt` holding the CK+ code in
    CK+'s float format (`   3.0000000e+00`), and `FACS/.../*_facs.txt` holds the action units.
    As in the real CK+, `unlabelled` sequences (spread over the subjects; default 3, fewer
    when the database is that small) get no emotion file.
    `cohn-kanade-images`, `Emotion` and `FACS` folders already in `out_dir` are replaced; other
    files are left alone.
    """
    emotions = tuple(e.strip().lower() for e in emotions)
    unknown = [e for e in emotions if e not in CKPLUS_CODES or e not in SUPPORTED_EMOTIONS]
    if not emotions or unknown:
        usable = ", ".join(e for e in SUPPORTED_EMOTIONS if e in CKPLUS_CODES)
        raise ConfigError(f"write_ckplus cannot write emotion(s) {unknown or '(none)'}: choose "
                          f"among {usable} (CK+ emotions the generator can express)")
    for name, value, hi in (("subjects", subjects, MAX_SUBJECTS),
                            ("sequences_per_class", sequences_per_class, MAX_CLIPS_PER_CLASS)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise ConfigError(f"{name} must be an integer in 1..{hi}, got {value!r}")
    total = subjects * sequences_per_class * len(emotions)
    if unlabelled is None:
        unlabelled = min(3, total - 1)
    if isinstance(unlabelled, bool) or not isinstance(unlabelled, int) or not (
            0 <= unlabelled < total):
        raise ConfigError(f"unlabelled must be an integer in 0..{total - 1} (the database has "
                          f"{total} sequences and needs some labelled), got {unlabelled!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".ckplus-", dir=out))
    try:
        root = synthesize(work / "synthetic", subjects=subjects,
                          clips_per_class=sequences_per_class, seed=seed, size=size,
                          amplitude=amplitude, emotions=emotions, fps=CKPLUS_GENERATOR_FPS)
        clips = load_dataset("casme2", root).clips.sort_values(["subject", "clip"])
        staged = work / "ckplus"
        sequences = [
            (f"S{CKPLUS_SUBJECT_BASE + number:03d}", f"{index:03d}", clip)
            for number, (_, group) in enumerate(clips.groupby("subject", sort=True), start=1)
            for index, clip in enumerate(group.itertuples(index=False), start=1)
        ]
        skip = _unlabelled_sequences(sequences, unlabelled)
        for subject, sequence, clip in sequences:
            _write_sequence(staged, subject, sequence, clip,
                            labelled=(subject, sequence) not in skip)
        for name in ("cohn-kanade-images", "Emotion", "FACS"):
            target = out / name
            if target.exists():
                shutil.rmtree(target)
            os.replace(staged / name, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _unlabelled_sequences(sequences: list[tuple[str, str, Any]], count: int
                          ) -> set[tuple[str, str]]:
    """`count` (subject, sequence) pairs to leave unlabelled: the last sequence of each subject
    in turn, then the one before it, ..."""
    by_subject: dict[str, list[str]] = {}
    for subject, sequence, _ in sequences:
        by_subject.setdefault(subject, []).append(sequence)
    order = [(subject, names[-1 - k]) for k in range(max(map(len, by_subject.values())))
             for subject, names in by_subject.items() if k < len(names)]
    return set(order[:count])


def _write_sequence(staged: Path, subject: str, sequence: str, clip: Any, *,
                    labelled: bool) -> None:
    """One CK+ sequence (frames, FACS file and, when `labelled`, emotion file) of a clips-table
    row: its frames from the onset (or earlier, to reach 16) to the apex."""
    start = min(int(clip.onset), int(clip.apex) - MIN_SEQUENCE_FRAMES + 1)
    frames = [path for n, path in list_frames(Path(clip.frames[0]).parent)
              if start <= n <= clip.apex]
    if len(frames) < MIN_SEQUENCE_FRAMES:  # pragma: no cover - CKPLUS_GENERATOR_FPS prevents it
        raise RuntimeError(f"synthetic clip {clip.clip} has only {len(frames)} frames up to its "
                           f"apex; CK+ sequences need {MIN_SEQUENCE_FRAMES}")
    stem = f"{subject}_{sequence}"
    folder = staged / "cohn-kanade-images" / subject / sequence
    folder.mkdir(parents=True)
    for number, path in enumerate(frames, start=1):
        pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if pixels is None or not cv2.imwrite(str(folder / f"{stem}_{number:08d}.png"), pixels):
            raise OSError(f"cannot convert synthetic frame {path} to {folder}")
    last = f"{stem}_{len(frames):08d}"
    units = [int(u) for u in re.findall(r"\d+", str(clip.action_units))]
    _write_text(staged / "FACS" / subject / sequence / f"{last}_facs.txt",
                "".join(f"{float(u):16.7e}{0.0:16.7e}\n" for u in units))
    if labelled:
        code = CKPLUS_CODES[str(clip.emotion)]
        _write_text(staged / "Emotion" / subject / sequence / f"{last}_emotion.txt",
                    f"{float(code):16.7e}\n")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
