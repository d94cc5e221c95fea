"""`train`: one model trained on every clip of a database (no held-out subject), for new data.

The data, options and inputs are resolved exactly as `evaluate` resolves them (the same
`plan_run` / `prepare_run` / `macro_guide` of `microexpr.evaluation.runner`), then one model
is trained on all the clips and saved with its input recipe, so that
`microexpr.training.inputs.model_inputs` computes its inputs for any new clips (a video's
spotted intervals: `microexpr analyze VIDEO --model MODEL.pt`). Beside MODEL.pt go
MODEL.yaml (the configuration, also kept in the model file as `model.training_info`) and,
when clips were left out, MODEL.problems.csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from microexpr.data.clips import Dataset
from microexpr.data.manifest import Manifest
from microexpr.errors import ConfigError
from microexpr.evaluation.rundir import _check_writable
from microexpr.evaluation.runner import (
    fit_model,
    macro_guide,
    plan_run,
    prepare_run,
    run_config,
    shared_for,
    summarize_problems,
)
from microexpr.plain import plain_data
from microexpr.training.checkpoints import atomic_write

CONFIG_SUFFIX = ".yaml"
PROBLEMS_SUFFIX = ".problems.csv"


def model_files(out: str | Path) -> tuple[Path, Path, Path]:
    """(model file, its configuration YAML, its problems CSV) for `out` (MODEL.pt)."""
    path = Path(out).expanduser()
    return path, path.with_suffix(CONFIG_SUFFIX), path.with_suffix(PROBLEMS_SUFFIX)


def check_model_out(out: str | Path, overwrite: bool) -> Path:
    """The model file `out`, checked before any work: a file name (not a folder, not the
    YAML beside it) in a folder we can write to, new unless `overwrite`."""
    path, config_file, _ = model_files(out)
    if path.suffix.lower() in (".yaml", ".yml", ".csv"):
        raise ConfigError(f"out (--out) {path}: give the model file's name, e.g. "
                          f"{path.with_suffix('.pt').name}; its configuration is written "
                          f"beside it as {path.with_suffix(CONFIG_SUFFIX).name}")
    if path.is_dir():
        raise ConfigError(f"out (--out) {path} is a folder: give a file name in it, e.g. "
                          f"{path / 'model.pt'}")
    if not overwrite:
        for existing in (path, config_file):
            if existing.exists():
                raise ConfigError(f"out (--out) {existing} exists: pass overwrite=True "
                                  f"(--overwrite) to replace it, or choose another file")
    _check_writable(path.parent, "out (--out)")
    return path


def train(
    data: Dataset | Manifest | pd.DataFrame | str | Path,
    model: str,
    *,
    out: str | Path | None,
    labels: str | None = None,
    recipe: str | None = None,
    epochs: int | None = None,
    params: dict | None = None,
    train: dict | None = None,
    representation: dict | None = None,
    input_representation: str | None = None,
    channels: str | tuple[str, ...] | None = None,
    input_size: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None | bool = True,
    macro: str | Path | list | None = None,
    init: str | Path | dict | None = None,
    device: str | None = None,
    jobs: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Any:
    """Train `model` on every clip of `data` (no held-out subject) and save it to `out`.

    Takes `evaluate`'s data, options and checks (every option is checked before any work):
    the recipe, `epochs`, `params`, `train` options (`{"early_stopping": True}` stops on a
    validation split drawn from the training subjects), representation options (or another
    `input_representation`), a manifest's `channels`, `input_size`, `macro` data of a guided
    model (mimanet; MaNet trained once and cached) and pretrained weights `init`. The model
    is seeded with `seed`.

    `out` (MODEL.pt) must be new unless `overwrite`; None keeps the model in memory only.
    MODEL.yaml beside it holds the configuration (data, classes, clips per class, model,
    recipe, params, training options, input recipe, seed, training seconds, final training
    loss), also kept in the model as `training_info`; MODEL.problems.csv lists the clips
    left out, if any. Returns the trained TorchClassifier / SklearnClassifier, whose
    `input_recipe` computes its inputs for new clips (`microexpr.model_inputs`).
    """
    plan = plan_run(data, model, recipe=recipe, representation=representation,
                    input_representation=input_representation, channels=channels,
                    input_size=input_size, params=params, train=train, epochs=epochs,
                    init=init, macro=macro)
    path = None if out is None else check_model_out(out, overwrite)
    prepared = prepare_run(plan, data, labels=labels, channels=channels, cache_dir=cache_dir,
                           jobs=jobs, progress=progress)
    guide, macro_info = macro_guide(plan, prepared, seed=seed, device=device,
                                    cache_dir=cache_dir, jobs=jobs, progress=progress)
    shared = shared_for(plan, prepared, seed=seed, device=device, guide=guide)
    classifier, info = fit_model(shared, np.arange(len(prepared.clips)), seed,
                                 plan.checked_params, None)
    labels_of = prepared.clips["label"].astype(str)
    counts = {c: int((labels_of == c).sum()) for c in prepared.classes}
    problems = prepared.problems
    files = model_files(path) if path is not None else None
    config = {
        **run_config(plan, prepared),
        "trained_on": "every clip (no held-out subject)",
        "class_counts": counts,
        "seed": seed,
        "device": device or "auto",
        "init": plan.init,
        "macro": macro_info,
        "input_recipe": prepared.input_recipe.to_dict(),
        "training_seconds": info["fit_seconds"],
        "final_train_loss": info.get("final_train_loss"),
        **{k: info[k] for k in ("epochs_run", "best_epoch", "final_loss_terms",
                                "transferred_tensors") if k in info},
        "model_file": None if files is None else str(files[0]),
        "problems": _problems_section(problems, files),
        "warnings": list(prepared.given.warnings),
    }
    classifier.training_info = plain_data(config)
    if files is not None:
        _write(classifier, problems, files)
    return classifier


def _problems_section(problems: pd.DataFrame | None, files: tuple[Path, Path, Path] | None
                      ) -> dict[str, Any]:
    """How many clips were left out and warned about, the first reasons, where the list is."""
    if problems is None or not len(problems):
        return {"clips_left_out": 0, "warnings": 0, "summary": "", "file": None}
    left_out = problems[(problems["clip"].astype(str) != "")
                        & problems["severity"].isin(["error", "info"])]
    return {"clips_left_out": int(len(left_out[["dataset", "clip"]].drop_duplicates())),
            "warnings": int((problems["severity"] == "warning").sum()),
            "summary": summarize_problems(problems, None),
            "file": None if files is None else str(files[2])}


def _write(classifier: Any, problems: pd.DataFrame | None,
           files: tuple[Path, Path, Path]) -> None:
    """The model file, then its configuration YAML and problems CSV, each written atomically
    (a problems CSV of an earlier model of that name is removed when there are none now)."""
    path, config_file, problems_file = files
    classifier.save(path)
    text = yaml.safe_dump(classifier.training_info, sort_keys=False)
    atomic_write(config_file, lambda stream: stream.write(text.encode()))
    if problems is not None and len(problems):
        table = problems.to_csv(index=False)
        atomic_write(problems_file, lambda stream: stream.write(table.encode()))
    else:
        problems_file.unlink(missing_ok=True)


__all__ = ["check_model_out", "model_files", "train"]
