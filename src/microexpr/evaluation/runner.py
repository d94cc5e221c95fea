"""`evaluate`: validate everything -> inputs (`microexpr.evaluation.inputs`) -> folds, each
trained and predicted (and written) as it finishes -> metrics -> results folder."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from microexpr.data.clips import Dataset
from microexpr.data.manifest import Manifest
from microexpr.data.problems import problems_frame
from microexpr.errors import ConfigError, MicroexprError
from microexpr.evaluation.auxiliary import pool_auxiliary
from microexpr.evaluation.inputs import (
    PARALLEL_MIN_CLIPS,
    GivenData,
    clips_of,
    prepare_inputs,
    prepare_named_inputs,
    representation_configs,
)
from microexpr.evaluation.metrics import PROBABILITY_PREFIX, compute_metrics, metrics_table
from microexpr.evaluation.protocols import Fold, check_protocol, make_folds
from microexpr.evaluation.report import write_results
from microexpr.evaluation.rundir import RunDir, check_out, fingerprint, open_run_dir
from microexpr.parallel import Interrupted, RayExecutor, check_backend, make_executor, use_backend
from microexpr.preprocess.cache import array_digest
from microexpr.progress import track
from microexpr.training.inputs import InputRecipe, input_config


@dataclass
class EvaluationResult:
    """What an evaluation produced; `out_dir` holds the same as files."""

    predictions: pd.DataFrame
    metrics: dict
    config: dict
    out_dir: Path | None
    problems: pd.DataFrame = field(default_factory=lambda: problems_frame([]))
    warnings: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """UF1 / UAR / accuracy overall and per dataset."""
        return metrics_table(self.metrics)

    def problems_summary(self, limit: int = 3) -> str:
        """Clips left out of the run (count, first reasons, where problems.csv is), or ""."""
        return summarize_problems(self.problems, self.out_dir, limit)

    def __repr__(self) -> str:
        m = self.metrics
        return (f"<EvaluationResult UF1={m['uf1']:.4f} UAR={m['uar']:.4f} "
                f"acc={m['accuracy']:.4f} n={m['n']} out={self.out_dir}>")


def summarize_problems(problems: pd.DataFrame | None, out_dir: Path | None,
                       limit: int = 3) -> str:
    """A few lines on the clips a run left out: how many, the first reasons, the file."""
    if problems is None or not len(problems):
        return ""
    left_out = problems[(problems["clip"].astype(str) != "")
                        & problems["severity"].isin(["error", "info"])]
    keys = left_out[["dataset", "clip"]].drop_duplicates()
    n_warn = int((problems["severity"] == "warning").sum())
    lines = [f"{len(keys)} clip(s) left out of this run, {n_warn} warning(s)"]
    for row in left_out.head(limit).itertuples(index=False):
        where = f" ({row.file})" if isinstance(row.file, str) and row.file else ""
        lines.append(f"  [{row.severity}] {row.dataset}/{row.clip}: {row.message}{where}")
    if len(left_out) > limit:
        lines.append(f"  ... and {len(left_out) - limit} more")
    if out_dir is not None:
        lines.append(f"every problem is listed in {Path(out_dir) / 'problems.csv'}")
    return "\n".join(lines)


@dataclass(frozen=True)
class _Shared:
    """What every fold needs, sent to each worker once."""

    inputs: np.ndarray | dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    labels: np.ndarray
    subjects: np.ndarray
    classes: tuple[str, ...]
    channels: tuple[str, ...] | dict | None
    model: str
    train_config: dict | None
    params: dict
    seed: int
    device: str | None
    models_dir: str | None
    init: dict | None = None
    ensemble: int = 1
    grid: tuple | None = None  # GridPoints of a tuning grid
    inner_folds: int | str = 4
    metric: str = "uf1"
    guide: Any = None  # microexpr.training.guidance.Guide of a guided model (mimanet)
    input_recipe: Any = None  # microexpr.training.inputs.InputRecipe, saved with each model


def fold_seed(seed: int, fold: int) -> int:
    """A seed per fold that depends only on the run's seed and the fold's index."""
    return int(np.random.SeedSequence([seed, fold]).generate_state(1)[0])


def member_seed(seed: int, fold: int, member: int) -> int:
    """The seed of ensemble member `member` of a fold (member 0: `fold_seed`)."""
    if member == 0:
        return fold_seed(seed, fold)
    return int(np.random.SeedSequence([seed, fold, member]).generate_state(1)[0])


def fit_model(shared: _Shared, train: np.ndarray, seed: int, params: dict,
              train_options: dict | None, save_as: Path | None = None) -> tuple[Any, dict]:
    """Train one model on the clips `train` (saved to `save_as`, with its input recipe);
    return it and a few facts (fit seconds, epochs, final losses, the history rows)."""
    from microexpr.training.estimators import make_classifier

    train_config = None
    if shared.train_config is not None:
        train_config = {**shared.train_config, **(train_options or {})}
    classifier = make_classifier(shared.model, shared.classes, train_config=train_config,
                                 params=params, seed=seed, device=shared.device,
                                 init=shared.init, guide=shared.guide)
    classifier.input_recipe = shared.input_recipe
    start = time.perf_counter()
    fit_targets = {"targets": _take(shared.targets, train)} if shared.targets else {}
    classifier.fit(_take(shared.inputs, train), shared.labels[train],
                   groups=shared.subjects[train], channels=shared.channels, **fit_targets)
    info: dict = {"fit_seconds": round(time.perf_counter() - start, 3)}
    if save_as is not None:
        classifier.save(save_as)
    history = getattr(classifier, "history", None)
    if history is not None and history.train_loss:
        info |= {"epochs_run": len(history.train_loss), "best_epoch": history.best_epoch,
                 "final_train_loss": history.train_loss[-1]}
        if history.terms:
            info["final_loss_terms"] = {k: v[-1] for k, v in history.terms.items()}
        info["history"] = history.rows()
    if getattr(classifier, "transfer", None) is not None:
        info["transferred_tensors"] = len(classifier.transfer.loaded)
    return classifier, info


def _fit_predict(shared: _Shared, train: np.ndarray, test: np.ndarray, seed: int,
                 params: dict, train_options: dict | None, save_as: Path | None = None
                 ) -> tuple[np.ndarray, dict]:
    """Train one model on `train` and return its probabilities on `test` and a few facts."""
    classifier, info = fit_model(shared, train, seed, params, train_options, save_as)
    start = time.perf_counter()
    if not shared.targets:
        proba = classifier.predict_proba(_take(shared.inputs, test))
        info["predict_seconds"] = round(time.perf_counter() - start, 4)
        return proba, info
    # auxiliary predictions (flow, landmarks) scored on the test clips, from the same pass
    from microexpr.evaluation.auxiliary import fold_auxiliary
    from microexpr.training.torch_classifier import probabilities

    outputs = classifier.predict_outputs(_take(shared.inputs, test))
    info["predict_seconds"] = round(time.perf_counter() - start, 4)
    scores = fold_auxiliary(outputs, _take(shared.targets, test), _take(shared.targets, train))
    if len(scores) > 1:
        info["auxiliary"] = scores
    return probabilities(outputs), info


def _take(arrays: np.ndarray | dict[str, np.ndarray], index: np.ndarray) -> Any:
    """The rows `index` of one array or of every array of a mapping."""
    if isinstance(arrays, dict):
        return {k: v[index] for k, v in arrays.items()}
    return arrays[index]


def _run_fold(shared: _Shared, fold: Fold) -> tuple[np.ndarray, dict]:
    """One outer fold: (tuning on its training subjects,) then `ensemble` models trained on
    all its training clips, their probabilities on the held-out clips averaged."""
    params, train_options, info = dict(shared.params), {}, {}
    if shared.grid:
        from microexpr.evaluation.tuning import nested_selection

        def fit_predict(tasks):
            return [_fit_predict(shared, t.train, t.test, fold_seed(shared.seed, fold.index),
                                 {**params, **t.point.params}, t.point.train)[0]
                    for t in tasks]

        selection = nested_selection([fold], shared.subjects, shared.labels, shared.classes,
                                     list(shared.grid), fit_predict, n_groups=shared.inner_folds,
                                     seed=shared.seed, metric=shared.metric)[fold.index]
        params |= selection.point.params
        train_options = dict(selection.point.train)
        info["tuning"] = selection.to_dict()
    probabilities = []
    for member in range(shared.ensemble):
        save_as = None
        if shared.models_dir:
            suffix = f"_m{member}" if shared.ensemble > 1 else ""
            save_as = Path(shared.models_dir) / f"fold{fold.index:03d}{suffix}.pt"
        proba, member_info = _fit_predict(shared, fold.train, fold.test,
                                          member_seed(shared.seed, fold.index, member),
                                          params, train_options, save_as)
        probabilities.append(proba)
        if member == 0:
            info |= member_info
        else:
            member_info.pop("history", None)
            info["fit_seconds"] = round(info["fit_seconds"] + member_info["fit_seconds"], 3)
    return np.mean(probabilities, axis=0, dtype=np.float64), info


def _default_out(name: str, model: str, protocol: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("microexpr-results") / f"{name}_{model}_{protocol}_{stamp}"


def resolve_jobs(jobs: int | None, n_folds: int, n_clips: int, device: str | None) -> int:
    """Worker processes for `jobs` (None: automatic; 0: every core).

    Automatic: one process per core (each with one torch thread, which trains small networks
    faster than threads do), at most one per fold; in this process on a GPU or for small runs.
    """
    if jobs is not None:
        if jobs < 0:
            raise ConfigError(f"jobs (--jobs) must be >= 0 (0 = all cores), got {jobs}")
        return jobs or (os.cpu_count() or 1)
    if (device or "auto").startswith("cuda") or n_clips < PARALLEL_MIN_CLIPS:
        return 1
    if device in (None, "auto"):
        from microexpr.training.device import resolve_device

        if resolve_device("auto").type != "cpu":
            return 1
    return max(1, min(os.cpu_count() or 1, n_folds))


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def evaluate(
    data: Dataset | Manifest | pd.DataFrame | str | Path,
    model: str = "ststnet",
    *,
    protocol: str = "loso",
    labels: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    jobs: int | None = None,
    cache_dir: str | Path | None | bool = True,
    representation: dict | None = None,
    input_representation: str | None = None,
    channels: str | tuple[str, ...] | None = None,
    input_size: int | None = None,
    recipe: str | None = None,
    train: dict | None = None,
    params: dict | None = None,
    ensemble: int = 1,
    tune: str | Path | dict | None = None,
    device: str | None = None,
    init: str | Path | dict | None = None,
    macro: str | Path | list | None = None,
    save_models: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    write: bool = True,
    backend: str = "local",
    address: str | None = None,
) -> EvaluationResult:
    """Evaluate `model` on `data` under `protocol`; write and return the results.

    Every option is checked before any work. Every training-time choice is fixed before a
    fold starts: the recipe's (`recipe="paper"`: the authors' settings) or `epochs` epochs,
    or early stopping (`train={"early_stopping": True}`) on a validation split drawn from the
    training subjects, or, with `tune` (a grid YAML), the grid point chosen by inner
    leave-subjects-out on the training subjects. The test subject is only ever predicted.
    `ensemble` trains that many seeds per fold and averages their probabilities.

    `channels` names a manifest's channels in file order ("u,v,strain"); the model takes
    the ones it consumes. `input_size` resizes the inputs to that many pixels a side.
    `init` loads pretrained weights into each fold's network before it is fine-tuned.
    `macro` gives the macro-expression data of a model that learns from it (mimanet):
    "NAME=PATH" (`ck+=/data/CK+`), a PATH whose layout tells its format, or a list of them;
    its MaNet is trained once per run (cached on disk) and guides every fold.
    `representation` holds options of the model's representation; `input_representation`
    feeds the model another representation instead (e.g. "apex_flow" to micro_attention).

    Results go to `out`: checked first (a non-empty folder needs `overwrite`), written into
    `<out>.partial/` as folds finish, moved to `out` at the end; `resume` continues an
    interrupted run with the same configuration (on either backend).

    `backend="local"` runs folds and representations in this process or in `jobs` worker
    processes; `backend="ray"` runs them as Ray tasks (`microexpr.parallel.RayExecutor`):
    on a local Ray with `jobs` CPUs, or on the cluster at `address` ("auto" or HOST:PORT),
    one GPU per fold when the cluster has GPUs and `device` allows them. `device` is auto
    (CUDA when present), cpu or cuda[:N]; training option amp=true needs CUDA.
    """
    # -- everything is validated before any work -----------------------------------------
    plan = plan_run(data, model, recipe=recipe, representation=representation,
                    input_representation=input_representation, channels=channels,
                    input_size=input_size, params=params, train=train, epochs=epochs,
                    init=init, macro=macro)
    ensemble = _check_int(ensemble, "ensemble (--ensemble)", 1)
    grid = None
    if tune is not None:
        grid = _load_grid(tune, plan.spec, plan.params, plan.train_config)
    check_protocol(protocol)
    check_backend(backend, address)
    from microexpr.training.device import check_amp, check_device

    # on Ray, the models train on the cluster's nodes: their GPUs are checked there
    device = check_device(device, here=backend == "local")
    if backend == "local" and plan.train_config is not None:
        check_amp(plan.train_config.amp, device)
    if save_models and not write and out is None:
        raise ConfigError("save_models with write=False needs out= (the fold models are saved "
                          "in out/models)")
    out_dir = None
    if write:
        out_dir = Path(out).expanduser() if out is not None else _default_out(
            _data_name(data), model, protocol)
        check_out(out_dir, overwrite=overwrite, resume=resume)

    with use_backend(backend, address=address, jobs=jobs) as ray_executor:
        if ray_executor is not None:
            ray_executor.start()  # a wrong --address fails here, before any work
        return _run(plan, data, ray_executor, labels=labels, channels=channels,
                    cache_dir=cache_dir, jobs=jobs, progress=progress, protocol=protocol,
                    seed=seed, device=device, ensemble=ensemble, grid=grid, write=write,
                    out=out, out_dir=out_dir, overwrite=overwrite, resume=resume,
                    save_models=save_models, backend=backend, address=address)


def _run(plan: RunPlan, data: Any, ray_executor: RayExecutor | None, *, labels: str | None,
         channels: Any, cache_dir: Any, jobs: int | None, progress: bool, protocol: str,
         seed: int, device: str, ensemble: int, grid: Any, write: bool, out: Any,
         out_dir: Path | None, overwrite: bool, resume: bool, save_models: bool,
         backend: str, address: str | None) -> EvaluationResult:
    """`evaluate` after its checks: inputs, folds (on the local machine or on Ray), results."""
    # -- inputs ------------------------------------------------------------------------------
    prepared = prepare_run(plan, data, labels=labels, channels=channels, cache_dir=cache_dir,
                           jobs=jobs, progress=progress)
    clips, inputs, targets = prepared.clips, prepared.inputs, prepared.targets
    classes = prepared.classes
    subjects = clips["subject"].astype(str).to_numpy()
    datasets = clips["dataset"].astype(str).to_numpy()
    folds = make_folds(protocol, subjects, datasets)
    guide, macro_info = macro_guide(plan, prepared, seed=seed, device=device,
                                    cache_dir=cache_dir, jobs=jobs, progress=progress)
    problems = prepared.problems
    n_jobs = (resolve_jobs(jobs, len(folds), len(clips), device) if ray_executor is None
              else ray_executor.jobs)

    config = {
        **run_config(plan, prepared),
        "protocol": protocol,
        "n_folds": len(folds),
        "seed": seed,
        "ensemble": ensemble,
        "tuning": None if grid is None else grid.to_dict(),
        "device": device or "auto",
        "init": plan.init,
        "macro": macro_info,
        "jobs": n_jobs,
        "backend": backend,  # like jobs, not part of the fingerprint: resume on either
        **({"address": address} if address is not None else {}),
    }
    run_dir: RunDir | None = None
    if write:
        decisive = {k: config[k] for k in ("data", "classes", "model", "representation",
                                           "channels", "input_shape", "train", "protocol",
                                           "seed", "ensemble", "tuning", "init")}
        if macro_info is not None:  # the macro data and the MaNet trained on it
            decisive["macro"] = {"sources": macro_info["sources"],
                                 "manet": macro_info["manet"]["key"]}
        decisive["inputs"] = (array_digest(inputs) if not isinstance(inputs, dict) else
                              {k: array_digest(v) for k, v in {**inputs, **targets}.items()})
        decisive["clips"] = fingerprint(clips[["dataset", "subject", "clip", "label"]]
                                        .astype(str).values.tolist())
        run_dir = open_run_dir(out_dir, {"fingerprint": fingerprint(decisive), **decisive},
                               overwrite=overwrite, resume=resume)
    shared = shared_for(plan, prepared, seed=seed, device=device, guide=guide,
                        models_dir=_models_dir(save_models, run_dir, out), ensemble=ensemble,
                        grid=None if grid is None else tuple(grid.points),
                        inner_folds=grid.inner_folds if grid else 4,
                        metric=grid.metric if grid else "uf1")

    # -- folds: each written as it finishes --------------------------------------------------
    probabilities: list[np.ndarray | None] = [None] * len(folds)
    fold_info: list[dict] = [{} for _ in folds]
    if run_dir is not None:
        for index, (proba, info) in run_dir.done.items():
            if index < len(folds):
                probabilities[index], fold_info[index] = proba, {**info, "resumed": True}
    todo = [f for f in folds if probabilities[f.index] is None]
    executor = make_executor(min(n_jobs, max(1, len(todo))))
    if isinstance(executor, RayExecutor) and plan.spec.kind == "torch":
        executor = executor.for_device(device)  # a GPU per fold when the cluster has them
    stream = executor.map(_run_fold, todo, shared=shared)
    try:
        for position, (proba, info) in track(stream, len(todo), f"{protocol} folds", progress):
            index = todo[position].index
            probabilities[index], fold_info[index] = proba, info
            if run_dir is not None:
                run_dir.save_fold(index, proba, info)
    except (KeyboardInterrupt, Interrupted) as interrupt:
        if run_dir is not None:
            done = sum(p is not None for p in probabilities)
            interrupt.add_note(f"interrupted; {done} of {len(folds)} folds are saved in "
                               f"{run_dir.partial}: the same command with --resume continues")
        raise
    finally:
        stream.close()  # whatever stopped the loop: the folds still running are cancelled
    predictions = _predictions_table(clips, folds, probabilities, classes)
    metrics = compute_metrics(predictions, classes)
    auxiliary = pool_auxiliary([info.get("auxiliary") for info in fold_info])
    if auxiliary:
        metrics["auxiliary"] = auxiliary
    history = _history_table(folds, fold_info)
    config["folds"] = [{"index": f.index, "held_out": f.held_out, "n_train": len(f.train),
                        "n_test": len(f.test), **fold_info[f.index]} for f in folds]
    warnings = list(prepared.given.warnings)
    if run_dir is not None:
        write_results(run_dir.partial, config, predictions, metrics, problems, history)
        out_dir = run_dir.finish()
        warnings += _write_report(out_dir, cache_dir)
    return EvaluationResult(predictions=predictions, metrics=metrics, config=config,
                            out_dir=out_dir if write else None,
                            problems=problems if problems is not None else problems_frame([]),
                            warnings=warnings)


def _write_report(out_dir: Path, cache_dir: Any) -> list[str]:
    """report.html next to a finished run's files; a warning instead when it cannot be
    rendered (the results are complete either way: `microexpr report DIR` retries it)."""
    from microexpr.evaluation.html_report import report

    try:
        report(out_dir, out=out_dir / "report.html", cache_dir=cache_dir)
    except Exception as error:  # noqa: BLE001 - the run's results are written already
        return [f"report.html was not written ({type(error).__name__}: {error}); render it "
                f"with `microexpr report {out_dir}`"]
    return []


@dataclass
class RunPlan:
    """A run's choices, each checked before any work (shared by `evaluate` and `train`): the
    model, its params as given (the recipe's with the user's on top) and checked, its
    training options, pretrained weights, macro sources and the representation config of
    its input (`rep_name`, `rep_config`) or of each named input and target
    (`named_configs`); neither for a manifest's precomputed inputs."""

    spec: Any
    recipe: str
    params: dict
    checked_params: dict
    train_config: Any  # microexpr.training.loop.TrainConfig of a torch model, else None
    init: dict | None
    macro_sources: list
    rep_name: str | None
    rep_config: Any
    named_configs: dict | None
    input_size: int | None


