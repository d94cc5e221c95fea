"""The model registry, STSTNet and the TorchClassifier: learns, saves, loads, validates inputs."""

import re

import numpy as np
import pytest
import torch

from microexpr.errors import ConfigError, InputShapeError
from microexpr.models import MODELS, get_model_spec, list_models
from microexpr.models.ststnet import STSTNet
from microexpr.training.loop import TrainConfig, class_weights
from microexpr.training.torch_classifier import TorchClassifier, split_subjects


def planted(n=150, size=28, seed=0):
    """Noise with a class-specific smooth blob: learnable only from where the blob is."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, size, size, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    for k in range(3):
        blob = np.exp(-((yy - size * (k + 1) / 4) ** 2 + (xx - size / 2) ** 2) / (size / 6) ** 2)
        x[y == k, :, :, k] += 1.5 * blob
    return x, np.array(["neg", "pos", "sur"])[y]


def test_ststnet_matches_the_paper_layout():
    net = STSTNet()
    # conv 3->16 (3x3) = 448, batch norm 32, linear 400->3 = 1203
    assert sum(p.numel() for p in net.parameters()) == 1683
    assert net.classifier.in_features == 5 * 5 * 16
    streams = net.streams(torch.zeros(2, 3, 28, 28))
    assert [s.shape[1] for s in streams] == [3, 5, 8]
    assert net(torch.zeros(2, 3, 28, 28)).shape == (2, 3)
    assert STSTNet(in_channels=2, input_size=(40, 40))(torch.zeros(1, 2, 40, 40)).shape == (1, 3)


def test_registry_lists_ststnet():
    table = list_models()
    row = table[table["name"] == "ststnet"].iloc[0]
    assert row["representation"] == "onset_apex_flow" and row["parameters"] == 1683
    assert "Liong" in row["reference"]
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        get_model_spec("nope")


def test_trains_learns_and_loss_goes_down():
    x, y = planted()
    model = TorchClassifier("ststnet", ["neg", "pos", "sur"], seed=0,
                            train_config={"epochs": 30, "batch_size": 32, "lr": 3e-3})
    model.fit(x[:100], y[:100])
    losses = model.history.train_loss
    assert losses[-1] < 0.6 * losses[0]
    assert (model.predict(x[100:]) == y[100:]).mean() > 0.8  # chance is 1/3


def test_save_load_gives_the_same_predictions(tmp_path):
    x, y = planted(60)
    model = TorchClassifier("ststnet", ["neg", "pos", "sur"], seed=1,
                            train_config={"epochs": 3})
    model.fit(x, y)
    path = model.save(tmp_path / "m.pt")
    loaded = TorchClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.classes == model.classes and loaded.train_config == model.train_config


def test_input_validation_is_clear():
    model = TorchClassifier("ststnet", ["a", "b"], train_config={"epochs": 1})
    with pytest.raises(InputShapeError, match="N x H x W x C"):
        model.fit(np.zeros((4, 28, 28), np.float32), ["a", "b", "a", "b"])
    with pytest.raises(InputShapeError, match="at least 8x8"):
        model.fit(np.zeros((4, 4, 4, 3), np.float32), ["a", "b", "a", "b"])
    with pytest.raises(ConfigError, match="not among the classes"):
        model.fit(np.zeros((2, 28, 28, 3), np.float32), ["a", "z"])
    with pytest.raises(ConfigError, match="not trained"):
        model.predict_proba(np.zeros((1, 28, 28, 3), np.float32))
    model.fit(np.random.default_rng(0).normal(size=(4, 28, 28, 3)), ["a", "b", "a", "b"])
    with pytest.raises(InputShapeError, match="trained on inputs of shape"):
        model.predict_proba(np.zeros((1, 20, 20, 3), np.float32))
    with pytest.raises(ConfigError, match="unknown training option"):
        TorchClassifier("ststnet", ["a", "b"], train_config={"epoch": 3})
    with pytest.raises(ConfigError, match="unknown parameter"):
        TorchClassifier("ststnet", ["a", "b"], params={"depth": 3}).fit(
            np.zeros((2, 28, 28, 3), np.float32), ["a", "b"])


def test_train_config_validation_and_class_weights():
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="lion")
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    np.testing.assert_allclose(weights, [4 / 6, 2.0, 0.0])


def test_validation_split_is_by_subject():
    groups = np.array(["a/1"] * 3 + ["a/2"] * 3 + ["b/1"] * 3 + ["b/2"] * 3 + ["b/3"] * 3)
    mask = split_subjects(groups, 0.4, seed=0)
    held = set(groups[mask])
    assert len(held) == 2 and not held & set(groups[~mask])
    with pytest.raises(ConfigError, match="at least 2"):
        split_subjects(np.array(["a", "a"]), 0.5, 0)


def flatten_samples(x):
    return x.reshape(len(x), -1)


@pytest.fixture
def logistic_spec(monkeypatch):
    """A throwaway scikit-learn model spec (flattened inputs -> logistic regression)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from microexpr.models.registry import MODELS, ModelSpec

    def build(input_shape, n_classes, seed, C):
        flatten = FunctionTransformer(flatten_samples)
        return make_pipeline(flatten, StandardScaler(), LogisticRegression(C=C, max_iter=500))

    spec = ModelSpec(name="test_logistic", build=build, representation="onset_apex_flow",
                     reference="-", description="-", kind="sklearn", params={"C": 1.0})
    monkeypatch.setitem(MODELS, spec.name, spec)
    return spec


