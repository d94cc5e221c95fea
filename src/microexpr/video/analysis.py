"""`analyze`: a video in, a table per frame and the spotted intervals out.

The video streams through once: each frame is decoded, the face followed and aligned
(`microexpr.video.tracker`), its aligned crop prepared for the spotter and pushed into a ring
buffer of 2k + 1 frames, and the frame k frames back scored as soon as its window is full.
Only that buffer and one row of numbers per frame are kept, so memory does not grow with the
video's length beyond the tables. The spotter's threshold is relative to the whole video
(MEGC's protocol), so the intervals are picked when the stream ends.

Speed: per frame, one decode, one gray conversion, one warp of a 64-pixel crop and the
spotter's work (``mdmd``: two DIS flows on the crop, about 1.5 ms each); the face detector runs
every `TrackConfig.detect_every_s` seconds (MediaPipe: a few ms). OpenCV's own thread count is
left as it is: on the small crops one or two threads measured the same.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from microexpr.errors import ConfigError, DatasetError
from microexpr.plain import plain_data
from microexpr.preprocess.align import AlignConfig
from microexpr.video.reader import VideoInput, VideoSource, open_video
from microexpr.video.spotters import Scorer, Spotter, combine_passes, get_spotter, macro_pass
from microexpr.video.tracker import FaceTracker, TrackConfig

# Crops for spotting: 64 px gray, the face square with a tenth of its side around it, the face
# followed from frame to frame when several are seen.
VIDEO_ALIGN = AlignConfig(size=64, margin=0.1, color=False, policy="track", check_frames=0)
FRAME_COLUMNS = ("frame", "time_s", "face_found", "x", "y", "w", "h", "stretch", "segment",
                 "detected", "warning", "score", "signal")
RESULT_FILES = ("intervals.csv", "frames.csv", "timeline.png", "summary.json")
ANNOTATED = "annotated.mp4"


class RingBuffer:
    """The aligned crops and spotter items of the last `size` frames, oldest first.

    A frame without a face is held as None, so a window that holds one is not scored. `peak`
    is the most entries it ever held (never more than `size`).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ConfigError(f"a ring buffer needs a size >= 1, got {size}")
        self.size = size
        self._crops: deque[np.ndarray | None] = deque(maxlen=size)
        self._items: deque[Any] = deque(maxlen=size)
        self.peak = 0

    def __len__(self) -> int:
        return len(self._items)

    def append(self, crop: np.ndarray | None, item: Any) -> None:
        self._crops.append(crop)
        self._items.append(item)
        self.peak = max(self.peak, len(self._items))

    def clear(self) -> None:
        self._crops.clear()
        self._items.clear()

    def window(self) -> list[Any] | None:
        """The `size` items, when the buffer is full and every frame in it has a face."""
        if len(self._items) < self.size or any(item is None for item in self._items):
            return None
        return list(self._items)

    def rewarp(self, transform: np.ndarray, size: int, prepare: Callable[[np.ndarray], Any]
               ) -> None:
        """Move the held crops into a new alignment (2x3 crop -> crop transform) and prepare
        them again, so a window keeps comparing like with like across a re-alignment."""
        for i, crop in enumerate(self._crops):
            if crop is not None:
                moved = cv2.warpAffine(crop, transform, (size, size), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REPLICATE)
                self._crops[i] = moved
                self._items[i] = prepare(moved)


class _FrameRate:
    """A progress bar with frames per second (rich, on stderr), or nothing."""

    def __init__(self, enabled: bool, total: int | None, description: str) -> None:
        self.enabled = enabled
        self._bar: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]} frames/s"), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        self._bar = Progress(*columns, console=Console(stderr=True), transient=False)
        self._task = self._bar.add_task(description, total=total, rate="-")
        self._start = time.perf_counter()
        self._bar.start()

    def update(self, done: int) -> None:
        if self._bar is None or done % 10:
            return
        rate = done / max(time.perf_counter() - self._start, 1e-9)
        self._bar.update(self._task, completed=done, rate=f"{rate:.0f}")

    def close(self, done: int) -> None:
        if self._bar is None:
            return
        rate = done / max(time.perf_counter() - self._start, 1e-9)
        self._bar.update(self._task, completed=done, total=max(done, 1), rate=f"{rate:.0f}")
        self._bar.stop()


def _config(cls: type, value: Any, default: Any, what: str) -> Any:
    if value is None:
        return default
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        try:
            return replace(default, **dict(value))
        except TypeError as error:
            raise ConfigError(f"{what}: {error}; its options are "
                              f"{', '.join(asdict(default))}") from None
    raise ConfigError(f"{what} must be a {cls.__name__} or a mapping of its options, got "
                      f"{type(value).__name__}")