def plan_run(data: Any, model: str, *, recipe: str | None, representation: dict | None,
             input_representation: str | None, channels: Any, input_size: int | None,
             params: dict | None, train: dict | None, epochs: int | None, init: Any,
             macro: Any) -> RunPlan:
    """Check a run's model, recipe, params, training options, init, macro data and
    representation options against each other (ConfigError naming the bad one)."""
    from microexpr.models.registry import get_model_spec
    from microexpr.training.recipes import make_train_config

    spec = get_model_spec(model)
    if input_size is not None:
        input_size = _check_int(input_size, "input_size (--input-size)", 1)
    recipe_train, recipe_params = spec.recipe(recipe or "default")
    if not isinstance(data, Manifest | str | Path):  # a manifest's inputs are precomputed
        representation = _merge_options(spec.recipe_representation(recipe or "default"),
                                        representation)
    params = {**recipe_params, **(params or {})}
    checked_params = spec.check_params(params)
    if spec.kind == "torch":
        train_config = make_train_config(spec, {**recipe_train, **(train or {})}, epochs=epochs)
    else:
        train_config = None
        if train or epochs or recipe_train:
            raise ConfigError(f"{model} is a scikit-learn model: it takes no epochs or training "
                              f"options (use params=... / --param)")
    if init is not None:
        from microexpr.training.transfer import check_init

        if spec.kind != "torch":
            raise ConfigError(f"{model} is a scikit-learn model: init needs a torch model")
        init = check_init(init, model).as_dict()
    macro_sources = _check_macro(spec, checked_params, macro)
    rep_name = rep_config = named_configs = None
    if spec.multi_input:
        if input_representation or input_size is not None or channels is not None:
            raise ConfigError(f"{model} takes the named inputs {list(spec.named_inputs())}: "
                              f"input_representation, input_size and channels apply to "
                              f"single-input models only")
        named_configs = representation_configs(spec, representation)
    elif not isinstance(data, Manifest | str | Path):
        rep_name, rep_config = input_config(spec, representation, input_representation)
    elif representation or input_representation:
        raise ConfigError("a manifest holds precomputed inputs: representation options "
                          "(--option, --representation) do not apply to it")
    return RunPlan(spec, recipe or "default", params, checked_params, train_config, init,
                   macro_sources, rep_name, rep_config, named_configs, input_size)


