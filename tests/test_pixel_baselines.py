"""The pixel baselines (logreg, linear_svm): linear models on flattened inputs of any shape,
the floor every deep model is compared against."""

import numpy as np
import pytest

import microexpr
from microexpr.errors import ConfigError, InputShapeError
from microexpr.models import get_model_spec, list_models
from microexpr.training.estimators import load_model, make_classifier

PIXEL_MODELS = ("logreg", "linear_svm")
CLASSES = ("neg", "pos", "sur")


def planted(shape, n=60, seed=0):
    """Noise with three values per class raised: learnable by a linear model of the pixels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    flat = x.reshape(n, -1)
    for offset in range(3):
        flat[np.arange(n), 3 * y + offset] += 4.0
    return x, np.array(CLASSES)[y]


@pytest.mark.parametrize("name", PIXEL_MODELS)
def test_learns_a_manifest_with_signal_and_stays_at_chance_on_noise(name, signal_manifest,
                                                                   noise_manifest):
    result = microexpr.evaluate(signal_manifest, name, cache_dir=None, progress=False,
                                write=False)
    assert result.config["n_folds"] == 6 and result.metrics["uf1"] > 0.8  # chance 1/3
    noise = microexpr.evaluate(noise_manifest, name, cache_dir=None, progress=False,
                               write=False)
    assert noise.metrics["uf1"] < 0.5


@pytest.mark.parametrize("name", PIXEL_MODELS)
@pytest.mark.parametrize("shape", [(28, 28, 3), (9, 7, 1), (6, 6, 5)])
def test_any_size_and_channels_and_save_load_round_trip(name, shape, tmp_path):
    x, y = planted(shape)
    model = make_classifier(name, CLASSES, seed=1).fit(x[:45], y[:45])
    assert (model.predict(x[45:]) == y[45:]).mean() > 0.6
    proba = model.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    loaded = load_model(model.save(tmp_path / f"{name}.pkl"))
    assert loaded.spec.name == name and loaded.input_shape == shape
    np.testing.assert_array_equal(loaded.predict_proba(x), proba)
    with pytest.raises(InputShapeError, match="trained on inputs of shape"):
        loaded.predict_proba(x[:, :-1])


def test_class_balanced_so_a_rare_class_is_still_predicted():
    x, y = planted((8, 8, 2), n=90, seed=3)
    keep = (y != "sur") | (np.arange(len(y)) < 30)  # "sur": 10 of 70 training samples
    for name in PIXEL_MODELS:
        model = make_classifier(name, CLASSES).fit(x[keep], y[keep])
        assert model.estimator[-1].class_weight == "balanced"
        assert (model.predict(x[~keep]) == "sur").mean() > 0.5


def test_registry_entries_and_parameter_checks():
    table = list_models().set_index("name")
    for name in PIXEL_MODELS:
        spec = get_model_spec(name)
        assert spec.kind == "sklearn" and spec.input_channels is None
        assert spec.representation == "onset_apex_flow"
        assert spec.representation_config == get_model_spec("ststnet").representation_config
        assert table.loc[name, "channels"] == "any"
        with pytest.raises(ConfigError, match="C=0 of model .* must be a number > 0"):
            make_classifier(name, CLASSES, params={"C": 0})
        with pytest.raises(ConfigError, match="class_weight='even'"):
            make_classifier(name, CLASSES, params={"class_weight": "even"})
        with pytest.raises(InputShapeError, match="N x H x W x C"):
            make_classifier(name, CLASSES).fit(np.zeros((6, 10), np.float32), CLASSES * 2)
    assert make_classifier("logreg", CLASSES, params={"C": "0.5"}).params["C"] == 0.5