def video_align_config(align: AlignConfig | Mapping[str, Any] | None) -> AlignConfig:
    """The face crop settings for video analysis (`VIDEO_ALIGN` updated by `align`)."""
    config = _config(AlignConfig, align, VIDEO_ALIGN, "align")
    if config.color:
        raise ConfigError("video analysis works on gray face crops: leave align color=False")
    return config


@dataclass
class _Stream:
    """What the streaming pass produces (per-frame columns, counters, the buffer)."""

    columns: dict[str, list]  # FRAME_COLUMNS but "signal"; "segment": the run of followed face
    tracker: FaceTracker
    buffer: RingBuffer
    k: int
    shape: tuple[int, ...] | None  # of the first frame


def _stream(source: VideoSource, frames: Iterator[np.ndarray], tracker: FaceTracker,
            scorers: Mapping[str, Scorer], bar: _FrameRate) -> _Stream:
    """One pass over the frames: the face followed and aligned, and every scorer's score
    (column name -> scorer: "score", and "score_macro" for a macro pass) of each frame."""
    buffers = {name: RingBuffer(2 * scorer.k + 1) for name, scorer in scorers.items()}
    columns: dict[str, list] = {name: [] for name in FRAME_COLUMNS if name != "signal"}
    columns.update({name: [] for name in scorers})
    segment = -1
    fps = source.fps
    size = tracker.align.size
    shape = None
    for index, image in enumerate(frames):
        if shape is None:
            shape = image.shape
        step = tracker.step(index, image)
        for name, scorer in scorers.items():
            buffer = buffers[name]
            if step.restarted:
                buffer.clear()
            elif step.realigned is not None:
                buffer.rewarp(step.realigned, size, scorer.prepare)
            buffer.append(step.crop,
                          scorer.prepare(step.crop) if step.crop is not None else None)
        if step.restarted:
            segment += 1
        x, y, w, h = step.box if step.box is not None else (math.nan,) * 4
        row = {"frame": index, "time_s": index / fps, "face_found": step.found, "x": x,
               "y": y, "w": w, "h": h, "stretch": step.stretch,
               "segment": segment if step.found else -1, "detected": step.detected,
               "warning": "; ".join(step.warnings), **{name: math.nan for name in scorers}}
        for name, value in row.items():
            columns[name].append(value)
        for name, scorer in scorers.items():
            window = buffers[name].window()
            if window is not None:
                columns[name][index - scorer.k] = scorer.score(window)
        bar.update(index + 1)
    return _Stream(columns, tracker, buffers["score"], scorers["score"].k, shape)