@dataclass
class PreparedRun:
    """A run's data, ready for training: the clips that have inputs, their inputs and
    targets, the inputs' channel names and per-sample shape, every problem (clips left out
    included), the representation section of the config and the recipe that recomputes
    the inputs for new clips (saved with each model)."""

    given: GivenData
    clips: pd.DataFrame
    inputs: np.ndarray | dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    channels: Any
    problems: pd.DataFrame | None
    input_shape: Any
    representation: Any
    input_recipe: InputRecipe

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.given.classes)


def prepare_run(plan: RunPlan, data: Any, *, labels: str | None, channels: Any,
                cache_dir: Any, jobs: int | None, progress: bool) -> PreparedRun:
    """The clips of `data` with their labels, and the model's inputs for them (computed
    and cached, or a manifest's), checked against the model's params."""
    spec = plan.spec
    given = clips_of(data, labels, channels)
    targets: dict[str, np.ndarray] = {}
    if plan.named_configs is not None:
        named = prepare_named_inputs(given, spec, plan.named_configs, cache_dir=cache_dir,
                                     jobs=jobs, progress=progress)
        clips, inputs, targets = named.clips, named.inputs, named.targets
        names: Any = {k: named.channels[k] for k in inputs}
        problems = named.problems
        input_shape: Any = {k: list(v.shape[1:]) for k, v in inputs.items()}
        representation_info: Any = {"inputs": {k: named.configs[k] for k in inputs},
                                    "targets": {k: named.configs[k] for k in targets}}
        recipe = InputRecipe({k: named.configs[k] for k in inputs}, dict(names))
    else:
        prepared = prepare_inputs(given, spec, plan.rep_name, plan.rep_config,
                                  input_size=plan.input_size, cache_dir=cache_dir, jobs=jobs,
                                  progress=progress)
        clips, inputs = prepared.clips, prepared.inputs
        names, problems = prepared.channels, prepared.problems
        input_shape = list(inputs.shape[1:])
        representation_info = None if plan.rep_config is None else {
            "name": plan.rep_name, **asdict(plan.rep_config)}
        manifest = None if given.inputs is None else {
            k: given.info.get(k) for k in ("path", "name", "channels")}
        recipe = InputRecipe({} if representation_info is None else {
            "input": representation_info}, {"input": names}, plan.input_size, manifest)
    if spec.kind == "torch" and plan.checked_params != dict(spec.params):
        shapes = ({k: tuple(v) for k, v in input_shape.items()} if isinstance(input_shape, dict)
                  else tuple(input_shape))
        spec.validate(plan.params, input_shape=shapes, n_classes=len(given.classes))
    return PreparedRun(given, clips, inputs, targets, names, problems, input_shape,
                       representation_info, recipe)