def test_sklearn_models_share_the_classifier_api(logistic_spec, tmp_path):
    from microexpr.training.estimators import load_model, make_classifier

    x, y = planted(90)
    model = make_classifier("test_logistic", ["neg", "pos", "sur"], params={"C": 0.5})
    model.fit(x[:60], y[:60])
    assert (model.predict(x[60:]) == y[60:]).mean() > 0.8
    loaded = load_model(model.save(tmp_path / "m.pkl"))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    # a class missing from the training fold gets probability 0, columns stay in order
    partial = make_classifier("test_logistic", ["neg", "pos", "sur"]).fit(
        x[y != "sur"], y[y != "sur"])
    assert partial.predict_proba(x[:5])[:, 2].max() == 0.0
    with pytest.raises(ConfigError, match="unknown parameter"):
        make_classifier("test_logistic", ["a", "b"], params={"gamma": 1})


def test_evaluate_runs_sklearn_models(logistic_spec, signal_manifest):
    import microexpr

    result = microexpr.evaluate(signal_manifest, "test_logistic", cache_dir=None,
                                progress=False, write=False)
    assert result.metrics["uf1"] > 0.8 and result.config["train"] is None
    with pytest.raises(ConfigError, match="scikit-learn model"):
        microexpr.evaluate(signal_manifest, "test_logistic", epochs=3, progress=False,
                           write=False)


# -- named channels ----------------------------------------------------------------------------

def named_maps(names, n=4, size=28):
    """N x size x size x len(names) maps whose channel k holds the constant k + 1."""
    return np.broadcast_to(np.arange(1, len(names) + 1, dtype=np.float32),
                           (n, size, size, len(names))).copy()


def test_models_pick_their_named_channels_in_their_order():
    spec = get_model_spec("ststnet")
    assert spec.input_channels == ("u", "v", "strain") and spec.channels == 3
    names = ("magnitude", "strain", "v", "u")  # a manifest's files, in another order
    picked, picked_names = spec.select_channels(named_maps(names), names)
    assert picked_names == ("u", "v", "strain") and picked.shape == (4, 28, 28, 3)
    np.testing.assert_array_equal(picked[0, 0, 0], [4, 3, 2])  # u, v, strain of `names`
    off, off_names = get_model_spec("off_apexnet").select_channels(named_maps(names), names)
    assert off_names == ("u", "v") and off[0, 0, 0].tolist() == [4, 3]
    # unnamed inputs with the model's number of channels: taken in the model's order
    x = named_maps("abc")
    same, same_names = spec.select_channels(x, None)
    assert same is x and same_names == ("u", "v", "strain")
    # models that take any channels pass inputs and names through
    gray = named_maps(("gray",), size=48)
    assert get_model_spec("deep_emotion").select_channels(gray, ("gray",)) == (gray, ("gray",))
    assert get_model_spec("deep_emotion").select_channels(gray, None)[1] is None


