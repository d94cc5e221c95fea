"""Spotters: a motion score per frame of the aligned face, and the intervals it picks out.

A spotter is a small object with a config. `scorer(fps, align)` gives the per-video scorer
that runs while the video streams: `prepare(crop)` turns each aligned gray face crop into what
the score needs (kept in a ring buffer of 2k + 1 frames), and `score(window)` scores the
middle frame t of a window holding frames t - k .. t + k. `spot(scores, segments, fps)` turns
the scores of a whole video into intervals. A learned spotter is one more subclass with its
own config: `analyze(..., spotter=MySpotter(...))` takes any instance.

The window half-width k is half a typical micro-expression: ``k = round(half_duration_s *
fps)`` with ``half_duration_s = 0.2`` (micro-expressions last about 0.2-0.5 s: CAS(ME)^2's
are 7-16 frames at 30 fps): 6 frames at 30 fps, 40 at 200 fps. A macro-expression pass uses a
longer one (CAS(ME)^2's MEGC baseline used 39 frames at 30 fps: ``half_duration_s=1.3``).

From scores to intervals (training-free, as the MEGC baselines):

1. smoothing: a moving average over ``smooth_s`` seconds (frames without a score left out);
2. contrast: ``c(t) = s(t) - (s(t - k) + s(t + k)) / 2``, clipped at 0, so a slow drift of
   the whole score does not count, only a rise and fall within about 2k frames;
3. threshold: ``mean(c) + p (max(c) - mean(c))`` over the video (MEGC's relative threshold),
   and at least ``min_score``, an absolute floor in the score's unit, so that a video where
   nothing happens gives no interval instead of its largest noise;
4. peaks above the threshold at least k frames apart; each peak becomes [peak - k, peak + k],
   widened to the run of frames around it where c stays above the threshold, and clipped to
   the frames where the same face is followed (no interval spans a frame without a face);
   a peak whose interval overlaps the previous one joins it (one interval per motion, its
   apex at the higher peak);
5. an interval is "micro" when it lasts at most ``micro_max_s`` = 0.5 s, else "macro".

Spotters:

- ``mdmd`` (default): main directional maximal difference (Wang et al. 2017, the MEGC 2020
  baseline). DIS optical flow from t - k to t and from t - k to t + k on the aligned crop;
  head motion removed (the median flow of the face, or an affine fit, subtracted); the eye
  regions masked (blinks); per block of a grid x grid grid, the main direction is the
  quadrant holding most flow magnitude of the t - k -> t flow, and the block's value is the
  mean magnitude of that flow's vectors in it minus the mean magnitude of the t - k -> t + k
  flow at the same pixels (large when t differs from both ends: a brief motion that
  returns); the score is the mean of the top third of blocks, in percent of the inter-ocular
  distance (so it does not depend on the crop size).
- ``lbp``: LBP chi-square feature difference (MEGC 2019 baseline): uniform LBP (8 points,
  radius 3) histograms per block; the chi-square distance of frame t's histogram to the mean
  of frames t - k and t + k; the mean of the top third of blocks. Eye blocks are masked too.
- ``motion``: a plain motion threshold, the naive peer: the mean absolute gray-level change of
  the whole face crop from t - k to t (no flow, no head-motion removal, no eye mask).
- ``softnet``: a learned spotter, SOFTNet's shallow CNN on optical flow and strain, fitted on
  training videos (`microexpr.video.learned_spotter`).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar, Protocol

import cv2
import numpy as np
import pandas as pd
from scipy.signal import find_peaks

from microexpr.errors import ConfigError
from microexpr.preprocess.align import AlignConfig, canonical_eyes

INTERVAL_COLUMNS = ("onset", "apex", "offset", "start_s", "end_s", "kind", "score")
# OpenCV's DIS presets, and "fine": the medium preset down to the crop's full resolution (its
# finest scale 0 instead of 1), which tells a local motion of a fraction of a pixel from the
# errors a head movement leaves about three times better, for about twice the time
DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
               "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
               "fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
HEAD_MOTION = ("median", "affine", "none")
# the masked box around each canonical eye centre, in inter-ocular distances (half sizes)
EYE_HALF_WIDTH, EYE_HALF_HEIGHT = 0.3, 0.22


@dataclass(frozen=True)
class SpotConfig:
    """What every spotter shares: the window and the steps from scores to intervals.

    half_duration_s: k = round(half_duration_s * fps) frames (at least 2); p: the relative
    threshold (0..1, see the module notes); min_score: the threshold's absolute floor, in
    the score's unit; smooth_s: the moving-average width in seconds (0: none); contrast:
    subtract the mean score k frames before and after; micro_max_s: the longest interval
    called "micro".
    """

    half_duration_s: float = 0.2
    p: float = 0.5
    min_score: float = 0.0
    smooth_s: float = 0.1
    contrast: bool = True
    micro_max_s: float = 0.5

    def __post_init__(self) -> None:
        if not 0.01 <= self.half_duration_s <= 10.0:
            raise ConfigError(f"half_duration_s must be within 0.01..10 seconds, got "
                              f"{self.half_duration_s!r}")
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"p (the relative threshold) must be within 0..1, got {self.p!r}")
        if not self.min_score >= 0.0:
            raise ConfigError(f"min_score must be >= 0, got {self.min_score!r}")
        if not 0.0 <= self.smooth_s <= 10.0:
            raise ConfigError(f"smooth_s must be within 0..10 seconds, got {self.smooth_s!r}")
        if not self.micro_max_s > 0.0:
            raise ConfigError(f"micro_max_s must be > 0 seconds, got {self.micro_max_s!r}")

    def k(self, fps: float) -> int:
        """The window half-width in frames at `fps`."""
        return max(2, round(self.half_duration_s * fps))


@dataclass(frozen=True)
class MDMDConfig(SpotConfig):
    """The ``mdmd`` spotter: SpotConfig, plus grid (blocks per side), top_fraction (of blocks
    averaged), mask_eyes, head_motion ("median", "affine" or "none") and preset (the DIS
    flow preset: "fine" (default), "medium", "fast", "ultrafast"). Scores are in percent of
    the inter-ocular distance (IOD), whatever the crop size. min_score 0.3, as measured: on
    the still faces of the real test videos the signal's 90th percentile is about 0.2; a
    whole-picture translation of 5% of the IOD there and back leaves about 0.2; a mouth
    movement of 4% of the IOD gives about 0.6, and the synthetic long videos' micro-expressions
    (2 px on a 128-px face) 0.15-0.45."""

    min_score: float = 0.3
    grid: int = 6
    top_fraction: float = 1 / 3
    mask_eyes: bool = True
    head_motion: str = "median"
    preset: str = "fine"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_grid(self.grid, self.top_fraction)
        check_flow_options(self.head_motion, self.preset)


@dataclass(frozen=True)
class LBPConfig(SpotConfig):
    """The ``lbp`` spotter: SpotConfig, plus grid, top_fraction, mask_eyes, radius and points
    of the LBP codes (uniform patterns: points * (points - 1) + 3 histogram bins). Scores are
    chi-square distances between block histograms that sum to 1; min_score 0.02 only keeps a
    perfectly still video quiet: camera noise on the still faces of the real test videos
    already gives signals up to about 0.13, so the relative threshold p does the choosing."""

    min_score: float = 0.02
    grid: int = 6
    top_fraction: float = 1 / 3
    mask_eyes: bool = True
    radius: int = 3
    points: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_grid(self.grid, self.top_fraction)
        if not isinstance(self.radius, int) or not 1 <= self.radius <= 8:
            raise ConfigError(f"LBP radius must be an integer within 1..8, got {self.radius!r}")
        if self.points not in (4, 8, 16):
            raise ConfigError(f"LBP points must be 4, 8 or 16, got {self.points!r}")


def check_flow_options(head_motion: str, preset: str) -> None:
    """ConfigError for an unknown head-motion removal or DIS preset (`HeadMotionFlow`)."""
    if head_motion not in HEAD_MOTION:
        raise ConfigError(f"unknown head_motion {head_motion!r}; choose one of {HEAD_MOTION}")
    if preset not in DIS_PRESETS:
        raise ConfigError(f"unknown DIS preset {preset!r}; choose one of "
                          f"{tuple(DIS_PRESETS)}")


def _check_grid(grid: int, top_fraction: float) -> None:
    if not isinstance(grid, int) or not 1 <= grid <= 16:
        raise ConfigError(f"grid must be an integer within 1..16 blocks per side, got {grid!r}")
    if not 0.0 < top_fraction <= 1.0:
        raise ConfigError(f"top_fraction must be within (0, 1], got {top_fraction!r}")


class Scorer(Protocol):
    """The per-video part of a spotter (see the module notes)."""

    k: int

    def prepare(self, crop: np.ndarray) -> Any: ...

    def score(self, window: Sequence[Any]) -> float: ...


@dataclass
class Spotting:
    """A spotter's answer for one video: the intervals, the signal the threshold applies to
    (smoothed, contrasted; NaN where there is no score) and the threshold (NaN when no frame
    has a score)."""

    intervals: pd.DataFrame
    signal: np.ndarray
    threshold: float


class Spotter(ABC):
    """A spotter: a name, a config, a per-video scorer and the step from scores to intervals.

    Build one by name with `get_spotter`, or directly (``MDMDSpotter(p=0.3)``,
    ``LBPSpotter(LBPConfig(grid=8))``). Options unknown to its config are refused.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_class: ClassVar[type[SpotConfig]] = SpotConfig

    def __init__(self, config: SpotConfig | Mapping[str, Any] | None = None,
                 **options: Any) -> None:
        self.config = make_spot_config(self.config_class, config, options, self.name)

    def window(self, fps: float) -> int:
        """k: frames on each side of the scored frame."""
        return self.config.k(fps)

    @abstractmethod
    def scorer(self, fps: float, align: AlignConfig) -> Scorer:
        """A fresh scorer for one video at `fps` whose crops follow `align`."""

    def spot(self, scores: np.ndarray, segments: np.ndarray, fps: float) -> Spotting:
        """Intervals from the per-frame scores of a video (see the module notes).

        `segments` gives each frame's run of continuously followed face (-1: no face); an
        interval never leaves the run of its peak.
        """
        return spot_intervals(np.asarray(scores, dtype=np.float64), np.asarray(segments),
                              fps, self.config, self.window(fps))

    def describe(self) -> dict[str, Any]:
        """The spotter as plain data: its name and config (saved with the results)."""
        return {"name": self.name, **asdict(self.config)}

    def __repr__(self) -> str:
        changed = {f.name: getattr(self.config, f.name) for f in fields(self.config)
                   if getattr(self.config, f.name) != f.default}
        options = ", ".join(f"{key}={value!r}" for key, value in changed.items())
        return f"{type(self).__name__}({options})"