def macro_guide(plan: RunPlan, prepared: PreparedRun, *, seed: int, device: str | None,
                cache_dir: Any, jobs: int | None, progress: bool) -> tuple[Any, dict | None]:
    """(guide, macro section of the config) of a model trained under macro guidance (MaNet
    trained once, or loaded from the cache; its problems added to `prepared`), else (None,
    None)."""
    if not plan.macro_sources:
        return None, None
    guide, info, macro_problems = _macro_guide(
        plan.macro_sources, prepared.given, plan.spec, plan.named_configs, prepared.classes,
        plan.checked_params, asdict(plan.train_config), seed=seed, device=device,
        cache_dir=cache_dir, jobs=jobs, progress=progress)
    prepared.problems = pd.concat(
        [p for p in (prepared.problems, macro_problems) if p is not None and len(p)]
        or [problems_frame([])], ignore_index=True)
    return guide, info


def run_config(plan: RunPlan, prepared: PreparedRun) -> dict[str, Any]:
    """The head of a run's config: versions, data, classes, model, representation, channels,
    input shape and size, training options."""
    from microexpr import __version__

    names, clips = prepared.channels, prepared.clips
    return {
        "microexpr_version": __version__,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "data": prepared.given.info,
        "classes": list(prepared.classes),
        "n_clips": len(clips),
        "n_subjects": int(clips["subject"].astype(str).nunique()),
        "model": {"name": plan.spec.name, "params": plan.checked_params,
                  "recipe": plan.recipe, "reference": plan.spec.reference},
        "representation": prepared.representation,
        "channels": ({k: list(v) if v else None for k, v in names.items()}
                     if isinstance(names, dict) else list(names) if names else None),
        "input_shape": prepared.input_shape,
        "input_size": plan.input_size,
        "train": asdict(plan.train_config) if plan.train_config else None,
    }


