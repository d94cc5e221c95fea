"""The learned ``softnet`` spotter (SOFTNet): fitted on the videos of two synthetic subjects,
tested on the third's, saved and loaded; an unfitted one refuses to run."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from microexpr.data.frames import list_frames
from microexpr.data.long_videos import load_long_videos
from microexpr.errors import ConfigError
from microexpr.evaluation.spotting import spotting_metrics
from microexpr.synth.long_video import synthesize_long
from microexpr.video.analysis import analyze
from microexpr.video.learned_spotter import (
    FEATURE_CACHE,
    P_GRID,
    FeatureCache,
    SoftNet,
    SoftNetConfig,
    SoftNetSpotter,
)
from microexpr.video.spotters import get_spotter, list_spotters


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three subjects, one 10-s video each: six micro-expressions, one macro-expression, and
    blinks, talking and a head turn that are not expressions."""
    root = synthesize_long(tmp_path_factory.mktemp("long") / "db", subjects=3,
                           videos_per_subject=1, seconds=10, size=96, micro_per_video=6,
                           macro_per_video=1, seed=0)
    return load_long_videos("casme2_long", root)


@pytest.fixture(scope="module")
def fitted(data):
    """A spotter fitted on the first two subjects (the whole intervals table is given: fit
    must keep to the intervals of the videos it is given), and the held-out video."""
    train, test = data.videos.iloc[:2], data.videos.iloc[2]
    assert test["subject"] not in set(train["subject"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as conftest's one_thread, which a module fixture runs before
    try:
        spotter = SoftNetSpotter(cache=FeatureCache()).fit(train, data.intervals)
    finally:
        torch.set_num_threads(threads)
    return spotter, train, test


@pytest.fixture(scope="module")
def held_out(fitted):
    spotter, _, test = fitted
    return analyze(test["folder"], spotter=spotter, fps=test["fps"])


def _numbered(intervals: pd.DataFrame, video: pd.Series) -> pd.DataFrame:
    numbers = np.array([number for number, _ in list_frames(video["folder"])])
    return intervals.assign(video=video["video"], onset=numbers[intervals["onset"]],
                            offset=numbers[intervals["offset"]])


def test_fit_learns_and_chooses_its_threshold_on_the_training_videos_only(fitted):
    spotter, train, test = fitted
    loss = spotter.training["loss"]
    assert len(loss) == spotter.config.epochs
    assert loss[-1] < 0.75 * loss[0], loss
    # fit read the training videos and nothing else: the test video's inputs were never made
    sources = spotter.cache.sources()
    assert sources == {str(Path(folder).resolve()) for folder in train["folder"]}
    assert str(Path(test["folder"]).resolve()) not in sources
    assert spotter.training["videos"] == list(train["video"])
    info = spotter.describe()
    assert info["name"] == "softnet" and info["fitted"] is True
    assert info["training_videos"] == 2 and info["training_subjects"] == 2
    assert info["threshold"]["p"] == spotter.config.p and spotter.config.p in P_GRID
    assert "out-of-fold" in info["threshold"]["chosen_on"]
    assert 0.0 <= info["threshold"]["train_f1"] <= 1.0
    assert "fitted on 2 videos" in repr(spotter)


def test_the_fitted_spotter_spots_micro_expressions_of_an_unseen_subject(fitted, held_out,
                                                                          data):
    spotter, _, test = fitted
    frames = held_out.frames
    assert frames["face_found"].all()
    scores = frames["score"].to_numpy()
    k = spotter.window(test["fps"])
    assert np.isnan(scores[:k]).all() and np.isfinite(scores[k:-k]).all()
    assert ((scores[k:-k] >= 0) & (scores[k:-k] <= 1)).all()
    truth = data.intervals[(data.intervals["video"] == test["video"])
                           & (data.intervals["kind"] == "micro")]
    predicted = _numbered(held_out.intervals, test).drop(columns="kind")
    metrics = spotting_metrics(predicted, truth)["overall"]
    print(f"held-out video: TP {metrics['tp']} FP {metrics['fp']} FN {metrics['fn']} "
          f"F1 {metrics['f1']:.3f}")
    assert metrics["tp"] >= 2, (predicted, truth)
    assert metrics["f1"] > 0.3


def test_saved_and_loaded_spotters_give_the_same_scores(fitted, held_out, tmp_path):
    spotter, _, test = fitted
    path = spotter.save(tmp_path / "softnet.pt")
    for loaded in (SoftNetSpotter.load(path), get_spotter("softnet", path=path)):
        assert isinstance(loaded, SoftNetSpotter) and loaded.fitted
        assert loaded.config == spotter.config and loaded.describe() == spotter.describe()
    again = analyze(test["folder"], spotter=loaded, fps=test["fps"])
    np.testing.assert_array_equal(again.frames["score"].to_numpy(),
                                  held_out.frames["score"].to_numpy())
    pd.testing.assert_frame_equal(again.intervals, held_out.intervals)
    # how scores become intervals may change; what the network was trained on may not
    assert get_spotter("softnet", path=path, p=0.9).config.p == 0.9
    with pytest.raises(ConfigError, match="was trained with image_size"):
        get_spotter("softnet", path=path, image_size=24)
    with pytest.raises(ConfigError, match="not a softnet spotter|not a model saved"):
        SoftNetSpotter.load(Path(__file__))


def test_an_unfitted_spotter_says_to_fit_it_or_load_one(data, tmp_path):
    video = data.videos.iloc[0]
    with pytest.raises(ConfigError, match="not fitted.*fit.*load"):
        analyze(video["folder"], spotter="softnet", fps=video["fps"])
    with pytest.raises(ConfigError, match="not fitted"):
        SoftNetSpotter().save(tmp_path / "nothing.pt")
    assert "not fitted" in repr(SoftNetSpotter())
    assert SoftNetSpotter().describe()["fitted"] is False


def test_fit_checks_its_inputs(fitted, data):
    spotter, train, _ = fitted
    with pytest.raises(ConfigError, match="lacks the column"):
        SoftNetSpotter().fit(train.drop(columns="folder"), data.intervals)
    with pytest.raises(ConfigError, match="lacks the column"):
        SoftNetSpotter().fit(train, data.intervals.drop(columns="offset"))
    # the inputs come from the shared cache: no video is read again to find out
    with pytest.raises(ConfigError, match="nothing to learn"):
        SoftNetSpotter(cache=spotter.cache).fit(train, data.intervals.iloc[:0])


def test_copies_share_the_feature_cache_and_not_the_network(fitted):
    spotter, _, _ = fitted
    twin = copy.deepcopy(spotter)
    assert twin.cache is spotter.cache and twin.network is not spotter.network
    for mine, theirs in zip(spotter.network.parameters(), twin.network.parameters(),
                            strict=True):
        assert torch.equal(mine, theirs)
    unpickled = pickle.loads(pickle.dumps(spotter))
    assert unpickled.cache is FEATURE_CACHE and unpickled.config == spotter.config


def test_the_network_and_the_config():
    network = SoftNet(42)
    out = network(torch.rand(5, 3, 42, 42))
    assert out.shape == (5,) and ((out > 0) & (out < 1)).all()
    assert sum(p.numel() for p in network.parameters()) == 314_817  # as SOFTNet
    for bad in ({"image_size": 40}, {"kind": "huge"}, {"head_motion": "nose"},
                {"epochs": 0}, {"negatives": -1}, {"threshold_folds": 1.5}):
        with pytest.raises(ConfigError):
            SoftNetConfig(**bad)
    with pytest.raises(ConfigError, match="no option"):
        SoftNetSpotter(depth=3)
    assert "softnet" in set(list_spotters()["name"])
    assert isinstance(get_spotter("softnet", epochs=3), SoftNetSpotter)
