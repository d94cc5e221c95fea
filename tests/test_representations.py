"""Optical flow, strain, the cache (keys, atomic writes, resume), the flow representation and
resizing prepared inputs to a model's size."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from microexpr.data.clips import clips_frame
from microexpr.errors import ConfigError, DatasetError, InputShapeError
from microexpr.preprocess import cache as cache_module
from microexpr.preprocess.cache import ArrayCache, cache_key
from microexpr.preprocess.flow import optical_flow, optical_strain
from microexpr.representations import (
    REPRESENTATIONS,
    FlowConfig,
    compute_representation,
    onset_apex_flow,
    resize_inputs,
)


def textured(size=64, seed=0):
    rng = np.random.default_rng(seed)
    import cv2

    noise = rng.uniform(0, 255, (size // 4, size // 4)).astype(np.float32)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 255)


def shifted(image, dx, dy):
    import cv2

    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[::-1], borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("method", ["tvl1", "dis", "farneback"])
def test_flow_recovers_a_known_shift(method):
    image = textured()
    moved = shifted(image, 1.5, -1.0)
    flow = optical_flow(image.astype(np.uint8), moved.astype(np.uint8), method)
    centre = flow[16:48, 16:48]
    # the content moved by (+1.5, -1.0): flow from first to second is that displacement
    assert np.median(centre[..., 0]) == pytest.approx(1.5, abs=0.3)
    assert np.median(centre[..., 1]) == pytest.approx(-1.0, abs=0.3)


def test_strain_zero_for_translation_and_known_for_stretch():
    yy, xx = np.mgrid[0:20, 0:20].astype(np.float32)
    translation = np.stack([np.full_like(xx, 2.0), np.full_like(xx, -1.0)], axis=-1)
    assert np.abs(optical_strain(translation)).max() < 1e-6
    stretch = np.stack([0.1 * xx, np.zeros_like(xx)], axis=-1)  # du/dx = 0.1
    assert np.allclose(optical_strain(stretch), 0.1, atol=1e-6)


def test_unknown_method_and_bad_config():
    with pytest.raises(ConfigError, match="unknown flow method"):
        optical_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "magic")
    with pytest.raises(ConfigError, match="size"):
        FlowConfig(size=2)
    with pytest.raises(ConfigError, match="channels"):
        FlowConfig(channels=("u", "depth"))


def write_clip(folder, name, dx, seed):
    import cv2

    folder = folder / name
    folder.mkdir(parents=True)
    image = textured(64, seed)
    files = []
    for n, shift in zip((1, 2, 3), (0.0, dx / 2, dx), strict=True):
        path = folder / f"img{n}.jpg"
        cv2.imwrite(str(path), shifted(image, shift, 0).astype(np.uint8))
        files.append(str(path))
    return {"dataset": "t", "format": "casme2", "subject": f"t/{name}", "clip": name,
            "frames": tuple(files), "frame_numbers": (1, 2, 3), "fps": 200.0, "onset": 1,
            "apex": 3, "offset": 3, "apex_estimated": False, "emotion": "x", "action_units": ""}


@pytest.fixture
def clips(tmp_path):
    rows = [write_clip(tmp_path, f"c{i}", dx=1.0 + i, seed=i) for i in range(3)]
    return clips_frame(rows)


def test_onset_apex_flow_shape_and_direction(clips):
    config = FlowConfig(method="dis", compute_size=64, size=16)
    array = onset_apex_flow(clips.iloc[2].to_dict(), config)
    assert array.shape == (16, 16, 3) and array.dtype == np.float32
    u = np.median(array[4:12, 4:12, 0])
    assert u == pytest.approx(3.0, abs=0.6)


def test_cache_reuses_and_resumes(clips, tmp_path, monkeypatch):
    config = {"method": "dis", "compute_size": 64, "size": 16}
    calls = []
    original = onset_apex_flow

    def counting(clip, cfg, context):
        calls.append(clip["clip"])
        return original(clip, cfg, context)

    counted = replace(REPRESENTATIONS["onset_apex_flow"], compute=counting)
    monkeypatch.setitem(REPRESENTATIONS, "onset_apex_flow", counted)
    cache_dir = tmp_path / "cache"
    # a run interrupted after the first clip: only that entry exists
    compute_representation(clips.iloc[:1], config=config, cache_dir=cache_dir, progress=False)
    assert calls == ["c0"]
    full = compute_representation(clips, config=config, cache_dir=cache_dir, progress=False)
    assert calls == ["c0", "c1", "c2"]  # resumed: c0 was not recomputed
    again = compute_representation(clips, config=config, cache_dir=cache_dir, progress=False)
    assert calls == ["c0", "c1", "c2"]  # unchanged: nothing recomputed
    np.testing.assert_array_equal(full, again)
    compute_representation(clips, config={**config, "size": 8}, cache_dir=cache_dir,
                           progress=False)
    assert len(calls) == 6  # changed config: new entries
    compute_representation(clips, config=config, cache_dir=None, progress=False)
    assert len(calls) == 9  # cache off


def test_cache_key_follows_file_content_not_name(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert cache_key("x", {"k": 1}, [a]) == cache_key("x", {"k": 1}, [b])
    assert cache_key("x", {"k": 1}, [a]) != cache_key("x", {"k": 2}, [a])
    b.write_bytes(b"changed")
    assert cache_key("x", {"k": 1}, [a]) != cache_key("x", {"k": 1}, [b])


def test_atomic_write_leaves_no_partial_entry(tmp_path, monkeypatch):
    cache = ArrayCache(tmp_path)
    cache.put("rep", "ab12", np.arange(4.0))
    np.testing.assert_array_equal(cache.get("rep", "ab12"), np.arange(4.0))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.np, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        cache.put("rep", "cd34", np.arange(3.0))
    assert cache.get("rep", "cd34") is None
    assert not list((tmp_path / "rep").rglob(".tmp-*"))


def test_corrupt_entry_is_recomputed(tmp_path):
    cache = ArrayCache(tmp_path)
    path = tmp_path / "rep" / "ef" / "ef56.npy"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an array")
    assert cache.get("rep", "ef56") is None and not path.exists()


def test_missing_frame_is_named(clips):
    row = clips.iloc[0].to_dict()
    broken = {**row, "frames": (row["frames"][0] + ".gone", *row["frames"][1:])}
    with pytest.raises(DatasetError, match=r"cannot read frame .*img1.jpg.gone"):
        onset_apex_flow(broken, FlowConfig(method="dis", compute_size=64, size=16))
    with pytest.raises(DatasetError, match="has no frame 7"):
        onset_apex_flow({**row, "apex": 7}, FlowConfig(method="dis", compute_size=64, size=16))


def test_parallel_matches_serial(clips, tmp_path):
    config = {"method": "dis", "compute_size": 64, "size": 16}
    serial = compute_representation(clips, config=config, cache_dir=None, progress=False)
    parallel = compute_representation(clips, config=config, cache_dir=None, jobs=2,
                                      progress=False)
    np.testing.assert_allclose(serial, parallel, atol=1e-5)


def test_resize_inputs_keeps_units_channels_and_layout():
    rng = np.random.default_rng(0)
    flow = np.zeros((2, 28, 28, 3), np.float32)
    flow[..., 0] = 2.5  # a uniform 2.5 px motion stays 2.5 at any size
    flow[..., 1:] = rng.normal(size=(2, 28, 28, 2))
    for size in (14, 48):
        out = resize_inputs(flow, size)
        assert out.shape == (2, size, size, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out[..., 0], 2.5, atol=1e-5)
    # shrinking averages areas: 28 -> 14 is the mean of each 2 x 2 block
    blocks = flow[..., 1:].reshape(2, 14, 2, 14, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(resize_inputs(flow, 14)[..., 1:], blocks, atol=1e-5)
    one = resize_inputs(flow[..., :1], 48)  # a single channel keeps its axis
    assert one.shape == (2, 48, 48, 1)
    many = rng.normal(size=(1, 28, 28, 600))  # more channels than one cv2 image holds
    out = resize_inputs(many, 14)
    assert out.shape == (1, 14, 14, 600) and out.dtype == np.float64
    np.testing.assert_allclose(out[0, ..., 599], many[0, ..., 599].reshape(14, 2, 14, 2)
                               .mean(axis=(1, 3)), atol=1e-9)
    clips = rng.normal(size=(2, 4, 28, 28, 1)).astype(np.float32)  # N x T x H x W x C
    out = resize_inputs(clips, 14)
    assert out.shape == (2, 4, 14, 14, 1)
    np.testing.assert_allclose(out[1, 3], resize_inputs(clips[1, 3][None], 14)[0], atol=0)
    assert resize_inputs(flow, 28) is flow


@pytest.mark.parametrize("size", [0, -3, 2.5, "48", True])
def test_resize_inputs_rejects_bad_sizes(size):
    with pytest.raises(ConfigError, match="input size"):
        resize_inputs(np.zeros((1, 8, 8, 1), np.float32), size)


def test_resize_inputs_rejects_bad_shapes():
    with pytest.raises(InputShapeError, match=r"shape \(8, 8, 1\)"):
        resize_inputs(np.zeros((8, 8, 1), np.float32), 4)


@pytest.mark.parametrize("method", ["dis", "tvl1"])
def test_flow_does_not_depend_on_what_ran_before(method):
    # a solver reused across frame sizes kept state from the last size: results changed
    from microexpr.preprocess.flow import optical_flow

    rng = np.random.default_rng(0)
    first = cv2.GaussianBlur((rng.random((64, 64)) * 255).astype(np.uint8), (5, 5), 2)
    second = np.roll(first, 2, axis=1)
    before = optical_flow(first, second, method)
    optical_flow(cv2.resize(first, (32, 32)), cv2.resize(second, (32, 32)), method)
    optical_flow(cv2.resize(first, (48, 40)), cv2.resize(second, (48, 40)), method)
    np.testing.assert_array_equal(optical_flow(first, second, method), before)
