"""Image models on the apex frame: micro-attention ResNet-10 and Deep-Emotion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import microexpr
from microexpr.errors import ConfigError, InputShapeError
from microexpr.models import count_parameters, get_model_spec, list_models
from microexpr.models.deep_emotion import DeepEmotion
from microexpr.models.micro_attention import MicroAttentionResNet, attention_maps_for
from microexpr.representations import compute_representation
from microexpr.training.estimators import load_model
from microexpr.training.torch_classifier import TorchClassifier


@pytest.fixture(scope="module")
def apex_data(tmp_path_factory):
    """Synthetic apex frames (4 subjects x 3 classes x 3 clips, large amplitude) at 32 and 48
    px, and a held-out mask: one clip per subject and class."""
    root = microexpr.synthesize(tmp_path_factory.mktemp("synth"), subjects=4, clips_per_class=3,
                                size=64, amplitude=8.0, seed=0)
    clips = microexpr.load_dataset("casme2", root, labels="composite3").clips
    test = (clips.groupby(["subject", "label"]).cumcount() == 0).to_numpy()
    frames = {size: compute_representation(clips, "apex_frame", {"size": size}, cache_dir=None,
                                           progress=False) for size in (32, 48)}
    dataset = microexpr.load_dataset("casme2", root, labels="composite3")
    return frames, clips["label"].to_numpy(), clips["subject"].to_numpy(), test, dataset


# -- architecture --------------------------------------------------------------------------
def test_micro_attention_parameter_counts_match_the_paper():
    with_attention = count_parameters(MicroAttentionResNet(1, 5))
    without = count_parameters(MicroAttentionResNet(1, 5, attention=False))
    assert with_attention == 5_944_901 and without == 4_900_421
    assert abs(with_attention / 5.9e6 - 1) < 0.05 and abs(without / 4.9e6 - 1) < 0.05
    # the four attention units: 1x1 convolutions 3C -> C without bias
    assert with_attention - without == 3 * sum(c * c for c in (64, 128, 256, 512))
    spec = get_model_spec("micro_attention")
    built = spec.build_module((64, 64, 1), 5, attention=False)
    assert count_parameters(built) == without
    assert spec.representation == "apex_frame" and spec.representation_config["size"] == 64


def test_micro_attention_maps_have_one_map_per_block_in_0_1():
    net = MicroAttentionResNet(2, 3)  # apex + another channel
    x = torch.randn(3, 2, 64, 64)
    net.train()
    maps = net.attention_maps(x)
    assert [tuple(m.shape) for m in maps] == [(3, 16, 16), (3, 8, 8), (3, 4, 4), (3, 2, 2)]
    assert all(float(m.min()) > 0 and float(m.max()) < 1 for m in maps)
    assert net.training  # the mode is restored
    assert net(x).shape == (3, 3)
    assert MicroAttentionResNet(1, 3, attention=False).attention_maps(x[:, :1]) == []


def test_deep_emotion_size_and_identity_spatial_transformer():
    assert count_parameters(DeepEmotion(1, 7)) == 66_877  # the public re-implementation
    assert 60_000 < count_parameters(get_model_spec("deep_emotion").build_module(
        (48, 48, 1), 3)) < 70_000
    net = DeepEmotion(1, 3).eval()
    x = torch.randn(4, 1, 48, 48)
    identity = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(4, 2, 3)
    assert torch.equal(net.theta(x), identity)
    torch.testing.assert_close(net.transform(x), x, atol=1e-4, rtol=0)
    # at initialisation the model is the same CNN without the transformer
    plain = DeepEmotion(1, 3, stn=False).eval()
    plain.load_state_dict(net.state_dict(), strict=False)
    torch.testing.assert_close(net(x), plain(x), atol=1e-4, rtol=1e-4)
    assert "localization.0.weight" not in plain.state_dict()


def test_registry_lists_both_models():
    table = list_models().set_index("name")
    assert table.loc["micro_attention", "representation"] == "apex_frame"
    assert table.loc["deep_emotion", "input"] == "48x48x1"
    assert "Minaee" in table.loc["deep_emotion", "reference"]
    assert "1811.02360" in table.loc["micro_attention", "reference"]


# -- training --------------------------------------------------------------------------------
@pytest.mark.parametrize("model,size,train", [
    ("micro_attention", 32, {"epochs": 20, "batch_size": 8}),
    ("deep_emotion", 48, {"epochs": 30, "batch_size": 8}),
])
def test_trains_beats_chance_saves_and_loads(apex_data, tmp_path, model, size, train):
    """Held-out clips of the training subjects (unseen subjects: the LOSO test below)."""
    frames, y, _, test, _ = apex_data
    x = frames[size]
    clf = TorchClassifier(model, sorted(set(y)), train_config=train, seed=0)
    clf.fit(x[~test], y[~test])
    losses = clf.history.train_loss
    assert losses[-1] < 0.5 * losses[0]
    accuracy = (clf.predict(x[test]) == y[test]).mean()
    assert accuracy >= 0.6, accuracy  # held-out clips; chance is 1/3
    loaded = load_model(clf.save(tmp_path / f"{model}.pt"))
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))
    if model == "micro_attention":
        maps = attention_maps_for(loaded, x[:2])
        assert [m.shape for m in maps] == [(2, 8, 8), (2, 4, 4), (2, 2, 2), (2, 1, 1)]
        assert all(0 <= m.min() and m.max() <= 1 for m in maps)


def test_evaluate_runs_deep_emotion_leave_one_subject_out(apex_data):
    """The runner takes the representation from the registry (apex_frame at 48 px)."""
    dataset = apex_data[4]
    result = microexpr.evaluate(dataset, "deep_emotion", protocol="loso", epochs=30,
                                train={"batch_size": 8}, cache_dir=None, progress=False,
                                write=False)
    assert result.config["representation"]["size"] == 48 and result.config["n_folds"] == 4
    assert len(result.predictions) == 36
    assert result.metrics["uf1"] > 0.45, result.metrics  # unseen subjects; chance ~0.33


def test_wrong_inputs_are_clear(apex_data):
    frames, y, _, _, _ = apex_data
    clf = TorchClassifier("micro_attention", sorted(set(y)), train_config={"epochs": 1})
    with pytest.raises(InputShapeError, match="N x H x W x C"):
        clf.fit(frames[32][..., 0], y)
    with pytest.raises(InputShapeError, match="at least 32x32"):
        clf.fit(np.zeros((4, 16, 16, 1), np.float32), y[:4])
    with pytest.raises(ConfigError, match="unknown parameter"):
        TorchClassifier("deep_emotion", ["a", "b"], params={"depth": 3}).fit(
            np.zeros((4, 48, 48, 1), np.float32), ["a", "b", "a", "b"])
    small = TorchClassifier("deep_emotion", sorted(set(y)), train_config={"epochs": 1})
    small.fit(frames[48][:8], y[:8])
    with pytest.raises(InputShapeError, match="trained on inputs of shape"):
        small.predict(frames[32])
    with pytest.raises(ConfigError, match="fitted micro_attention"):
        attention_maps_for(small, frames[48][:1])
