"""Temporal preprocessing: sampling, TIM, dynamic images, motion magnification, apex spotting."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from microexpr.errors import ConfigError, InputShapeError
from microexpr.preprocess.apex import motion_curve, spot_apex
from microexpr.preprocess.dynamic import (
    dynamic_image,
    rank_pooling_weights,
    segment_bounds,
    segment_dynamic_images,
    to_uint8,
)
from microexpr.preprocess.magnify import MagnifyConfig, magnify
from microexpr.preprocess.temporal import interpolate_frames, sample_indices, tim_weights


def _random_clip(t: int, h: int = 12, w: int = 10, c: int | None = None, seed: int = 0):
    shape = (t, h, w) if c is None else (t, h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


# --- sampling and interpolation -------------------------------------------------------------


def test_sample_indices_spread_and_repeat():
    assert sample_indices(10, 10).tolist() == list(range(10))
    idx = sample_indices(100, 8)
    assert idx[0] == 0 and idx[-1] == 99 and np.all(np.diff(idx) > 0)
    assert np.ptp(np.diff(idx)) <= 1  # uniform steps
    assert sample_indices(3, 7).tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert sample_indices(1, 4).tolist() == [0, 0, 0, 0]
    with pytest.raises(ConfigError):
        sample_indices(5, 1)
    with pytest.raises(ConfigError):
        sample_indices(0, 4)


def test_uniform_and_linear():
    clip = _random_clip(9)
    out = interpolate_frames(clip, 5, "uniform")
    assert out.dtype == np.float32 and out.shape == (5, 12, 10)
    np.testing.assert_array_equal(out, clip[sample_indices(9, 5)])
    # linear on a ramp (frame t has value 3t + 1) gives the exact ramp at any length
    ramp = (3.0 * np.arange(7) + 1.0)[:, None, None, None] * np.ones((7, 4, 5, 3))
    for length in (2, 5, 7, 13, 40):
        got = interpolate_frames(ramp, length, "linear")
        expected = 3.0 * np.linspace(0, 6, length) + 1.0
        np.testing.assert_allclose(got[:, 0, 0, 0], expected, atol=1e-5)
        assert got.shape == (length, 4, 5, 3)
    np.testing.assert_allclose(interpolate_frames(clip, 9, "linear"), clip, atol=1e-4)


def test_tim_reproduces_input_and_endpoints():
    for t, c in ((2, None), (10, None), (37, 3)):
        clip = _random_clip(t, c=c, seed=t)
        out = interpolate_frames(clip, t, "tim")
        assert out.dtype == np.float32 and out.shape == clip.shape
        np.testing.assert_allclose(out, clip, atol=1e-2)
    clip = _random_clip(30, seed=1)
    for length in (10, 64):
        out = interpolate_frames(clip, length, "tim")
        assert out.shape == (length, 12, 10)
        np.testing.assert_allclose(out[0], clip[0], atol=1e-2)  # first and last frame kept
        np.testing.assert_allclose(out[-1], clip[-1], atol=1e-2)
    weights = tim_weights(30, 10)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-9)


def test_tim_matches_original_algorithm():
    """The closed form equals TrainPGM/synPGM (PCA, projection onto the curve, inverse)."""
    rng = np.random.default_rng(3)
    n, length = 7, 12
    x = rng.normal(size=(50, n))  # columns are frames
    mu = x.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    u, q = u[:, : n - 1], np.diag(s[: n - 1]) @ vt[: n - 1]
    laplacian = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    laplacian[0, 0] = laplacian[-1, -1] = 1
    y = np.linalg.eigh(laplacian)[1][:, 1:]
    w = np.linalg.solve(q @ q.T, q @ y)
    k = np.arange(1, n)
    scale = (q[:, 0] @ w) / np.sin(np.pi * k / n + np.pi * (n - k) / (2 * n))
    expected = []
    for pos in np.linspace(0, 1, length) * (1 - 1 / n) + 1 / n:
        v = np.sin(pos * k * np.pi + np.pi * (n - k) / (2 * n)) * scale
        expected.append(u @ np.linalg.solve(w.T, v) + mu[:, 0])
    got = interpolate_frames(x.T.reshape(n, 5, 10), length, "tim").reshape(length, -1)
    np.testing.assert_allclose(got, np.array(expected), atol=1e-4)


def test_tim_smooth_between_frames():
    # a slow cosine in time (within TIM's band) is interpolated almost exactly
    t = np.arange(12)
    signal = np.cos(np.pi * 2 * (t + 0.5) / 12)
    clip = signal[:, None, None] * np.ones((12, 2, 2))
    out = interpolate_frames(clip, 34, "tim")[:, 0, 0]
    pos = np.linspace(0, 11, 34)
    np.testing.assert_allclose(out, np.cos(np.pi * 2 * (pos + 0.5) / 12), atol=1e-5)


def test_interpolation_errors():
    clip = _random_clip(5)
    with pytest.raises(ConfigError, match="unknown interpolation"):
        interpolate_frames(clip, 5, "cubic")
    with pytest.raises(ConfigError):
        interpolate_frames(clip, 1, "tim")
    with pytest.raises(ConfigError):
        interpolate_frames(clip[:1], 4, "tim")
    with pytest.raises(ConfigError):
        interpolate_frames(clip[:1], 4, "linear")
    assert interpolate_frames(clip[:1], 4, "uniform").shape == (4, 12, 10)


# --- dynamic images ---------------------------------------------------------------------------


def test_rank_pooling_weights():
    np.testing.assert_allclose(
        rank_pooling_weights(8),
        [-8.46, -1.46, 1.04, 2.04, 2.29, 2.09, 1.59, 0.875],
        atol=0.005,
    )
    for n in (1, 2, 5, 8, 31):
        harmonic = [sum(1.0 / i for i in range(1, m + 1)) for m in range(n + 1)]
        closed = [2 * (n - t + 1) - (n + 1) * (harmonic[n] - harmonic[t - 1])
                  for t in range(1, n + 1)]
        np.testing.assert_allclose(rank_pooling_weights(n), closed, rtol=0, atol=1e-12)
        assert abs(rank_pooling_weights(n).sum()) < 1e-9


def test_dynamic_image_sign_and_shape():
    ramp = np.arange(8, dtype=np.float32)[:, None, None] * np.ones((8, 6, 5), np.float32)
    di = dynamic_image(ramp)
    assert di.dtype == np.float32 and di.shape == (6, 5)
    assert np.all(di > 0)
    assert np.all(dynamic_image(ramp[::-1]) < 0)
    np.testing.assert_allclose(dynamic_image(np.full((6, 4, 4, 3), 7, np.uint8)), 0, atol=1e-4)
    with pytest.raises(ConfigError):
        dynamic_image(ramp[:1])


def test_segment_dynamic_images():
    assert segment_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    clip = _random_clip(11, c=3)
    out = segment_dynamic_images(clip, 3)
    assert out.shape == (3, 12, 10, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[1], dynamic_image(clip[4:8]), rtol=1e-6)
    assert segment_dynamic_images(clip, 5).shape[0] == 5
    with pytest.raises(ConfigError, match="at least 12 frames"):
        segment_dynamic_images(clip, 6)
    with pytest.raises(ConfigError):
        segment_dynamic_images(clip, 0)


def test_to_uint8():
    image = np.array([[-2.0, 0.0], [1.0, 2.0]])
    np.testing.assert_array_equal(to_uint8(image), [[0, 128], [191, 255]])
    assert to_uint8(np.full((3, 3), 5.0)).tolist() == [[0] * 3] * 3
    assert to_uint8(np.zeros((2, 2, 3))).dtype == np.uint8


# --- motion magnification ---------------------------------------------------------------------

_SIZE, _FPS, _T = 64, 30.0, 60
_YY, _XX = np.mgrid[0:_SIZE, 0:_SIZE].astype(np.float64)
_BLOBS = ((20, 20, 7, 80.0), (40, 45, 8, -60.0), (32, 32, 11, 50.0), (15, 50, 6, 40.0))


def _pattern(dx: float) -> np.ndarray:
    """Wide Gaussian blobs on grey, translated by dx pixels along x."""
    image = np.full((_SIZE, _SIZE), 120.0)
    for cy, cx, sigma, amp in _BLOBS:
        image += amp * np.exp(-((_XX - cx - dx) ** 2 + (_YY - cy) ** 2) / (2 * sigma**2))
    return image


def _moving_clip(freq_hz: float, amplitude: float) -> tuple[np.ndarray, np.ndarray]:
    shift = amplitude * np.sin(2 * np.pi * freq_hz * np.arange(_T) / _FPS)
    return np.stack([_pattern(dx) for dx in shift]).astype(np.float32), shift


def _measured_shift(frames: np.ndarray) -> np.ndarray:
    """Displacement of each frame: the dx that best explains it as the translated pattern."""
    def fit(frame):
        cost = lambda dx: float(np.sum((frame - _pattern(dx)) ** 2))  # noqa: E731
        return minimize_scalar(cost, bounds=(-4, 4), method="bounded",
                               options={"xatol": 1e-4}).x
    return np.array([fit(frame) for frame in frames])


def test_magnify_amplifies_motion_in_band():
    clip, shift = _moving_clip(1.5, 0.1)  # 0.1 px at 1.5 Hz, inside the default band
    config = MagnifyConfig(factor=10.0)
    out = magnify(clip, _FPS, config)
    assert out.shape == clip.shape and out.dtype == np.float32
    measured = _measured_shift(out)
    gain = float(measured @ shift / (shift @ shift))
    assert gain == pytest.approx(1 + config.factor, rel=0.25)
    original_gain = float(_measured_shift(clip) @ shift / (shift @ shift))
    assert original_gain == pytest.approx(1.0, abs=0.05)


def test_magnify_leaves_out_of_band_content():
    band = MagnifyConfig(low_hz=0.4, high_hz=3.0)
    static = np.repeat(_pattern(0.0)[None], _T, axis=0).astype(np.float32)
    np.testing.assert_allclose(magnify(static, _FPS, band), static, atol=1e-3)
    fast, shift = _moving_clip(10.0, 0.3)  # far above 3 Hz
    out = magnify(fast, _FPS, band)
    gain = float(_measured_shift(out) @ shift / (shift @ shift))
    assert gain == pytest.approx(1.0, abs=0.15)
    # what does leak in (edge transients of a finite clip under an ideal filter) is far below
    # the factor-times change the same motion would get inside the band
    leak = np.linalg.norm(out - fast) / np.linalg.norm(fast - static)
    assert leak < 0.1 * 10.0


def test_magnify_dtypes_colour_and_config():
    clip, _ = _moving_clip(1.5, 0.1)
    gray8 = np.clip(np.rint(clip), 0, 255).astype(np.uint8)
    out8 = magnify(gray8, _FPS)
    assert out8.dtype == np.uint8 and out8.shape == gray8.shape
    # colour with attenuate_color 1 = each channel magnified alone; greys are pure luma, so
    # attenuating chrominance does not change a grey clip's magnification
    rgb = np.repeat(clip[..., None], 3, axis=-1)
    out_rgb = magnify(rgb, _FPS)
    np.testing.assert_allclose(out_rgb[..., 1], magnify(clip, _FPS), atol=1e-2)
    np.testing.assert_allclose(
        magnify(rgb, _FPS, MagnifyConfig(attenuate_color=0.0)), out_rgb, atol=0.5
    )
    # a pure chrominance flicker inside the band is removed from the amplification
    flicker = rgb.copy()
    flicker[..., 0] += 2.0 * np.sin(2 * np.pi * 1.5 * np.arange(_T) / _FPS)[:, None, None]
    flicker[..., 2] -= 2.0 * 0.299 / 0.114 * np.sin(2 * np.pi * 1.5 * np.arange(_T) / _FPS)[
        :, None, None
    ]
    damped = magnify(flicker, _FPS, MagnifyConfig(attenuate_color=0.0)) - out_rgb
    full = magnify(flicker, _FPS) - out_rgb
    assert np.abs(damped).max() < 0.25 * np.abs(full).max()
    # lambda_c attenuates only the finest levels
    small = magnify(clip, _FPS, MagnifyConfig(lambda_c=16.0))
    assert np.abs(small - clip).max() <= np.abs(magnify(clip, _FPS) - clip).max() + 1e-3
    bad_configs = [
        ({"factor": -1.0}, "factor"),
        ({"low_hz": 3.0, "high_hz": 1.0}, "high_hz"),
        ({"levels": 0}, "levels"),
        ({"attenuate_color": -0.5}, "attenuate_color"),
        ({"high_hz": float("nan")}, "high_hz"),
    ]
    for kwargs, name in bad_configs:
        with pytest.raises(ConfigError, match=name):
            MagnifyConfig(**kwargs)
    with pytest.raises(ConfigError, match="fps"):
        magnify(clip, 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        same = magnify(clip[:8], 200.0)  # 12.5 Hz steps: nothing in 0.4-3 Hz
    assert caught and np.array_equal(same, clip[:8])


# --- apex spotting ----------------------------------------------------------------------------


def _out_and_back_clip(peak: int = 13, t: int = 24) -> np.ndarray:
    """A textured face-sized patch whose middle blob moves out 3 px and back, peak at `peak`."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    background = 100 + 20 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    displacement = 3.0 * np.clip(1 - np.abs(np.arange(t) - peak) / peak, 0, None)
    frames = []
    for dx in displacement:
        blob = 90 * np.exp(-((xx - 32 - dx) ** 2 + (yy - 30 - 0.5 * dx) ** 2) / (2 * 6.0**2))
        texture = 30 * np.sin((xx - dx) / 2.5) * np.exp(-((xx - 32) ** 2 + (yy - 30) ** 2) / 300)
        frame = background + blob + texture + rng.normal(0, 1.0, background.shape)
        frames.append(np.clip(frame, 0, 255))
    return np.rint(np.stack(frames)).astype(np.uint8)


@pytest.mark.parametrize("method", ["diff", "flow"])
def test_spot_apex_finds_peak(method):
    clip = _out_and_back_clip(peak=13)
    curve = motion_curve(clip, method)
    assert curve.shape == (24,) and curve[0] == 0
    assert abs(spot_apex(clip, method) - 13) <= 1
    mask = np.zeros((64, 64), bool)
    mask[10:54, 10:54] = True
    assert abs(spot_apex(clip.astype(np.float32), method, mask=mask, smooth=1) - 13) <= 1


def test_apex_errors():
    clip = _out_and_back_clip()
    with pytest.raises(ConfigError):
        motion_curve(clip, "sift")
    with pytest.raises(InputShapeError):
        motion_curve(clip[..., None], "diff")
    with pytest.raises(InputShapeError):
        motion_curve(clip, "diff", mask=np.ones((3, 3), bool))
    with pytest.raises(ConfigError):
        spot_apex(clip, smooth=0)
    assert spot_apex(np.repeat(clip[:1], 5, axis=0)) == 0  # no motion: ties go to the first
