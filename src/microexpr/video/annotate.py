"""An annotated copy of an analysed video: the face box, the time, and the spotted intervals.

The source is streamed again and each frame written with OpenCV's MPEG-4 encoder (``mp4v``,
which every OpenCV build has), at the analysis' frame rate: a green box where the face was
followed (grey text "no face" where it was not), and during a spotted interval an orange
(micro) or green (macro) border with the kind, the score and, with a model, the label.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from microexpr.errors import ConfigError, DatasetError
from microexpr.video.reader import open_video

KIND_COLOURS = {"micro": (255, 160, 0), "macro": (60, 200, 90)}  # RGB


def _labels_per_frame(intervals: Any, count: int) -> list[list[tuple[str, tuple]]]:
    """For each frame, the (text, colour) of the intervals that hold it."""
    per_frame: list[list[tuple[str, tuple]]] = [[] for _ in range(count)]
    for row in intervals.to_dict("records"):
        text = f"{row['kind']} {row['score']:.2f}"
        if row.get("label"):
            text += f" {row['label']}"
        colour = KIND_COLOURS.get(row["kind"], (200, 200, 200))
        for frame in range(int(row["onset"]), min(int(row["offset"]), count - 1) + 1):
            per_frame[frame].append((text, colour))
    return per_frame


def write_annotated(analysis: Any, path: str | Path) -> Path:
    """Write the annotated copy of `analysis`' video to `path` (.mp4 or .avi) and return it."""
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".avi"):
        raise ConfigError(f"annotated video {path}: use a .mp4 or .avi name")
    source = open_video(analysis.summary["source"], analysis.fps)
    if not source.rereadable:
        raise ConfigError("an annotated copy reads the video again: pass a video file or a "
                          "frame folder (frames given as arrays are read once)")
    frames = analysis.frames
    boxes = frames[["x", "y", "w", "h"]].to_numpy(dtype=np.float64)
    found = frames["face_found"].to_numpy(dtype=bool)
    labels = _labels_per_frame(analysis.intervals, len(frames))
    writer = None
    stream = source.frames()
    try:
        for index, image in enumerate(stream):
            if index >= len(frames):
                break
            canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            if writer is None:
                height, width = canvas.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4"
                                                  else "MJPG"))
                writer = cv2.VideoWriter(str(path), fourcc, analysis.fps, (width, height))
                if not writer.isOpened():
                    raise DatasetError(f"cannot write video {path}: OpenCV's encoder refused "
                                       f"it (check the folder, or use a .avi name)")
            _draw(canvas, index, index / analysis.fps, found[index], boxes[index],
                  labels[index])
            writer.write(canvas)
    finally:
        stream.close()
        if writer is not None:
            writer.release()
    return path


def _bgr(rgb: tuple) -> tuple:
    return rgb[2], rgb[1], rgb[0]


def _draw(canvas: np.ndarray, index: int, time_s: float, found: bool, box: np.ndarray,
          labels: list[tuple[str, tuple]]) -> None:
    height, width = canvas.shape[:2]
    scale = max(0.4, min(width, height) / 900)
    thick = max(1, round(scale * 2))
    if found and all(math.isfinite(v) for v in box):
        x, y, w, h = (round(v) for v in box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (80, 220, 80), thick)
    elif not found:
        cv2.putText(canvas, "no face", (10, round(60 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (170, 170, 170), thick, cv2.LINE_AA)
    cv2.putText(canvas, f"{index}  {time_s:.2f} s", (10, round(30 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    for i, (text, colour) in enumerate(labels):
        if i == 0:
            cv2.rectangle(canvas, (0, 0), (width - 1, height - 1), _bgr(colour), thick * 3)
        cv2.putText(canvas, text, (10, height - round((12 + 30 * i) * scale)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, _bgr(colour), thick, cv2.LINE_AA)
