"""The synthetic database generator: `SynthConfig`, `synthesize` and the writing of frames,
the CASME II annotation sheet and the metadata file (see `microexpr.synth` for the layout)."""

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

from microexpr.errors import ConfigError
from microexpr.synth.aus import (
    ACTION_UNITS,
    EMOTION_AUS,
    OTHERS_POOL,
    SUPPORTED_EMOTIONS,
    au_field,
)
from microexpr.synth.aus import choose_aus as _choose_aus
from microexpr.synth.clip import draw_nuisance, draw_timeline, render_clip
from microexpr.synth.face import Subject, make_subject
from microexpr.synth.frame import (
    BORDER,
    Scene,
    draw_placement,
    face_px_range,
    framed_subject,
    head_mask,
    make_scene,
    onset_record,
    render_full_clip,
    room,
)

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
RAW_FRAMES_DIR = "CASME2_RAW_selected"  # full_frame=True
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
FULL_FRAME_JPEG_QUALITY = 90  # 640x480 frames: a quarter smaller and faster to write

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
    "face_scale": (0.15, 0.75),
    "head_motion": (0.0, 20.0),
}
_FRAME_SIDE_RANGE = (64, 4096)
# Fields that matter only with full_frame=True: recorded in the metadata only then, so that a
# cropped database is byte for byte what generator 1.0 wrote.
_FULL_FRAME_FIELDS = ("full_frame", "frame_size", "face_scale", "head_motion")


@dataclass(frozen=True)
class SynthConfig:
    """What `synthesize` makes. Every field is validated on construction (ConfigError)."""

    subjects: int = 12
    clips_per_class: int = 4
    seed: int = 0
    size: int = 128  # output face image side, pixels (cropped mode)
    amplitude: float = 2.0  # peak AU displacement in pixels at size 128 (scales with the face)
    emotions: tuple[str, ...] = field(default=("happiness", "disgust", "surprise"))
    fps: int = 200
    # distractors (not label related)
    head_drift: float = 0.6  # px, slow global translation/rotation over the clip
    noise: float = 2.0  # sensor noise sigma in grey levels
    flicker: float = 0.02  # relative brightness flicker
    # full frames (CASME2_RAW_selected/.../img<N>.jpg) instead of cropped faces
    full_frame: bool = False
    frame_size: tuple[int, int] = (480, 640)  # (height, width) of a full frame
    face_scale: float = 0.45  # face box side / frame height (each subject x 0.85-1.15)
    head_motion: float = 3.0  # px in the frame, at most, slow whole-head translation in a clip

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
        if not isinstance(self.full_frame, bool | np.bool_):
            raise ConfigError(
                f"SynthConfig.full_frame must be True or False, got {self.full_frame!r}"
            )
        object.__setattr__(self, "full_frame", bool(self.full_frame))
        self._check_emotions()
        self._check_frame()

    def _check_frame(self) -> None:
        lo, hi = _FRAME_SIDE_RANGE
        size = self.frame_size
        if (
            not isinstance(size, tuple | list)
            or len(size) != 2
            or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in size)
            or not all(lo <= v <= hi for v in size)
        ):
            raise ConfigError(
                f"SynthConfig.frame_size must be (height, width), integers in {lo}..{hi}, "
                f"got {size!r}"
            )
        height, width = (int(v) for v in size)
        object.__setattr__(self, "frame_size", (height, width))
        smallest, biggest = face_px_range(height, self.face_scale)
        if smallest < _INT_RANGES["size"][0]:
            raise ConfigError(
                f"faces would be as small as {smallest} px with face_scale {self.face_scale} and "
                f"a frame height of {height}; they need at least {_INT_RANGES['size'][0]} px"
            )
        needed = biggest + 2 * (room(biggest, self.head_motion, self.head_drift) + BORDER + 1)
        if needed > min(height, width):
            raise ConfigError(
                f"the face does not fit the frame: face_scale {self.face_scale} makes faces up to "
                f"{biggest} px in a {width}x{height} frame, which with head_motion "
                f"{self.head_motion} needs {math.ceil(needed)} px; use a smaller face_scale or "
                f"head_motion or a bigger frame_size"
            )

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

    @property
    def frames_dir(self) -> str:
        return RAW_FRAMES_DIR if self.full_frame else FRAMES_DIR

    @property
    def frame_prefix(self) -> str:
        return "img" if self.full_frame else "reg_img"


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
    """Independent stream for one purpose (1: subject look, 2: subject plan, 3: clip,
    4: subject scene, 5: clip placement; 4 and 5 in full-frame mode only)."""
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


@dataclass(frozen=True)
class _Look:
    """What every clip of one subject is rendered from."""

    subject: Subject
    scene: Scene | None = None  # full-frame mode only
    mask: np.ndarray | None = None


def _make_look(cfg: SynthConfig, s: int) -> _Look:
    if not cfg.full_frame:
        return _Look(make_subject(_rng(cfg.seed, 1, s), cfg.size, cfg.noise))
    scene = make_scene(
        _rng(cfg.seed, 4, s), cfg.frame_size, cfg.face_scale, cfg.head_motion, cfg.head_drift
    )
    # The same person as in cropped mode (same stream), rendered at the face's size in the frame.
    subject = framed_subject(_rng(cfg.seed, 1, s), scene.face_px, cfg.noise)
    return _Look(subject, scene, head_mask(subject))


