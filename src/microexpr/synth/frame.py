"""Full frames: the subject's face composited into a camera frame, like a raw release.

A subject sits in front of a background at a per-subject distance and place: the face box (the
square the cropped mode writes, hairline to below the chin) is `face_px` pixels on a side and
centred off the frame centre. Every clip adds a small placement jitter (the subject sat down
again) and a slow whole-head translation of a few pixels over the clip. The face is rendered
directly at `face_px` (so it is as sharp as in the cropped mode) with exactly the cropped mode's
micro-motion and head drift, with hair, ears and neck around it (rendered from the same
photograph), and blended in with soft ellipses around the head and a fading neck that move with
it, so no square edge shows. Flicker and sensor noise (of the subject's sigma) then act on the
whole frame.

Backgrounds are photographs that ship inside scikit-image (no download) or a procedural wall,
cropped, flipped, tinted and defocused per subject.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from microexpr.synth.clip import Nuisance, Timeline, face_frames, slow_curve
from microexpr.synth.face import Subject, make_subject

# Photographs in the scikit-image package itself (skimage/data/*.png|jpg; no network), and a
# procedural wall. None shows a face (checked: OpenCV's Haar cascade finds none in them).
BACKGROUNDS: tuple[str, ...] = ("coffee", "rocket", "brick", "gravel", "grass", "wall")
# The per-subject face box side is face_scale * frame height times a factor in this range.
FACE_SCALE_SPREAD: tuple[float, float] = (0.85, 1.15)
# Per-clip placement jitter of the face box, at most this fraction of its side on each axis.
CLIP_JITTER = 0.04
# Context rendered around the face box (hair, ears, neck), per side, as a fraction of its side.
CONTEXT = 0.45
# Smallest gap in pixels between the face box (wherever it moves) and the frame border.
BORDER = 2


@functools.lru_cache(maxsize=len(BACKGROUNDS))
def _photo(name: str) -> np.ndarray:
    """A scikit-image sample photograph as float32 RGB 0..255 (read-only)."""
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3]).astype(np.float32)
    image.setflags(write=False)
    return image


def _wall(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A plain painted wall: a light colour, a broad lighting gradient, blotches and grain."""
    colour = rng.uniform(150.0, 225.0) * rng.uniform(0.9, 1.05, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = rng.uniform(0.0, 2.0 * math.pi)
    ramp = ((xs - width / 2) * math.cos(theta) + (ys - height / 2) * math.sin(theta)) / width
    blotch = cv2.resize(
        rng.normal(0.0, 1.0, size=(6, 8)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    shade = 1.0 + rng.uniform(0.1, 0.4) * ramp + 0.03 * blotch
    grain = cv2.GaussianBlur(
        rng.normal(0.0, 4.0, size=(height, width)).astype(np.float32), (0, 0), 1.0
    )
    return (shade[..., None] * colour + grain[..., None]).astype(np.float32)


def make_background(rng: np.random.Generator, height: int, width: int) -> tuple[str, np.ndarray]:
    """(name, (height, width, 3) float32 RGB) background of one subject's recordings."""
    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if name == "wall":
        image = _wall(rng, height, width)
    else:
        photo = _photo(name)
        ph, pw = photo.shape[:2]
        # Largest crop of the frame's aspect ratio, shrunk by a random zoom, at a random place.
        ch = min(ph, pw * height / width) * rng.uniform(0.6, 1.0)
        cw = ch * width / height
        x0 = rng.uniform(0.0, pw - cw)
        y0 = rng.uniform(0.0, ph - ch)
        k = width / cw
        affine = np.array([[k, 0.0, -k * x0], [0.0, k, -k * y0]])
        if k < 1.0:
            photo = cv2.GaussianBlur(photo, (0, 0), 0.5 * math.sqrt(1.0 / k**2 - 1.0))
        image = cv2.warpAffine(
            photo,
            affine,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        if rng.random() < 0.5:
            image = image[:, ::-1]
        image = image * (rng.uniform(0.7, 1.0) * rng.uniform(0.9, 1.1, size=3)).astype(np.float32)
    # The camera focuses on the face: the background is out of focus.
    sigma = rng.uniform(1.0, 2.5) * height / 480.0
    image = cv2.GaussianBlur(np.ascontiguousarray(image, dtype=np.float32), (0, 0), sigma)
    return name, np.clip(image, 0.0, 255.0)


@dataclass(frozen=True)
class Scene:
    """Where and in front of what one subject is filmed."""

    height: int
    width: int
    face_px: int  # side of the face box in frame pixels
    centre: tuple[float, float]  # the face box centre (x, y) before per-clip jitter and motion
    background_name: str
    background: np.ndarray  # (height, width, 3) float32 BGR, read-only


def face_px_range(height: int, face_scale: float) -> tuple[int, int]:
    """Smallest and largest face box side for subjects of a config."""
    lo, hi = FACE_SCALE_SPREAD
    return round(face_scale * lo * height), round(face_scale * hi * height)


def room(face_px: int, head_motion: float, head_drift: float) -> float:
    """How far (px, per axis) a face box can move from its scene centre over any clip: jitter,
    head motion and the translation part of the head drift (see `draw_nuisance`)."""
    return CLIP_JITTER * face_px + head_motion + 0.5 * head_drift * face_px / 128.0


def make_scene(
    rng: np.random.Generator,
    frame_size: tuple[int, int],
    face_scale: float,
    head_motion: float,
    head_drift: float,
) -> Scene:
    """Draw one subject's face size, place and background."""
    height, width = frame_size
    face_px = round(face_scale * rng.uniform(*FACE_SCALE_SPREAD) * height)
    margin = room(face_px, head_motion, head_drift) + BORDER
    free_x = width / 2 - face_px / 2 - margin
    free_y = height / 2 - face_px / 2 - margin
    # Off centre: to a random side by 25-100 % of the free room; up or down a little.
    cx = width / 2 + (1 if rng.random() < 0.5 else -1) * rng.uniform(0.25, 1.0) * free_x
    cy = height / 2 + rng.uniform(-0.6, 0.4) * free_y
    name, rgb = make_background(rng, height, width)
    background = np.ascontiguousarray(rgb[..., ::-1])
    background.setflags(write=False)
    return Scene(height, width, face_px, (float(cx), float(cy)), name, background)


def framed_subject(rng: np.random.Generator, face_px: int, noise: float) -> Subject:
    """The subject `make_subject` draws from `rng`, with a `face_px` face box and context (hair,
    ears, neck) around it, and a uint8 texture (renders about twice as fast; the photograph
    has 8 bits per channel anyway)."""
    subject = make_subject(rng, face_px, noise, pad=round(CONTEXT * face_px))
    texture = np.clip(np.rint(subject.texture), 0, 255).astype(np.uint8)
    return dataclasses.replace(subject, texture=texture)


def _soft_ellipse(
    xs: np.ndarray,
    ys: np.ndarray,
    subject: Subject,
    centre: np.ndarray,
    along: float,
    across: float,
) -> np.ndarray:
    """1 inside an ellipse in the face frame (semi-axes in IOD units), smoothly 0 outside."""
    dx, dy = xs - centre[0], ys - centre[1]
    u = (dx * subject.up[0] + dy * subject.up[1]) / (along * subject.iod)
    v = (dx * subject.right[0] + dy * subject.right[1]) / (across * subject.iod)
    t = np.clip((1.1 - np.sqrt(u * u + v * v)) / 0.25, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)  # smoothstep


def head_mask(subject: Subject) -> np.ndarray:
    """(size, size, 3) float32 blend weight of the rendered subject over the background.

    Soft ellipses around the head (hair included) and the face, oriented with the subject, a
    neck fading out below the chin, and a taper to 0 at the rendered image's border, so that
    no square edge shows.
    """
    size = subject.size
    lm = {k: np.asarray(v) for k, v in subject.landmarks.items()}
    eyes = (lm["eye_r"] + lm["eye_l"]) / 2
    up, iod = subject.up, subject.iod
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    head = _soft_ellipse(xs, ys, subject, eyes + 0.35 * iod * up, 1.5, 1.45)
    face = _soft_ellipse(xs, ys, subject, eyes - 0.45 * iod * up, 1.35, 1.1)
    # Neck: a soft band about 0.6 IOD either side of the midline, fading out from 0.3 to 1.5 IOD
    # below the chin (so that the chin is not on the edge of what moves with the head).
    dx, dy = xs - lm["chin"][0], ys - lm["chin"][1]
    below = -(dx * up[0] + dy * up[1]) / iod
    side = np.abs(dx * subject.right[0] + dy * subject.right[1]) / iod
    t = np.clip((0.75 - side) / 0.3, 0.0, 1.0) * np.clip(1.0 - (below - 0.3) / 1.2, 0.0, 1.0)
    neck = t * t * (3.0 - 2.0 * t) * (below > -1.0)
    alpha = np.maximum(np.maximum(head, face), neck)
    edge = np.minimum(np.minimum(xs, ys), np.minimum(size - 1 - xs, size - 1 - ys))
    alpha *= np.clip(edge / max(0.04 * size, 1.0), 0.0, 1.0)
    return np.ascontiguousarray(np.repeat(alpha[..., None], 3, axis=2), dtype=np.float32)


@dataclass(frozen=True)
class Placement:
    """Per-frame position of the face box: its top-left corner (x, y) in frame pixels."""

    x: np.ndarray
    y: np.ndarray


def draw_placement(
    rng: np.random.Generator, scene: Scene, n: int, fps: int, head_motion: float
) -> Placement:
    """The face box path of one clip: scene centre + jitter + slow head translation."""
    jitter = rng.uniform(-1.0, 1.0, size=2) * CLIP_JITTER * scene.face_px
    hx = head_motion / math.sqrt(2.0) * slow_curve(rng, n, fps)
    hy = head_motion / math.sqrt(2.0) * slow_curve(rng, n, fps)
    half = (scene.face_px - 1) / 2.0
    return Placement(
        x=scene.centre[0] - half + jitter[0] + hx, y=scene.centre[1] - half + jitter[1] + hy
    )


def frame_landmarks(
    subject: Subject, placement: Placement, nuisance: Nuisance, i: int
) -> dict[str, tuple[float, float]]:
    """The subject's landmarks in frame pixels at frame `i` (with no expression motion)."""
    c = (subject.size - 1) / 2.0
    th = float(nuisance.rotation[i])
    ox = float(placement.x[i] + nuisance.tx[i]) - subject.pad
    oy = float(placement.y[i] + nuisance.ty[i]) - subject.pad
    return {
        name: (x - th * (y - c) + ox, y + th * (x - c) + oy)
        for name, (x, y) in subject.landmarks.items()
    }


def _rounded(point: tuple[float, float]) -> list[float]:
    return [round(float(point[0]), 3), round(float(point[1]), 3)]


def onset_record(
    subject: Subject, placement: Placement, nuisance: Nuisance, timeline: Timeline
) -> dict[str, Any]:
    """Ground truth for detection and alignment, in frame pixels at the onset frame: the face
    box [x, y, w, h], the pupils [image left, image right], all landmarks, and the whole-head
    translation from onset to apex and to offset."""
    i = timeline.onset
    lm = frame_landmarks(subject, placement, nuisance, i)
    eyes = sorted((lm["eye_r"], lm["eye_l"]))

    def origin(j: int) -> tuple[float, float]:
        return float(placement.x[j] + nuisance.tx[j]), float(placement.y[j] + nuisance.ty[j])

    x, y = origin(i)
    return {
        "face_box": [round(x, 3), round(y, 3), subject.face_size, subject.face_size],
        "eye_centres": [_rounded(eyes[0]), _rounded(eyes[1])],
        "landmarks": {k: _rounded(v) for k, v in lm.items()},
        "head_shift": {
            name: _rounded((origin(j)[0] - x, origin(j)[1] - y))
            for name, j in (("apex", timeline.apex), ("offset", timeline.offset))
        },
    }


def _gaussian_lut() -> tuple[np.ndarray, float, float]:
    """A byte -> byte table turning uniform bytes into a quantised Gaussian, its mean and std."""
    from statistics import NormalDist

    inv = NormalDist(128.0, 25.0).inv_cdf
    lut = np.array([round(inv((i + 0.5) / 256)) for i in range(256)], dtype=np.uint8)
    values = lut.astype(np.float64)
    return lut, float(values.mean()), float(values.std())


# Frame-wide sensor noise is one random byte (raw generator output) per value looked up in this
# table (several times faster than the cropped mode's triangular noise, which matters at
# 640x480), drawn in chunks small enough to be recycled by the allocator (one 1 MB draw per
# frame costs more system time in page faults than the draw itself).
_NOISE_LUT, _NOISE_MEAN, _NOISE_STD = _gaussian_lut()
_NOISE_CHUNK = 1 << 16


def _draw_noise(rng: np.random.Generator, out: np.ndarray) -> None:
    """Fill the uint8 array `out` with noise bytes (mean _NOISE_MEAN, std _NOISE_STD)."""
    flat = out.reshape(-1)
    for start in range(0, flat.size, _NOISE_CHUNK):
        part = flat[start : start + _NOISE_CHUNK]
        raw = rng.bit_generator.random_raw(-(-part.size // 8)).view(np.uint8)[: part.size]
        cv2.LUT(raw, _NOISE_LUT, dst=part)


def mask_window(mask: np.ndarray) -> tuple[slice, slice]:
    """(rows, columns) of the smallest rectangle holding every non-zero weight of `mask`."""
    rows = np.flatnonzero(mask[..., 0].max(axis=1) > 0)
    cols = np.flatnonzero(mask[..., 0].max(axis=0) > 0)
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def render_full_clip(
    subject: Subject,
    scene: Scene,
    mask: np.ndarray,
    field: np.ndarray,
    peak: float,
    timeline: Timeline,
    nuisance: Nuisance,
    placement: Placement,
    noise_rng: np.random.Generator,
) -> Iterator[np.ndarray]:
    """Yield the clip's full frames as uint8 BGR images (height, width, 3).

    The rendered subject (face box plus padding; only where `mask` is not 0) moves by whole
    pixels in the frame; the sub-pixel rest of its position is rendered as a translation
    inside it, so the head moves smoothly. What falls outside the frame is cut off.
    """
    ix = np.round(placement.x).astype(int)
    iy = np.round(placement.y).astype(int)
    shift = (placement.x - ix, placement.y - iy)
    rows, cols = mask_window(mask)
    weight = np.ascontiguousarray(mask[rows, cols])
    wh, ww = weight.shape[:2]
    # Frame position of the window's top-left pixel.
    wx = ix - subject.pad + cols.start
    wy = iy - subject.pad + rows.start
    h, w = scene.height, scene.width
    background = scene.background
    scale = subject.noise_sigma / _NOISE_STD
    offset = -_NOISE_MEAN * scale
    noise = np.full((h, w, 3), round(_NOISE_MEAN), np.uint8)
    faces = face_frames(subject, field, peak, timeline, nuisance, shift, (rows, cols))
    for i, face in enumerate(faces):
        gain = float(nuisance.gain[i])
        if scale > 0:
            _draw_noise(noise_rng, noise)
        frame = cv2.addWeighted(background, gain, noise, scale, offset, dtype=cv2.CV_8U)
        x0, y0 = max(wx[i], 0), max(wy[i], 0)
        x1, y1 = min(wx[i] + ww, w), min(wy[i] + wh, h)
        inside = (slice(y0 - wy[i], y1 - wy[i]), slice(x0 - wx[i], x1 - wx[i]))
        back = background[y0:y1, x0:x1]
        blend = back + weight[inside] * (face[inside] - back)
        frame[y0:y1, x0:x1] = cv2.addWeighted(
            blend, gain, noise[y0:y1, x0:x1], scale, offset, dtype=cv2.CV_8U
        )
        yield frame