def shared_for(plan: RunPlan, prepared: PreparedRun, *, seed: int, device: str | None,
               guide: Any, models_dir: str | None = None, **options: Any) -> _Shared:
    """What every model of the run is trained from (`options`: ensemble, grid, ...)."""
    clips = prepared.clips
    return _Shared(inputs=prepared.inputs, targets=prepared.targets,
                   labels=clips["label"].astype(str).to_numpy(),
                   subjects=clips["subject"].astype(str).to_numpy(), classes=prepared.classes,
                   channels=prepared.channels, model=plan.spec.name,
                   train_config=asdict(plan.train_config) if plan.train_config else None,
                   params=plan.checked_params, seed=seed, device=device,
                   models_dir=models_dir, init=plan.init, guide=guide,
                   input_recipe=prepared.input_recipe, **options)


def _check_macro(spec: Any, params: dict, macro: Any) -> list:
    """The macro sources of a run, checked before any work: given only to a model that
    learns from macro data, and required by one that trains with its guidance."""
    from microexpr.evaluation.macro import parse_macro

    sources = parse_macro(macro)
    guided = spec.uses_macro and bool(params.get("guidance", True))
    if sources and not spec.uses_macro:
        raise ConfigError(f"{spec.name} does not learn from macro-expressions: macro data "
                          f"(--macro) is for mimanet")
    if guided and not sources:
        raise ConfigError(f"{spec.name} trains under a network trained on macro-expressions: "
                          f"give macro data (macro='ck+=/data/CK+', --macro ck+=/data/CK+; "
                          f"synthetic: microexpr synth DIR --macro, then --macro DIR), or set "
                          f"the param guidance=false (MiNet alone)")
    return sources if guided else []


