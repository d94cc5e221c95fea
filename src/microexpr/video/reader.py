"""Frames of a video as a stream: a video file, a folder of frame images, or arrays.

Frames are decoded one at a time and handed on (`VideoSource.frames` is a generator), so the
memory a video analysis takes does not grow with the length of the video. Every source gives
uint8 RGB frames of one size.

- Video files: anything OpenCV's FFmpeg back end decodes (mp4, mov, avi, mkv, ...). The frame
  rate comes from the file's header unless `fps` is given (some high-speed recordings are
  stored with a playback rate instead of their capture rate).
- Folders: the image files in it (jpg, png, bmp, tif), in natural order (``img2`` before
  ``img10``), at `fps` frames per second (default `DEFAULT_FOLDER_FPS`).
- Arrays: any iterable of H x W x 3 (RGB) or H x W (gray) uint8 arrays, e.g. frames from a
  camera, at `fps` frames per second (default `DEFAULT_FOLDER_FPS`). It is read once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from microexpr.data.frames import is_image
from microexpr.data.images import read_image
from microexpr.errors import ConfigError, DatasetError, InputShapeError

MIN_FPS = 10.0  # below this a micro-expression (1/25 to 1/2 s) spans too few frames
MAX_FPS = 1000.0
DEFAULT_FOLDER_FPS = 30.0
_CHUNKS = re.compile(r"(\d+)")

VideoInput = str | os.PathLike | Iterable[np.ndarray]


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a source before it is read.

    source: the path ("<frames>" for arrays); kind: "video", "folder" or "frames"; fps: frames
    per second used for times and for the spotter's window; fps_source: where fps came from
    ("header", "argument" or "default"); frame_count: the header's count for a video (may be
    approximate), the file count for a folder, None for arrays; width, height: frame size in
    pixels (None for arrays until read).
    """

    source: str
    kind: str
    fps: float
    fps_source: str
    frame_count: int | None
    width: int | None
    height: int | None


def check_fps(fps: float, where: str) -> float:
    """`fps` as a float, or ConfigError naming `where` it came from and the valid range."""
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ConfigError(f"fps for {where} must be a number, got {fps!r}") from None
    if not np.isfinite(value) or not MIN_FPS <= value <= MAX_FPS:
        raise ConfigError(
            f"fps {fps!r} for {where} is outside {MIN_FPS:g}..{MAX_FPS:g} frames per second "
            f"(micro-expressions last 1/25 to 1/2 s, so fewer than {MIN_FPS:g} frames/s cannot "
            f"show them); pass the capture rate with fps=N (--fps N)")
    return value


def natural_key(name: str) -> tuple:
    """Sort key putting ``img2`` before ``img10`` (digit runs compare as numbers)."""
    return tuple(int(part) if part.isdigit() else part.lower()
                 for part in _CHUNKS.split(name))


def list_frame_files(folder: Path) -> list[Path]:
    """The visible image files of `folder`, in natural order; DatasetError when none."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries
                 if e.is_file() and is_image(e.name) and not e.name.startswith(".")]
    if not names:
        raise DatasetError(f"frame folder {folder} holds no image frames (.jpg, .png, .bmp, "
                           f".tif); point at the folder that holds the frames, or at a video "
                           f"file")
    return [folder / name for name in sorted(names, key=natural_key)]


def _as_rgb(frame: np.ndarray, index: int) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3
                                                           and array.shape[2] == 3)):
        raise InputShapeError(f"frame {index} must be a uint8 H x W x 3 (RGB) or H x W (gray) "
                              f"array, got {array.dtype} {array.shape}")
    return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB) if array.ndim == 2 else array


class VideoSource:
    """One source of frames: `info` says what it is, `frames()` streams its RGB frames.

    Build it with `open_video`. A video file or folder can be streamed several times; an
    iterable of arrays once.
    """

    def __init__(self, info: VideoInfo, *, files: list[Path] | None = None,
                 arrays: Iterable[np.ndarray] | None = None) -> None:
        self.info = info
        self._files = files
        self._arrays = arrays
        self._used = False

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def files(self) -> list[Path] | None:
        """A frame folder's image files in order (None for a video file or arrays)."""
        return None if self._files is None else list(self._files)

    @property
    def rereadable(self) -> bool:
        """True when `frames()` can be called again (a file or folder, not arrays)."""
        return self.info.kind != "frames"

    def frames(self) -> Iterator[np.ndarray]:
        """The frames in order, one uint8 H x W x 3 RGB array at a time."""
        if self.info.kind == "video":
            return self._video_frames()
        if self.info.kind == "folder":
            return self._folder_frames()
        if self._used:
            raise ConfigError("these frames were already read (an iterable of arrays is read "
                              "once); pass a video file or a frame folder to read it again")
        self._used = True
        return self._array_frames()

    def _video_frames(self) -> Iterator[np.ndarray]:
        capture = cv2.VideoCapture(self.info.source)
        try:
            if not capture.isOpened():
                raise DatasetError(_unreadable(self.info.source))
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            capture.release()

    def _folder_frames(self) -> Iterator[np.ndarray]:
        assert self._files is not None
        size = (self.info.height, self.info.width)
        for path in self._files:
            image = read_image(path, color=True, what="frame")
            if image.shape[:2] != size:
                raise DatasetError(
                    f"frame {path} is {image.shape[1]} x {image.shape[0]} pixels but the "
                    f"folder's first frame is {size[1]} x {size[0]}: every frame of a video "
                    f"must have one size; remove or resize that file")
            yield image

    def _array_frames(self) -> Iterator[np.ndarray]:
        assert self._arrays is not None
        shape = None
        for index, frame in enumerate(self._arrays):
            rgb = _as_rgb(frame, index)
            if shape is None:
                shape = rgb.shape
            elif rgb.shape != shape:
                raise InputShapeError(f"frame {index} has shape {rgb.shape} but frame 0 had "
                                      f"{shape}: every frame of a video must have one size")
            yield rgb


