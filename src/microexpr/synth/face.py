"""The base face and the per-subject variations of it.

The face is `skimage.data.astronaut()` (a 512x512 RGB photograph of a real face that ships
inside scikit-image). Every subject is a seeded variation of it: a small affine (scale,
rotation, translation, anisotropic stretch, optional mirror), a smooth low-frequency shape
warp, per-channel colour gains, a hue shift, a gamma, a lighting gradient and its own sensor
noise level. Geometry is kept as a backward map from output pixels to source pixels, so a
frame is rendered with one interpolation from the original photograph, and the landmarks are
carried through the same transform.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

# Landmarks of skimage.data.astronaut(), in source pixel coordinates (x, y), placed by hand on
# 5x and 9x enlarged crops of the photograph with a 10-pixel grid drawn over them. `_r` and
# `_l` are the person's right and left (the person's right is on the image's left).
SOURCE_LANDMARKS: dict[str, tuple[float, float]] = {
    "eye_r": (204.5, 101.0),  # pupil centres
    "eye_l": (246.5, 103.0),
    "brow_in_r": (212.0, 90.0),  # inner (medial) end of the eyebrow
    "brow_out_r": (192.0, 91.0),  # outer (lateral) end of the eyebrow
    "brow_in_l": (236.0, 91.0),
    "brow_out_l": (257.0, 93.0),
    "nose_tip": (224.5, 125.0),
    "nose_wing_r": (214.0, 127.0),  # alae of the nose
    "nose_wing_l": (234.0, 128.0),
    "mouth_r": (204.0, 140.0),  # lip corners
    "mouth_l": (245.0, 140.5),
    "lip_up": (224.0, 140.0),  # centre of the upper lip
    "lip_lo": (224.0, 153.0),  # centre of the lower lip
    "chin": (224.0, 176.0),
    "cheek_r": (200.0, 120.0),  # cheek apples (malar eminence)
    "cheek_l": (250.0, 122.0),
}

# The canonical crop: a square of FACE_SIDE source pixels centred on FACE_CENTRE covers the face
# from the hairline to below the chin (like the cropped CASME II release); it is what a
# subject with no variation sees at any output size.
FACE_CENTRE: tuple[float, float] = (225.0, 121.0)
FACE_SIDE: float = 128.0


@functools.lru_cache(maxsize=1)
def source_image() -> np.ndarray:
    """The astronaut photograph as float32 RGB in 0..255 (read-only)."""
    from skimage import data

    image = np.ascontiguousarray(data.astronaut()[..., :3]).astype(np.float32)
    image.setflags(write=False)
    return image


@dataclass(frozen=True)
class Subject:
    """One synthetic person: what every frame of that person's clips is rendered from.

    Geometry is a backward map from output pixels into `texture` (the colour-adjusted
    photograph, cropped around the face and upsampled so that bilinear sampling stays sharp),
    with its Jacobian, so that a small forward motion d(p) of the face in output pixels is
    rendered by sampling the texture at  map(p) - J(p) d(p).
    """

    size: int  # side of the rendered image: the face box plus `pad` on every side
    texture: np.ndarray  # (h, w, 3) float32 (or uint8) BGR, colour-adjusted, cropped, upsampled
    map_x: np.ndarray  # (size, size) float32: output pixel -> texture x
    map_y: np.ndarray
    jxx: np.ndarray  # d map_x / dx, d map_x / dy, d map_y / dx, d map_y / dy (size, size)
    jxy: np.ndarray
    jyx: np.ndarray
    jyy: np.ndarray
    light: np.ndarray  # (size, size, 3) float32 multiplicative lighting (camera frame)
    noise_sigma: float  # grey levels
    landmarks: dict[str, tuple[float, float]]  # output pixel coordinates
    up: np.ndarray  # unit vector pointing from the mouth to the eyes (output coordinates)
    right: np.ndarray  # unit vector from the person's right eye to the left eye
    iod: float  # inter-ocular distance in output pixels
    pad: int = 0  # context (hair, neck, ...) rendered around the face box, pixels per side

    @property
    def face_size(self) -> int:
        """Side of the face box (hairline to below the chin) in output pixels."""
        return self.size - 2 * self.pad

    def outward(self, side: str) -> np.ndarray:
        """Unit vector pointing away from the face midline on the person's `side` ("r"/"l")."""
        return self.right if side == "l" else -self.right

    def through_jacobian(self, fx: np.ndarray, fy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A displacement field in output pixels expressed as texture-coordinate offsets."""
        return self.jxx * fx + self.jxy * fy, self.jyx * fx + self.jyy * fy


def _canonical_affine(size: int) -> np.ndarray:
    """3x3 matrix mapping source pixels to output pixels of the canonical crop."""
    k = size / FACE_SIDE
    c = (size - 1) / 2.0
    return np.array(
        [[k, 0.0, c - k * FACE_CENTRE[0]], [0.0, k, c - k * FACE_CENTRE[1]], [0.0, 0.0, 1.0]]
    )


def _subject_affine(rng: np.random.Generator, size: int) -> tuple[np.ndarray, float]:
    """Random 3x3 source -> output affine for one subject, and its mean scale factor."""
    c = (size - 1) / 2.0
    scale = rng.uniform(0.92, 1.08)
    stretch = rng.uniform(0.94, 1.06)  # anisotropic: x gets `stretch`, y gets 1 / stretch
    angle = math.radians(rng.uniform(-6.0, 6.0))
    shift = rng.uniform(-0.035, 0.035, size=2) * size
    mirror = rng.random() < 0.5
    cos, sin = math.cos(angle), math.sin(angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    lin = rot @ np.diag([scale * stretch, scale / stretch])
    if mirror:
        lin = np.diag([-1.0, 1.0]) @ lin
    around = np.eye(3)
    around[:2, :2] = lin
    around[:2, 2] = np.array([c, c]) + shift - lin @ np.array([c, c])
    return around @ _canonical_affine(size), scale * size / FACE_SIDE


def _smooth_field(rng: np.random.Generator, size: int, amplitude: float, grid: int) -> np.ndarray:
    """(size, size, 2) float32 random displacement field of low spatial frequency."""
    coarse = rng.normal(0.0, 1.0, size=(grid, grid, 2)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    peak = float(np.abs(field).max()) or 1.0
    return field * (amplitude / peak)


def _sample(field: np.ndarray, x: float, y: float) -> np.ndarray:
    """Bilinear sample of an (H, W, C) field at (x, y), clamped to the image."""
    h, w = field.shape[:2]
    x = min(max(x, 0.0), w - 1.001)
    y = min(max(y, 0.0), h - 1.001)
    x0, y0 = int(x), int(y)
    fx, fy = x - x0, y - y0
    top = field[y0, x0] * (1 - fx) + field[y0, x0 + 1] * fx
    bottom = field[y0 + 1, x0] * (1 - fx) + field[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _adjust_colour(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Hue shift, per-channel gains and a gamma (on a float32 RGB 0..255 image)."""
    hsv = cv2.cvtColor(image / 255.0, cv2.COLOR_RGB2HSV)  # float: H in degrees
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-5.0, 5.0)) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.15), 0.0, 1.0)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    gains = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    rgb = np.clip(rgb * gains, 0.0, 1.0)
    gamma = rng.uniform(0.8, 1.25)
    return (np.power(rgb, gamma) * 255.0).astype(np.float32)


