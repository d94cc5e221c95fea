"""Resolving what an evaluation runs on: the clips with their labels and classes, then the
inputs (precomputed by a manifest, or the model's representation computed and cached), the
model's channels, the input size, and the checks that must pass before any fold runs."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from microexpr.data.clips import Dataset
from microexpr.data.manifest import Manifest, read_manifest
from microexpr.data.problems import Problem, problems_frame
from microexpr.errors import ConfigError
from microexpr.representations import prepare_representation
from microexpr.training.inputs import compute_inputs, fit_inputs, kept_arrays
from microexpr.training.inputs import representation_configs as representation_configs

# Below this many clips a run stays in this process: starting workers costs more than it saves.
PARALLEL_MIN_CLIPS = 200


@dataclass
class GivenData:
    """The clips of the data given to `evaluate`, their classes, a description for the
    config, precomputed inputs (a manifest's; None: computed from a representation), the
    problems found so far, the inputs' channel names and warnings."""

    clips: pd.DataFrame
    classes: tuple[str, ...]
    info: dict
    inputs: np.ndarray | None
    problems: pd.DataFrame | None
    channels: tuple[str, ...] | None = None
    warnings: list[str] = field(default_factory=list)


def clips_of(data: Dataset | Manifest | pd.DataFrame | str | Path, labels: str | None,
              channels: str | tuple[str, ...] | None) -> GivenData:
    """The clips with labels, classes, a description, precomputed inputs (or None)."""
    if isinstance(data, str | Path):
        if not str(data).lower().endswith(".csv"):
            raise ConfigError(f"{data}: pass a Dataset (microexpr.load_dataset) or a manifest "
                              f".csv path")
        data = read_manifest(data, channels=channels, labels=labels)
    elif isinstance(data, Manifest) and (channels is not None or labels is not None):
        data = read_manifest(data.path, channels=channels, labels=labels)
    if isinstance(data, Manifest):
        info = {"kind": "manifest", "name": data.name, "path": str(data.path),
                "channels": list(data.channels) if data.channels else None,
                "labels": data.scheme or None}
        return GivenData(data.clips, data.classes, info, data.inputs, None, data.channels,
                       list(data.warnings))
    if channels is not None:
        raise ConfigError("channels= (--channels) names the channels of a manifest's files; "
                          "a representation names its own channels")
    if isinstance(data, Dataset):
        if labels is not None or "label" not in data.clips.columns:
            if labels is None:
                raise ConfigError(f"dataset {data.name} has no labels: pass labels=SCHEME (see "
                                  f"microexpr.label_schemes())")
            data = data.with_labels(labels)
        info = {"kind": "dataset", "name": data.name, "root": data.root,
                "annotation_file": data.annotation_file, "labels": data.scheme,
                "class_counts": data.class_counts().to_dict()}
        return GivenData(data.clips, data.classes, info, None, data.problems)
    if isinstance(data, pd.DataFrame):
        if "label" not in data.columns:
            raise ConfigError("the clips table has no 'label' column: label it with a scheme")
        classes = tuple(sorted(data["label"].astype(str).unique()))
        return GivenData(data, classes, {"kind": "clips", "name": "clips"}, None, None)
    raise ConfigError(f"cannot evaluate a {type(data).__name__}: pass a Dataset, a Manifest, a "
                      f"clips DataFrame or a manifest path")


@dataclass
class PreparedInputs:
    """The clips that have inputs, the inputs as the model takes them (its channels, its
    size), their channel names and every problem (clips left out included)."""

    clips: pd.DataFrame
    inputs: np.ndarray
    channels: tuple[str, ...] | None
    problems: pd.DataFrame | None


def prepare_inputs(given: GivenData, spec: Any, rep_name: str | None, rep_config: Any, *,
                   input_size: int | None, cache_dir: Any, jobs: int | None,
                   progress: bool) -> PreparedInputs:
    """The inputs of `given` for model `spec`: the manifest's arrays, or the representation
    computed for every clip (cached; clips whose computation fails are left out and
    reported), reduced to the model's channels, resized to `input_size`, checked."""
    clips, inputs, problems, names = given.clips, given.inputs, given.problems, given.channels
    if inputs is None:
        prepare_jobs = jobs if jobs is not None else (
            os.cpu_count() or 1 if len(clips) >= PARALLEL_MIN_CLIPS else 1)
        report = prepare_representation(clips, rep_name, rep_config, cache_dir=cache_dir,
                                        jobs=prepare_jobs, progress=progress)
        inputs = report.stacked()
        names = tuple(report.channels) or None
        if len(report.failures):  # e.g. no face found: the clip is excluded and reported
            clips = clips[report.ok].reset_index(drop=True)
            failed = [Problem(dataset=str(f.dataset), clip=str(f.clip), severity="error",
                              message=f"{rep_name} failed: {f.error}")
                      for f in report.failures.itertuples(index=False)]
            problems = pd.concat([problems, problems_frame(failed)], ignore_index=True)
    inputs, names = fit_inputs(spec, inputs, names, input_size)
    check_finite(inputs, clips)
    return PreparedInputs(clips, inputs, names, problems)


def check_finite(inputs: np.ndarray, clips: pd.DataFrame) -> None:
    bad = ~np.isfinite(inputs.reshape(len(inputs), -1)).all(axis=1)
    if bad.any():
        rows = clips[bad]
        first = rows.iloc[0]
        where = f", file {first['path']}" if "path" in rows.columns else ""
        raise ConfigError(f"{int(bad.sum())} input(s) contain NaN or infinite values; first: "
                          f"{first['dataset']} / {first['subject']} / {first['clip']}{where}")


@dataclass
class NamedInputs:
    """A multi-input model's inputs and targets: per name the arrays of the clips kept (a
    clip is kept when every representation succeeded), their channel names and configs."""

    clips: pd.DataFrame
    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    channels: dict[str, tuple[str, ...] | None]
    configs: dict[str, dict[str, Any]]
    problems: pd.DataFrame | None


def prepare_named_inputs(given: GivenData, spec: Any, configs: dict[str, tuple[str, Any]], *,
                         cache_dir: Any, jobs: int | None, progress: bool) -> NamedInputs:
    """Compute (cached) every input and target of a multi-input model for the clips of
    `given`; clips that fail any of them are left out and reported."""
    if given.inputs is not None:
        raise ConfigError(f"{spec.name} takes the inputs {list(spec.named_inputs())} and "
                          f"targets {list(spec.named_targets())}, computed from a database; a "
                          f"manifest holds one precomputed input: evaluate it on the database")
    clips, problems = given.clips, given.problems
    prepare_jobs = jobs if jobs is not None else (
        os.cpu_count() or 1 if len(clips) >= PARALLEL_MIN_CLIPS else 1)
    reports, keep = compute_inputs(clips, configs, cache_dir=cache_dir, jobs=prepare_jobs,
                                   progress=progress)
    failed = [Problem(dataset=str(f.dataset), clip=str(f.clip), severity="error",
                      message=f"{report.name} ({name}) failed: {f.error}")
              for name, report in reports.items()
              for f in report.failures.itertuples(index=False)]
    if failed:
        problems = pd.concat([problems, problems_frame(failed)], ignore_index=True)
    arrays = {}
    for name, report in reports.items():
        arrays[name] = kept_arrays(report, keep)
        check_finite(arrays[name], clips[keep].reset_index(drop=True))
    inputs = {k: arrays[k] for k in spec.named_inputs()}
    targets = {k: arrays[k] for k in spec.named_targets()}
    return NamedInputs(clips[keep].reset_index(drop=True), inputs, targets,
                       {k: tuple(reports[k].channels) or None for k in reports},
                       {k: {"name": rep, **asdict(config)}
                        for k, (rep, config) in configs.items()}, problems)
