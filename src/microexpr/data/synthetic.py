"""Synthetic micro-expression database written in the CASME II (cropped release) layout.

Licensed databases cannot be shipped, so the toolkit makes its own default data::

    from microexpr.data.synthetic import synthesize
    root = synthesize("data/synthetic")            # 12 subjects x 3 classes x 4 clips

writes::

    <root>/Cropped/sub01/EP07_01/reg_img31.jpg ...  frames, RGB JPEG, numbered like CASME II
    <root>/CASME2-coding-20190701.xlsx              Subject, Filename, OnsetFrame, ApexFrame,
                                                    OffsetFrame, Action Units, Estimated Emotion
    <root>/microexpr_synthetic.json                 config, generator version, per-subject
                                                    landmarks and per-clip ground truth

which the CASME II adapter reads like a real release.

How the data is made (see `microexpr.data.synth`): every subject is a seeded variation
(geometry, shape, colour, lighting, noise) of a real face photograph that ships with
scikit-image. Every clip is a neutral stretch, an expression of 150-500 ms with a
raised-cosine onset -> apex -> offset, and a neutral tail, at `fps`. The class is carried
only by a subtle local motion (peak `amplitude` px at 128 px) in the regions of the emotion's
action units; head drift, sensor noise and brightness flicker are added independently of the
class. The same config gives the same frames and annotations.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from microexpr.data.synth.aus import (
    ACTION_UNITS,
    EMOTION_AUS,
    OTHERS_POOL,
    SUPPORTED_EMOTIONS,
    au_field,
)
from microexpr.data.synth.aus import choose_aus as _choose_aus
from microexpr.data.synth.clip import draw_nuisance, draw_timeline, render_clip
from microexpr.data.synth.face import Subject, make_subject
from microexpr.errors import ConfigError

__all__ = [
    "ANNOTATION_FILE",
    "GENERATOR_VERSION",
    "METADATA_FILE",
    "SUPPORTED_EMOTIONS",
    "SynthConfig",
    "synthesize",
]

# Bump when the same config would produce different data.
GENERATOR_VERSION = "1.0"
ANNOTATION_FILE = "CASME2-coding-20190701.xlsx"
METADATA_FILE = "microexpr_synthetic.json"
FRAMES_DIR = "Cropped"
# Work folder (inside out_dir) while generating, and the marker present while swapping in.
_PARTIAL_PREFIX = ".synthesize-"
REPLACING_FILE = ".synthesize-replacing"
XLSX_COLUMNS = (
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
)
JPEG_QUALITY = 95

# Valid ranges (inclusive) of the numeric fields.
_INT_RANGES: dict[str, tuple[int, int]] = {
    "subjects": (1, 99),
    "clips_per_class": (1, 50),
    "seed": (0, 2**63 - 1),
    "size": (32, 1024),
    "fps": (25, 1000),
}
_FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "amplitude": (0.0, 8.0),
    "head_drift": (0.0, 4.0),
    "noise": (0.0, 25.0),
    "flicker": (0.0, 0.2),
}


@dataclass(frozen=True)
class SynthConfig:
    """What `synthesize` makes. Every field is validated on construction (ConfigError)."""

    subjects: int = 12
    clips_per_class: int = 4
    seed: int = 0
    size: int = 128  # output face image side, pixels
    amplitude: float = 2.0  # peak AU displacement in pixels at size 128 (scale with size)
    emotions: tuple[str, ...] = field(default=("happiness", "disgust", "surprise"))
    fps: int = 200
    # distractors (not label related)
    head_drift: float = 0.6  # px, slow global translation/rotation over the clip
    noise: float = 2.0  # sensor noise sigma in grey levels
    flicker: float = 0.02  # relative brightness flicker

    def __post_init__(self) -> None:
        for name, (lo, hi) in _INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ConfigError(
                    f"SynthConfig.{name} must be an integer in {lo}..{hi}, got {value!r}"
                )
            if not lo <= value <= hi:
                raise ConfigError(f"SynthConfig.{name} must be in {lo}..{hi}, got {value}")
            object.__setattr__(self, name, int(value))
        for name, (lo, hi) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ConfigError(
                    f"SynthConfig.{name} must be a number in {lo}..{hi}, got {value!r}"
                )
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ConfigError(f"SynthConfig.{name} must be in {lo}..{hi}, got {value}")
            object.__setattr__(self, name, float(value))
        self._check_emotions()

    def _check_emotions(self) -> None:
        supported = ", ".join(SUPPORTED_EMOTIONS)
        emotions = self.emotions
        if isinstance(emotions, str) or not isinstance(emotions, tuple | list):
            raise ConfigError(
                f"SynthConfig.emotions must be a tuple of emotion names (supported: {supported}), "
                f"got {emotions!r}"
            )
        if not emotions:
            raise ConfigError(f"SynthConfig.emotions is empty; choose from: {supported}")
        names = []
        for e in emotions:
            name = e.strip().lower() if isinstance(e, str) else e
            if name not in EMOTION_AUS:
                raise ConfigError(
                    f"unknown emotion {e!r} in SynthConfig.emotions; supported: {supported}"
                )
            if name in names:
                raise ConfigError(f"emotion {name!r} is listed twice in SynthConfig.emotions")
            names.append(name)
        object.__setattr__(self, "emotions", tuple(names))

    @property
    def n_clips(self) -> int:
        return self.subjects * self.clips_per_class * len(self.emotions)


def _resolve_config(config: SynthConfig | None, overrides: dict[str, Any]) -> SynthConfig:
    if config is not None and not isinstance(config, SynthConfig):
        raise ConfigError(f"config must be a SynthConfig or None, got {type(config).__name__}")
    base = config or SynthConfig()
    known = {f.name for f in dataclasses.fields(SynthConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"unknown synthesize argument(s) {', '.join(unknown)}; "
            f"valid: {', '.join(f.name for f in dataclasses.fields(SynthConfig))}"
        )
    return dataclasses.replace(base, **overrides) if overrides else base


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Independent stream for one purpose (1: subject look, 2: subject plan, 3: clip)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(frozen=True)
class _ClipPlan:
    subject: int  # 1-based
    index: int  # 0-based within the subject (keys the clip's random streams)
    emotion: str
    filename: str
    first_frame: int


def _plan_subject(cfg: SynthConfig, subject: int) -> list[_ClipPlan]:
    """Emotion order, file names (EPxx_yy) and first frame numbers of a subject's clips."""
    rng = _rng(cfg.seed, 2, subject)
    emotions = [e for e in cfg.emotions for _ in range(cfg.clips_per_class)]
    order = rng.permutation(len(emotions))
    used: dict[int, int] = {}
    plans = []
    for index, k in enumerate(order):
        episode = int(rng.integers(1, 20))
        used[episode] = used.get(episode, 0) + 1
        plans.append(
            _ClipPlan(
                subject=subject,
                index=index,
                emotion=emotions[int(k)],
                filename=f"EP{episode:02d}_{used[episode]:02d}",
                first_frame=int(rng.integers(1, 151)),
            )
        )
    return sorted(plans, key=lambda p: p.filename)


