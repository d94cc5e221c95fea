"""DSSI (SMA-STN's input): sparse sampling per segment, one dynamic image per segment plus a
global one, config validation, and caching through the representation API on a tiny
synthetic database."""

import numpy as np
import pytest

import microexpr
from microexpr.errors import ConfigError
from microexpr.preprocess.align import AlignConfig
from microexpr.preprocess.dynamic import dynamic_image, segment_bounds, sparse_segment_indices
from microexpr.representations import channel_names, make_config, prepare_representation
from microexpr.representations.appearance import dynamic_images
from microexpr.representations.dssi import dssi, dssi_files, dssi_indices
from microexpr.representations.frames import clip_range, frame_file, load_frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = microexpr.synthesize(tmp_path_factory.mktemp("db"), subjects=1, clips_per_class=1,
                                size=64, seed=3)
    return microexpr.load_dataset("casme2", root).clips


def test_sparse_segment_indices_spread_over_each_segment_with_both_ends():
    assert [g.tolist() for g in sparse_segment_indices(20, 4, 4)] == [
        [0, 1, 3, 4], [5, 6, 8, 9], [10, 11, 13, 14], [15, 16, 18, 19]]
    # segments shorter than per_segment use all their frames
    assert [g.tolist() for g in sparse_segment_indices(9, 4, 4)] == [
        [0, 1, 2], [3, 4], [5, 6], [7, 8]]
    assert sparse_segment_indices(30, 1, 8)[0].tolist() == [0, 4, 8, 12, 17, 21, 25, 29]


@pytest.mark.parametrize("n_frames,segments,per_segment", [(8, 4, 2), (23, 4, 4), (61, 3, 5),
                                                           (100, 6, 7), (12, 2, 30)])
def test_sparse_samples_are_increasing_distinct_and_inside_their_segment(n_frames, segments,
                                                                         per_segment):
    groups = sparse_segment_indices(n_frames, segments, per_segment)
    for group, (start, stop) in zip(groups, segment_bounds(n_frames, segments), strict=True):
        assert group[0] == start and group[-1] == stop - 1
        assert np.all(np.diff(group) > 0)
        assert len(group) == min(per_segment, stop - start)


def test_sparse_sampling_refuses_too_few_frames():
    with pytest.raises(ConfigError, match="per_segment"):
        sparse_segment_indices(20, 4, 1)
    with pytest.raises(ConfigError, match="at least 8 frames"):
        sparse_segment_indices(7, 4, 4)


def test_dssi_shape_range_and_channels(clips):
    clip = clips.iloc[0].to_dict()
    images = dssi(clip, make_config("dssi", {"size": 32, "align": False}))
    assert images.shape == (5, 32, 32, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255
    colour = dssi(clip, make_config("dssi", {"size": 32, "align": False, "color": True,
                                             "segments": 3}))
    assert colour.shape == (4, 32, 32, 3)
    assert channel_names("dssi", {"align": False}) == ("gray",)
    assert channel_names("dssi", {"color": True}) == ("r", "g", "b")


def test_each_image_rank_pools_its_sampled_frames_and_the_global_one_is_last(clips):
    clip = clips.iloc[1].to_dict()
    config = make_config("dssi", {"size": 24, "align": False, "rescale": False,
                                  "segments": 3, "frames_per_segment": 3, "global_frames": 6})
    images = dssi(clip, config)
    numbers = clip_range(clip)
    frames = load_frames(clip, numbers, size=24, color=False).astype(np.float32)
    groups = dssi_indices(len(numbers), config)
    assert len(groups) == 4 and groups[-1][0] == 0 and groups[-1][-1] == len(numbers) - 1
    for image, group in zip(images, groups, strict=True):
        np.testing.assert_allclose(image[..., 0], dynamic_image(frames[group]), atol=1e-3)
    # the files the cache key is built from: exactly the sampled frames, onset and offset in
    files = dssi_files(clip, config)
    used = sorted({int(i) for g in groups for i in g})
    assert files == [frame_file(clip, numbers[i]) for i in used]
    assert frame_file(clip, clip["onset"]) in files and frame_file(clip, clip["offset"]) in files


def test_dense_sampling_gives_the_dynamic_images_representation(clips):
    # with every frame sampled, DSSI is the plain segmented + global dynamic images
    clip = clips.iloc[2].to_dict()
    dense = dssi(clip, make_config("dssi", {"size": 32, "align": False,
                                            "frames_per_segment": 10_000,
                                            "global_frames": 10_000}))
    plain = dynamic_images(clip, make_config("dynamic_images", {"size": 32, "segments": 4}))
    np.testing.assert_array_equal(dense, plain)
    sparse = dssi(clip, make_config("dssi", {"size": 32, "align": False}))
    assert not np.array_equal(sparse, dense)  # the default sampling is sparse


def test_too_short_clip_is_refused_naming_the_fix(clips):
    clip = clips.iloc[0].to_dict()
    short = {**clip, "offset": clip["onset"] + 6}  # 7 frames for 4 segments
    with pytest.raises(ConfigError, match="fewer segments"):
        dssi(short, make_config("dssi", {"size": 16, "align": False}))


@pytest.mark.parametrize("options,name", [
    ({"segments": 0}, "segments"), ({"segments": 2.5}, "segments"),
    ({"frames_per_segment": 1}, "frames_per_segment"), ({"global_frames": 1}, "global_frames"),
    ({"size": 4}, "size"), ({"color": "yes"}, "color"), ({"rescale": 1}, "rescale"),
    ({"align": 3}, "align"), ({"frames": 4}, "frames"),
])
def test_config_errors_name_the_option(options, name):
    with pytest.raises(ConfigError, match=name):
        make_config("dssi", options)


def test_aligned_by_default_and_cached_through_the_representation_api(clips, tmp_path):
    config = make_config("dssi")
    assert isinstance(config.align, AlignConfig) and config.size == 64
    assert make_config("dssi", {"align": False}).align is None
    first = prepare_representation(clips, "dssi", cache_dir=tmp_path, progress=False)
    assert first.computed == len(clips) and not len(first.failures)
    assert first.stacked().shape == (len(clips), 5, 64, 64, 1)
    assert first.channels == ("gray",)
    again = prepare_representation(clips, "dssi", cache_dir=tmp_path, progress=False)
    assert again.cached == len(clips) and again.computed == 0
    np.testing.assert_array_equal(again.stacked(), first.stacked())
    # a changed option is a new cache entry
    other = prepare_representation(clips, "dssi", {"frames_per_segment": 3},
                                   cache_dir=tmp_path, progress=False)
    assert other.computed == len(clips)
