"""Channel names: every representation names the last axis of its arrays, and the names follow
the config (flow channels asked for, colour or gray), so a user can tell u from strain."""

from dataclasses import replace

import numpy as np
import pytest

import microexpr
from microexpr.errors import ConfigError
from microexpr.representations import (
    REPRESENTATIONS,
    channel_names,
    prepare_representation,
)

# one cheap config per registered representation (the landmark ones need mediapipe landmarks)
CASES = {
    "onset_apex_flow": {"method": "dis", "compute_size": 32, "size": 16,
                        "channels": ["v", "magnitude"]},
    "apex_flow": {"method": "dis", "compute_size": 32, "size": 16},
    "apex_frame": {"size": 16, "color": True},
    "frame_clip": {"size": 16, "length": 3},
    "dynamic_images": {"size": 16, "segments": 2, "color": True},
    "dssi": {"size": 16, "segments": 2, "align": False},
    "frame_flows": {"length": 3, "size": 16, "method": "dis"},
    "landmarks": {"backend": "mediapipe", "length": 2, "size": 64},
    "face_regions": {"backend": "mediapipe", "size": 64},
    "region_flow": {"method": "dis", "compute_size": 64, "bins": 4, "regions": ["mouth", "chin"]},
}
EXPECTED = {
    "onset_apex_flow": ("v", "magnitude"),
    "apex_flow": ("gray", "u", "v", "strain"),
    "apex_frame": ("r", "g", "b"),
    "frame_clip": ("gray",),
    "dynamic_images": ("r", "g", "b"),
    "dssi": ("gray",),
    "frame_flows": ("u", "v"),
    "landmarks": ("x", "y"),
    "face_regions": ("x", "y", "width", "height"),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = microexpr.synthesize(tmp_path_factory.mktemp("db"), subjects=1, clips_per_class=1,
                                size=64, seed=3, emotions=("happiness",))
    return microexpr.load_dataset("casme2", root).clips.iloc[:1]


def test_every_registered_representation_has_a_case():
    assert set(CASES) == set(REPRESENTATIONS)
    assert all(rep.channels is not None for rep in REPRESENTATIONS.values())


@pytest.mark.parametrize("name", sorted(CASES))
def test_channel_names_match_the_last_axis(clip, name):
    report = prepare_representation(clip, name, CASES[name], cache_dir=None, progress=False)
    assert len(report.failures) == 0, report.failures.to_dict("records")
    array = report.stacked()
    names = channel_names(name, CASES[name])
    assert len(names) == array.shape[-1] and len(set(names)) == len(names)
    assert report.channels == names
    if name in EXPECTED:
        assert names == EXPECTED[name]


def test_region_flow_names_are_region_major():
    names = channel_names("region_flow", {"bins": 2, "regions": ["mouth", "chin"]})
    assert names == ("mouth/hoof0", "mouth/hoof1", "mouth/mean", "mouth/std", "mouth/max",
                     "chin/hoof0", "chin/hoof1", "chin/mean", "chin/std", "chin/max")


def test_defaults_and_errors():
    assert channel_names("onset_apex_flow") == ("u", "v", "strain")
    assert channel_names("apex_frame") == ("gray",)
    with pytest.raises(ConfigError, match="unknown representation"):
        channel_names("optical_flux")
    with pytest.raises(ConfigError, match="channels"):
        channel_names("onset_apex_flow", {"channels": ["depth"]})


def test_a_representation_without_names_gets_numbered_channels(clip, monkeypatch):
    unnamed = replace(REPRESENTATIONS["apex_frame"], channels=None)
    monkeypatch.setitem(REPRESENTATIONS, "apex_frame", unnamed)
    report = prepare_representation(clip, "apex_frame", {"size": 16, "color": True},
                                    cache_dir=None, progress=False)
    assert report.channels == ("channel0", "channel1", "channel2")
    assert np.asarray(report.stacked()).shape[-1] == 3
    with pytest.raises(ConfigError, match="does not name its channels"):
        channel_names("apex_frame")