def make_subject(rng: np.random.Generator, size: int, noise: float, pad: int = 0) -> Subject:
    """Draw one subject's appearance from `rng` for face images of `size` pixels.

    With `pad` > 0 the subject is rendered `pad` pixels beyond the face box on every side (hair,
    ears, neck: context for full frames); the face box is the same person at the same size, and
    landmarks are given in the padded image. `pad` draws nothing from `rng`.
    """
    forward, k = _subject_affine(rng, size)
    inverse = np.linalg.inv(forward)

    # Smooth shape warp (backward): output p shows the canonical-geometry point p + warp(p).
    warp = _smooth_field(rng, size, amplitude=0.025 * size, grid=4)
    # Output pixel coordinates relative to the face box (negative and >= size in the padding,
    # where the warp is continued by its border values).
    ys, xs = (np.mgrid[0 : size + 2 * pad, 0 : size + 2 * pad] - pad).astype(np.float32)
    warp_out = cv2.copyMakeBorder(warp, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else warp
    px, py = xs + warp_out[..., 0], ys + warp_out[..., 1]
    src_x = inverse[0, 0] * px + inverse[0, 1] * py + inverse[0, 2]
    src_y = inverse[1, 0] * px + inverse[1, 1] * py + inverse[1, 2]

    # Landmarks: solve p + warp(p) = forward(q) by fixed-point iteration (the warp is smooth).
    landmarks: dict[str, tuple[float, float]] = {}
    for name, (qx, qy) in SOURCE_LANDMARKS.items():
        target = forward[:2, :2] @ np.array([qx, qy]) + forward[:2, 2]
        p = target.copy()
        for _ in range(6):
            p = target - _sample(warp, float(p[0]), float(p[1]))
        landmarks[name] = (float(p[0]) + pad, float(p[1]) + pad)

    full = np.ascontiguousarray(_adjust_colour(rng, source_image())[..., ::-1])  # BGR
    if k < 0.9:  # output is smaller than the photograph: low-pass before sampling it
        full = cv2.GaussianBlur(full, (0, 0), 0.5 * math.sqrt(1.0 / k**2 - 1.0))
    # Crop what the maps can reach (plus room for motion) and upsample it u times, so that
    # bilinear sampling in `remap` does not blur the face more than a camera would.
    margin = 32
    x0 = max(int(src_x.min()) - margin, 0)
    y0 = max(int(src_y.min()) - margin, 0)
    x1 = min(int(src_x.max()) + margin + 1, full.shape[1])
    y1 = min(int(src_y.max()) + margin + 1, full.shape[0])
    u = min(max(math.ceil(2.0 * k), 1), 4)
    texture = full[y0:y1, x0:x1]
    if u > 1:
        texture = cv2.resize(texture, None, fx=u, fy=u, interpolation=cv2.INTER_CUBIC)
    map_x = ((src_x - x0 + 0.5) * u - 0.5).astype(np.float32)
    map_y = ((src_y - y0 + 0.5) * u - 0.5).astype(np.float32)
    dxy, dxx = np.gradient(map_x)
    dyy, dyx = np.gradient(map_y)

    # Lighting: overall level times a linear gradient in a random direction, in the camera frame.
    theta = rng.uniform(0.0, 2.0 * math.pi)
    slope = rng.uniform(0.0, 0.3)
    c = (size - 1) / 2.0
    ramp = ((xs - c) * math.cos(theta) + (ys - c) * math.sin(theta)) / (size / 2.0)
    light = rng.uniform(0.85, 1.1) * (1.0 + slope * ramp)
    light = np.repeat(light[..., None], 3, axis=2).astype(np.float32)

    noise_sigma = float(noise * rng.uniform(0.6, 1.4))

    lm = {n: np.array(v) for n, v in landmarks.items()}
    right = lm["eye_l"] - lm["eye_r"]
    iod = float(np.linalg.norm(right))
    right = right / iod
    up = (lm["eye_r"] + lm["eye_l"]) / 2 - (lm["mouth_r"] + lm["mouth_l"]) / 2
    up = up - right * float(up @ right)
    up = up / float(np.linalg.norm(up))

    def f32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    return Subject(
        size=size + 2 * pad,
        texture=f32(texture),
        map_x=f32(map_x),
        map_y=f32(map_y),
        jxx=f32(dxx),
        jxy=f32(dxy),
        jyx=f32(dyx),
        jyy=f32(dyy),
        light=light,
        noise_sigma=noise_sigma,
        landmarks=landmarks,
        up=up,
        right=right,
        iod=iod,
        pad=pad,
    )


def render(
    subject: Subject, map_x: np.ndarray, map_y: np.ndarray, light: np.ndarray | None = None
) -> np.ndarray:
    """Sample the subject's texture at texture coordinates (map_x, map_y) and light it (with
    `light`, the subject's lighting by default): a float32 BGR frame of the maps' shape, not
    yet clipped."""
    frame = cv2.remap(
        subject.texture,
        map_x,
        map_y,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    # (a uint8 texture, which renders faster, gives a float32 frame too)
    return cv2.multiply(frame, subject.light if light is None else light, dtype=cv2.CV_32F)
