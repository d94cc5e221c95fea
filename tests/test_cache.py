"""The array cache: a damaged or foreign entry is a reported miss, never a silent wrong value."""

import json
import os
import stat

import numpy as np
import pytest

from microexpr.preprocess.cache import ArrayCache


@pytest.fixture
def cache(tmp_path):
    return ArrayCache(tmp_path / "cache")


def _flow(seed=0):
    return np.random.default_rng(seed).normal(size=(28, 28, 3)).astype(np.float32)


def test_entry_round_trips_with_its_metadata(cache):
    cache.put("flow", "ab12", _flow(), meta={"warnings": ["face left the frame at 7"]})
    np.testing.assert_array_equal(cache.get("flow", "ab12"), _flow())
    assert cache.get_meta("flow", "ab12") == {"warnings": ["face left the frame at 7"]}
    assert cache.rejected == []


def test_flipped_bytes_of_the_same_size_are_rejected_and_recomputed(cache):
    cache.put("flow", "ab12", _flow(), meta={"warnings": []})
    path = cache._path("flow", "ab12")
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x7F  # one byte of one float: a value that may be up to ~1e24, same size
    path.write_bytes(bytes(raw))
    assert cache.get("flow", "ab12") is None
    assert cache.rejected == [(str(path), "content hash mismatch")]
    assert not path.exists() and not path.with_suffix(".json").exists()
    assert cache.take_rejected() and cache.rejected == []
    cache.put("flow", "ab12", _flow(), meta={"warnings": []})  # the caller recomputes
    np.testing.assert_array_equal(cache.get("flow", "ab12"), _flow())


@pytest.mark.parametrize("other, reason", [
    (np.zeros((14, 14, 3), np.float32), "shape (14, 14, 3), expected (28, 28, 3)"),
    (np.zeros((28, 28, 3), np.float64), "dtype <f8, expected <f4"),
])
def test_an_array_of_another_shape_or_dtype_is_rejected_naming_it(cache, other, reason):
    cache.put("flow", "cd34", _flow())
    path = cache._path("flow", "cd34")
    np.save(path, other)  # e.g. a file copied in from another cache
    assert cache.get("flow", "cd34") is None
    assert cache.rejected == [(str(path), reason)]


def test_unreadable_entry_and_missing_metadata_are_rejected(cache):
    cache.put("flow", "ef56", _flow())
    path = cache._path("flow", "ef56")
    path.write_bytes(b"\x93NUMPY truncated")
    assert cache.get("flow", "ef56") is None
    assert cache.rejected[-1][1].startswith("unreadable")
    cache.put("flow", "ef56", _flow())
    path.with_suffix(".json").unlink()
    assert cache.get("flow", "ef56") is None
    assert "metadata" in cache.rejected[-1][1] and not path.exists()


def test_previous_format_entry_is_a_quiet_miss(cache):
    path = cache._path("flow", "0a0b")
    path.parent.mkdir(parents=True)
    np.save(path, np.full((28, 28, 3), 1e24, np.float32))  # as the old cache wrote it
    path.with_suffix(".json").write_text(json.dumps({"warnings": []}))
    assert cache.get("flow", "0a0b") is None
    assert cache.rejected == [] and not path.exists()


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755),
                                                        (0o002, 0o664, 0o775)])
def test_entries_follow_the_umask_so_a_group_can_share_the_cache(cache, umask, file_mode,
                                                                 dir_mode):
    old = os.umask(umask)
    try:
        cache.put("flow", "ab12", _flow(), meta={"warnings": []})
    finally:
        os.umask(old)
    path = cache._path("flow", "ab12")
    assert stat.S_IMODE(path.stat().st_mode) == file_mode
    assert stat.S_IMODE(path.with_suffix(".json").stat().st_mode) == file_mode
    assert stat.S_IMODE(path.parent.stat().st_mode) == dir_mode
    assert not list(path.parent.glob(".tmp-*"))
