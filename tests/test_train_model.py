"""Models that leave `evaluate` / `train` and work on new data: a saved model carries its input
recipe, `model_inputs` recomputes exactly the inputs it was trained on for any clips, and
`microexpr train` trains one model on a whole database."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_manifest

import microexpr
from microexpr.cli import main
from microexpr.errors import ConfigError
from microexpr.representations import compute_representation, resize_inputs
from microexpr.synth.macro import write_ckplus
from microexpr.training.checkpoints import read_checkpoint, write_checkpoint
from microexpr.training.inputs import InputRecipe, make_input_recipe, model_inputs

FLOW = {"method": "dis", "size": 20}  # not ststnet's defaults: the recipe must carry them
SMALL_MIMANET = {"apex": {"size": 32}, "clip": {"size": 32, "length": 8}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A synthetic database of 3 subjects x 3 classes x 2 clips, labelled 3-class."""
    root = microexpr.synthesize(tmp_path_factory.mktemp("db"), subjects=3, clips_per_class=2,
                                size=64, seed=3, amplitude=6.0, progress=False)
    return microexpr.load_dataset("casme2", root, labels="composite3")


def _split(data):
    """(the database without its last subject, that subject's clips: new data)."""
    last = sorted(data.clips["subject"].unique())[-1]
    held = (data.clips["subject"] == last).to_numpy()
    known = dataclasses.replace(data, clips=data.clips[~held].reset_index(drop=True))
    return known, data.clips[held].reset_index(drop=True)


def test_a_trained_model_computes_its_own_inputs_for_new_clips(data, tmp_path):
    known, new = _split(data)
    out = tmp_path / "models" / "ststnet.pt"
    model = microexpr.train(known, "ststnet", out=out, representation=FLOW, input_size=24,
                            epochs=3, seed=1, cache_dir=tmp_path / "cache", progress=False)
    loaded = microexpr.load_model(out)
    assert loaded.input_recipe == model.input_recipe
    recipe = loaded.input_recipe
    assert recipe.representations["input"]["name"] == "onset_apex_flow"
    assert recipe.representations["input"]["method"] == "dis"
    assert recipe.channels == {"input": ("u", "v", "strain")} and recipe.input_size == 24

    result = microexpr.model_inputs(loaded, new)  # no cache: computed afresh
    assert result.ok.all() and not len(result.failures)
    config = recipe.configs()["input"][1]
    by_hand = resize_inputs(compute_representation(new, "onset_apex_flow", config,
                                                   cache_dir=None, progress=False), 24)
    np.testing.assert_array_equal(result.inputs, by_hand)
    np.testing.assert_allclose(loaded.predict_proba(result.inputs),
                               model.predict_proba(by_hand), atol=1e-6)

    # the configuration: beside the model, inside it, and what it says
    written = yaml.safe_load(out.with_suffix(".yaml").read_text())
    assert written == loaded.training_info == model.training_info
    assert written["class_counts"] == {"negative": 4, "positive": 4, "surprise": 4}
    assert written["model"]["name"] == "ststnet" and written["seed"] == 1
    assert written["train"]["epochs"] == 3 and written["epochs_run"] == 3
    assert written["final_train_loss"] > 0 and written["training_seconds"] > 0
    assert written["input_recipe"] == recipe.to_dict()
    assert written["data"]["labels"] == "composite3" and written["n_subjects"] == 2
    assert written["problems"]["clips_left_out"] == 0
    assert not out.with_suffix(".problems.csv").exists()


def test_fold_models_of_evaluate_predict_their_held_out_subject_through_model_inputs(data,
                                                                                     tmp_path):
    result = microexpr.evaluate(data, "ststnet", representation=FLOW, input_size=24,
                                epochs=2, seed=0, save_models=True, out=tmp_path / "res",
                                cache_dir=tmp_path / "cache", progress=False)
    assert result.config["input_size"] == 24  # the config of evaluate is unchanged
    for fold in result.config["folds"]:
        model = microexpr.load_model(tmp_path / "res" / "models" /
                                     f"fold{fold['index']:03d}.pt")
        assert model.input_recipe.representations["input"]["size"] == 20
        clips = data.clips[data.clips["subject"] == fold["held_out"]]
        computed = model_inputs(model, clips)  # the cache off: recomputed, not read back
        assert computed.ok.all()
        expected = result.predictions[result.predictions["fold"] == fold["index"]]
        assert list(expected["clip"]) == list(clips["clip"])
        np.testing.assert_allclose(model.predict_proba(computed.inputs),
                                   expected[[f"p_{c}" for c in model.classes]].to_numpy(),
                                   atol=1e-6)