def _unreadable(path: str) -> str:
    return (f"cannot read video {path}: OpenCV could not open or decode it (not a video, "
            f"damaged, or a codec its FFmpeg lacks); convert it, e.g. `ffmpeg -i {path} "
            f"-c:v libx264 out.mp4`, or pass a folder of its frames")


def open_video(video: VideoInput | VideoSource, fps: float | None = None) -> VideoSource:
    """A `VideoSource` for a video file, a folder of frames or an iterable of arrays.

    Reads only the header (video) or the file list and first frame (folder), so problems
    surface before any work: DatasetError for a path that does not exist, a file OpenCV cannot
    decode or an empty folder; ConfigError for fps outside `MIN_FPS`..`MAX_FPS`.
    """
    if isinstance(video, VideoSource):
        return video
    if isinstance(video, str | os.PathLike):
        path = Path(video)
        if path.is_dir():
            return _open_folder(path, fps)
        if path.is_file():
            return _open_file(path, fps)
        raise DatasetError(f"video {path} does not exist; give the path of a video file (mp4, "
                           f"mov, avi, ...) or of a folder of frames")
    if isinstance(video, np.ndarray) and video.ndim in (2, 3) and video.dtype == np.uint8 \
            and (video.ndim == 2 or video.shape[2] in (1, 3)):
        raise InputShapeError(f"got one image of shape {video.shape}, not a video: pass a "
                              f"T x H x W x 3 array or a list of frames")
    if not isinstance(video, Iterable):
        raise ConfigError(f"cannot analyse a {type(video).__name__}: pass a video file, a "
                          f"folder of frames, or an iterable of uint8 RGB frames")
    rate = check_fps(DEFAULT_FOLDER_FPS if fps is None else fps, "the frames")
    info = VideoInfo("<frames>", "frames", rate, "default" if fps is None else "argument",
                     len(video) if hasattr(video, "__len__") else None, None, None)
    return VideoSource(info, arrays=video)


def _open_file(path: Path, fps: float | None) -> VideoSource:
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DatasetError(_unreadable(str(path)))
        header_fps = capture.get(cv2.CAP_PROP_FPS)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        capture.release()
    if fps is not None:
        rate, origin = check_fps(fps, str(path)), "argument"
    else:
        if not header_fps or not np.isfinite(header_fps) or header_fps <= 0:
            raise ConfigError(f"video {path} does not say its frame rate; pass it with fps=N "
                              f"(--fps N)")
        rate, origin = check_fps(header_fps, f"{path} (from its header)"), "header"
    return VideoSource(VideoInfo(str(path), "video", rate, origin, count if count > 0 else None,
                                 width or None, height or None))


def _open_folder(folder: Path, fps: float | None) -> VideoSource:
    files = list_frame_files(folder)
    rate = check_fps(DEFAULT_FOLDER_FPS if fps is None else fps, f"frame folder {folder}")
    first = read_image(files[0], color=True, what="frame")
    info = VideoInfo(str(folder), "folder", rate, "default" if fps is None else "argument",
                     len(files), int(first.shape[1]), int(first.shape[0]))
    return VideoSource(info, files=files)
