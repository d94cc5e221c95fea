"""The training contract: samples are mappings of named arrays, networks return logits or a
mapping with them, objectives turn (outputs, batch) into a loss and named terms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from microexpr.errors import ConfigError, InputShapeError
from microexpr.models.registry import MODELS, ModelSpec
from microexpr.training.checkpoints import read_checkpoint
from microexpr.training.estimators import load_model
from microexpr.training.loop import TrainConfig
from microexpr.training.objectives import Objective, objective_weights
from microexpr.training.recipes import make_train_config
from microexpr.training.torch_classifier import TorchClassifier


class TwoInputNet(nn.Module):
    """Two named inputs (an image and a vector), logits plus pooled features."""

    def __init__(self, shapes, n_classes):
        super().__init__()
        channels = shapes["apex"][-1]
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        self.vector = nn.Linear(shapes["motion"][-1], 4)
        self.head = nn.Linear(8, n_classes)

    def forward(self, apex, motion):
        features = torch.cat([self.conv(apex).mean(dim=(2, 3)), self.vector(motion)], dim=1)
        return {"logits": self.head(features), "features": features}


SPEC = ModelSpec(name="two_input_test", build=lambda shapes, n, **_: TwoInputNet(shapes, n),
                 representation="apex_frame", reference="-", description="-",
                 train={"epochs": 30, "batch_size": 16, "lr": 1e-2},
                 outputs=("features",))


def two_input_data(n=96, seed=0):
    """The class is in the motion vector only; the image is noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    apex = rng.standard_normal((n, 8, 8, 1)).astype(np.float32)
    motion = rng.standard_normal((n, 5)).astype(np.float32) * 0.3
    motion[np.arange(n), y] += 2.0
    return {"apex": apex, "motion": motion}, np.array(["a", "b", "c"])[y]


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """The test model is registered for the duration of each test only."""
    monkeypatch.setitem(MODELS, SPEC.name, SPEC)


def test_a_two_input_model_trains_predicts_saves_and_loads(tmp_path):
    x, y = two_input_data()
    clf = TorchClassifier(SPEC, ("a", "b", "c"), seed=1,
                          train_config={"objective": "deviation_enhanced"})
    clf.fit(x, y)
    history = clf.history
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert set(history.terms) == {"cross_entropy", "deviation"}  # logged per epoch
    assert len(history.terms["deviation"]) == 30
    test_x, test_y = two_input_data(60, seed=5)
    assert (clf.predict(test_x) == test_y).mean() > 0.8
    outputs = clf.predict_outputs(test_x)
    assert outputs["logits"].shape == (60, 3) and outputs["features"].shape == (60, 8)
    path = clf.save(tmp_path / "two.pt")
    loaded = TorchClassifier.load(path)
    assert loaded.input_names == ["apex", "motion"]
    assert loaded.input_shape == {"apex": (8, 8, 1), "motion": (5,)}
    np.testing.assert_allclose(loaded.predict_proba(test_x), clf.predict_proba(test_x),
                               atol=1e-6)
    with pytest.raises(InputShapeError, match="trained on inputs"):
        clf.predict({"apex": test_x["apex"]})


def test_history_rows_hold_every_loss_term_per_epoch():
    x, y = two_input_data(48)
    clf = TorchClassifier(SPEC, ("a", "b", "c"), train_config={
        "epochs": 3, "objective": "deviation_enhanced", "loss_weights.deviation": 0.5})
    assert clf.train_config.loss_weights == {"deviation": 0.5}
    rows = clf.fit(x, y).history.rows()
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"train_loss", "cross_entropy", "deviation"} <= set(rows[0])
    # the total is the weighted sum of the terms (averaged over the same batches)
    row = rows[-1]
    assert row["train_loss"] == pytest.approx(row["cross_entropy"] + 0.5 * row["deviation"],
                                              rel=1e-5)


def test_objectives_weigh_named_terms_and_a_zero_weight_switches_one_off():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.1, 0.0], [0.0, 0.9]])
    batch = {"label": torch.tensor([0, 1, 0, 1])}
    outputs = {"logits": logits, "features": features}
    ce_only, terms = Objective("cross_entropy")(outputs, batch)
    assert set(terms) == {"cross_entropy"}
    total, terms = Objective("deviation_enhanced", {"deviation": 2.0})(outputs, batch)
    assert set(terms) == {"cross_entropy", "deviation"}
    assert float(total) == pytest.approx(float(ce_only) + 2.0 * float(terms["deviation"]))
    ablated, terms = Objective("deviation_enhanced", {"deviation": 0})(outputs, batch)
    assert set(terms) == {"cross_entropy"} and float(ablated) == pytest.approx(float(ce_only))
    with pytest.raises(ConfigError, match="needs the model to return"):
        Objective("deviation_enhanced")({"logits": logits}, batch)


@pytest.mark.parametrize(("options", "problem"), [
    ({"objective": "focal"}, "objective='focal'"),
    ({"objective": "cross_entropy", "loss_weights": {"deviation": 1}}, "does not have"),
    ({"objective": "deviation_enhanced", "loss_weights": {"deviation": -1}}, ">= 0"),
    ({"objective": "deviation_enhanced", "loss_weights": {"deviation": "abc"}}, ">= 0"),
    ({"loss_weights": "deviation"}, "mapping"),
])
def test_bad_objective_options_name_the_option(options, problem):
    with pytest.raises(ConfigError, match=problem):
        TrainConfig(**options)


