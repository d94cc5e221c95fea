"""One synthetic clip: its timeline, intensity profile, nuisances and frames.

A clip is a neutral stretch, then the expression (onset -> apex -> offset, 150-500 ms, with a
raised-cosine rise and fall), then a short neutral tail. Frame t shows the subject's neutral
face moved by  intensity(t) * peak * AU field  +  head drift(t),  with brightness flicker and
sensor noise added afterwards. Only the AU field depends on the emotion.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from microexpr.synth.face import Subject, render


@dataclass(frozen=True)
class Timeline:
    """Frame indices (0-based, within the clip) of the expression."""

    n_frames: int
    onset: int
    apex: int
    offset: int


def draw_timeline(rng: np.random.Generator, fps: int) -> Timeline:
    """Neutral 75-200 ms, expression 150-500 ms (apex at 35-60 % of it), tail 25-100 ms."""
    n_pre = int(rng.integers(max(1, round(0.075 * fps)), max(1, round(0.2 * fps)) + 1))
    n_dur = int(rng.integers(math.ceil(0.15 * fps), math.floor(0.5 * fps) + 1))
    rise = min(max(round(rng.uniform(0.35, 0.6) * n_dur), 1), n_dur - 1)
    n_post = int(rng.integers(max(1, round(0.025 * fps)), max(1, round(0.1 * fps)) + 1))
    onset = n_pre
    return Timeline(
        n_frames=onset + n_dur + 1 + n_post, onset=onset, apex=onset + rise, offset=onset + n_dur
    )


def intensity_profile(t: Timeline) -> np.ndarray:
    """Raised-cosine rise from 0 at onset to 1 at apex and fall back to 0 at offset."""
    i = np.arange(t.n_frames, dtype=np.float64)
    out = np.zeros(t.n_frames)
    up = (i >= t.onset) & (i <= t.apex)
    out[up] = 0.5 * (1.0 - np.cos(math.pi * (i[up] - t.onset) / (t.apex - t.onset)))
    down = (i > t.apex) & (i <= t.offset)
    out[down] = 0.5 * (1.0 + np.cos(math.pi * (i[down] - t.apex) / (t.offset - t.apex)))
    return out


def slow_curve(rng: np.random.Generator, n: int, fps: int) -> np.ndarray:
    """A smooth random curve over n frames (two slow sinusoids), max |value| in 0.4..1."""
    t = np.arange(n) / fps
    curve = np.zeros(n)
    for _ in range(2):
        freq = rng.uniform(0.3, 1.5)
        phase = rng.uniform(0, 2 * math.pi)
        curve += rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * freq * t + phase)
    peak = float(np.abs(curve).max()) or 1.0
    return curve / peak * rng.uniform(0.4, 1.0)


@dataclass(frozen=True)
class Nuisance:
    """Per-frame head drift (translation in px, rotation in rad) and brightness gain."""

    tx: np.ndarray
    ty: np.ndarray
    rotation: np.ndarray
    gain: np.ndarray


def draw_nuisance(
    rng: np.random.Generator, n: int, fps: int, size: int, head_drift: float, flicker: float
) -> Nuisance:
    """Slow head drift of at most `head_drift` px (at 128 px; scaled) and brightness flicker."""
    drift = head_drift * size / 128.0
    tx = 0.5 * drift * slow_curve(rng, n, fps)
    ty = 0.5 * drift * slow_curve(rng, n, fps)
    # Rotation about the image centre moving the face border (radius size/2) by <= 0.3 drift.
    rotation = 0.3 * drift / (size / 2.0) * slow_curve(rng, n, fps)
    freq = rng.uniform(1.0, 10.0)
    phase = rng.uniform(0, 2 * math.pi)
    wave = np.sin(2 * math.pi * freq * np.arange(n) / fps + phase)
    gain = 1.0 + flicker * (0.6 * wave + 0.4 * rng.uniform(-1.0, 1.0, size=n))
    return Nuisance(tx=tx, ty=ty, rotation=rotation, gain=gain)


# Sensor noise is the sum of two uniform bytes (a triangular distribution, close enough to a
# Gaussian once quantised and JPEG-compressed, and ~7x faster to draw): mean 255, this std.
_TRIANGULAR_STD = math.sqrt(2 * (256**2 - 1) / 12)


def face_frames(
    subject: Subject,
    field: np.ndarray,
    peak: float,
    timeline: Timeline,
    nuisance: Nuisance,
    shift: tuple[np.ndarray, np.ndarray] | None = None,
    window: tuple[slice, slice] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the clip's face images as float32 BGR (size, size, 3): lit, before flicker and
    noise. `shift` adds a per-frame translation (x, y arrays, px) to the head drift; `window`
    (rows, columns) renders only that part of the image."""
    profile = intensity_profile(timeline) * peak
    yield from layered_frames(subject, [(field, profile)], nuisance, shift, window)


