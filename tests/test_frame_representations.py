"""Frame-based representations on a small synthetic database: apex, clips, dynamic images,
apex spotting and magnification through the representation configs."""

import numpy as np
import pytest

import microexpr
from microexpr.errors import ConfigError, DatasetError
from microexpr.representations import (
    compute_representation,
    make_config,
    prepare_representation,
)
from microexpr.representations.appearance import apex_frame, dynamic_images, frame_clip
from microexpr.representations.flow import apex_number, onset_apex_flow


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = microexpr.synthesize(tmp_path_factory.mktemp("db"), subjects=2, clips_per_class=1,
                                size=64, seed=3)
    return microexpr.load_dataset("casme2", root).clips


def test_apex_frame_gray_and_colour(clips):
    clip = clips.iloc[0].to_dict()
    gray = apex_frame(clip, make_config("apex_frame", {"size": 32}))
    colour = apex_frame(clip, make_config("apex_frame", {"size": 32, "color": True}))
    assert gray.shape == (32, 32, 1) and colour.shape == (32, 32, 3)
    assert gray.dtype == np.float32 and gray.min() >= 0 and gray.max() <= 255


@pytest.mark.parametrize("sampling", ["uniform", "tim", "linear"])
def test_frame_clip_has_the_requested_length(clips, sampling):
    clip = clips.iloc[1].to_dict()
    frames = frame_clip(clip, make_config("frame_clip", {"length": 6, "size": 32,
                                                         "sampling": sampling}))
    assert frames.shape == (6, 32, 32, 1)
    if sampling == "uniform":  # first and last sampled frames are the onset and offset
        onset = apex_frame({**clip, "apex": clip["onset"]},
                           make_config("apex_frame", {"size": 32, "apex": "annotated"}))
        np.testing.assert_array_equal(frames[0], onset)


def test_dynamic_images_per_segment_and_global(clips):
    clip = clips.iloc[2].to_dict()
    images = dynamic_images(clip, make_config("dynamic_images", {"segments": 3, "size": 32}))
    assert images.shape == (4, 32, 32, 1)
    assert images.min() >= 0 and images.max() <= 255
    raw = dynamic_images(clip, make_config("dynamic_images", {"segments": 0, "size": 32,
                                                              "rescale": False}))
    assert raw.shape == (1, 32, 32, 1)
    with pytest.raises(ConfigError, match="segments"):
        make_config("dynamic_images", {"segments": 0, "include_global": False})


def test_spotted_apex_is_near_the_annotated_one(clips):
    errors = []
    for clip in clips.to_dict("records"):
        unknown = {**clip, "apex_estimated": True,
                   "apex": (clip["onset"] + clip["offset"]) // 2}
        spotted = apex_number(unknown, "auto", size=64)
        errors.append(abs(spotted - clip["apex"]) / (clip["offset"] - clip["onset"]))
        assert apex_number(clip, "auto") == clip["apex"]  # an annotated apex is kept
    # errors as a fraction of the clip duration: small for most clips
    assert np.median(errors) < 0.1 and np.mean(np.array(errors) < 0.25) >= 0.75


def test_magnified_flow_is_larger(clips):
    clip = clips.iloc[0].to_dict()
    plain = onset_apex_flow(clip, make_config("onset_apex_flow", {"method": "dis",
                                                                  "compute_size": 64}))
    magnified = onset_apex_flow(clip, make_config("onset_apex_flow", {
        "method": "dis", "compute_size": 64, "magnify": {"factor": 4.0}}))
    assert np.abs(magnified[..., :2]).mean() > 1.5 * np.abs(plain[..., :2]).mean()


def test_options_from_dicts_and_errors():
    config = make_config("onset_apex_flow", {"magnify": True, "channels": ["u", "v"]})
    assert config.magnify.factor > 0 and config.channels == ("u", "v")
    with pytest.raises(ConfigError, match="unknown option"):
        make_config("frame_clip", {"frames": 3})
    with pytest.raises(ConfigError, match="unknown option"):
        make_config("onset_apex_flow", {"magnify": {"gain": 3}})
    with pytest.raises(ConfigError, match="sampling"):
        make_config("frame_clip", {"sampling": "cubic"})


def test_prepare_reports_failures_and_keeps_going(clips, tmp_path):
    broken = clips.copy()
    broken.at[0, "frames"] = tuple(f + ".gone" for f in broken.at[0, "frames"])
    report = prepare_representation(broken, "apex_frame", {"size": 16}, cache_dir=tmp_path,
                                    progress=False)
    assert report.computed == len(clips) - 1 and len(report.failures) == 1
    assert "reg_img" in report.failures["error"].iloc[0]  # names the missing file
    assert report.stacked().shape == (len(clips) - 1, 16, 16, 1)
    again = prepare_representation(broken, "apex_frame", {"size": 16}, cache_dir=tmp_path,
                                   progress=False)
    assert again.cached == len(clips) - 1 and again.computed == 0


def test_failures_and_warnings_name_the_subject_of_a_repeated_clip_name(clips, tmp_path):
    # as in real releases, two subjects hold a clip of the same name; both have a lost frame
    renamed = clips.assign(clip=clips["clip"].str.split("/").str[-1])
    repeated = renamed[renamed["clip"].duplicated(keep=False)].reset_index(drop=True)
    assert repeated["subject"].nunique() == 2
    broken = repeated.copy()
    for i in range(len(broken)):
        broken.at[i, "frames"] = tuple(f + ".gone" for f in broken.at[i, "frames"])
    report = prepare_representation(broken, "apex_frame", {"size": 16}, cache_dir=None,
                                    progress=False)
    assert list(report.failures.columns) == ["dataset", "subject", "clip", "kind", "error"]
    assert list(report.warnings.columns) == ["dataset", "subject", "clip", "warning"]
    assert sorted(report.failures["subject"]) == sorted(repeated["subject"])
    text = report.summary_of_failures(limit=1)
    subject, clip = repeated["subject"].iloc[0].split("/")[-1], repeated["clip"].iloc[0]
    assert text.startswith("2 of 2 clips failed for apex_frame")
    assert f"casme2/{subject}/{clip}: cannot read " in text
    assert text.endswith("; ... and 1 more")
    with pytest.raises(DatasetError, match=f"2 clip.s. failed; first: casme2/{subject}/{clip}: "):
        compute_representation(broken, "apex_frame", {"size": 16}, cache_dir=None,
                               progress=False)
    assert prepare_representation(clips, "apex_frame", {"size": 16}, cache_dir=None,
                                  progress=False).summary_of_failures() == ""