def _write_clip(
    cfg: SynthConfig, subject: Subject, plan: _ClipPlan, folder: Path
) -> dict[str, Any]:
    streams = np.random.SeedSequence(cfg.seed, spawn_key=(3, plan.subject, plan.index)).spawn(4)
    timing, motion, nuisance_rng, noise_rng = (np.random.default_rng(s) for s in streams)
    timeline = draw_timeline(timing, cfg.fps)
    nuisance = draw_nuisance(
        nuisance_rng, timeline.n_frames, cfg.fps, cfg.size, cfg.head_drift, cfg.flicker
    )
    choice = _choose_aus(plan.emotion, motion)
    peak = cfg.amplitude * cfg.size / 128.0 * motion.uniform(0.7, 1.2)
    field_ = au_field(subject, choice, motion)
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    frames = render_clip(subject, field_, peak, timeline, nuisance, noise_rng)
    for i, frame in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", frame, params)
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
            raise RuntimeError(f"OpenCV failed to encode frame {i} of {folder}")
        (folder / f"reg_img{plan.first_frame + i}.jpg").write_bytes(buf.tobytes())
    f0 = plan.first_frame
    return {
        "Subject": plan.subject,
        "Filename": plan.filename,
        "OnsetFrame": f0 + timeline.onset,
        "ApexFrame": f0 + timeline.apex,
        "OffsetFrame": f0 + timeline.offset,
        "Action Units": choice.code,
        "Estimated Emotion": plan.emotion,
        "_first_frame": f0,
        "_n_frames": timeline.n_frames,
        "_peak_px": round(float(peak), 4),
    }


