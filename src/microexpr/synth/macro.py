"""Synthetic macro-expression images: large-amplitude versions of the synthetic expressions.

Pretraining data for the macro -> micro transfer path (see `microexpr.training.transfer`)::

    from microexpr.synth.macro import write_macro_images
    folder = write_macro_images("data/macro")       # data/macro/<emotion>/<subject>_<clip>.png

The synthetic generator (`microexpr.synthesize`) is run into a temporary folder at a large
`amplitude` (pixels of peak motion at 128 px; micro-expressions use about 2), the apex frame
of every clip is taken, and the frames are written per emotion into a `class/image.png` tree
that `microexpr.data.image_folder.read_image_folder` reads. Use a `seed` different from the
micro-expression database's so that pretraining sees other (synthetic) people.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from microexpr.data.adapters import load_dataset
from microexpr.errors import ConfigError
from microexpr.representations import compute_representation
from microexpr.synth.generator import synthesize

MACRO_EMOTIONS = ("disgust", "happiness", "surprise")
MAX_CLIPS_PER_CLASS = 50  # the generator's limit per subject and class


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
