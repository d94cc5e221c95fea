"""`evaluate`: representation -> folds -> train and predict per fold -> metrics -> results dir."""

from __future__ import annotations

import datetime as _dt
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from microexpr.data.clips import Dataset, Problem, problems_frame
from microexpr.data.manifest import Manifest, read_manifest
from microexpr.errors import ConfigError
from microexpr.evaluation.metrics import PROBABILITY_PREFIX, compute_metrics, metrics_table
from microexpr.evaluation.protocols import Fold, make_folds
from microexpr.evaluation.report import write_results
from microexpr.parallel import make_executor
from microexpr.progress import track
from microexpr.representations import make_config, prepare_representation


@dataclass
class EvaluationResult:
    """What an evaluation produced; `out_dir` holds the same as files."""

    predictions: pd.DataFrame
    metrics: dict
    config: dict
    out_dir: Path | None

    def table(self) -> pd.DataFrame:
        """UF1 / UAR / accuracy overall and per dataset."""
        return metrics_table(self.metrics)

    def __repr__(self) -> str:
        m = self.metrics
        return (f"<EvaluationResult UF1={m['uf1']:.4f} UAR={m['uar']:.4f} "
                f"acc={m['accuracy']:.4f} n={m['n']} out={self.out_dir}>")


@dataclass(frozen=True)
class _Shared:
    inputs: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    classes: tuple[str, ...]
    model: str
    train_config: dict | None
    params: dict
    seed: int
    device: str | None
    models_dir: str | None
    init: dict | None = None


def fold_seed(seed: int, fold: int) -> int:
    """A seed per fold that depends only on the run's seed and the fold's index."""
    return int(np.random.SeedSequence([seed, fold]).generate_state(1)[0])


def _run_fold(shared: _Shared, fold: Fold) -> tuple[np.ndarray, dict]:
    from microexpr.models.factory import make_classifier

    classifier = make_classifier(shared.model, shared.classes, train_config=shared.train_config,
                                 params=shared.params, seed=fold_seed(shared.seed, fold.index),
                                 device=shared.device, init=shared.init)
    start = time.perf_counter()
    classifier.fit(shared.inputs[fold.train], shared.labels[fold.train],
                   groups=shared.subjects[fold.train])
    fit_seconds = time.perf_counter() - start
    if shared.models_dir:
        classifier.save(Path(shared.models_dir) / f"fold{fold.index:03d}.pt")
    history = getattr(classifier, "history", None)
    info: dict = {"fit_seconds": round(fit_seconds, 3)}
    info |= {} if history is None else {
        "epochs_run": len(history.train_loss), "best_epoch": history.best_epoch,
        "final_train_loss": history.train_loss[-1]}
    if getattr(classifier, "transfer", None) is not None:
        info["transferred_tensors"] = len(classifier.transfer.loaded)
    return classifier.predict_proba(shared.inputs[fold.test]), info


