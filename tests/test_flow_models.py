"""OFF-ApexNet, the dual-stream interaction network and the apex_flow representation: they learn
the synthetic database, save and load, validate inputs, and the dual streams interact."""

import math

import numpy as np
import pytest
import torch

import microexpr
from microexpr.errors import ConfigError, InputShapeError
from microexpr.models import count_parameters, get_model_spec
from microexpr.models.dual_stream import DualStreamNet
from microexpr.models.off_apexnet import OFFApexNet
from microexpr.representations import compute_representation
from microexpr.training.estimators import load_model, make_classifier

FAST_FLOW = {"method": "dis", "compute_size": 64}
MODELS = ("off_apexnet", "dual_stream")




@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The synthetic database (4 subjects x 3 classes x 3 clips), labelled 3-class, with a
    `half` column: subjects 1-2 vs 3-4."""
    root = microexpr.synthesize(tmp_path_factory.mktemp("synth"), subjects=4, clips_per_class=3,
                                size=64, seed=3)
    table = microexpr.load_dataset("casme2", root, labels="composite3").clips.copy()
    subjects = sorted(table["subject"].unique())
    table["half"] = np.where(table["subject"].isin(subjects[:2]), "first", "second")
    return table


def representation_of(clips, model):
    spec = get_model_spec(model)
    return compute_representation(clips, spec.representation,
                                  {**spec.representation_config, **FAST_FLOW}, cache_dir=None,
                                  progress=False)


@pytest.mark.parametrize("model", MODELS)
def test_learns_the_synthetic_database_and_reloads(clips, model, tmp_path):
    # Train on two subjects, test on the two others (and the other way round): the "dataset"
    # column names the half, so leave-one-dataset-out is a split by subject.
    halves = clips.assign(dataset=clips["half"])
    result = microexpr.evaluate(halves, model, protocol="lodo", representation=FAST_FLOW,
                                seed=0, out=tmp_path, cache_dir=None, save_models=True,
                                progress=False, write=False)
    assert result.metrics["uf1"] > 0.65 and result.metrics["accuracy"] > 0.65  # chance 1/3
    for fold in result.config["folds"]:  # the loss starts near ln 3 = 1.10
        assert fold["final_train_loss"] < 0.6 * math.log(3)
    # the saved fold model predicts exactly what the run predicted
    x = representation_of(clips, model)
    test = (clips["half"] == "first").to_numpy()
    loaded = load_model(tmp_path / "models" / "fold000.pt")
    fold0 = result.predictions[result.predictions["fold"] == 0]
    assert list(fold0["subject"] + fold0["clip"]) == list((clips["subject"] + clips["clip"])[test])
    expected = fold0[[f"p_{c}" for c in loaded.classes]].to_numpy()
    np.testing.assert_array_equal(loaded.predict_proba(x[test]), expected)
    again = load_model(loaded.save(tmp_path / "again.pt"))
    np.testing.assert_array_equal(again.predict_proba(x), loaded.predict_proba(x))


def test_apex_flow_stacks_the_apex_frame_and_the_flow(clips):
    x = compute_representation(clips, "apex_flow", FAST_FLOW, cache_dir=None, progress=False)
    assert x.shape == (len(clips), 48, 48, 4) and x.dtype == np.float32
    assert 0.0 <= x[..., 0].min() and x[..., 0].max() <= 1.0 and x[..., 0].std() > 0.05
    flow = compute_representation(clips, "onset_apex_flow", {**FAST_FLOW, "size": 48},
                                  cache_dir=None, progress=False)
    np.testing.assert_allclose(x[..., 1:], flow, atol=1e-5)  # same frames, same flow
    still = {**FAST_FLOW, "remove_global": True}
    np.testing.assert_allclose(
        compute_representation(clips[:3], "apex_flow", still, cache_dir=None,
                               progress=False)[..., 1:],
        compute_representation(clips[:3], "onset_apex_flow", {**still, "size": 48},
                               cache_dir=None, progress=False), atol=1e-5)
    two = compute_representation(clips[:2], "apex_flow", {**FAST_FLOW, "size": 32,
                                                          "channels": ["u", "v"]},
                                 cache_dir=None, progress=False)
    assert two.shape == (2, 32, 32, 3)
    with pytest.raises(ConfigError, match="flow channels"):
        compute_representation(clips[:1], "apex_flow", {"channels": ["w"]}, cache_dir=None)
    with pytest.raises(ConfigError, match="size <= compute_size"):
        compute_representation(clips[:1], "apex_flow", {"size": 96, "compute_size": 64},
                               cache_dir=None)


@pytest.mark.parametrize(("model", "channels", "size"), [("off_apexnet", 2, 28),
                                                         ("dual_stream", 4, 48)])
def test_input_validation_is_clear(model, channels, size):
    classifier = make_classifier(model, ["a", "b"], train_config={"epochs": 1})
    labels = ["a", "b", "a", "b"]
    with pytest.raises(InputShapeError, match=f"needs {channels} input channel"):
        classifier.fit(np.zeros((4, size, size, channels + 1), np.float32), labels)
    with pytest.raises(InputShapeError, match="at least 8x8"):
        classifier.fit(np.zeros((4, 4, 4, channels), np.float32), labels)
    with pytest.raises(InputShapeError, match="N x H x W x C"):
        classifier.fit(np.zeros((4, size, size), np.float32), labels)
    spec = get_model_spec(model)
    assert spec.channels == channels and spec.default_input == (size, size, channels)
    assert spec.train["augment_flip"] and spec.train["flip_negate"] == ("u",)


def test_parameter_counts():
    # per stream: conv 1->6 5x5 (156) + conv 6->16 5x5 (2416); FC 1568->1024->1024->3
    off = OFFApexNet()
    assert count_parameters(off) == 2 * (156 + 2416) + 1568 * 1024 + 1024 + 1024 * 1024 + 1024 \
        + 1024 * 3 + 3 == 2_664_475
    assert off(torch.zeros(2, 2, 28, 28)).shape == (2, 3)
    assert OFFApexNet(5, (40, 36))(torch.zeros(1, 2, 40, 36)).shape == (1, 5)
    dual = DualStreamNet()
    late = DualStreamNet(interaction=False)
    # the two gated exchanges (16 and 32 channels) cost 6C^2 + 4C each
    assert count_parameters(dual) - count_parameters(late) == 6 * (16**2 + 32**2) + 4 * 48
    assert 150_000 < count_parameters(dual) < 250_000
    assert dual(torch.zeros(2, 4, 48, 48)).shape == (2, 3)
    assert DualStreamNet(2, motion_channels=2).eval()(torch.zeros(1, 3, 8, 8)).shape == (1, 2)



@pytest.mark.parametrize("params", [{}, {"kernel": 3, "widths": (4, 8)}])
def test_off_apexnet_streams_see_only_their_own_flow(params):
    # the streams run as one grouped convolution: u's stream must see u alone, v's v alone,
    # and the features be u's stream then v's, as the paper's separate streams give them
    torch.manual_seed(0)
    net = OFFApexNet(**params).eval()
    x = torch.randn(3, 2, 28, 28)
    u_alone = net.horizontal(x[:, 0:1]).flatten(1)
    v_alone = net.vertical(x[:, 1:2]).flatten(1)
    torch.testing.assert_close(net.features(x), torch.cat([u_alone, v_alone], 1))
    moved = x.clone()
    moved[:, 1] += 1.0
    features = net.features(moved)
    torch.testing.assert_close(features[:, :u_alone.shape[1]], u_alone)
    assert not torch.allclose(features[:, u_alone.shape[1]:], v_alone)

def test_dual_streams_interact():
    torch.manual_seed(0)
    x = torch.randn(4, 4, 48, 48)
    changed = x.clone()
    changed[:, 0] = torch.randn(4, 48, 48)  # only the appearance (apex image) channel
    for interaction in (True, False):
        net = DualStreamNet(interaction=interaction).eval()
        with torch.no_grad():
            before, after = net.stage_features(x), net.stage_features(changed)
        # the first motion stage sees only the flow
        torch.testing.assert_close(before[0][1], after[0][1])
        later = [not torch.allclose(b[1], a[1]) for b, a in zip(before[1:], after[1:],
                                                                 strict=True)]
        # with the exchanges the appearance reaches the motion stream's intermediate features
        assert all(later) if interaction else not any(later)
    # and the other way: the appearance stream reads the motion
    net = DualStreamNet().eval()
    flow_changed = x.clone()
    flow_changed[:, 1:] = torch.randn(4, 3, 48, 48)
    with torch.no_grad():
        assert not torch.allclose(net.stage_features(x)[1][0],
                                  net.stage_features(flow_changed)[1][0])