@dataclass
class VideoAnalysis:
    """The analysis of one video.

    intervals: one row per spotted interval (onset, apex, offset frame; start_s, end_s; kind
    "micro" or "macro"; score; with a model also label and p_<class>); frames: one row per
    frame (frame, time_s, face_found, face box x / y / w / h at the latest detection, stretch
    id of the alignment in use (-1: no face), segment (the run of continuously followed face
    an interval stays in; -1: no face), detected (a detection ran), warning (what the
    tracker did, in words), score (the spotter's raw score; NaN without a face or a full
    window), signal (what the threshold applies to)); summary: source, fps, frames,
    faces_found (frames with a face), detections, stretches, intervals, threshold, seconds
    (the streaming pass: decoding, face, scores; the face models' loading left out),
    frames_per_second (frames / seconds), seconds_total (with the intervals and the
    recognition), warnings and config (also in each table's ``attrs["config"]``).
    """

    intervals: pd.DataFrame
    frames: pd.DataFrame
    summary: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return self.summary["config"]

    @property
    def fps(self) -> float:
        return float(self.summary["fps"])

    @property
    def threshold(self) -> float:
        value = self.summary["threshold"]
        return math.nan if value is None else float(value)

    def __repr__(self) -> str:
        s = self.summary
        kinds = self.intervals["kind"].value_counts() if len(self.intervals) else {}
        detail = ", ".join(f"{n} {kind}" for kind, n in dict(kinds).items())
        return (f"<VideoAnalysis {Path(s['source']).name}: {s['frames']} frames at "
                f"{s['fps']:.4g} fps, face on {s['faces_found']}, {len(self.intervals)} "
                f"interval{'s' if len(self.intervals) != 1 else ''}"
                f"{f' ({detail})' if detail else ''}>")

    def plot(self, path: str | Path | None = None):
        """The timeline: the spotter's signal, its threshold, the intervals (micro and macro
        shaded apart) and the frames without a face (grey). Returns the matplotlib Figure
        (drawn without pyplot, so no GUI back end is touched); saved as PNG to `path`."""
        from matplotlib.figure import Figure

        frames = self.frames
        time_s = frames["time_s"].to_numpy()
        fig = Figure(figsize=(10, 3.2), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(time_s, frames["signal"].to_numpy(), color="#1f5fa8", linewidth=1.0,
                label=f"{self.config['spotter']['name']} signal")
        if np.isfinite(self.threshold):
            ax.axhline(self.threshold, color="#c03030", linestyle="--", linewidth=1.0,
                       label=f"threshold {self.threshold:.3g}")
        colours = {"micro": "#f0a020", "macro": "#40a060"}
        labelled: set[str] = set()
        for row in self.intervals.itertuples(index=False):
            ax.axvspan(row.start_s, row.end_s, color=colours.get(row.kind, "#999999"),
                       alpha=0.35, label=None if row.kind in labelled else row.kind)
            labelled.add(row.kind)
        missing = ~frames["face_found"].to_numpy(dtype=bool)
        if missing.any():
            step = 1.0 / self.fps
            edges = np.flatnonzero(np.diff(np.concatenate([[0], missing.astype(int), [0]])))
            for start, stop in zip(edges[::2], edges[1::2], strict=True):
                ax.axvspan(time_s[start] - step / 2, time_s[stop - 1] + step / 2,
                           color="#888888", alpha=0.25,
                           label=None if "no face" in labelled else "no face")
                labelled.add("no face")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("motion signal")
        ax.set_xlim(0, max(float(time_s[-1]) if len(time_s) else 0.0, 1.0 / self.fps))
        ax.set_title(f"{Path(self.summary['source']).name}: {len(self.intervals)} interval(s)",
                     fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig

    def annotate(self, path: str | Path) -> Path:
        """Write a copy of the video with the face box and the spotted intervals drawn on
        it (`microexpr.video.annotate`); the source is read again."""
        from microexpr.video.annotate import write_annotated

        return write_annotated(self, path)

    def to_dir(self, out: str | Path, *, overwrite: bool = False,
               annotate: bool = False) -> Path:
        """Write intervals.csv, frames.csv, timeline.png and summary.json into folder `out`
        (created if need be), and with `annotate` annotated.mp4; ConfigError when one of them
        exists, unless `overwrite`."""
        out = check_out_dir(out, overwrite=overwrite, annotate=annotate)
        out.mkdir(parents=True, exist_ok=True)
        self.intervals.to_csv(out / "intervals.csv", index=False, lineterminator="\n")
        self.frames.to_csv(out / "frames.csv", index=False, lineterminator="\n")
        self.plot(out / "timeline.png")
        (out / "summary.json").write_text(json.dumps(plain_data(self.summary), indent=2) + "\n")
        if annotate:
            self.annotate(out / ANNOTATED)
        return out


def check_out_dir(out: str | Path, *, overwrite: bool = False, annotate: bool = False
                  ) -> Path:
    """`out` as a Path, checked before any work: ConfigError when it is a file, or holds
    result files of an earlier analysis and `overwrite` is False."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder: choose another output folder")
    names = (*RESULT_FILES, ANNOTATED) if annotate else RESULT_FILES
    existing = [name for name in names if (out / name).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds {', '.join(existing)}; choose a new folder "
                          f"or pass overwrite=True (--overwrite)")
    return out


def analyze(video: VideoInput | VideoSource, model: Any = None, *,
            spotter: str | Spotter = "default", macro_spotter: str | Spotter | None = None,
            fps: float | None = None,
            align: AlignConfig | Mapping[str, Any] | None = None,
            track: TrackConfig | Mapping[str, Any] | None = None,
            representation: Mapping[str, Any] | None = None, device: str | None = None,
            progress: bool = False) -> VideoAnalysis:
    """Follow the face through a video, score its motion and spot micro-expressions.

    video: a video file OpenCV reads, a folder of frames (natural order) or an iterable of
    uint8 RGB frames; fps: the frame rate (default: the video's header; 30 for frames); model:
    a classifier saved by ``.save()`` (its path, or a loaded one) that recognises each spotted
    interval (see `microexpr.video.recognise`; `representation` sets options of the model's
    representation as at training, `device` where it runs); spotter: "default" / "mdmd",
    "lbp", "motion", "softnet" (fitted) or a `Spotter` instance; macro_spotter: a second,
    macro-expression pass in the same stream ("default": mdmd over 0.9 s; None: none) whose
    intervals are macro, the micro pass's lying mostly inside one dropped (frames gain
    score_macro and signal_macro); align: face crop options (`VIDEO_ALIGN`'s fields: backend,
    size, margin, policy); track: `TrackConfig` options; progress: a progress bar with frames
    per second on stderr.

    Frames without a face are reported (face_found False, score NaN) and no interval spans
    them; a video without any face gives no interval and no error.
    """
    source = open_video(video, fps)
    chosen = get_spotter(spotter)
    macro = macro_pass(macro_spotter)
    align_config = video_align_config(align)
    track_config = _config(TrackConfig, track, TrackConfig(), "track")
    recogniser = None
    if model is not None:
        from microexpr.video.recognise import load_recogniser

        recogniser = load_recogniser(model, source, device, representation)
    elif representation is not None:
        raise ConfigError("representation options are for recognising the intervals with a "
                          "model: pass model= too")
    tracker = FaceTracker(align_config, track_config, source.fps)  # loads the face models
    started = time.perf_counter()
    scorers = {"score": chosen.scorer(source.fps, align_config)}
    if macro is not None:
        scorers["score_macro"] = macro.scorer(source.fps, align_config)
    name = Path(source.info.source).name
    bar = _FrameRate(progress, source.info.frame_count, f"analysing {name}")
    stream = None
    try:
        stream = _stream(source, source.frames(), tracker, scorers, bar)
    finally:
        bar.close(len(stream.columns["frame"]) if stream is not None else 0)
    seconds_stream = time.perf_counter() - started
    if stream.shape is None:
        what = ("no frame was given" if source.info.kind == "frames" else
                f"{source.info.source}: no frame could be decoded; check the file with "
                f"`ffprobe`, or convert it (`ffmpeg -i IN -c:v libx264 out.mp4`)")
        raise DatasetError(what)
    segments = np.asarray(stream.columns["segment"], dtype=np.int64)
    spotting = chosen.spot(np.asarray(stream.columns["score"], dtype=np.float64), segments,
                           source.fps)
    frames = pd.DataFrame(stream.columns)
    frames["signal"] = spotting.signal
    intervals = spotting.intervals
    macro_threshold = None
    if macro is not None:  # one table: the macro intervals and the micro ones outside them
        macro_spotting = macro.spot(np.asarray(stream.columns["score_macro"],
                                               dtype=np.float64), segments, source.fps)
        frames["signal_macro"] = macro_spotting.signal
        macro_threshold = macro_spotting.threshold
        intervals = combine_passes(intervals, macro_spotting.intervals)
    frames = frames.astype({"frame": "int64", "face_found": bool, "stretch": "int64",
                            "segment": "int64", "detected": bool})
    count = len(frames)
    config = {
        "spotter": chosen.describe(),
        "macro_spotter": None if macro is None else macro.describe(),
        "k": stream.k,
        "align": {**asdict(align_config), "backend": tracker.backend.name},
        "track": asdict(track_config),
        "fps": source.fps,
        "fps_source": source.info.fps_source,
        "model": None,
    }
    warnings = []
    expected = source.info.frame_count
    if source.info.kind == "video" and expected and count < 0.95 * expected - 1:
        warnings.append(f"the header of {source.info.source} says {expected} frames but "
                        f"{count} were decoded (damaged or cut file?)")
    found = int(frames["face_found"].sum())
    if found == 0:
        warnings.append("no face was found in any frame")
    summary: dict[str, Any] = {
        "source": source.info.source,
        "kind": source.info.kind,
        "fps": source.fps,
        "frames": count,
        "frames_in_header": expected if source.info.kind == "video" else None,
        "width": int(stream.shape[1]),
        "height": int(stream.shape[0]),
        "faces_found": found,
        "detections": tracker.detections,
        "stretches": tracker.stretches,
        "buffer_frames": stream.buffer.size,
        "intervals": len(intervals),
        "micro": int((intervals["kind"] == "micro").sum()),
        "macro": int((intervals["kind"] == "macro").sum()),
        "threshold": spotting.threshold,
        "macro_threshold": macro_threshold,
        "seconds": seconds_stream,
        "frames_per_second": count / max(seconds_stream, 1e-9),
        "warnings": warnings,
        "config": config,
    }
    analysis = VideoAnalysis(intervals, frames, summary)
    if recogniser is not None:
        from microexpr.video.recognise import recognise_intervals

        analysis = recognise_intervals(analysis, recogniser)
    summary["seconds_total"] = time.perf_counter() - started
    for table in (analysis.intervals, analysis.frames):
        table.attrs["config"] = config
        table.attrs["fps"] = source.fps
        table.attrs["threshold"] = spotting.threshold
    return analysis