def test_dotted_loss_weights_merge_into_the_model_defaults():
    spec = ModelSpec(name="dotted_test", build=lambda *a, **k: None, representation="x",
                     reference="-", description="-",
                     train={"objective": "deviation_enhanced",
                            "loss_weights": {"deviation": 0.3}})
    assert make_train_config(spec).loss_weights == {"deviation": 0.3}
    config = make_train_config(spec, {"loss_weights.cross_entropy": 2})
    assert config.loss_weights == {"deviation": 0.3, "cross_entropy": 2.0}
    assert objective_weights(config.objective, config.loss_weights) == {
        "cross_entropy": 2.0, "deviation": 0.3}
    with pytest.raises(ConfigError, match="only loss_weights"):
        make_train_config(spec, {"lr.x": 1})


def test_checkpoints_are_one_format_read_back_by_one_reader(tmp_path):
    x, y = two_input_data(32)
    clf = TorchClassifier(SPEC, ("a", "b", "c"), train_config={"epochs": 1}).fit(x, y)
    checkpoint = read_checkpoint(clf.save(tmp_path / "m.pt"))
    assert checkpoint.kind == "torch" and checkpoint.meta["model"] == "two_input_test"
    assert set(checkpoint.arrays) == {"mean", "std"}
    assert not list(tmp_path.glob(".m.pt.*"))  # written to a temporary name, then renamed
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="junk.pt is not a model saved by microexpr"):
        load_model(tmp_path / "junk.pt")


# -- the runner computes and caches every named input and target -------------------------------

class FlowAndApexNet(nn.Module):
    """Two named inputs from two representations; predicts the strain target as well."""

    def __init__(self, shapes, n_classes):
        super().__init__()
        self.apex = nn.Conv2d(shapes["apex"][-1], 4, 3, padding=1)
        self.flow = nn.Conv2d(shapes["flow"][-1], 4, 3, padding=1)
        self.head = nn.Linear(8, n_classes)
        self.strain = nn.Conv2d(4, 1, 1)

    def forward(self, apex, flow):
        motion = torch.relu(self.flow(flow))
        features = torch.cat([self.apex(apex).mean(dim=(2, 3)), motion.mean(dim=(2, 3))], 1)
        return {"logits": self.head(features), "strain": self.strain(motion)}


def _strain_term(class_weight):
    # the target arrives channels last (N x H x W x 1), as the representation made it
    return lambda outputs, batch: nn.functional.mse_loss(
        outputs["strain"], batch["strain"].permute(0, 3, 1, 2))


MULTI = ModelSpec(
    name="multi_input_test", build=lambda shapes, n, **_: FlowAndApexNet(shapes, n),
    representation="apex_frame", reference="-", description="-",
    inputs={"apex": {"representation": "apex_frame", "config": {"size": 16}},
            "flow": {"representation": "onset_apex_flow",
                     "config": {"method": "dis", "compute_size": 32, "size": 16,
                                "channels": ["u", "v"]}}},
    targets={"strain": {"representation": "onset_apex_flow",
                        "config": {"method": "dis", "compute_size": 32, "size": 16,
                                   "channels": ["strain"]}}},
    train={"epochs": 15, "batch_size": 8, "lr": 1e-2, "objective": "with_strain"},
    outputs=("strain",))


@pytest.fixture
def multi(monkeypatch):
    from microexpr.training import objectives

    monkeypatch.setitem(MODELS, MULTI.name, MULTI)
    monkeypatch.setitem(objectives.TERMS, "strain", _strain_term)
    monkeypatch.setitem(objectives.OBJECTIVES, "with_strain", objectives.ObjectiveSpec(
        "with_strain", {"cross_entropy": 1.0, "strain": 1.0}, ("strain",), "test"))
    return MULTI


def test_the_runner_feeds_named_inputs_and_targets(multi, tmp_path):
    import microexpr

    root = microexpr.synthesize(tmp_path / "db", subjects=3, clips_per_class=2, size=64,
                                seed=3)
    data = microexpr.load_dataset("casme2", root, labels="composite3")
    result = microexpr.evaluate(data, "multi_input_test", out=tmp_path / "run",
                                cache_dir=tmp_path / "cache", progress=False)
    config = result.config
    assert set(config["representation"]["inputs"]) == {"apex", "flow"}
    assert tuple(config["representation"]["targets"]["strain"]["channels"]) == ("strain",)
    assert config["input_shape"] == {"apex": [16, 16, 1], "flow": [16, 16, 2]}
    assert config["channels"]["flow"] == ["u", "v"]
    for fold in config["folds"]:  # the target reached the objective
        assert set(fold["final_loss_terms"]) == {"cross_entropy", "strain"}
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert {"fold", "epoch", "train_loss", "cross_entropy", "strain"} <= set(history.columns)
    assert len(history) == 3 * 15  # every fold, every epoch
    assert len(result.predictions) == len(data.clips)
    # each representation was computed once per clip and cached: a second run reads them
    again = microexpr.evaluate(data, "multi_input_test", write=False,
                               cache_dir=tmp_path / "cache", progress=False)
    pd.testing.assert_frame_equal(again.predictions, result.predictions)
    with pytest.raises(ConfigError, match="per input / target name"):
        microexpr.evaluate(data, "multi_input_test", representation={"size": 8},
                           write=False, progress=False)


def test_the_command_line_sets_one_loss_weight():
    from microexpr.cli import _key_values
    from microexpr.models import get_model_spec

    options = _key_values(["loss_weights.deviation=0", "lr=5e-4"], "--train-option")
    config = make_train_config(get_model_spec("sma_stn"), options)
    assert config.objective == "deviation_enhanced"
    assert config.loss_weights == {"deviation": 0.0} and config.lr == 5e-4
