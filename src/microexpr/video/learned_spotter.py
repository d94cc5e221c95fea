"""A learned spotter: SOFTNet's shallow three-stream CNN on optical flow, sized for a CPU.

Liong, G.-B., See, J., Wong, L.-K.: "Shallow optical flow three-stream CNN for macro- and
micro-expression spotting from long videos", ICIP 2021 (SOFTNet).

Per frame, the optical flow between the aligned face crops at t and t + k (the same DIS flow
and head-motion removal as the ``mdmd`` spotter) gives three maps: |u|, |v| and the optical
strain (`microexpr.preprocess.flow.optical_strain`). The eye boxes are zeroed (blinks), and
two regions of the canonical aligned crop, found from `canonical_eyes`, are resampled into
one small image (42 x 42, as SOFTNet): the top half holds the band of both brows and eyes
(2 x 1 inter-ocular distances, IOD), the bottom half the mouth (1.6 x 0.8 IOD). A shallow CNN
with one branch per map regresses a score in [0, 1] that [t, t + k] holds an expression.

Which frame a score belongs to: the scorer sees the usual window of 2k + 1 frames around frame
m (`microexpr.video.spotters`) and reads the flow from frame t = m - ceil(k / 2) to t + k, so
the score of frame m describes the span [t, t + k] centred (within half a frame) on m. The
base class's `spot` then applies SOFTNet's steps: a centred moving average over about 2k
frames (``smooth_s`` = 2 ``half_duration_s``), no contrast, the relative threshold
``mean + p (max - mean)`` (and the floor ``min_score``), peaks at least k apart, each peak
giving [peak - k, peak + k]. SOFTNet reaches the same alignment by shifting the ground truth
by k frames instead.

Training (`SoftNetSpotter.fit`) takes the rows of a `LongVideoDataset`'s ``videos`` table (the
training subjects only) and their ground-truth ``intervals``. Each video streams once through
`microexpr.video.analyze` (the same face tracking and alignment as at analysis time); its
network inputs are kept in a `FeatureCache` keyed by the video and every setting they depend
on, so leave-one-subject-out folds compute each video once. Pseudo-labels as SOFTNet: 1 where
[t, t + k] overlaps an annotated expression of the trained kind, else 0. The network is trained
with the mean squared error and Adam, seeded. Then the threshold (``p`` and ``min_score``) is
chosen to maximise the pooled MEGC F1 (`microexpr.evaluation.spotting`) on the training videos
only: on out-of-fold scores, from networks trained on the other training subjects
(``threshold_folds`` groups of them), since a network's scores on its own training videos
are cleaner than on new ones. The public code picked p on the test subjects (see
../notes/spotting.md); nothing here ever sees the videos it will be tested on.

Differences from the paper and its released code:

- faces: the toolkit's tracker aligns a 64-px crop per stable stretch of the head, and the
  regions come from the canonical eye positions, not from dlib landmarks on a 128-px crop;
- flow: OpenCV's DIS (the ``mdmd`` preset, "fine") instead of TV-L1, for speed; head motion
  removed as ``mdmd`` does (the median flow of the face outside the eyes, or an affine fit)
  instead of the mean flow of a nose patch; eye boxes instead of landmark polygons;
- inputs in fixed units (|u|, |v| in percent of the IOD; strain x `STRAIN_SCALE`) instead
  of SOFTNet's per-image min-max normalisation, which blows a still face's noise up to the
  size of an expression and hides how large a motion is (micro versus macro);
- the score passes through a sigmoid (a score in [0, 1]); Adam as the paper (the released
  code used SGD); each epoch draws ``negatives`` non-expression samples per expression sample
  afresh instead of removing half of them once; augmentation by mirroring only (no blur or
  noise copies);
- one network per ``kind`` ("micro" by default, macro-expressions then being negatives; or
  "macro" with a longer ``half_duration_s``; or "all"); k comes from ``half_duration_s``, not
  from the mean length of all labels (which in the public code included the test subject's).

Speed: per frame one DIS flow on the 64-px crop, the strain, one resampling and a forward pass
of about 0.3 ms (run on one torch thread: see `_OneThread`), so an analysis runs faster than
with ``mdmd`` (two flows a frame). Memory: the cache holds 3 x 42 x 42 float16 values (10.6
kB) per frame of each training video, about 200,000 frames in its default 2 GiB.
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn

from microexpr.data.frames import list_frames
from microexpr.errors import ConfigError
from microexpr.evaluation.spotting import spotting_metrics
from microexpr.preprocess.align import AlignConfig, canonical_eyes
from microexpr.preprocess.flow import optical_strain
from microexpr.progress import track as progress_bar
from microexpr.training.checkpoints import read_checkpoint, write_checkpoint
from microexpr.training.device import resolve_device
from microexpr.video.analysis import analyze, video_align_config
from microexpr.video.spotters import (
    HeadMotionFlow,
    Scorer,
    SpotConfig,
    Spotter,
    check_flow_options,
    face_mask,
    spot_intervals,
)
from microexpr.video.tracker import TrackConfig

__all__ = [
    "FEATURE_CACHE",
    "FeatureCache",
    "FeatureKey",
    "SoftNet",
    "SoftNetConfig",
    "SoftNetSpotter",
    "VideoFeatures",
]

KINDS = ("micro", "macro", "all")
FLOW_UNIT = 0.01  # |u|, |v| are given in percent of the inter-ocular distance (as mdmd)
STRAIN_SCALE = 50.0  # optical strain (dimensionless) times this: about the same range
# the regions, in IODs from the canonical eye centres: the brow-and-eye band (both eyes,
# 0.5 IOD beyond each, from 0.65 above the eye line to 0.35 below it) and the mouth
BAND_SIDE, BAND_ABOVE, BAND_BELOW = 0.5, 0.65, 0.35
MOUTH_HALF_WIDTH, MOUTH_TOP, MOUTH_BOTTOM = 0.8, 0.65, 1.45
P_GRID = tuple(round(p, 2) for p in np.arange(0.05, 1.0, 0.05))
FLOOR_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
FEATURE_VERSION = 1  # bump when the same settings would give other network inputs
SAVED_KIND = "softnet-spotter"
# settings that change the network's inputs: a loaded spotter keeps them
FEATURE_FIELDS = ("half_duration_s", "image_size", "head_motion", "preset", "mask_eyes")


@dataclass(frozen=True)
class SoftNetConfig(SpotConfig):
    """The ``softnet`` spotter: SpotConfig (SOFTNet's defaults: smoothing over 2k, no
    contrast; ``p`` and ``min_score`` are chosen by `SoftNetSpotter.fit`), plus

    inputs: image_size (side of the network input, a multiple of 6: 42 as SOFTNet),
    head_motion ("median", "affine", "none") and preset (DIS flow preset) as ``mdmd``,
    mask_eyes; training: kind (the annotated expressions that are positives: "micro",
    "macro" or "all"), epochs, batch_size, lr (Adam), negatives (non-expression samples drawn
    per expression sample each epoch; 0: all of them), flip (mirror half the samples), seed,
    threshold_folds (subject groups of the training videos that give the out-of-fold scores
    the threshold is chosen on; 0 or 1: the final network's own scores on its training
    videos).
    """

    smooth_s: float = 0.4
    contrast: bool = False
    image_size: int = 42
    head_motion: str = "median"
    preset: str = "fine"
    mask_eyes: bool = True
    kind: str = "micro"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-4
    negatives: float = 4.0
    flip: bool = True
    seed: int = 0
    threshold_folds: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if not _is_int(self.image_size) or self.image_size % 6 or not 12 <= self.image_size <= 96:
            raise ConfigError(f"image_size must be a multiple of 6 within 12..96 pixels (42 as "
                              f"SOFTNet), got {self.image_size!r}")
        check_flow_options(self.head_motion, self.preset)
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS} (the expressions the network "
                              f"learns to spot), got {self.kind!r}")
        for name, low in (("epochs", 1), ("batch_size", 2), ("seed", 0),
                          ("threshold_folds", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(self.lr, int | float) and 0 < self.lr < 1):
            raise ConfigError(f"lr must be a number in (0, 1), got {self.lr!r}")
        if not (isinstance(self.negatives, int | float) and self.negatives >= 0):
            raise ConfigError(f"negatives must be a number >= 0 (0: every non-expression "
                              f"sample in every epoch), got {self.negatives!r}")
        for name in ("mask_eyes", "flip", "contrast"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


# ---------------------------------------------------------------------------- network
class SoftNet(nn.Module):
    """SOFTNet's shallow three-stream CNN: per input map (|u|, |v|, strain) one 5 x 5
    convolution (3, 5 and 8 channels) with ReLU; the streams concatenated; 3 x 3 then 2 x 2
    max pooling (computed as one 6 x 6 pooling: the same numbers, faster on a CPU); a
    400-unit ReLU layer and one output, here through a sigmoid. Input N x 3 x S x S (S a
    multiple of 6), output N scores in [0, 1]."""

    def __init__(self, image_size: int = 42) -> None:
        super().__init__()
        self.streams = nn.ModuleList(nn.Conv2d(1, width, 5, padding=2) for width in (3, 5, 8))
        side = image_size // 6
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * side * side, 400), nn.ReLU(),
                                  nn.Linear(400, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([stream(x[:, i:i + 1]) for i, stream in enumerate(self.streams)], 1)
        pooled = torch.relu(nn.functional.max_pool2d(maps, 6))
        return torch.sigmoid(self.head(pooled)).squeeze(1)


def _build_network(config: SoftNetConfig) -> SoftNet:
    """A freshly initialised network, seeded by the config (global RNG state left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return SoftNet(config.image_size)


# ---------------------------------------------------------------------------- inputs
class _InputMaker:
    """Two aligned crops k frames apart -> the network input (3 x S x S float32)."""

    def __init__(self, config: SoftNetConfig, fps: float, align: AlignConfig) -> None:
        self.k = config.k(fps)  # the frames between the two crops of a flow
        # mdmd's DIS flow and head-motion removal, so both spotters see one motion
        self._motion = HeadMotionFlow(align, head_motion=config.head_motion,
                                      preset=config.preset, mask_eyes=config.mask_eyes)
        eyes = canonical_eyes(align)
        iod = float(eyes[1, 0] - eyes[0, 0])
        self._unit = 1.0 / (FLOW_UNIT * iod)
        self._keep = face_mask(align, config.mask_eyes).astype(np.float32)[..., None]
        size, half = config.image_size, config.image_size // 2
        (left, eye_y), (right, _) = eyes
        middle = (left + right) / 2.0
        band = (left - BAND_SIDE * iod, right + BAND_SIDE * iod,
                eye_y - BAND_ABOVE * iod, eye_y + BAND_BELOW * iod)
        mouth = (middle - MOUTH_HALF_WIDTH * iod, middle + MOUTH_HALF_WIDTH * iod,
                 eye_y + MOUTH_TOP * iod, eye_y + MOUTH_BOTTOM * iod)
        # crop pixels per input pixel; above 1.5 the maps are area-averaged down first
        shrink = (band[1] - band[0]) / size
        self._resize = None
        scale = 1.0
        if shrink > 1.5:
            scale = 1.0 / shrink
            side = max(1, round(align.size * scale))
            scale = side / align.size
            self._resize = (side, side)
        map_x = np.empty((size, size), np.float32)
        map_y = np.empty((size, size), np.float32)
        for rows, (x0, x1, y0, y1) in ((slice(0, half), band), (slice(half, size), mouth)):
            xs = x0 + (np.arange(size) + 0.5) * (x1 - x0) / size
            ys = y0 + (np.arange(half) + 0.5) * (y1 - y0) / half
            map_x[rows] = (xs[None, :] + 0.5) * scale - 0.5  # crop pixel centres, rescaled
            map_y[rows] = (ys[:, None] + 0.5) * scale - 0.5
        self._map_x, self._map_y = map_x, map_y

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        flow = self._motion(first, second)
        maps = np.empty((*flow.shape[:2], 3), np.float32)
        np.multiply(np.abs(flow), self._unit, out=maps[..., :2])
        maps[..., 2] = optical_strain(flow) * STRAIN_SCALE
        maps *= self._keep
        if self._resize is not None:
            maps = cv2.resize(maps, self._resize, interpolation=cv2.INTER_AREA)
        image = cv2.remap(maps, self._map_x, self._map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return np.ascontiguousarray(image.transpose(2, 0, 1))


class _InputScorer:
    """The per-video part shared by the scorers: the window holds frames m - k .. m + k (the
    ring buffer of `analyze`) and the input of frame m is the flow from frame m - ceil(k / 2)
    to k frames later."""

    def __init__(self, maker: _InputMaker) -> None:
        self.k = maker.k
        self._maker = maker
        self._start = maker.k - math.ceil(maker.k / 2)

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        return crop

    def inputs(self, window: Sequence[np.ndarray]) -> np.ndarray:
        return self._maker(window[self._start], window[self._start + self.k])


class _OneThread:
    """Runs torch on one thread inside ``with`` (nested and concurrent uses counted, the
    thread count restored when the last one leaves). A one-frame forward pass takes about
    0.3 ms on one thread but ten times more when torch's thread pool competes with the video
    decoder and the face detector for two cores."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 1

    def __enter__(self) -> None:
        with self._lock:
            if not self._users:
                self._saved = torch.get_num_threads()
                torch.set_num_threads(1)
            self._users += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                torch.set_num_threads(self._saved)


_ONE_THREAD = _OneThread()


class _NetworkScorer(_InputScorer):
    """Scores the window's middle frame with the network (one frame at a time, on the CPU,
    on one torch thread)."""

    def __init__(self, maker: _InputMaker, network: SoftNet) -> None:
        super().__init__(maker)
        self._network = network

    def score(self, window: Sequence[np.ndarray]) -> float:
        x = torch.from_numpy(self.inputs(window)[None])
        with _ONE_THREAD, torch.inference_mode():
            return float(self._network(x)[0])


class _RecordingScorer(_InputScorer):
    """Keeps every window's network input; its score is the input's position in `record`."""

    def __init__(self, maker: _InputMaker, record: list[np.ndarray]) -> None:
        super().__init__(maker)
        self._record = record

    def score(self, window: Sequence[np.ndarray]) -> float:
        self._record.append(self.inputs(window).astype(np.float16))
        return float(len(self._record) - 1)


class _InputRecorder(Spotter):
    """A spotter whose analysis pass records the network inputs (see `_RecordingScorer`)."""

    name = "softnet-inputs"
    config_class = SoftNetConfig

    def __init__(self, config: SoftNetConfig) -> None:
        super().__init__(config)
        self.inputs: list[np.ndarray] = []

    def scorer(self, fps: float, align: AlignConfig) -> Scorer:
        return _RecordingScorer(_InputMaker(self.config, fps, align), self.inputs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- feature cache
@dataclass(frozen=True)
class FeatureKey:
    """What a video's network inputs depend on: the video (path and modification time), its
    frame rate and every input setting, face crop and tracking option."""

    source: str
    modified_ns: int
    fps: float
    settings: tuple


@dataclass
class VideoFeatures:
    """The network inputs of one video: `inputs` (n x 3 x S x S float16) for the frames
    `scored` (their positions in the video), and every frame's `segment` (the run of followed
    face; -1: no face), as `analyze` gave them."""

    inputs: np.ndarray
    scored: np.ndarray
    segments: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.segments)

    @property
    def nbytes(self) -> int:
        return int(self.inputs.nbytes + self.scored.nbytes + self.segments.nbytes)


class FeatureCache:
    """An in-memory LRU of `VideoFeatures` by `FeatureKey`, at most `max_bytes` in all (a video
    larger than that is computed and not kept). Spotters share one (`FEATURE_CACHE` unless
    given another), and so do their copies, so the folds of a leave-one-subject-out run
    compute each video's inputs once. Safe to use from several threads."""

    def __init__(self, max_bytes: int = 2 * 1024 ** 3) -> None:
        if not _is_int(max_bytes) or max_bytes < 0:
            raise ConfigError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[FeatureKey, VideoFeatures] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: FeatureKey) -> VideoFeatures | None:
        """The features of `key` (now the most recently used), or None."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: FeatureKey, features: VideoFeatures) -> None:
        """Keep `features`, dropping the least recently used entries to stay in budget."""
        if features.nbytes > self.max_bytes:
            return
        with self._lock:
            self._items[key] = features
            self._items.move_to_end(key)
            while sum(f.nbytes for f in self._items.values()) > self.max_bytes:
                self._items.popitem(last=False)

    def keys(self) -> list[FeatureKey]:
        """The keys held, least recently used first."""
        with self._lock:
            return list(self._items)

    def sources(self) -> set[str]:
        """The videos (resolved paths) whose features are held."""
        return {key.source for key in self.keys()}

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(f.nbytes for f in self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __repr__(self) -> str:
        return (f"<FeatureCache {len(self)} videos, {self.nbytes / 2 ** 20:.1f} of "
                f"{self.max_bytes / 2 ** 20:.0f} MiB>")


FEATURE_CACHE = FeatureCache()


# ---------------------------------------------------------------------------- spotter
class SoftNetSpotter(Spotter):
    """SOFTNet (Liong et al., ICIP 2021): a shallow three-stream CNN on the optical flow
    between frames t and t + k regresses a per-frame score (see the module notes for the
    method and its differences from the paper).

    Fit it on training videos (`fit`), or load a fitted one (`load`, or
    ``get_spotter("softnet", path=...)``), then ``analyze(video, spotter=spotter)``. `cache`:
    where the per-video inputs that `fit` computes are kept (default `FEATURE_CACHE`, shared
    by every spotter and its copies). With `path`, keyword options may change only how
    scores become intervals (p, min_score, smooth_s, contrast, micro_max_s).
    """

    name = "softnet"
    description = ("SOFTNet: shallow three-stream CNN on optical flow and strain (Liong et al. "
                   "2021), trained with fit(); threshold chosen on the training subjects")
    config_class = SoftNetConfig
    config: SoftNetConfig

    def __init__(self, config: SoftNetConfig | Mapping[str, Any] | None = None, *,
                 path: str | Path | None = None, cache: FeatureCache | None = None,
                 **options: Any) -> None:
        if cache is not None and not isinstance(cache, FeatureCache):
            raise ConfigError(f"cache must be a FeatureCache, got {type(cache).__name__}")
        self.cache = cache if cache is not None else FEATURE_CACHE
        self.network: SoftNet | None = None
        self.training: dict[str, Any] = {}
        self.align: AlignConfig | None = None
        self.track: TrackConfig | None = None
        if path is None:
            super().__init__(config, **options)
            return
        if config is not None:
            raise ConfigError("give either path (a fitted spotter) or config, not both")
        self._restore(Path(path))
        inputs = sorted(set(options) & {*FEATURE_FIELDS, *_TRAINING_FIELDS})
        if inputs:
            raise ConfigError(f"{path} was trained with {inputs[0]}="
                              f"{getattr(self.config, inputs[0])!r}; options of a loaded "
                              f"spotter may change only {', '.join(SPOT_FIELDS)}")
        super().__init__(self.config, **options)

    # ------------------------------------------------------------------ state
    @property
    def fitted(self) -> bool:
        """True once `fit` ran (or a fitted spotter was loaded)."""
        return self.network is not None

    def __deepcopy__(self, memo: dict[int, Any]) -> SoftNetSpotter:
        """A copy with its own network and training record that shares the feature cache."""
        twin = object.__new__(type(self))
        for name, value in vars(self).items():
            setattr(twin, name, value if name == "cache" else copy.deepcopy(value, memo))
        return twin

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the feature cache (a copy in another process uses its own)."""
        state = dict(vars(self))
        state["cache"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        if self.cache is None:
            self.cache = FEATURE_CACHE

    def describe(self) -> dict[str, Any]:
        """Name, config, whether it is fitted, on how many training videos and subjects, the
        chosen threshold and its F1 on the training videos."""
        info = self.training
        return {**super().describe(), "fitted": self.fitted,
                "training_videos": len(info.get("videos", ())),
                "training_subjects": info.get("subjects"),
                "threshold": ({"p": self.config.p, "min_score": self.config.min_score,
                               "train_f1": info.get("train_f1"),
                               "chosen_on": info.get("threshold_chosen_on")}
                              if self.fitted else None),
                "align": asdict(self.align) if self.align is not None else None}

    def __repr__(self) -> str:
        options = super().__repr__()[len(type(self).__name__) + 1:-1]
        state = (f"fitted on {len(self.training.get('videos', ()))} videos" if self.fitted
                 else "not fitted")
        return f"{type(self).__name__}({options + ', ' if options else ''}{state})"

    # ------------------------------------------------------------------ analysis
    def scorer(self, fps: float, align: AlignConfig) -> Scorer:
        """The streaming scorer (ConfigError when the spotter is not fitted, or when `align`
        crops the face otherwise than the crops it was trained on)."""
        if self.network is None:
            raise ConfigError("the softnet spotter is not fitted: call spotter.fit(videos, "
                              "intervals) on training videos first, or load a fitted one "
                              "(SoftNetSpotter.load(path), get_spotter('softnet', path=...))")
        trained = self.align
        if trained is not None and (trained.size, trained.margin) != (align.size, align.margin):
            raise ConfigError(f"this softnet spotter was trained on {trained.size}-px face "
                              f"crops with margin {trained.margin}; analyse with align="
                              f"{{'size': {trained.size}, 'margin': {trained.margin}}} (got "
                              f"size {align.size}, margin {align.margin}) or fit it again")
        self.network.eval()
        return _NetworkScorer(_InputMaker(self.config, fps, align), self.network)

    # ------------------------------------------------------------------ training
    def fit(self, videos: pd.DataFrame, intervals: pd.DataFrame, *,
            align: AlignConfig | Mapping[str, Any] | None = None,
            track: TrackConfig | Mapping[str, Any] | None = None,
            device: str | None = None, progress: bool = False) -> SoftNetSpotter:
        """Train on `videos` (rows of a `LongVideoDataset.videos` table: folder, fps, video;
        subject, dataset and first_frame used when present; without subjects each video is
        its own subject for the threshold's folds) and their annotated `intervals`
        (video, onset, offset, kind; in the videos' frame numbers), then choose the threshold
        on these videos only. Intervals of other videos are ignored. `align` / `track`: the
        face options `analyze` will be given (default: its own); `device`: where the network
        trains ("auto": CUDA when present). Returns the spotter itself, fitted.
        """
        table = _check_videos(videos)
        truth = _check_intervals(intervals, table, self.config.kind)
        align_config = video_align_config(align)
        track_config = _track_config(track)
        chosen = resolve_device(device)
        rows = table.to_dict("records")
        features = [self._features(row, align_config, track_config)
                    for row in progress_bar(rows, len(rows), "softnet: video inputs", progress)]
        numbers = [_numbers(row, f.n_frames) for row, f in zip(rows, features, strict=True)]
        labels = [_pseudo_labels(f, n, _video_truth(truth, row),
                                 self.config.k(float(row["fps"])))
                  for row, f, n in zip(rows, features, numbers, strict=True)]
        if not any(label.any() for label in labels):
            raise ConfigError(f"the training videos hold no {self.config.kind} expression "
                              f"overlapping a scored frame: nothing to learn (check the "
                              f"intervals' video ids and frame numbers, or the kind)")
        groups = _groups(table, self.config)
        scores: list[np.ndarray | None] = [None] * len(rows)
        for fold, members in enumerate(groups):  # out-of-fold scores for the threshold
            others = [i for i in range(len(rows)) if i not in members]
            network = _build_network(self.config)
            _train(network, [features[i] for i in others], [labels[i] for i in others],
                   self.config, chosen, progress, f"softnet: threshold fold {fold + 1}")
            for i in members:
                scores[i] = _predict(network, features[i])
        network = _build_network(self.config)
        losses = _train(network, features, labels, self.config, chosen, progress,
                        "softnet: training")
        network.to("cpu").eval()
        scores = [s if s is not None else _predict(network, f)
                  for s, f in zip(scores, features, strict=True)]
        p, floor, f1 = _choose_threshold(self.config, rows, features, numbers, scores, truth)
        self.network = network
        self.config = replace(self.config, p=p, min_score=floor)
        self.align, self.track = align_config, track_config
        self.training = {
            "videos": [str(row["video"]) for row in rows],
            "subjects": int(table["subject"].nunique()) if "subject" in table else None,
            "frames": int(sum(f.n_frames for f in features)),
            "positives": int(sum(int(label.sum()) for label in labels)),
            "loss": losses,
            "train_f1": f1,
            "threshold_chosen_on": (f"out-of-fold scores of {len(groups)} subject groups of "
                                    f"the training videos" if groups else
                                    "the network's own scores on its training videos"),
        }
        return self

    def _features(self, row: Mapping[str, Any], align: AlignConfig,
                  track: TrackConfig) -> VideoFeatures:
        """The network inputs of one video, from the cache or from one `analyze` pass."""
        source = Path(str(row["folder"])).expanduser()
        fps = float(row["fps"])
        try:
            modified = os.stat(source).st_mtime_ns
        except OSError:
            raise ConfigError(f"video {row['video']!r}: {source} does not exist; check the "
                              f"videos table's folder column") from None
        settings = (FEATURE_VERSION, *(getattr(self.config, name) for name in FEATURE_FIELDS),
                    tuple(asdict(align).items()), tuple(asdict(track).items()))
        key = FeatureKey(str(source.resolve()), modified, fps, settings)
        found = self.cache.get(key)
        if found is not None:
            return found
        recorder = _InputRecorder(self.config)
        analysis = analyze(source, spotter=recorder, fps=fps, align=align, track=track)
        positions = analysis.frames["score"].to_numpy(dtype=np.float64)
        scored = np.flatnonzero(np.isfinite(positions))
        size = self.config.image_size
        inputs = (np.stack(recorder.inputs)[positions[scored].astype(np.int64)]
                  if len(scored) else np.zeros((0, 3, size, size), np.float16))
        features = VideoFeatures(inputs, scored.astype(np.int64),
                                 analysis.frames["segment"].to_numpy(dtype=np.int64))
        self.cache.put(key, features)
        return features

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the fitted spotter (network weights, config with the chosen threshold, face
        options, training record) to `path`, atomically; returns the path."""
        if self.network is None:
            raise ConfigError("nothing to save: the softnet spotter is not fitted (call fit "
                              "first)")
        meta = {"kind": SAVED_KIND, "feature_version": FEATURE_VERSION,
                "config": asdict(self.config),
                "align": asdict(self.align) if self.align is not None else None,
                "track": asdict(self.track) if self.track is not None else None,
                "training": self.training}
        return write_checkpoint(path, meta, self.network.state_dict())

    @classmethod
    def load(cls, path: str | Path, *, cache: FeatureCache | None = None) -> SoftNetSpotter:
        """A fitted spotter saved by `save` (ConfigError naming the file when it is not one)."""
        return cls(path=path, cache=cache)

    def _restore(self, path: Path) -> None:
        checkpoint = read_checkpoint(path)
        meta = checkpoint.meta
        if meta.get("kind") != SAVED_KIND:
            raise ConfigError(f"{path} is a microexpr model but not a softnet spotter; load it "
                              f"with microexpr.training.estimators.load_model")
        if meta.get("feature_version") != FEATURE_VERSION:
            raise ConfigError(f"{path} was trained on network inputs of version "
                              f"{meta.get('feature_version')}, this microexpr computes version "
                              f"{FEATURE_VERSION}: fit the spotter again")
        self.config = SoftNetConfig(**meta["config"])
        network = SoftNet(self.config.image_size)
        try:
            network.load_state_dict(checkpoint.state_dict)
        except RuntimeError as error:
            raise ConfigError(f"{path}: the saved weights do not fit a SOFTNet of image size "
                              f"{self.config.image_size} ({error})") from None
        self.network = network.eval()
        self.align = AlignConfig(**meta["align"]) if meta.get("align") else None
        self.track = TrackConfig(**meta["track"]) if meta.get("track") else None
        self.training = dict(meta.get("training") or {})


SPOT_FIELDS = ("p", "min_score", "smooth_s", "contrast", "micro_max_s")
_TRAINING_FIELDS = tuple(f.name for f in fields(SoftNetConfig)
                         if f.name not in {*SPOT_FIELDS, *FEATURE_FIELDS})


# ---------------------------------------------------------------------------- fit helpers
def _check_videos(videos: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(videos, pd.DataFrame):
        raise ConfigError(f"videos must be a DataFrame (a LongVideoDataset's videos table), "
                          f"got {type(videos).__name__}")
    missing = [c for c in ("video", "folder", "fps") if c not in videos.columns]
    if missing:
        raise ConfigError(f"the videos table lacks the column(s) {missing}; pass rows of "
                          f"LongVideoDataset.videos")
    if videos.empty:
        raise ConfigError("no training video: fit needs at least one row of the videos table")
    keys = _keys(videos)
    repeated = videos[videos.duplicated(keys, keep=False)]
    if len(repeated):
        raise ConfigError(f"video {repeated.iloc[0]['video']!r} is listed more than once in "
                          f"the videos table; give each video once")
    return videos.reset_index(drop=True)


def _keys(table: pd.DataFrame) -> list[str]:
    return ["dataset", "video"] if "dataset" in table.columns else ["video"]


def _check_intervals(intervals: pd.DataFrame, videos: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The annotated intervals of the training videos (of the trained kind)."""
    if not isinstance(intervals, pd.DataFrame):
        raise ConfigError(f"intervals must be a DataFrame (a LongVideoDataset's intervals "
                          f"table), got {type(intervals).__name__}")
    needed = ["video", "onset", "offset"] + (["kind"] if kind != "all" else [])
    missing = [c for c in needed if c not in intervals.columns]
    if missing:
        raise ConfigError(f"the intervals table lacks the column(s) {missing}; pass "
                          f"LongVideoDataset.intervals")
    keys = ["dataset", "video"] if "dataset" in intervals.columns and "dataset" in \
        videos.columns else ["video"]
    chosen = intervals.merge(videos[keys].drop_duplicates(), on=keys, how="inner")
    if kind != "all":
        chosen = chosen[chosen["kind"] == kind]
    return chosen.reset_index(drop=True)


def _track_config(track: TrackConfig | Mapping[str, Any] | None) -> TrackConfig:
    if track is None or isinstance(track, TrackConfig):
        return track or TrackConfig()
    if not isinstance(track, Mapping):
        raise ConfigError(f"track must be a TrackConfig or a mapping of its options, got "
                          f"{type(track).__name__}")
    try:
        return replace(TrackConfig(), **dict(track))
    except TypeError as error:
        raise ConfigError(f"track: {error}; its options are "
                          f"{', '.join(asdict(TrackConfig()))}") from None


def _numbers(row: Mapping[str, Any], n_frames: int) -> np.ndarray:
    """The database frame number of each of a video's frames: the numbers of its folder's
    frame files when they match the frames read, else first_frame + position."""
    listed = [number for number, _ in list_frames(Path(str(row["folder"])))]
    if len(listed) == n_frames:
        return np.asarray(listed, dtype=np.int64)
    first = row.get("first_frame", 0)
    first = 0 if first is None or (isinstance(first, float) and math.isnan(first)) else first
    return int(first) + np.arange(n_frames, dtype=np.int64)


def _video_truth(truth: pd.DataFrame, row: Mapping[str, Any]) -> pd.DataFrame:
    mine = truth["video"] == row["video"]
    if "dataset" in truth.columns and "dataset" in row:
        mine &= truth["dataset"] == row["dataset"]
    return truth[mine]


def _pseudo_labels(features: VideoFeatures, numbers: np.ndarray, truth: pd.DataFrame,
                   k: int) -> np.ndarray:
    """SOFTNet's pseudo-labels of a video's scored frames: 1 where the flow's span [t, t + k]
    (t = m - ceil(k / 2) for the scored frame m, in the video's frame `numbers`) overlaps one
    of the video's annotated intervals `truth`, else 0."""
    start = features.scored - math.ceil(k / 2)
    first, last = numbers[start], numbers[start + k]
    labels = np.zeros(len(start), np.float32)
    for onset, offset in truth[["onset", "offset"]].to_numpy(np.int64):
        labels[(first <= offset) & (last >= onset)] = 1.0
    return labels


def _groups(table: pd.DataFrame, config: SoftNetConfig) -> list[list[int]]:
    """The video positions of each subject group whose scores come from a network trained
    on the other groups (none when the threshold is chosen on in-sample scores)."""
    subjects = (table["subject"].astype(str) if "subject" in table.columns
                else table["video"].astype(str)).to_numpy()
    names = np.unique(subjects)
    count = min(config.threshold_folds, len(names))
    if count < 2:
        return []
    order = np.random.default_rng(config.seed).permutation(len(names))
    fold_of = {names[i]: position % count for position, i in enumerate(order)}
    return [[i for i, s in enumerate(subjects) if fold_of[s] == f] for f in range(count)]


def _train(network: SoftNet, features: Sequence[VideoFeatures], labels: Sequence[np.ndarray],
           config: SoftNetConfig, device: torch.device, progress: bool,
           description: str) -> list[float]:
    """Train `network` in place (MSE, Adam); the mean loss of each epoch."""
    offsets = np.concatenate([[0], np.cumsum([len(f.inputs) for f in features])])
    y = np.concatenate(labels) if labels else np.zeros(0, np.float32)
    positives, negatives = np.flatnonzero(y > 0.5), np.flatnonzero(y <= 0.5)
    if not len(y):
        return []
    rng = np.random.default_rng(config.seed)
    network.to(device).train()
    optimiser = torch.optim.Adam(network.parameters(), lr=config.lr)
    losses = []
    for _ in progress_bar(range(config.epochs), config.epochs, description, progress):
        drawn = negatives
        if config.negatives and len(positives):
            count = min(len(negatives), round(config.negatives * len(positives)))
            drawn = rng.choice(negatives, size=count, replace=False)
        order = rng.permutation(np.concatenate([positives, drawn]))
        total, seen = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            index = np.sort(order[start:start + config.batch_size])
            if len(index) < 2:
                continue
            x = _gather(features, offsets, index)
            if config.flip:
                mirrored = rng.random(len(index)) < 0.5
                x[mirrored] = x[mirrored, :, :, ::-1]
            inputs = torch.from_numpy(x).to(device)
            target = torch.from_numpy(y[index]).to(device)
            optimiser.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(network(inputs), target)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
            seen += len(index)
        losses.append(total / max(seen, 1))
    return losses


def _gather(features: Sequence[VideoFeatures], offsets: np.ndarray,
            index: np.ndarray) -> np.ndarray:
    """The inputs at global positions `index` (sorted) as one float32 array."""
    video = np.searchsorted(offsets, index, side="right") - 1
    out = np.empty((len(index), *features[0].inputs.shape[1:]), np.float32)
    for v in np.unique(video):
        chosen = video == v
        out[chosen] = features[v].inputs[index[chosen] - offsets[v]]
    return out


def _predict(network: SoftNet, features: VideoFeatures, batch: int = 512) -> np.ndarray:
    """Every frame's score (NaN where it has none) from the video's cached inputs."""
    scores = np.full(features.n_frames, np.nan)
    device = next(network.parameters()).device
    network.eval()
    with torch.inference_mode():
        for start in range(0, len(features.inputs), batch):
            x = torch.from_numpy(features.inputs[start:start + batch].astype(np.float32))
            out = network(x.to(device)).cpu().numpy()
            scores[features.scored[start:start + batch]] = out
    return scores


def _choose_threshold(config: SoftNetConfig, rows: Sequence[Mapping[str, Any]],
                      features: Sequence[VideoFeatures], numbers: Sequence[np.ndarray],
                      scores: Sequence[np.ndarray], truth: pd.DataFrame
                      ) -> tuple[float, float, float]:
    """(p, min_score, F1): the pair of `P_GRID` x `FLOOR_GRID` whose intervals (the base
    class's steps on `scores`) give the best pooled MEGC F1 against `truth` over the training
    videos (ties: the larger p, then the larger floor, which spot fewer intervals)."""
    keys = [c for c in ("dataset", "video") if c in truth.columns and c in rows[0]]
    target = truth[[*keys, "onset", "offset"]]
    best = (-1.0, 0.0, 0.0)
    for floor in FLOOR_GRID:
        for p in P_GRID:
            candidate = replace(config, p=p, min_score=floor)
            found = []
            for row, f, n, s in zip(rows, features, numbers, scores, strict=True):
                fps = float(row["fps"])
                spotted = spot_intervals(s, f.segments, fps, candidate, candidate.k(fps))
                intervals = spotted.intervals
                if len(intervals):
                    found.append(pd.DataFrame({**{c: row[c] for c in keys},
                                               "onset": n[intervals["onset"].to_numpy()],
                                               "offset": n[intervals["offset"].to_numpy()]}))
            predicted = (pd.concat(found, ignore_index=True) if found
                         else pd.DataFrame(columns=[*keys, "onset", "offset"]))
            f1 = spotting_metrics(predicted, target)["overall"]["f1"]
            f1 = float(f1) if np.isfinite(f1) else 0.0
            best = max(best, (f1, p, floor))
    return best[1], best[2], best[0]
