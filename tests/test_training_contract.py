"""The training contract: samples are mappings of named arrays, networks return logits or a
mapping with them, objectives turn (outputs, batch) into a loss and named terms."""

from __future__ import annotations

import numpy as np
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