def _macro_guide(sources: list, given: Any, spec: Any, named_configs: dict,
                 classes: tuple[str, ...], params: dict, train_config: dict, *, seed: int,
                 device: str | None, cache_dir: Any, jobs: int | None, progress: bool
                 ) -> tuple[Any, dict, pd.DataFrame | None]:
    """Load the macro clips, compute the model's inputs for them (cached like the micro
    inputs) and train MaNet once for the whole run (or load it from the cache)."""
    from microexpr.evaluation.macro import load_macro
    from microexpr.representations import resolve_cache
    from microexpr.training.guidance import train_guide

    macro = load_macro(sources, given.info.get("labels"), classes)
    inputs_only = {k: named_configs[k] for k in spec.named_inputs()}
    named = prepare_named_inputs(GivenData(macro.clips, classes, {}, None, macro.problems),
                                 spec, inputs_only, cache_dir=cache_dir, jobs=jobs,
                                 progress=progress)
    guide = train_guide(named.inputs, named.clips["label"].astype(str).to_numpy(), classes,
                        params=params, train_config=train_config, seed=seed,
                        groups=named.clips["subject"].astype(str).to_numpy(), device=device,
                        cache_dir=resolve_cache(cache_dir))
    info = {**macro.info, "n_clips_with_inputs": int(len(named.clips)), "manet": guide.info}
    return guide, info, named.problems