def test_channel_errors_name_what_is_missing_and_the_fix():
    spec = get_model_spec("ststnet")
    with pytest.raises(InputShapeError, match=r"needs channel\(s\) \['strain'\].*"
                                              r"\('u', 'v'\).*--channels u,v,strain"):
        spec.select_channels(named_maps(("u", "v")), ("u", "v"))
    with pytest.raises(InputShapeError, match="4 unnamed channel.*--channels"):
        spec.select_channels(named_maps("abcd"), None)
    with pytest.raises(InputShapeError, match="2 channel name.*3 channel"):
        spec.select_channels(named_maps("abc"), ("u", "v"))
    with pytest.raises(InputShapeError, match="repeat"):
        spec.select_channels(named_maps("abc"), ("u", "u", "v"))
    with pytest.raises(InputShapeError, match=r"needs 3 input channel\(s\) \(u, v, strain\)"):
        TorchClassifier("ststnet", ["a", "b"]).fit(named_maps("ab"), ["a", "b"] * 2)


def test_models_take_the_channels_their_representation_gives():
    from microexpr.representations import channel_names

    list_models()  # registers every model
    named = {name: spec.input_channels for name, spec in MODELS.items() if spec.input_channels}
    assert named == {"ststnet": ("u", "v", "strain"), "off_apexnet": ("u", "v"),
                     "bi_woof_svm": ("u", "v", "strain"),
                     "dual_stream": ("gray", "u", "v", "strain")}
    for name, channels in named.items():
        spec = MODELS[name]
        assert channel_names(spec.representation, spec.representation_config) == channels
    assert MODELS["dual_stream"].train["flip_negate"] == ("u",)  # index 1 of apex_flow


def test_too_small_inputs_name_the_input_size_flag():
    with pytest.raises(InputShapeError, match="at least 8x8, got 4x4.*--input-size 28"):
        get_model_spec("ststnet").check_input((2, 4, 4, 3))
    with pytest.raises(InputShapeError, match="at least 32x32.*--input-size 64"):
        get_model_spec("micro_attention").check_input((2, 28, 28, 1))


# -- model parameters ------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "params", "expected"), [
    ("ststnet", {"dropout": "abc"}, "dropout='abc' of model ststnet is invalid: it must be a "
                                    "number in [0, 1)"),
    ("ststnet", {"dropout": 2}, "dropout=2 of model ststnet is invalid"),
    ("ststnet", {"dropout": True}, "dropout=True"),
    ("ststnet", {"widths": [3, -1, 8]}, "widths=[3, -1, 8] of model ststnet is invalid: it "
                                        "must be a list (an integer >= 1 each)"),
    ("ststnet", {"widths": 3}, "widths=3"),
    ("off_apexnet", {"widths": [6, 16, 32]}, "must be a list of 2 item(s)"),
    ("off_apexnet", {"kernel": 2.5}, "kernel=2.5"),
    ("micro_attention", {"attention": "yes"}, "attention='yes' of model micro_attention is "
                                              "invalid: it must be true or false"),
    ("deep_emotion", {"width": 0}, "width=0"),
    ("dual_stream", {"interaction": 1}, "interaction=1"),
])
def test_bad_model_params_fail_at_once_with_one_line(model, params, expected):
    spec = get_model_spec(model)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        spec.validate(params)
    with pytest.raises(ConfigError, match="--param"):  # before any training
        TorchClassifier(model, ["a", "b"], params=params)


def test_params_are_normalised_and_builder_failures_become_config_errors():
    spec = get_model_spec("ststnet")
    checked = spec.validate({"dropout": 0, "widths": [2, 2, 2]})
    assert checked == {"dropout": 0.0, "widths": (2, 2, 2)}
    assert isinstance(checked["dropout"], float)
    assert TorchClassifier("ststnet", ["a", "b"], params={"widths": [2, 2, 2]}).params == {
        "widths": (2, 2, 2)}
    with pytest.raises(ConfigError, match=r"cannot be built with params \{'widths': \[\]\}"):
        spec.validate({"widths": []})
    with pytest.raises(ConfigError, match="dual_stream cannot be built"):
        get_model_spec("dual_stream").validate({"widths": []})
    # the shape to build for can be given: OFF-ApexNet without hidden layers at 12 x 12
    assert get_model_spec("off_apexnet").validate({"hidden": []}, (12, 12, 2))["hidden"] == ()
    with pytest.raises(ConfigError, match="unknown parameter"):
        spec.validate({"depth": 3})


def test_registry_lists_channels_and_recipes():
    table = list_models().set_index("name")
    assert table.loc["ststnet", "channels"] == "u,v,strain"
    assert table.loc["dual_stream", "channels"] == "gray,u,v,strain"
    assert table.loc["deep_emotion", "channels"] == "any"
    assert table.loc["ststnet", "recipes"] == "default, paper"
    assert table.loc["micro_attention", "recipes"] == "default"