def make_spot_config(cls: type[SpotConfig], config: SpotConfig | Mapping[str, Any] | None,
                     options: Mapping[str, Any], name: str) -> SpotConfig:
    """A `cls` config from a config, a mapping and/or keyword options (ConfigError naming an
    unknown option and the known ones)."""
    if isinstance(config, SpotConfig) and not isinstance(config, cls):
        raise ConfigError(f"spotter {name!r} takes a {cls.__name__}, got a "
                          f"{type(config).__name__}")
    base = {} if config is None or isinstance(config, SpotConfig) else dict(config)
    values = {**base, **options}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"spotter {name!r} has no option {unknown[0]!r}; its options are "
                          f"{', '.join(sorted(known))}")
    if isinstance(config, SpotConfig):
        return replace(config, **values)
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"spotter {name!r}: {error}") from None


# --------------------------------------------------------------------- scores -> intervals
def _moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over `width` frames, NaN frames left out (and kept NaN)."""
    valid = np.isfinite(values)
    if width <= 1:
        return np.where(valid, values, np.nan)
    kernel = np.ones(width)
    sums = np.convolve(np.where(valid, values, 0.0), kernel, mode="same")
    counts = np.convolve(valid.astype(np.float64), kernel, mode="same")
    return np.where(valid, sums / np.maximum(counts, 1.0), np.nan)


def _shifted(values: np.ndarray, by: int) -> np.ndarray:
    """values[t - by] at t (NaN where that is outside)."""
    out = np.full_like(values, np.nan)
    if by > 0:
        out[by:] = values[:-by]
    else:
        out[:by] = values[-by:]
    return out


def _contrast(values: np.ndarray, k: int) -> np.ndarray:
    """s(t) minus the mean of s(t - k) and s(t + k) (the one there is), clipped at 0."""
    sides = np.stack([_shifted(values, k), _shifted(values, -k)])
    valid = np.isfinite(sides)
    counts = valid.sum(0)
    mean = np.where(counts > 0, np.where(valid, sides, 0.0).sum(0) / np.maximum(counts, 1),
                    np.nan)
    return np.maximum(values - mean, 0.0)


def _run(mask: np.ndarray, at: int) -> tuple[int, int]:
    """First and last index of the run of True in `mask` that holds `at`."""
    low = at
    while low > 0 and mask[low - 1]:
        low -= 1
    high = at
    while high < len(mask) - 1 and mask[high + 1]:
        high += 1
    return low, high


def empty_intervals() -> pd.DataFrame:
    """An intervals table with no row (the columns and dtypes of a full one)."""
    return pd.DataFrame({"onset": pd.Series(dtype="int64"), "apex": pd.Series(dtype="int64"),
                         "offset": pd.Series(dtype="int64"),
                         "start_s": pd.Series(dtype="float64"),
                         "end_s": pd.Series(dtype="float64"),
                         "kind": pd.Series(dtype="object"),
                         "score": pd.Series(dtype="float64")})


def spot_intervals(scores: np.ndarray, segments: np.ndarray, fps: float, config: SpotConfig,
                   k: int) -> Spotting:
    """The intervals of one video from its per-frame scores (see the module notes)."""
    if scores.shape != segments.shape or scores.ndim != 1:
        raise ConfigError(f"scores and segments must be two 1-D arrays of one length, got "
                          f"{scores.shape} and {segments.shape}")
    width = max(1, round(config.smooth_s * fps))
    signal = _moving_average(scores, width | 1)  # odd, so it stays centred
    if config.contrast:
        signal = _contrast(signal, k)
    finite = np.isfinite(signal)
    if not finite.any():
        return Spotting(empty_intervals(), signal, float("nan"))
    mean, top = float(signal[finite].mean()), float(signal[finite].max())
    threshold = max(mean + config.p * (top - mean), config.min_score)
    height = max(threshold, 1e-12)  # a flat zero signal has no peak
    peaks, _ = find_peaks(np.where(finite, signal, -1.0), height=height, distance=k)
    rows = []
    above = finite & (signal >= height)
    for peak in peaks:
        if segments[peak] < 0:
            continue
        low, high = max(peak - k, 0), min(peak + k, len(signal) - 1)
        run_low, run_high = _run(above, int(peak))
        low, high = min(low, run_low), max(high, run_high)
        seg_low, seg_high = _run(segments == segments[peak], int(peak))
        low, high = max(low, seg_low), min(high, seg_high)
        previous = rows[-1] if rows else None
        if previous is not None and low <= previous["offset"]:
            # another peak of the same above-threshold run: one interval, apex at the higher
            if signal[peak] > previous["score"]:
                previous.update(apex=int(peak), score=float(signal[peak]))
            previous["offset"] = max(previous["offset"], high)
            continue
        rows.append({"onset": low, "apex": int(peak), "offset": high,
                     "score": float(signal[peak])})
    for row in rows:
        duration = (row["offset"] - row["onset"] + 1) / fps
        row.update(start_s=row["onset"] / fps, end_s=row["offset"] / fps,
                   kind="micro" if duration <= config.micro_max_s + 1e-9 else "macro")
    intervals = pd.DataFrame(rows, columns=list(INTERVAL_COLUMNS)) if rows else empty_intervals()
    return Spotting(intervals.astype({"onset": "int64", "apex": "int64", "offset": "int64"}),
                    signal, threshold)


# ---------------------------------------------------------------------------- geometry
def face_mask(align: AlignConfig, mask_eyes: bool) -> np.ndarray:
    """size x size bool mask of the crop pixels a spotter uses: all but the eye boxes."""
    mask = np.ones((align.size, align.size), dtype=bool)
    if not mask_eyes:
        return mask
    eyes = canonical_eyes(align)
    iod = float(eyes[1, 0] - eyes[0, 0])
    for x, y in eyes:
        x0, x1 = round(x - EYE_HALF_WIDTH * iod), round(x + EYE_HALF_WIDTH * iod) + 1
        y0, y1 = round(y - EYE_HALF_HEIGHT * iod), round(y + EYE_HALF_HEIGHT * iod) + 1
        mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = False
    return mask


class _Blocks:
    """A grid x grid split of a size x size crop (the centre grid * (size // grid) pixels),
    turning an image into (blocks, pixels per block) for vectorised per-block statistics."""

    def __init__(self, size: int, grid: int, mask: np.ndarray) -> None:
        side = size // grid
        if side < 2:
            raise ConfigError(f"a {size}-pixel crop cannot hold a {grid} x {grid} grid; use a "
                              f"larger crop (align size) or a smaller grid")
        used = side * grid
        start = (size - used) // 2
        self.grid, self.side = grid, side
        self.cut = slice(start, start + used)
        self.mask = self.split(mask)

    def split(self, image: np.ndarray) -> np.ndarray:
        part = image[self.cut, self.cut]
        g, s = self.grid, self.side
        blocks = part.reshape(g, s, g, s, *part.shape[2:]).swapaxes(1, 2)
        return blocks.reshape(g * g, s * s, *part.shape[2:])


def _top_mean(values: np.ndarray, fraction: float) -> float:
    count = max(1, round(len(values) * fraction))
    return float(np.partition(values, len(values) - count)[-count:].mean())


# ---------------------------------------------------------------------------- mdmd
class HeadMotionFlow:
    """DIS optical flow between two aligned crops, less the head's motion (the median flow,
    or a least-squares affine fit, over the unmasked face; "none": as computed). Shared by
    the spotters that read flow, so they see one motion."""

    def __init__(self, align: AlignConfig, *, head_motion: str = "median",
                 preset: str = "fine", mask_eyes: bool = True) -> None:
        check_flow_options(head_motion, preset)
        self.head_motion = head_motion
        self.flow = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        if preset == "fine":
            self.flow.setFinestScale(0)
        self.mask = face_mask(align, mask_eyes)
        if head_motion == "affine":
            ys, xs = np.nonzero(self.mask)
            design = np.stack([np.ones_like(xs), xs, ys], axis=1).astype(np.float64)
            self.fit = np.linalg.pinv(design)  # 3 x pixels: least-squares affine motion
            grid_y, grid_x = np.mgrid[0:align.size, 0:align.size].astype(np.float32)
            self.full = np.stack([np.ones_like(grid_x), grid_x, grid_y], axis=-1)

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """H x W x 2 flow from `first` to `second`, the head's motion removed."""
        flow = self.flow.calc(first, second, None)
        if self.head_motion == "median":
            return flow - np.median(flow[self.mask], axis=0)
        if self.head_motion == "affine":
            params = (self.fit @ flow[self.mask].astype(np.float64)).astype(np.float32)
            return flow - self.full @ params
        return flow


class _MDMDScorer:
    def __init__(self, config: MDMDConfig, fps: float, align: AlignConfig) -> None:
        self.config = config
        self.k = config.k(fps)
        self.motion = HeadMotionFlow(align, head_motion=config.head_motion,
                                     preset=config.preset, mask_eyes=config.mask_eyes)
        eyes = canonical_eyes(align)
        self.per_iod = 100.0 / float(eyes[1, 0] - eyes[0, 0])  # crop pixels -> % of the IOD
        self.blocks = _Blocks(align.size, config.grid, self.motion.mask)

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        return crop

    def score(self, window: Sequence[np.ndarray]) -> float:
        head, centre, tail = window[0], window[self.k], window[-1]
        first, second = self.motion(head, centre), self.motion(head, tail)
        blocks = self.blocks
        u, v = blocks.split(first[..., 0]), blocks.split(first[..., 1])
        size_first = np.hypot(u, v) * blocks.mask
        size_second = np.hypot(*(blocks.split(second[..., i]) for i in (0, 1)))
        quadrant = (u < 0).astype(np.int8) + 2 * (v < 0).astype(np.int8)
        per_quadrant = np.stack([(size_first * (quadrant == q)).sum(1) for q in range(4)])
        main = per_quadrant.argmax(0)
        chosen = (quadrant == main[:, None]) & blocks.mask
        count = np.maximum(chosen.sum(1), 1)
        difference = ((size_first * chosen).sum(1) - (size_second * chosen).sum(1)) / count
        return self.per_iod * _top_mean(np.maximum(difference, 0.0), self.config.top_fraction)


class MDMDSpotter(Spotter):
    """Main directional maximal difference of optical flow (see the module notes)."""

    name = "mdmd"
    description = ("main directional maximal difference of DIS optical flow (MEGC 2020 "
                   "baseline), head motion subtracted, eyes masked")
    config_class = MDMDConfig

    def scorer(self, fps: float, align: AlignConfig) -> Scorer:
        return _MDMDScorer(self.config, fps, align)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- lbp
class _LBPScorer:
    def __init__(self, config: LBPConfig, fps: float, align: AlignConfig) -> None:
        self.config = config
        self.k = config.k(fps)
        self.bins = config.points * (config.points - 1) + 3
        self.blocks = _Blocks(align.size, config.grid, face_mask(align, config.mask_eyes))
        n_blocks = config.grid ** 2
        index = np.repeat(np.arange(n_blocks)[:, None], self.blocks.side ** 2, axis=1)
        self.offsets = (index * self.bins)[self.blocks.mask]
        totals = np.bincount(index[self.blocks.mask], minlength=n_blocks).astype(np.float32)
        self.used = totals > 0
        self.totals = np.maximum(totals, 1.0)[:, None]
        from skimage.feature import local_binary_pattern  # imported when the spotter is used

        self.lbp = local_binary_pattern

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        codes = self.lbp(crop, self.config.points, self.config.radius,
                         method="nri_uniform").astype(np.int64)
        chosen = self.blocks.split(codes)[self.blocks.mask]
        counts = np.bincount(self.offsets + chosen, minlength=len(self.used) * self.bins)
        return counts.reshape(len(self.used), self.bins).astype(np.float32) / self.totals

    def score(self, window: Sequence[np.ndarray]) -> float:
        reference = (window[0] + window[-1]) / 2.0
        centre = window[self.k]
        total = centre + reference
        chi = np.where(total > 0, (centre - reference) ** 2 / np.maximum(total, 1e-12), 0.0)
        return _top_mean(chi.sum(1)[self.used], self.config.top_fraction)


class LBPSpotter(Spotter):
    """LBP chi-square feature difference (see the module notes)."""

    name = "lbp"
    description = ("chi-square distance of uniform LBP block histograms to the mean of the "
                   "window's ends (MEGC 2019 baseline)")
    config_class = LBPConfig

    def scorer(self, fps: float, align: AlignConfig) -> Scorer:
        return _LBPScorer(self.config, fps, align)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- motion
@dataclass(frozen=True)
class MotionConfig(SpotConfig):
    """The ``motion`` spotter: SpotConfig only. Scores are the mean absolute gray-level
    difference (0-255) between the aligned crops at t and t - k over the whole face."""

    min_score: float = 0.5


class _MotionScorer:
    def __init__(self, config: MotionConfig, fps: float, align: AlignConfig) -> None:
        self.k = config.k(fps)

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        return crop.astype(np.float32)

    def score(self, window: Sequence[np.ndarray]) -> float:
        return float(np.abs(window[self.k] - window[0]).mean())


class MotionSpotter(Spotter):
    """A plain motion threshold: how much the face crop changed over the last k frames, with
    no flow, no head-motion removal and no eye mask. The naive peer the other spotters are
    measured against (blinks, talking and head turns all count as motion here)."""

    name = "motion"
    description = ("plain motion threshold: mean absolute frame difference of the face crop "
                   "over k frames (the naive baseline)")
    config_class = MotionConfig

    def scorer(self, fps: float, align: AlignConfig) -> Scorer:
        return _MotionScorer(self.config, fps, align)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- two passes
#: The macro-expression pass's window: k = 0.9 s on each side (macro-expressions last about
#: 0.5-4 s; 0.9 s spotted the synthetic long videos' best among 0.6, 0.9 and 1.3 s).
MACRO_HALF_DURATION_S = 0.9


def without_overlap(micro: pd.DataFrame, macro: pd.DataFrame, fraction: float = 0.5
                    ) -> pd.DataFrame:
    """The intervals of `micro` of which at most `fraction` lies inside an interval of
    `macro` (of the same video, when the tables have a `video` column): a brief motion inside
    a macro-expression is part of it."""
    if micro.empty or macro.empty:
        return micro
    keyed = "video" in micro.columns and "video" in macro.columns
    groups = ({video: group for video, group in macro.groupby("video")} if keyed
              else {None: macro})
    keep = np.ones(len(micro), dtype=bool)
    for i, row in enumerate(micro.itertuples(index=False)):
        other = groups.get(row.video if keyed else None)
        if other is None:
            continue
        inside = (np.minimum(other["offset"].to_numpy(), row.offset)
                  - np.maximum(other["onset"].to_numpy(), row.onset) + 1).clip(min=0)
        keep[i] = not (inside > fraction * (row.offset - row.onset + 1)).any()
    return micro[keep].reset_index(drop=True)


def macro_pass(spotter: str | Spotter | None) -> Spotter | None:
    """The spotter of a macro-expression pass: "default" is ``mdmd`` with a window of
    MACRO_HALF_DURATION_S on each side; None: no macro pass. A training-free one only."""
    if spotter is None:
        return None
    if isinstance(spotter, str) and spotter == "default":
        return MDMDSpotter(half_duration_s=MACRO_HALF_DURATION_S)
    chosen = get_spotter(spotter)
    if callable(getattr(chosen, "fit", None)):
        raise ConfigError("the macro pass takes a training-free spotter (mdmd, lbp or "
                          "motion): a learned spotter spots micro-expressions")
    return chosen


def combine_passes(micro: pd.DataFrame, macro: pd.DataFrame) -> pd.DataFrame:
    """One table of intervals from a micro and a macro pass: the macro pass's intervals (all
    called macro) and the micro pass's that do not lie mostly inside one, in time order."""
    macro = macro.assign(kind="macro")
    parts = [t for t in (without_overlap(micro, macro), macro) if len(t)]
    if not parts:
        return micro
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["onset", "offset"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------- registry
SPOTTERS: dict[str, type[Spotter]] = {"mdmd": MDMDSpotter, "lbp": LBPSpotter,
                                      "motion": MotionSpotter}
# Spotters whose module imports this one (a learned spotter trains through `analyze`): name ->
# (module, class), imported when first asked for.
LEARNED_SPOTTERS: dict[str, tuple[str, str]] = {
    "softnet": ("microexpr.video.learned_spotter", "SoftNetSpotter")}
DEFAULT_SPOTTER = "mdmd"


def _spotter_class(name: str) -> type[Spotter]:
    if name in SPOTTERS:
        return SPOTTERS[name]
    module, cls = LEARNED_SPOTTERS[name]
    return getattr(importlib.import_module(module), cls)


def get_spotter(spotter: str | Spotter = "default", **options: Any) -> Spotter:
    """The spotter `spotter` names ("default" is ``mdmd``), built with `options`; an
    instance is returned as it is (then `options` must be empty)."""
    if isinstance(spotter, Spotter):
        if options:
            raise ConfigError("spotter options go to the spotter's constructor when an "
                              "instance is given")
        return spotter
    names = ["default", *SPOTTERS, *LEARNED_SPOTTERS]
    if not isinstance(spotter, str):
        raise ConfigError(f"spotter must be a name ({', '.join(names)}) or a "
                          f"Spotter instance, got {type(spotter).__name__}")
    name = DEFAULT_SPOTTER if spotter == "default" else spotter.strip().lower()
    if name not in SPOTTERS and name not in LEARNED_SPOTTERS:
        raise ConfigError(f"unknown spotter {spotter!r}; choose one of {', '.join(names)}")
    return _spotter_class(name)(**options)


def list_spotters() -> pd.DataFrame:
    """The spotters `get_spotter` builds: name, description and default options."""
    rows = []
    for name in (*SPOTTERS, *LEARNED_SPOTTERS):
        cls = _spotter_class(name)
        config = cls.config_class()
        rows.append({"name": name, "default": name == DEFAULT_SPOTTER,
                     "description": cls.description, "options": asdict(config)})
    return pd.DataFrame(rows)
