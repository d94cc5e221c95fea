"""evaluate() on what real users hold: composite-style manifests with repeated clip names and
u, v, strain files; results folders that are checked first, written fold by fold, resumable."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import microexpr
from microexpr.errors import ConfigError, InputShapeError
from microexpr.evaluation import inputs as evaluation_inputs
from microexpr.evaluation import runner
from microexpr.evaluation.report import load_results

CLASSES = ("negative", "positive", "surprise")


def composite_manifest(folder: Path, *, subjects: int = 4, per_subject: int = 6,
                       size: int = 28, signal: float = 2.0, seed: int = 0) -> Path:
    """u, v, strain .npy files from casme2 / samm / smic subjects whose clip names repeat
    across subjects (EP01_01 ... in every subject), with a class pattern in u and v."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    rows = ["dataset,subject,clip,label,path"]
    databases = ("casme2", "samm", "smic")
    for s in range(subjects):
        dataset = databases[s % 3]
        for k in range(per_subject):
            label = k % 3
            x = rng.normal(scale=0.5, size=(size, size, 3)).astype(np.float32)
            cy = size * (label + 1) / 4
            blob = np.exp(-((yy - cy) ** 2 + (xx - size / 2) ** 2) / (size / 5) ** 2)
            x[..., 0] += signal * blob
            x[..., 1] -= signal * blob * (label - 1)
            x[..., 2] = np.abs(x[..., 0]) + np.abs(x[..., 1])
            name = f"{dataset}_sub{s:02d}_EP01_{k:02d}.npy"
            np.save(folder / name, x)
            rows.append(f"{dataset},sub{s:02d},EP01_{k:02d},{CLASSES[label]},{name}")
    path = folder / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def composite(tmp_path) -> Path:
    return composite_manifest(tmp_path / "composite")


@pytest.mark.parametrize("model, extra", [
    ("ststnet", {"epochs": 2}),
    ("off_apexnet", {"epochs": 1}),
    ("micro_attention", {"epochs": 1, "input_size": 64}),
    ("logreg", {}),
    ("linear_svm", {}),
])
def test_registry_models_run_on_repeated_clip_names_with_named_channels(composite, tmp_path,
                                                                        model, extra):
    result = microexpr.evaluate(composite, model, channels="u,v,strain", seed=0,
                                out=tmp_path / model, progress=False, **extra)
    predictions = result.predictions
    assert len(predictions) == 24
    # the same clip name in 4 subjects stays 4 rows, told apart by subject
    assert predictions.groupby("clip")["subject"].nunique().eq(4).all()
    config, saved, metrics = load_results(tmp_path / model)
    assert len(saved.drop_duplicates(["dataset", "subject", "clip"])) == 24
    wanted = {"off_apexnet": ["u", "v"]}.get(model, ["u", "v", "strain"])
    assert config["channels"] == wanted


def test_models_pick_their_channels_by_name(composite, tmp_path):
    # the files hold strain, v, u: OFF-ApexNet must still get u then v
    reordered = tmp_path / "reordered"
    reordered.mkdir()
    table = pd.read_csv(composite)
    for rel in table["path"]:
        x = np.load(composite.parent / rel)
        np.save(reordered / rel, x[..., ::-1])
    table.to_csv(reordered / "manifest.csv", index=False)
    a = microexpr.evaluate(composite, "logreg", channels="u,v,strain", write=False,
                           progress=False)
    b = microexpr.evaluate(reordered / "manifest.csv", "logreg", channels="strain,v,u",
                           write=False, progress=False)
    # the same features in another order: the same model up to the solver's tolerance
    # (lbfgs paths differ by a few 1e-6 with the feature order in scikit-learn 1.9)
    np.testing.assert_allclose(a.predictions.filter(like="p_"), b.predictions.filter(like="p_"),
                               atol=1e-4)
    with pytest.raises(InputShapeError, match="strain"):
        microexpr.evaluate(composite, "ststnet", channels="u,v,magnitude", write=False,
                           progress=False)


def test_too_small_input_names_the_input_size_flag(composite):
    with pytest.raises(InputShapeError, match="--input-size"):
        microexpr.evaluate(composite, "micro_attention", channels="u,v,strain", epochs=1,
                           write=False, progress=False)


