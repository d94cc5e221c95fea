"""Models that leave the toolkit: every torch model of the registry exports to one ONNX graph
that onnxruntime runs to torch's probabilities (standardisation, channels-last inputs and
the eval-mode network inside), with its classes, input spec and input recipe in the file's
metadata; `microexpr export`; and `analyze --model model.onnx`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_video import pulse_frames, still_face, write_frames  # noqa: F401 (a fixture)
from torch import nn

import microexpr
from microexpr.cli import main
from microexpr.errors import ConfigError, InputShapeError
from microexpr.models.registry import MODELS, ModelSpec, get_model_spec
from microexpr.training.export import OPSET, OnnxClassifier, export_onnx
from microexpr.training.inputs import make_input_recipe
from microexpr.training.torch_classifier import TorchClassifier

for _package in ("onnx", "onnxscript", "onnxruntime"):  # the `export` extra
    pytest.importorskip(_package)

CLASSES = ("negative", "positive", "surprise")
# Per model: per-sample inputs (channels last; smaller than the defaults where the model
# allows), params that keep the network small, training options.
CASES = {
    "ststnet": ((28, 28, 3), {}, {}),
    "off_apexnet": ((28, 28, 2), {}, {}),
    "dual_stream": ((24, 24, 4), {}, {}),
    "micro_attention": ((32, 32, 1), {"widths": (8, 16, 16, 16)}, {}),
    "sma_stn": ((5, 32, 32, 1), {"width": 4}, {}),
    # 40 px frames, 32 px crops: the eval-mode centre crop is part of the graph
    "mol": ((8, 40, 40, 1), {"crop": 32, "features": 32, "flow_width": 4,
                             "max_displacement": 2}, {"objective": "cross_entropy"}),
    # MiNet alone (MaNet's guidance is training-only); eval samples at a fixed interval
    "mimanet": ({"apex": (32, 32, 1), "clip": (9, 32, 32, 1)},
                {"guidance": False, "widths": (8, 8, 8, 8)}, {}),
    # the spatial transformer: affine_grid / grid_sample
    "deep_emotion": ((32, 32, 1), {}, {}),
}


def random_inputs(shape, n: int, seed: int):
    """n random samples of per-sample `shape` (a mapping per input name for several)."""
    rng = np.random.default_rng(seed)
    if isinstance(shape, dict):
        return {k: rng.normal(size=(n, *s)).astype(np.float32) for k, s in shape.items()}
    return rng.normal(1.0, 2.0, size=(n, *shape)).astype(np.float32)


def fit_tiny(name: str, seed: int = 0) -> TorchClassifier:
    """`name` fitted for one epoch on 6 random samples of its CASES shape."""
    shape, params, train = CASES[name]
    model = TorchClassifier(name, CLASSES, params=params, seed=seed,
                            train_config={"epochs": 1, "batch_size": 3, **train})
    return model.fit(random_inputs(shape, 6, seed), list(CLASSES) * 2)


def run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, " ".join((out.out + out.err).split())


@pytest.fixture(scope="module")
def ststnet_file(tmp_path_factory) -> Path:
    """A tiny ststnet saved with an input recipe."""
    model = fit_tiny("ststnet")
    model.input_recipe = make_input_recipe(model, {"method": "dis"})
    return model.save(tmp_path_factory.mktemp("models") / "ststnet.pt")


@pytest.fixture(scope="module")
def ststnet_onnx(ststnet_file) -> Path:
    """`ststnet_file` exported to ONNX."""
    return export_onnx(ststnet_file, ststnet_file.with_suffix(".onnx"))


# -- every torch model ------------------------------------------------------------------------

def test_the_cases_cover_every_torch_model_of_the_registry():
    get_model_spec("ststnet")  # fills the registry
    assert set(CASES) == {name for name, spec in MODELS.items() if spec.kind == "torch"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_torch_model_exports_to_onnx_and_onnxruntime_gives_its_probabilities(name, tmp_path):
    model = fit_tiny(name)
    model.input_recipe = make_input_recipe(model)
    saved = model.save(tmp_path / f"{name}.pt")
    path = export_onnx(saved, tmp_path / f"{name}.onnx")  # from the file, as the CLI does
    assert path == tmp_path / f"{name}.onnx" and path.is_file()

    exported = OnnxClassifier.load(path)
    shape = CASES[name][0]
    x = random_inputs(shape, 5, seed=7)  # another batch size than the export's
    expected = model.predict_proba(x)
    got = exported.predict_proba(x)
    assert got.shape == (5, len(CLASSES)) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.ptp(expected, axis=0).max() > 1e-5  # the inputs matter: not a constant
    one = {k: v[:1] for k, v in x.items()} if isinstance(x, dict) else x[:1]
    np.testing.assert_allclose(exported.predict_proba(one), expected[:1], atol=1e-4, rtol=0)
    assert list(exported.predict(x)) == list(model.predict(x))

    # the metadata round-trips
    assert exported.model == name and exported.classes == CLASSES
    assert exported.input_names == model.input_names
    assert exported.input_shape == model.input_shape
    assert exported.channels == model.channels
    assert exported.input_recipe == model.input_recipe
    assert exported.params == {k: list(v) if isinstance(v, tuple) else v
                               for k, v in model.params.items()}
    assert exported.reference == get_model_spec(name).reference
    assert exported.microexpr_version == microexpr.__version__
    assert exported.metadata["opset"] == str(OPSET)
    spec = {e["name"]: e for e in exported.input_spec}
    assert set(spec) == set(model.input_names)
    for entry in spec.values():
        assert entry["dtype"] == "float32" and entry["layout"] == "channels_last"
    names = sorted(i.name for i in exported.session.get_inputs())
    assert names == sorted(model.input_names)
    assert all(i.shape[0] == "batch" for i in exported.session.get_inputs())


def test_named_channels_and_training_statistics_are_in_the_graph(ststnet_file, ststnet_onnx):
    exported = OnnxClassifier.load(ststnet_onnx)
    model = microexpr.load_model(ststnet_file)
    assert exported.channels == ("u", "v", "strain")
    assert exported.input_spec == [{"name": "input", "shape": [28, 28, 3],
                                    "channels": ["u", "v", "strain"], "dtype": "float32",
                                    "layout": "channels_last"}]
    # inputs far from the training statistics: standardisation happens inside the graph
    x = random_inputs((28, 28, 3), 4, seed=3) * 10 + 5
    np.testing.assert_allclose(exported.predict_proba(x), model.predict_proba(x), atol=1e-4,
                               rtol=0)


# -- errors ------------------------------------------------------------------------------------

def test_load_model_reads_an_onnx_file_too(ststnet_file, ststnet_onnx):
    from microexpr.training.estimators import load_model
    from microexpr.training.export import OnnxClassifier

    onnx, torch_model = load_model(ststnet_onnx), load_model(ststnet_file)
    assert isinstance(onnx, OnnxClassifier) and onnx.classes == torch_model.classes
    x = np.random.default_rng(0).normal(size=(4, *torch_model.input_shape)).astype(np.float32)
    np.testing.assert_allclose(onnx.predict_proba(x), torch_model.predict_proba(x), atol=1e-4)


def test_exported_models_check_their_inputs_and_files(ststnet_onnx, tmp_path):
    exported = OnnxClassifier.load(ststnet_onnx)
    with pytest.raises(InputShapeError, match=r"shape \(28, 28, 3\).*got \(24, 24, 3\)"):
        exported.predict_proba(np.zeros((2, 24, 24, 3), np.float32))
    with pytest.raises(InputShapeError, match="exported with inputs"):
        exported.predict_proba({"apex": np.zeros((2, 28, 28, 3), np.float32)})
    assert exported.predict_proba(np.zeros((0, 28, 28, 3), np.float32)).shape == (0, 3)

    with pytest.raises(ConfigError, match="no ONNX model at"):
        OnnxClassifier.load(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot be loaded as an ONNX model"):
        OnnxClassifier.load(garbage)
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]),
              foreign)
    with pytest.raises(ConfigError, match="not one exported by microexpr"):
        OnnxClassifier.load(foreign)


def test_models_that_cannot_be_exported_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match="not trained"):
        export_onnx(TorchClassifier("ststnet", CLASSES), tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="must be a trained TorchClassifier"):
        export_onnx(object(), tmp_path / "m.onnx")
    logreg = microexpr.make_classifier("logreg", CLASSES).fit(
        random_inputs((8, 8, 3), 6, seed=0), list(CLASSES) * 2)
    with pytest.raises(ConfigError, match="logreg is a scikit-learn model.*ststnet"):
        export_onnx(logreg, tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="opset must be an integer >= 18"):
        export_onnx(fit_tiny("ststnet"), tmp_path / "m.onnx", opset=11)
    assert not (tmp_path / "m.onnx").exists()


@torch.library.custom_op("microexpr_tests::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    """An operator the ONNX exporter has no translation for."""
    return x * 2


@twice.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class Untranslatable(nn.Module):
    def __init__(self, n_inputs: int, n_classes: int):
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(twice(x).flatten(1))


def test_an_operator_without_onnx_translation_is_named(tmp_path):
    spec = ModelSpec(name="untranslatable", reference="-", description="-",
                     representation="onset_apex_flow", default_input=(8, 8, 3),
                     build=lambda shape, n_classes: Untranslatable(int(np.prod(shape)),
                                                                   n_classes),
                     train={"epochs": 1})
    model = TorchClassifier(spec, CLASSES).fit(random_inputs((8, 8, 3), 6, seed=0),
                                               list(CLASSES) * 2)
    with pytest.raises(ConfigError, match=r"untranslatable cannot be exported to ONNX: the "
                                          r"exporter has no translation for the operator\(s\) "
                                          r"microexpr_tests\.twice"):
        export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# -- the command line --------------------------------------------------------------------------

def test_the_command_line_exports_a_saved_model(ststnet_file, tmp_path, capsys):
    out = tmp_path / "onnx" / "ststnet.onnx"
    code, text = run(["export", str(ststnet_file), str(out)], capsys)
    assert code == 0, text
    assert out.is_file()
    assert f"exported ststnet (3 classes: negative, positive, surprise) to {out}" in text
    assert "input float32 N x 28 x 28 x 3 (u, v, strain)" in text
    assert f"microexpr analyze VIDEO --model {out}" in text
    assert OnnxClassifier.load(out).classes == CLASSES

    code, text = run(["export", str(ststnet_file), str(out)], capsys)
    assert code == 2 and "exists" in text and "--overwrite" in text
    code, text = run(["export", str(ststnet_file), str(out), "--overwrite"], capsys)
    assert code == 0, text


def test_the_command_line_refuses_bad_paths_and_scikit_learn_models(ststnet_file, tmp_path,
                                                                    capsys):
    out = str(tmp_path / "m.onnx")
    code, text = run(["export", str(tmp_path / "missing.pt"), out], capsys)
    assert code == 2 and "missing.pt does not exist" in text
    code, text = run(["export", str(ststnet_file), str(tmp_path / "m.pt")], capsys)
    assert code == 2 and "must be a .onnx file" in text
    code, text = run(["export", str(ststnet_file), str(tmp_path)], capsys)
    assert code == 2 and "is a folder" in text
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("hello")
    code, text = run(["export", str(not_a_model), out], capsys)
    assert code == 2 and "is not a model saved by microexpr" in text
    logreg = microexpr.make_classifier("logreg", CLASSES).fit(
        random_inputs((8, 8, 3), 6, seed=0), list(CLASSES) * 2)
    saved = logreg.save(tmp_path / "logreg.pt")
    code, text = run(["export", str(saved), out], capsys)
    assert code == 2 and "logreg is a scikit-learn model" in text
    assert not Path(out).exists()


# -- from clips and videos ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """ststnet trained by `microexpr.train` on a tiny synthetic database, and its ONNX export."""
    folder = tmp_path_factory.mktemp("trained")
    root = microexpr.synthesize(folder / "db", subjects=3, clips_per_class=2, size=64, seed=3,
                                amplitude=6.0, progress=False)
    data = microexpr.load_dataset("casme2", root, labels="composite3")
    path = folder / "ststnet.pt"
    microexpr.train(data, "ststnet", out=path, representation={"method": "dis"}, epochs=3,
                    seed=0, cache_dir=None, progress=False)
    return data, path, microexpr.export_onnx(path, folder / "ststnet.onnx")


def test_an_exported_model_computes_its_inputs_from_clips_like_the_torch_model(trained):
    data, pt, onnx_path = trained
    model, exported = microexpr.load_model(pt), OnnxClassifier.load(onnx_path)
    assert exported.input_recipe == model.input_recipe
    assert exported.training_info["model"] == model.training_info["model"]
    clips = data.clips.iloc[:4]
    inputs, ok, failures = microexpr.model_inputs(exported, clips)
    assert ok.all() and not len(failures)
    np.testing.assert_array_equal(inputs, microexpr.model_inputs(model, clips).inputs)
    np.testing.assert_allclose(exported.predict_proba(inputs), model.predict_proba(inputs),
                               atol=1e-4, rtol=0)


def test_analyze_recognises_an_interval_with_the_onnx_model_as_with_the_torch_model(
        trained, request, tmp_path, capsys):
    # the short video with a motion pulse of the video tests (skipped without the real faces)
    still = request.getfixturevalue("still_face")
    folder = write_frames(pulse_frames(still, "mouth", 6.0), tmp_path / "pulse")
    _, pt, onnx_path = trained
    with_torch = microexpr.analyze(folder, pt).intervals
    assert len(with_torch) == 1 and with_torch["label"].iloc[0] in CLASSES

    out = tmp_path / "analysis"
    code, text = run(["analyze", str(folder), "--model", str(onnx_path), "--out", str(out),
                      "--no-progress"], capsys)
    assert code == 0, text
    with_onnx = pd.read_csv(out / "intervals.csv")
    assert list(with_onnx["label"]) == list(with_torch["label"])
    assert list(with_onnx[["onset", "apex", "offset"]].itertuples(index=False)) == list(
        with_torch[["onset", "apex", "offset"]].itertuples(index=False))
    columns = [f"p_{c}" for c in CLASSES]
    np.testing.assert_allclose(with_onnx[columns].to_numpy(), with_torch[columns].to_numpy(),
                               atol=1e-4, rtol=0)