def _default_out(name: str, model: str, protocol: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("microexpr-results") / f"{name}_{model}_{protocol}_{stamp}"


def _clips_of(data: Dataset | Manifest | pd.DataFrame | str | Path, labels: str | None
              ) -> tuple[pd.DataFrame, tuple[str, ...], dict, np.ndarray | None, Any]:
    """(clips with labels, classes, description, precomputed inputs or None, problems)."""
    if isinstance(data, str | Path):
        if not str(data).lower().endswith(".csv"):
            raise ConfigError(f"{data}: pass a Dataset (microexpr.load_dataset) or a manifest "
                              f".csv path")
        data = read_manifest(data)
    if isinstance(data, Manifest):
        info = {"kind": "manifest", "name": data.name, "path": str(data.path)}
        return data.clips, data.classes, info, data.inputs, None
    if isinstance(data, Dataset):
        if labels is not None or "label" not in data.clips.columns:
            if labels is None:
                raise ConfigError(f"dataset {data.name} has no labels: pass labels=SCHEME (see "
                                  f"microexpr.label_schemes())")
            data = data.with_labels(labels)
        info = {"kind": "dataset", "name": data.name, "root": data.root,
                "annotation_file": data.annotation_file, "labels": data.scheme,
                "class_counts": data.class_counts().to_dict()}
        return data.clips, data.classes, info, None, data.problems
    if isinstance(data, pd.DataFrame):
        if "label" not in data.columns:
            raise ConfigError("the clips table has no 'label' column: label it with a scheme")
        classes = tuple(sorted(data["label"].astype(str).unique()))
        return data, classes, {"kind": "clips", "name": "clips"}, None, None
    raise ConfigError(f"cannot evaluate a {type(data).__name__}: pass a Dataset, a Manifest, a "
                      f"clips DataFrame or a manifest path")


def evaluate(
    data: Dataset | Manifest | pd.DataFrame | str | Path,
    model: str = "ststnet",
    *,
    protocol: str = "loso",
    labels: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    jobs: int = 1,
    cache_dir: str | Path | None | bool = True,
    representation: dict | None = None,
    input_representation: str | None = None,
    train: dict | None = None,
    params: dict | None = None,
    device: str | None = None,
    init: str | Path | dict | None = None,
    save_models: bool = False,
    progress: bool = True,
    write: bool = True,
) -> EvaluationResult:
    """Evaluate `model` on `data` under `protocol`; write and return the results.

    Every training-time choice is fixed before a fold starts: `epochs` (or the model's
    default) epochs, or early stopping (`train={"early_stopping": True}`) on a validation split
    drawn from the training subjects. The test subject is only ever predicted. `init` loads
    pretrained weights (a file from `microexpr.training.transfer.pretrain`, or
    {"path": ..., "freeze": [...]}) into each fold's network before it is fine-tuned.
    `representation` holds options of the model's representation; `input_representation`
    feeds the model another representation instead (e.g. "apex_flow" to micro_attention),
    as long as its arrays suit the model.
    """
    from microexpr import __version__
    from microexpr.models.classifier import make_train_config
    from microexpr.models.registry import get_model_spec

    spec = get_model_spec(model)
    if init is not None:
        from microexpr.training.transfer import check_init

        if spec.kind != "torch":
            raise ConfigError(f"{model} is a scikit-learn model: init needs a torch model")
        init = check_init(init, model).as_dict()
    clips, classes, data_info, inputs, problems = _clips_of(data, labels)
    train_config = make_train_config(spec, train, epochs=epochs) if spec.kind == "torch" else None
    if train_config is None and (train or epochs):
        raise ConfigError(f"{model} is a scikit-learn model: it takes no epochs or training "
                          f"options (use params=...)")
    rep_config = None
    if inputs is None:
        rep_name = input_representation or spec.representation
        defaults = spec.representation_config if rep_name == spec.representation else {}
        rep_config = make_config(rep_name, {**defaults, **(representation or {})})
        report = prepare_representation(clips, rep_name, rep_config,
                                        cache_dir=cache_dir, jobs=jobs, progress=progress)
        inputs = report.stacked()
        if len(report.failures):  # e.g. no face found: the clip is excluded and reported
            clips = clips[report.ok].reset_index(drop=True)
            failed = [Problem(dataset=str(f.dataset), clip=str(f.clip), severity="error",
                              message=f"{rep_name} failed: {f.error}")
                      for f in report.failures.itertuples(index=False)]
            problems = pd.concat([problems, problems_frame(failed)], ignore_index=True)
    spec.check_input(inputs.shape)
    subjects = clips["subject"].astype(str).to_numpy()
    datasets = clips["dataset"].astype(str).to_numpy()
    folds = make_folds(protocol, subjects, datasets)
    name = data_info["name"]
    out_dir = Path(out) if out is not None else _default_out(name, model, protocol)
    shared = _Shared(inputs=inputs, labels=clips["label"].astype(str).to_numpy(),
                     subjects=subjects, classes=tuple(classes), model=model,
                     train_config=asdict(train_config) if train_config else None,
                     params=dict(params or {}), seed=seed,
                     device=device, models_dir=str(out_dir / "models") if save_models else None,
                     init=init)
    probabilities: list[np.ndarray | None] = [None] * len(folds)
    fold_info: list[dict] = [{}] * len(folds)
    stream = make_executor(jobs).map(_run_fold, folds, shared=shared)
    for index, (proba, info) in track(stream, len(folds), f"{protocol} folds", progress):
        probabilities[index], fold_info[index] = proba, info
    predictions = _predictions_table(clips, folds, probabilities, classes)
    metrics = compute_metrics(predictions, classes)
    config = {
        "microexpr_version": __version__,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "data": data_info,
        "classes": list(classes),
        "n_clips": len(clips),
        "n_subjects": int(len(set(subjects))),
        "model": {"name": model, "params": {**spec.params, **(params or {})},
                  "reference": spec.reference},
        "representation": None if rep_config is None else
        {"name": rep_name, **asdict(rep_config)},
        "train": asdict(train_config) if train_config else None,
        "protocol": protocol,
        "n_folds": len(folds),
        "seed": seed,
        "device": device or "auto",
        "init": init,
        "jobs": jobs,
        "folds": [{"index": f.index, "held_out": f.held_out, "n_train": len(f.train),
                   "n_test": len(f.test), **fold_info[f.index]} for f in folds],
    }
    if write:
        write_results(out_dir, config, predictions, metrics, problems)
    return EvaluationResult(predictions=predictions, metrics=metrics, config=config,
                            out_dir=out_dir if write else None)


def _predictions_table(clips: pd.DataFrame, folds: list[Fold], probabilities: list,
                       classes: tuple[str, ...]) -> pd.DataFrame:
    frames = []
    for fold, proba in zip(folds, probabilities, strict=True):
        part = clips.iloc[fold.test]
        table = pd.DataFrame({
            "clip": part["clip"].astype(str).to_numpy(),
            "subject": part["subject"].astype(str).to_numpy(),
            "dataset": part["dataset"].astype(str).to_numpy(),
            "fold": fold.index,
            "y_true": part["label"].astype(str).to_numpy(),
            "y_pred": np.array(classes)[np.argmax(proba, axis=1)],
        })
        for k, cls in enumerate(classes):
            table[f"{PROBABILITY_PREFIX}{cls}"] = proba[:, k]
        frames.append(table)
    return pd.concat(frames, ignore_index=True)