def _merge_options(base: dict, options: dict | None) -> dict | None:
    """Representation options of a recipe with the user's on top (nested mappings merged)."""
    merged = dict(base)
    for key, value in (options or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = _merge_options(merged[key], value)
        merged[key] = value
    return merged or None


def _history_table(folds: list[Fold], fold_info: list[dict]) -> pd.DataFrame:
    """Per fold and epoch: training loss, validation loss, every loss term (the first
    ensemble member's); taken out of the fold facts, which keep only the final values."""
    rows = []
    for fold in folds:
        for row in fold_info[fold.index].pop("history", None) or []:
            rows.append({"fold": fold.index, **row})
    return pd.DataFrame(rows)


def _models_dir(save_models: bool, run_dir: RunDir | None, out: str | Path | None
                ) -> str | None:
    """Where fold models go: the results folder's models/ (or out/models with write=False)."""
    if not save_models:
        return None
    if run_dir is not None:
        return str(run_dir.partial / "models")
    return str(Path(out) / "models")


def _data_name(data: Any) -> str:
    if isinstance(data, str | Path):
        return Path(data).stem
    return str(getattr(data, "name", "clips"))


def _load_grid(tune: str | Path | dict, spec: Any, params: dict, train_config: Any):
    """The tuning grid, each point checked against the model before any work."""
    from microexpr.evaluation.tuning import load_grid, validate_grid
    from microexpr.training.recipes import make_train_config

    grid = load_grid(tune)

    def check(point_params: dict, point_train: dict) -> None:
        spec.check_params({**params, **point_params})
        if point_train:
            if train_config is None:
                raise ConfigError(f"{spec.name} is a scikit-learn model: a grid point cannot set "
                                  f"training options ({sorted(point_train)})")
            make_train_config(spec, {**asdict(train_config), **point_train})

    validate_grid(grid.points, check, source=grid.source)
    return grid


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


__all__ = ["EvaluationResult", "MicroexprError", "evaluate", "fold_seed", "member_seed",
           "resolve_jobs", "summarize_problems"]