def _is_complete(root: Path, cfg: SynthConfig) -> bool:
    """True when `root` holds a finished database made by this generator version from `cfg`."""
    try:
        meta = json.loads((root / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return False
    if meta.get("version") != GENERATOR_VERSION or meta.get("config") != _config_dict(cfg):
        return False
    if not (root / ANNOTATION_FILE).is_file():
        return False
    for clip in meta.get("clips", []):
        folder = root / FRAMES_DIR / f"sub{clip['subject']:02d}" / clip["filename"]
        first, n = clip["first_frame"], clip["n_frames"]
        if not all((folder / f"reg_img{first + i}.jpg").is_file() for i in range(n)):
            return False
    return len(meta.get("clips", [])) == cfg.n_clips


def _config_dict(cfg: SynthConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["emotions"] = list(cfg.emotions)
    return d


def synthesize(
    out_dir: str | os.PathLike[str],
    config: SynthConfig | None = None,
    *,
    progress: bool = False,
    **overrides: Any,
) -> Path:
    """Write a synthetic micro-expression database in the CASME II layout; return its root.

    `overrides` replace fields of `config` (or of the default `SynthConfig()`), e.g.
    ``synthesize("out", subjects=4, amplitude=0.0)``. The database is built in a temporary
    folder inside `out_dir` and moved into place when complete; files of `out_dir` that are
    not part of the database are left alone. When `out_dir` already holds a complete database
    made from the same config by the same generator version it is returned as is (the
    generator is deterministic, so it would be rewritten byte for byte).

    Raises ConfigError for an invalid config or an `out_dir` that holds a CASME II-like
    database this generator did not write.
    """
    cfg = _resolve_config(config, dict(overrides))
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"out_dir {root} exists and is not a folder; give a folder path")
    if _is_complete(root, cfg):
        return root
    ours = (root / METADATA_FILE).exists() or (root / REPLACING_FILE).exists()
    if not ours and ((root / FRAMES_DIR).exists() or (root / ANNOTATION_FILE).exists()):
        raise ConfigError(
            f"{root} already holds {FRAMES_DIR}/ or {ANNOTATION_FILE} that synthesize did not "
            "write (no microexpr_synthetic.json); choose an empty or new folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(root)
    tmp = root / f"{_PARTIAL_PREFIX}{os.getpid()}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        rows, subjects_meta = _generate(cfg, tmp, progress)
        _write_annotations(cfg, tmp, rows, subjects_meta)
        # Swap in. The metadata file goes last: its presence marks a complete database. While
        # swapping, REPLACING_FILE says the old files are ours, should this be interrupted.
        replacing = root / REPLACING_FILE
        replacing.touch()
        (root / METADATA_FILE).unlink(missing_ok=True)
        if (root / FRAMES_DIR).exists():
            shutil.rmtree(root / FRAMES_DIR)
        os.replace(tmp / FRAMES_DIR, root / FRAMES_DIR)
        os.replace(tmp / ANNOTATION_FILE, root / ANNOTATION_FILE)
        os.replace(tmp / METADATA_FILE, root / METADATA_FILE)
        replacing.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _remove_stale_partials(root: Path) -> None:
    """Delete work folders left by interrupted runs (their process no longer exists)."""
    for folder in root.glob(f"{_PARTIAL_PREFIX}*.partial"):
        pid = folder.name[len(_PARTIAL_PREFIX) : -len(".partial")]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                continue  # still running: not ours to remove
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        shutil.rmtree(folder, ignore_errors=True)


def _generate(
    cfg: SynthConfig, tmp: Path, progress: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from contextlib import nullcontext

    plans = [(s, _plan_subject(cfg, s)) for s in range(1, cfg.subjects + 1)]
    rows: list[dict[str, Any]] = []
    subjects_meta: dict[str, Any] = {}
    bar: Any = nullcontext()
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=False)
    with bar:
        task = bar.add_task("synthesizing clips", total=cfg.n_clips) if progress else None
        for s, subject_plans in plans:
            subject = make_subject(_rng(cfg.seed, 1, s), cfg.size, cfg.noise)
            subjects_meta[f"sub{s:02d}"] = {
                "landmarks": {
                    k: [round(x, 3), round(y, 3)] for k, (x, y) in subject.landmarks.items()
                },
                "inter_ocular_px": round(subject.iod, 3),
                "noise_sigma": round(subject.noise_sigma, 4),
            }
            for plan in subject_plans:
                folder = tmp / FRAMES_DIR / f"sub{s:02d}" / plan.filename
                rows.append(_write_clip(cfg, subject, plan, folder))
                if progress:
                    bar.advance(task)
    return rows, subjects_meta


def _write_annotations(
    cfg: SynthConfig, tmp: Path, rows: list[dict[str, Any]], subjects_meta: dict[str, Any]
) -> None:
    table = pd.DataFrame(rows)
    table[list(XLSX_COLUMNS)].to_excel(tmp / ANNOTATION_FILE, index=False, sheet_name="Sheet1")
    meta = {
        "generator": "microexpr.data.synthetic",
        "version": GENERATOR_VERSION,
        "config": _config_dict(cfg),
        "layout": {
            "frames": f"{FRAMES_DIR}/sub<NN>/<Filename>/reg_img<N>.jpg",
            "annotation": ANNOTATION_FILE,
        },
        "action_units": {str(k): au.name for k, au in ACTION_UNITS.items()},
        "emotion_action_units": {
            e: [[w, spec] for w, spec in opts] if opts else [[1.0, f"1-2 of {OTHERS_POOL}"]]
            for e, opts in EMOTION_AUS.items()
        },
        "subjects": subjects_meta,
        "clips": [
            {
                "subject": r["Subject"],
                "filename": r["Filename"],
                "first_frame": r["_first_frame"],
                "n_frames": r["_n_frames"],
                "onset": r["OnsetFrame"],
                "apex": r["ApexFrame"],
                "offset": r["OffsetFrame"],
                "emotion": r["Estimated Emotion"],
                "action_units": r["Action Units"],
                "peak_displacement_px": r["_peak_px"],
            }
            for r in rows
        ],
    }
    (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1))