def test_early_stopping_validates_on_a_split_of_the_training_subjects(data, tmp_path):
    model = microexpr.train(data, "ststnet", out=None, representation=FLOW, epochs=4,
                            train={"early_stopping": True, "val_fraction": 0.34},
                            cache_dir=tmp_path / "cache", progress=False)
    info = model.training_info
    assert info["train"]["early_stopping"] and info["trained_on"].startswith("every clip")
    assert len(model.history.val_loss) == info["epochs_run"] and info["best_epoch"] >= 1
    assert info["n_clips"] == 18 and info["model_file"] is None


def test_a_multi_input_model_round_trips_its_recipe(data, tmp_path):
    known, new = _split(data)
    out = tmp_path / "mimanet.pt"
    model = microexpr.train(known, "mimanet", out=out, params={"guidance": False},
                            representation=SMALL_MIMANET, epochs=1, cache_dir=None,
                            progress=False)
    loaded = microexpr.load_model(out)
    recipe = loaded.input_recipe
    assert recipe == model.input_recipe and set(recipe.representations) == {"apex", "clip"}
    assert recipe.representations["clip"]["length"] == 8
    assert recipe.representations["apex"]["size"] == 32 and recipe.input_size is None
    result = model_inputs(loaded, new)
    assert set(result.inputs) == {"apex", "clip"}
    assert result.inputs["clip"].shape == (len(new), 8, 32, 32, 1)
    by_hand = {name: compute_representation(new, rep, config, cache_dir=None, progress=False)
               for name, (rep, config) in recipe.configs().items()}
    np.testing.assert_allclose(loaded.predict_proba(result.inputs),
                               model.predict_proba(by_hand), atol=1e-6)


def test_mimanet_trains_under_macro_guidance(data, tmp_path):
    known, new = _split(data)
    macro = write_ckplus(tmp_path / "macro", subjects=2, sequences_per_class=1, size=64,
                         unlabelled=0)
    model = microexpr.train(known, "mimanet", out=None, macro=str(macro),
                            representation=SMALL_MIMANET, epochs=1,
                            cache_dir=tmp_path / "cache", progress=False)
    info = model.training_info
    assert info["macro"]["manet"]["trained_once_per_run"] and info["model_file"] is None
    assert {"domain", "relation", "contrastive"} <= set(info["final_loss_terms"])
    assert model_inputs(model, new).ok.all()


def test_an_old_model_without_a_recipe_loads_and_is_refused_clearly(data, tmp_path):
    known, new = _split(data)
    x = compute_representation(known.clips, "onset_apex_flow", FLOW, cache_dir=None,
                               progress=False)
    model = microexpr.TorchClassifier("ststnet", known.classes, train_config={"epochs": 1})
    model.fit(x, known.clips["label"])
    path = model.save(tmp_path / "old.pt")
    checkpoint = read_checkpoint(path)  # as microexpr wrote it before input recipes
    meta = {k: v for k, v in checkpoint.meta.items()
            if k not in ("input_recipe", "training_info")}
    write_checkpoint(path, meta, checkpoint.state_dict, checkpoint.arrays)
    old = microexpr.load_model(path)
    assert old.input_recipe is None
    np.testing.assert_allclose(old.predict_proba(x), model.predict_proba(x), atol=1e-6)
    with pytest.raises(ConfigError, match="retrain it with `microexpr train`.*re-save"):
        model_inputs(old, new)

    # re-saved with the options it was trained with, it works on new clips
    old.input_recipe = make_input_recipe(old, FLOW)
    old.save(path)
    again = microexpr.load_model(path)
    result = model_inputs(again, new)
    expected = compute_representation(new, "onset_apex_flow", FLOW, cache_dir=None,
                                      progress=False)
    np.testing.assert_allclose(again.predict_proba(result.inputs),
                               model.predict_proba(expected), atol=1e-6)
    with pytest.raises(ConfigError, match="lacks column"):
        model_inputs(again, new.drop(columns=["apex"]))