def layered_frames(
    subject: Subject,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    nuisance: Nuisance,
    shift: tuple[np.ndarray, np.ndarray] | None = None,
    window: tuple[slice, slice] | None = None,
) -> Iterator[np.ndarray]:
    """Yield one float32 BGR face image (lit, before flicker and noise) per frame of
    `nuisance`: the neutral face moved by the sum over `layers` of amplitude[t] * field, plus
    the head drift (and `shift`, a per-frame x, y translation in px).

    Each layer is a forward displacement field (size, size, 2), peak 1, and its per-frame
    amplitude in px; a layer costs nothing on frames where its amplitude is 0, so a long video
    with many short events renders as fast as a clip. `window` (rows, columns) renders only
    that part of the image.
    """
    n_frames = len(nuisance.gain)
    for _, amplitude in layers:
        if len(amplitude) != n_frames:
            raise ValueError(f"a layer has {len(amplitude)} amplitudes for {n_frames} frames")
    size = subject.size
    c = (size - 1) / 2.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    # Forward motions expressed in texture coordinates: the layers' fields, unit rotation about
    # the image centre, unit translations. The backward map of a small smooth forward motion d
    # is map - J d.
    moves = [(*subject.through_jacobian(f[..., 0], f[..., 1]), np.asarray(a)) for f, a in layers]
    rot_x, rot_y = subject.through_jacobian(-(ys - c), xs - c)
    map_x, map_y, light = subject.map_x, subject.map_y, subject.light
    jxx, jxy, jyx, jyy = subject.jxx, subject.jxy, subject.jyx, subject.jyy
    if window is not None:
        rot_x, rot_y, map_x, map_y, light, jxx, jxy, jyx, jyy = (
            np.ascontiguousarray(a[window])
            for a in (rot_x, rot_y, map_x, map_y, light, jxx, jxy, jyx, jyy)
        )
        moves = [
            (np.ascontiguousarray(mx[window]), np.ascontiguousarray(my[window]), a)
            for mx, my, a in moves
        ]
    for i in range(n_frames):
        th = float(nuisance.rotation[i])
        tx, ty = float(nuisance.tx[i]), float(nuisance.ty[i])
        if shift is not None:
            tx, ty = tx + float(shift[0][i]), ty + float(shift[1][i])
        dx, dy = th * rot_x, th * rot_y
        moved = [(float(a[i]), mx, my) for mx, my, a in moves if a[i] != 0.0]
        if moved:  # (summed in this order, a one-layer clip renders as it always did)
            a, mx, my = moved[0]
            fx, fy = a * mx, a * my
            for a, mx, my in moved[1:]:
                fx, fy = fx + a * mx, fy + a * my
            dx, dy = fx + dx, fy + dy
        dx = dx + tx * jxx + ty * jxy
        dy = dy + tx * jyx + ty * jyy
        yield render(subject, map_x - dx, map_y - dy, light)


def finish(
    frame: np.ndarray, gain: float, noise_sigma: float, noise_rng: np.random.Generator
) -> np.ndarray:
    """A float32 BGR frame times the flicker `gain`, plus sensor noise, as uint8 (rounded and
    saturated). Draws from `noise_rng` only when `noise_sigma` > 0."""
    scale = noise_sigma / _TRIANGULAR_STD
    if scale > 0:
        pairs = noise_rng.integers(0, 65536, size=frame.size, dtype=np.uint16)
        tri = ((pairs & 0xFF) + (pairs >> 8)).astype(np.float32).reshape(frame.shape)
        # gain * frame + scale * (tri - 255), rounded and saturated to uint8
        return cv2.addWeighted(frame, gain, tri, scale, -255.0 * scale, dtype=cv2.CV_8U)
    return cv2.addWeighted(frame, gain, frame, 0.0, 0.0, dtype=cv2.CV_8U)


def render_clip(
    subject: Subject,
    field: np.ndarray,
    peak: float,
    timeline: Timeline,
    nuisance: Nuisance,
    noise_rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    """Yield the clip's frames as uint8 BGR images (size, size, 3).

    `field` is the forward AU displacement (peak 1) and `peak` its amplitude in pixels.
    """
    frames = face_frames(subject, field, peak, timeline, nuisance)
    for i, frame in enumerate(frames):
        yield finish(frame, float(nuisance.gain[i]), subject.noise_sigma, noise_rng)
