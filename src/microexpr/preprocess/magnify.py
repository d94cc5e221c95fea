"""Eulerian video motion magnification, linear method (Wu et al., SIGGRAPH 2012).

For a small motion delta(t) of an image f, I(x, t) ~ f(x) + delta(t) f'(x): the motion shows
as an intensity change at each pixel over time. Band-passing that change in time and adding it
back `factor` times gives f(x) + (1 + factor) delta(t) f'(x) ~ f(x + (1 + factor) delta(t)),
i.e. the motion magnified (as long as the magnified motion stays small against the image
structure's wavelength).

Steps of `magnify`:

1. Each frame is decomposed into a Laplacian pyramid of `levels` band-pass levels and one
   low-pass residual (cv2.pyrDown / cv2.pyrUp; fewer levels when the frame is too small).
2. Each level is band-passed over time with an ideal filter in the DCT-II domain: the
   DCT-II along time (the Fourier transform of the clip mirrored at its ends) is zeroed
   outside [low_hz, high_hz] and inverted. Mirroring instead of wrapping round keeps the
   jump between the last and the first frame (a micro-expression clip seldom ends where it
   starts) out of the pass band, and the frequency resolution is fps / (2 T) instead of
   fps / T, which matters for short clips. The constant term (the temporal mean) is never
   amplified. An ideal filter passes exactly the coefficients inside the band; if no
   coefficient lies in it (short clip at a high frame rate: 60 frames at 200 fps resolve
   1.67 Hz steps) the clip comes back unchanged, with a warning. A finite clip cannot be
   filtered perfectly: a motion far outside the band still leaks a few per cent of its
   amplitude into it (about 5 % RMS for a 10 Hz motion in a 2 s clip at 30 fps), and that
   leak is amplified too.
3. The band-passed signal of level l is multiplied by alpha_l and added back; the pyramid is
   collapsed. With the default `lambda_c = 0` every level (residual included) gets
   alpha_l = factor, so the linear model above holds at every spatial scale and a motion in
   the pass band is magnified (1 + factor) times. With `lambda_c > 0` the finer levels are
   attenuated as in Wu et al. (Sec. 3.2): alpha_l = clip((lambda_l / lambda_c)(1 + factor)
   - 1, 0, factor), lambda_l = 3 * 2**l pixels the representative wavelength of level l
   (l = 0 finest; level l holds wavelengths of about 2**(l+1)..2**(l+2) px). Unlike the
   authors' MATLAB code we neither zero the finest level and the residual nor double the
   attenuated alphas ("exaggeration factor").
4. Colour (T x H x W x 3, RGB order): the amplified change is expressed in YIQ and the
   chrominance (I, Q) part multiplied by `attenuate_color` (Wu et al.'s chromAttenuation);
   1.0 amplifies all channels alike. Other channel counts are amplified channel by channel.

Everything after step 1 is linear, so the temporal filter, the level weights and the colour
attenuation are all applied to the change only; the input frames themselves are added back
untouched. uint8 (integer) clips are rounded and clipped to their dtype's range, float clips
are returned in their dtype without clipping.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft

from microexpr.errors import ConfigError

# RGB -> YIQ (NTSC), as in Wu et al.'s rgb2ntsc
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float64
)


@dataclass(frozen=True)
class MagnifyConfig:
    """Parameters of Eulerian motion magnification (see the module docstring).

    factor: amplification alpha (a motion becomes (1 + factor) times larger);
    low_hz, high_hz: temporal pass band in Hz; levels: band-pass levels of the Laplacian
    pyramid; attenuate_color: multiplier of the chrominance amplification (RGB clips);
    lambda_c: spatial wavelength cutoff in pixels below which amplification is reduced
    (0 = off, every level gets `factor`).

    The default band, 1-12 Hz, covers the motion of a micro-expression (onset to offset in
    0.1-0.5 s, a half-period of 1-5 Hz) in clips of 30-200 fps; a band below 1 Hz has no
    frequency step in a short 200 fps clip (the steps are fps / (2 * frames)).
    """

    factor: float = 10.0
    low_hz: float = 1.0
    high_hz: float = 12.0
    levels: int = 4
    attenuate_color: float = 1.0
    lambda_c: float = 0.0

    def __post_init__(self) -> None:
        for name in ("factor", "low_hz", "high_hz", "attenuate_color", "lambda_c"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f"MagnifyConfig.{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"MagnifyConfig.{name} must be a finite number >= 0, got {value!r}"
                )
        if self.high_hz <= self.low_hz:
            raise ConfigError(
                f"MagnifyConfig.high_hz ({self.high_hz}) must be above low_hz ({self.low_hz})"
            )
        levels = self.levels
        if isinstance(levels, bool) or not isinstance(levels, numbers.Integral) or levels < 1:
            raise ConfigError(f"MagnifyConfig.levels must be an integer >= 1, got {self.levels!r}")


def level_factors(config: MagnifyConfig, n_levels: int) -> np.ndarray:
    """alpha_l for the band levels 0..n_levels-1 (finest first) and the residual (last)."""
    alphas = np.full(n_levels + 1, float(config.factor))
    if config.lambda_c > 0:
        wavelengths = 3.0 * 2.0 ** np.arange(n_levels + 1)
        attenuated = wavelengths / config.lambda_c * (1.0 + config.factor) - 1.0
        alphas = np.clip(attenuated, 0.0, config.factor)
    return alphas


def temporal_bandpass_mask(n_frames: int, fps: float, low_hz: float, high_hz: float) -> np.ndarray:
    """Boolean mask over DCT-II coefficients 0..n_frames-1 (coefficient k is k fps / 2T Hz)."""
    freqs = np.arange(n_frames) * fps / (2.0 * n_frames)
    mask = (freqs >= low_hz) & (freqs <= high_hz)
    mask[0] = False  # the temporal mean is never amplified
    return mask


def _laplacian_pyramid(frames: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """Per-frame Laplacian pyramids, stacked over time: [level 0 (finest), ..., residual]."""
    pyramid: list[list[np.ndarray]] = [[] for _ in range(n_levels + 1)]
    for frame in frames:
        current = frame
        for level in range(n_levels):
            down = cv2.pyrDown(current)
            up = cv2.pyrUp(down, dstsize=(current.shape[1], current.shape[0]))
            pyramid[level].append(current - up.reshape(current.shape))
            current = down.reshape(down.shape[:2] + frame.shape[2:])
        pyramid[n_levels].append(current)
    return [np.stack(level) for level in pyramid]


def _collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    """Invert `_laplacian_pyramid` frame by frame."""
    out = pyramid[-1]
    for level in reversed(pyramid[:-1]):
        height, width = level.shape[1:3]
        up = np.stack([cv2.pyrUp(frame, dstsize=(width, height)) for frame in out])
        out = level + up.reshape(level.shape)
    return out


def magnify(
    frames: np.ndarray, fps: float, config: MagnifyConfig = MagnifyConfig()
) -> np.ndarray:
    """Magnify the motion of a clip T x H x W [x C] within config's temporal band.

    Returns the same shape and dtype (integer dtypes rounded and clipped to their range).
    """
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4):
        raise ConfigError(
            f"magnify takes frames T x H x W or T x H x W x C, got shape {frames.shape}"
        )
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not fps > 0:
        raise ConfigError(f"magnify needs fps > 0, got {fps!r}")
    n = frames.shape[0]
    mask = temporal_bandpass_mask(n, float(fps), config.low_hz, config.high_hz)
    if not mask.any() or config.factor == 0:
        if config.factor != 0:
            warnings.warn(
                f"magnify: no temporal frequency of a {n}-frame clip at {fps} fps (steps of "
                f"{fps / (2 * max(n, 1)):.3g} Hz) lies in {config.low_hz}-{config.high_hz} Hz; "
                "the clip is returned unchanged",
                stacklevel=2,
            )
        return frames.copy()

    work = frames.astype(np.float32)
    min_side = min(frames.shape[1], frames.shape[2])
    n_levels = min(int(config.levels), max(0, int(math.log2(min_side)) - 1))
    alphas = level_factors(config, n_levels)

    pyramid = _laplacian_pyramid(work, n_levels)
    for index, level in enumerate(pyramid):
        coeffs = scipy.fft.dct(level, type=2, axis=0, norm="ortho")
        coeffs[~mask] = 0.0
        coeffs *= np.float32(alphas[index])
        pyramid[index] = scipy.fft.idct(coeffs, type=2, axis=0, norm="ortho").astype(
            np.float32, copy=False
        )
    change = _collapse(pyramid)

    if frames.ndim == 4 and frames.shape[3] == 3 and config.attenuate_color != 1.0:
        weights = np.diag([1.0, config.attenuate_color, config.attenuate_color])
        mix = np.linalg.inv(_RGB_TO_YIQ) @ weights @ _RGB_TO_YIQ  # RGB -> YIQ -> scale -> RGB
        change = change @ mix.T.astype(np.float32)

    out = work + change
    if np.issubdtype(frames.dtype, np.integer):
        info = np.iinfo(frames.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(frames.dtype)
    return out.astype(frames.dtype, copy=False)