def _write_clip(cfg: SynthConfig, look: _Look, plan: _ClipPlan, folder: Path) -> dict[str, Any]:
    subject = look.subject
    size = subject.face_size  # cfg.size, or the face box side in full-frame mode
    streams = np.random.SeedSequence(cfg.seed, spawn_key=(3, plan.subject, plan.index)).spawn(4)
    timing, motion, nuisance_rng, noise_rng = (np.random.default_rng(s) for s in streams)
    timeline = draw_timeline(timing, cfg.fps)
    nuisance = draw_nuisance(
        nuisance_rng, timeline.n_frames, cfg.fps, size, cfg.head_drift, cfg.flicker
    )
    choice = _choose_aus(plan.emotion, motion)
    peak = cfg.amplitude * size / 128.0 * motion.uniform(0.7, 1.2)
    field_ = au_field(subject, choice, motion)
    folder.mkdir(parents=True, exist_ok=True)
    quality = FULL_FRAME_JPEG_QUALITY if cfg.full_frame else JPEG_QUALITY
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    in_frame: dict[str, Any] | None = None
    if look.scene is None or look.mask is None:
        frames = render_clip(subject, field_, peak, timeline, nuisance, noise_rng)
    else:
        placement = draw_placement(
            _rng(cfg.seed, 5, plan.subject, plan.index),
            look.scene,
            timeline.n_frames,
            cfg.fps,
            cfg.head_motion,
        )
        frames = render_full_clip(
            subject, look.scene, look.mask, field_, peak, timeline, nuisance, placement, noise_rng
        )
        in_frame = onset_record(subject, placement, nuisance, timeline)
    prefix = cfg.frame_prefix
    for i, frame in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", frame, params)
        if not ok:  # pragma: no cover - OpenCV always encodes uint8 BGR
            raise RuntimeError(f"OpenCV failed to encode frame {i} of {folder}")
        (folder / f"{prefix}{plan.first_frame + i}.jpg").write_bytes(buf.tobytes())
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
        "_frame": in_frame,
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
    prefix = cfg.frame_prefix
    for clip in meta.get("clips", []):
        folder = root / cfg.frames_dir / f"sub{clip['subject']:02d}" / clip["filename"]
        first, n = clip["first_frame"], clip["n_frames"]
        if not all((folder / f"{prefix}{first + i}.jpg").is_file() for i in range(n)):
            return False
    return len(meta.get("clips", [])) == cfg.n_clips


def _config_dict(cfg: SynthConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["emotions"] = list(cfg.emotions)
    d["frame_size"] = list(cfg.frame_size)
    if not cfg.full_frame:
        for name in _FULL_FRAME_FIELDS:
            del d[name]
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
    frame_dirs = (FRAMES_DIR, RAW_FRAMES_DIR)
    theirs = [name for name in (*frame_dirs, ANNOTATION_FILE) if (root / name).exists()]
    if not ours and theirs:
        raise ConfigError(
            f"{root} already holds {' and '.join(theirs)} that synthesize did not write "
            "(no microexpr_synthetic.json); choose an empty or new folder"
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
        for name in frame_dirs:  # both: a cropped and a raw database must not be mixed
            if (root / name).exists():
                shutil.rmtree(root / name)
        os.replace(tmp / cfg.frames_dir, root / cfg.frames_dir)
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
            look = _make_look(cfg, s)
            subject = look.subject
            pad = subject.pad  # landmarks are recorded in face box pixels
            info: dict[str, Any] = {
                "landmarks": {
                    k: [round(x - pad, 3), round(y - pad, 3)]
                    for k, (x, y) in subject.landmarks.items()
                },
                "inter_ocular_px": round(subject.iod, 3),
                "noise_sigma": round(subject.noise_sigma, 4),
            }
            if look.scene is not None:
                info["face_px"] = look.scene.face_px
                info["background"] = look.scene.background_name
            subjects_meta[f"sub{s:02d}"] = info
            for plan in subject_plans:
                folder = tmp / cfg.frames_dir / f"sub{s:02d}" / plan.filename
                rows.append(_write_clip(cfg, look, plan, folder))
                if progress:
                    bar.advance(task)
    return rows, subjects_meta


def _write_annotations(
    cfg: SynthConfig, tmp: Path, rows: list[dict[str, Any]], subjects_meta: dict[str, Any]
) -> None:
    table = pd.DataFrame(rows)
    table[list(XLSX_COLUMNS)].to_excel(tmp / ANNOTATION_FILE, index=False, sheet_name="Sheet1")
    meta = {
        "generator": "microexpr.synth",
        "version": GENERATOR_VERSION,
        "config": _config_dict(cfg),
        "layout": {
            "frames": f"{cfg.frames_dir}/sub<NN>/<Filename>/{cfg.frame_prefix}<N>.jpg",
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
                **({"in_frame": r["_frame"]} if r["_frame"] is not None else {}),
            }
            for r in rows
        ],
    }
    if cfg.full_frame:
        meta["in_frame"] = (
            "per clip, at the onset frame, in frame pixels (x right, y down, pixel centres at "
            "integers): face_box [x, y, w, h] is the face square (hairline to below the chin) of "
            "the neutral face, eye_centres the pupils [image left, image right], landmarks as in "
            "subjects (names follow the source photograph, which is mirrored for some subjects); "
            "head_shift: how far the whole head has moved [dx, dy] from onset to apex and offset. "
            "The subjects' landmarks are in pixels of their face box (face_px on a side)."
        )
    (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1))