def test_clips_that_fail_are_left_out_and_listed_beside_the_model(data, tmp_path):
    clips = data.clips.copy()
    clips.at[0, "frames"] = tuple(str(tmp_path / "gone" / Path(f).name)
                                  for f in clips.at[0, "frames"])
    out = tmp_path / "logreg.pt"
    model = microexpr.train(clips, "logreg", out=out, representation={"size": 16},
                            cache_dir=None, progress=False)
    problems = model.training_info["problems"]
    assert problems["clips_left_out"] == 1 and model.training_info["n_clips"] == 17
    assert problems["file"] == str(out.with_suffix(".problems.csv"))
    assert clips.at[0, "clip"] in out.with_suffix(".problems.csv").read_text()
    failed = model_inputs(model, clips.head(3))
    assert failed.ok.tolist() == [False, True, True] and len(failed.inputs) == 2
    assert failed.failures["clip"].tolist() == [clips.at[0, "clip"]]
    assert "cannot read" in failed.failures["error"].iloc[0]


def test_a_manifest_model_records_it_and_cannot_compute_inputs_from_frames(data, tmp_path):
    manifest = write_manifest(tmp_path / "m", n_subjects=3, per_subject=6, signal=2.0)
    model = microexpr.train(manifest, "logreg", out=tmp_path / "logreg.pt", progress=False)
    recipe = microexpr.load_model(tmp_path / "logreg.pt").input_recipe
    assert recipe.manifest["path"] == str(manifest) and not recipe.representations
    with pytest.raises(ConfigError, match="manifest .* cannot compute its inputs"):
        model_inputs(model, data.clips)


def test_recipes_are_plain_data_and_bad_ones_are_named():
    recipe = InputRecipe({"input": {"name": "apex_frame", "size": 32, "align": None}},
                         {"input": ["gray"]}, 48)
    assert InputRecipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.configs()["input"][1].size == 32
    with pytest.raises(ConfigError, match="model.pt is malformed"):
        InputRecipe.from_dict({"representations": {"input": {"size": 3}}}, "model.pt")
    with pytest.raises(ConfigError, match="newer"):
        InputRecipe.from_dict({"format": 99})


# -- the command line -----------------------------------------------------------------------

def run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, " ".join((out.out + out.err).split())


def test_cli_train_writes_the_model_and_refuses_to_overwrite_it(data, tmp_path, capsys):
    out = tmp_path / "logreg.pt"
    argv = ["train", "--dataset", "casme2", "--root", data.root, "--labels", "composite3",
            "--model", "logreg", "--option", "method=dis", "--option", "size=16",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    code, text = run(argv, capsys)
    assert code == 0, text
    assert out.is_file() and out.with_suffix(".yaml").is_file()
    assert f"model saved to {out}" in text and f"microexpr analyze VIDEO --model {out}" in text
    model = microexpr.load_model(out)
    assert model.training_info["n_clips"] == 18 and model.input_recipe.input_size is None
    assert model_inputs(model, data.clips.head(2)).inputs.shape == (2, 16, 16, 3)
    stamp = out.stat().st_mtime_ns
    code, text = run(argv, capsys)
    assert code == 2 and "exists" in text and "--overwrite" in text, text
    assert out.stat().st_mtime_ns == stamp
    code, text = run([*argv, "--overwrite", "--seed", "2"], capsys)
    assert code == 0, text
    assert microexpr.load_model(out).training_info["seed"] == 2


@pytest.mark.parametrize(("flags", "word"), [
    (["--model", "ststnet", "--param", "dropout=2"], "dropout"),
    (["--model", "ststnet", "--train-option", "lr=abc"], "lr"),
    (["--model", "ststnet", "--recipe", "nope"], "recipe"),
    (["--model", "logreg", "--epochs", "3"], "epochs"),
    (["--model", "ststnet", "--input-size", "0"], "input-size"),
    (["--model", "ststnet", "--option", "nope=1"], "nope"),
    (["--model", "mimanet"], "--macro"),
    (["--model", "nope"], "unknown model"),
])
def test_cli_train_checks_options_before_any_work(data, tmp_path, capsys, flags, word):
    out = tmp_path / "model.pt"
    code, text = run(["train", "--dataset", "casme2", "--root", data.root, "--labels",
                      "composite3", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                      *flags], capsys)
    assert code == 2 and word in text and "Traceback" not in text, text
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_cli_train_refuses_a_folder_or_yaml_out_and_a_missing_database(tmp_path, capsys):
    for out, word in ((tmp_path, "is a folder"), (tmp_path / "m.yaml", "model file's name")):
        code, text = run(["train", "--manifest", "x.csv", "--out", str(out)], capsys)
        assert code == 2 and word in text, text
    code, text = run(["train", "--out", str(tmp_path / "m.pt")], capsys)
    assert code == 2 and "--dataset NAME --root PATH or --manifest" in text, text
    assert not Path(tmp_path / "m.pt").exists()