def test_bad_options_fail_before_any_work(composite, tmp_path, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(runner, "clips_of", no_work)
    out = tmp_path / "res"
    cases = [({"params": {"dropout": "abc"}}, "dropout"),
             ({"params": {"dropout": 2}}, "dropout"),
             ({"params": {"nope": 1}}, "nope"),
             ({"train": {"lr": "abc"}}, "lr"),
             ({"train": {"batch_size": "abc"}}, "batch_size"),
             ({"train": {"optimiser": "adam"}}, "optimiser"),
             ({"ensemble": 0}, "ensemble"),
             ({"recipe": "nonsense"}, "recipe"),
             ({"protocol": "kfold"}, "protocol")]
    for kwargs, word in cases:
        with pytest.raises(ConfigError, match=word):
            microexpr.evaluate(composite, "ststnet", out=out, progress=False, **kwargs)
    assert not out.exists() and not (tmp_path / "res.partial").exists()


def test_representation_options_are_checked_before_any_work(tmp_path, monkeypatch):
    from trees import make_casme2

    data = microexpr.load_dataset("casme2", make_casme2(tmp_path), labels="casme2_5")
    monkeypatch.setattr(evaluation_inputs, "prepare_representation",
                        lambda *a, **k: pytest.fail("the representation was computed"))
    with pytest.raises(ConfigError, match="nope"):
        microexpr.evaluate(data, "ststnet", representation={"nope": 1}, write=False,
                           progress=False)
    with pytest.raises(ConfigError, match="channels"):
        microexpr.evaluate(data, "ststnet", channels="u,v,strain", write=False, progress=False)


def test_out_is_checked_before_any_work(composite, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "clips_of", lambda *a, **k: pytest.fail("work started"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        microexpr.evaluate(composite, "ststnet", out=a_file, progress=False)
    with pytest.raises(ConfigError, match="under the file"):
        microexpr.evaluate(composite, "ststnet", out=a_file / "res", progress=False)
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "problems.csv").write_text("stale")
    with pytest.raises(ConfigError, match="--overwrite"):
        microexpr.evaluate(composite, "ststnet", out=earlier, progress=False)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(ConfigError, match="cannot write"):
        microexpr.evaluate(composite, "ststnet", out=tmp_path / "new", progress=False)


def test_overwrite_replaces_an_earlier_folder_whole(composite, tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "problems.csv").write_text("stale problems of another run")
    microexpr.evaluate(composite, "logreg", channels="u,v,strain", out=earlier,
                       overwrite=True, progress=False)
    assert not (earlier / "problems.csv").exists()
    assert (earlier / "metrics.json").is_file()
    assert not (tmp_path / "earlier.partial").exists()


def test_interrupted_run_resumes_from_its_folds_on_disk(composite, tmp_path, monkeypatch):
    full = microexpr.evaluate(composite, "ststnet", channels="u,v,strain", epochs=2,
                              out=tmp_path / "full", progress=False, jobs=1)
    calls = []
    real = runner._run_fold

    def interrupt_third(shared, fold):
        calls.append(fold.index)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(shared, fold)

    monkeypatch.setattr(runner, "_run_fold", interrupt_third)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as interrupted:
        microexpr.evaluate(composite, "ststnet", channels="u,v,strain", epochs=2, out=out,
                           progress=False, jobs=1)
    assert "2 of 4 folds are saved" in interrupted.value.__notes__[-1]
    assert "--resume" in interrupted.value.__notes__[-1]
    assert not out.exists()
    assert len(list((tmp_path / "run.partial" / "folds").glob("fold*.npz"))) == 2
    with pytest.raises(ConfigError, match="--resume"):  # neither resume nor overwrite
        microexpr.evaluate(composite, "ststnet", channels="u,v,strain", epochs=2, out=out,
                           progress=False, jobs=1)
    with pytest.raises(ConfigError, match="different configuration"):
        microexpr.evaluate(composite, "ststnet", channels="u,v,strain", epochs=3, out=out,
                           progress=False, jobs=1, resume=True)
    calls.clear()
    resumed = microexpr.evaluate(composite, "ststnet", channels="u,v,strain", epochs=2,
                                 out=out, progress=False, jobs=1, resume=True)
    assert sorted(calls) == [2, 3]  # only the folds that were not on disk
    pd.testing.assert_frame_equal(resumed.predictions, full.predictions)
    assert not (tmp_path / "run.partial").exists()
    assert sum(f.get("resumed", False) for f in resumed.config["folds"]) == 2


def test_ensemble_and_tuning_stay_at_chance_on_noise(noise_manifest, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("train:\n  lr: [0.003, 0.0003]\ninner_folds: 3\n")
    tuned = microexpr.evaluate(noise_manifest, "ststnet", epochs=4, tune=grid, seed=0,
                               out=tmp_path / "tuned", progress=False, jobs=1)
    assert abs(tuned.metrics["uf1"] - 1 / 3) < 0.12
    chosen = [f["tuning"]["point"] for f in tuned.config["folds"]]
    assert len(chosen) == 10 and set(chosen) <= {0, 1}
    config, _, _ = load_results(tmp_path / "tuned")
    assert config["tuning"]["points"][1]["train"] == {"lr": 0.0003}
    ensembled = microexpr.evaluate(noise_manifest, "ststnet", epochs=4, ensemble=3, seed=0,
                                   write=False, progress=False, jobs=1)
    assert abs(ensembled.metrics["uf1"] - 1 / 3) < 0.12


def test_ensemble_averages_member_probabilities(signal_manifest):
    kwargs = {"epochs": 3, "write": False, "progress": False, "jobs": 1, "seed": 1}
    one = microexpr.evaluate(signal_manifest, "ststnet", **kwargs)
    three = microexpr.evaluate(signal_manifest, "ststnet", ensemble=3, **kwargs)
    p1, p3 = one.predictions.filter(like="p_").to_numpy(), three.predictions.filter(
        like="p_").to_numpy()
    assert not np.allclose(p1, p3)  # other members were averaged in
    np.testing.assert_allclose(p3.sum(axis=1), 1, atol=1e-5)


def test_tuning_grid_errors_name_the_file_before_any_work(composite, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("params:\n  dropout: [0.3, 7]\n")
    with pytest.raises(ConfigError, match="grid.yaml"):
        microexpr.evaluate(composite, "ststnet", tune=grid, write=False, progress=False)


def test_recipe_paper_sets_the_authors_training(composite):
    result = microexpr.evaluate(composite, "ststnet", channels="u,v,strain", recipe="paper",
                                epochs=1, write=False, progress=False, jobs=1)
    train = result.config["train"]
    assert (train["lr"], train["batch_size"], train["epochs"]) == (5e-5, 256, 1)
    assert result.config["model"]["recipe"] == "paper"


def test_nan_inputs_name_the_row_and_file(composite):
    table = pd.read_csv(composite)
    bad = composite.parent / table["path"][5]
    x = np.load(bad)
    x[3, 3, 0] = np.nan
    np.save(bad, x)
    with pytest.raises(microexpr.errors.MicroexprError, match=str(table["path"][5])):
        microexpr.evaluate(composite, "ststnet", write=False, progress=False)
