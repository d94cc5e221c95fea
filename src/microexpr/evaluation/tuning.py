"""Nested leave-subjects-out model selection: pick a grid point per outer fold from its training
subjects only, so the reported score of a tuned model is not optimistically biased.

Grid file (YAML), read by `read_grid` / `load_grid`::

    params:            # model parameters: each key a list of values (cartesian product)
      dropout: [0.3, 0.5]
    train:             # training options, same
      lr: [1e-3, 5e-4]
      epochs: [20, 40]
    inner_folds: 4     # optional: the outer fold's training subjects are split into this many
                       # groups of whole subjects (default 4), or "loso" (one group a subject)
    metric: uf1        # optional: uf1 (default) | uar | accuracy

A scalar (or a mapping) is a fixed value; a list is the values to try, so a list-valued option
is written as a list of lists (``hidden: [[64, 32]]``). Instead of ``params`` / ``train`` the file
may list the points themselves, each value taken literally::

    points:
      - {params: {dropout: 0.3}, train: {lr: 1e-3}}
      - {params: {dropout: 0.5}, train: {lr: 5e-4, epochs: 40}}

Points are numbered in file order (the last key varies fastest); on a tie the lower number wins.
Numbers such as ``1e-3`` are read as floats (plain YAML 1.1 would read a string).

The training itself is a callback (`fit_predict`), so any trainer (e.g. a batched one) plugs in.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from microexpr.errors import ConfigError, MicroexprError
from microexpr.evaluation.metrics import scores
from microexpr.evaluation.protocols import Fold

MAX_POINTS = 200
METRICS = ("uf1", "uar", "accuracy")
DEFAULT_INNER_FOLDS = 4
TOP_LEVEL_KEYS = ("params", "train", "points", "inner_folds", "metric")
POINT_KEYS = ("params", "train")
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class GridPoint:
    """One combination of model parameters and training options; `index` is its number."""

    index: int
    params: dict
    train: dict

    def label(self) -> str:
        """Short description, training options first: 'lr=0.0005, epochs=20, dropout=0.3'."""
        items = [*self.train.items(), *self.params.items()]
        return ", ".join(f"{k}={v}" for k, v in items) if items else "defaults"

    def to_dict(self) -> dict:
        """Plain data for config.yaml / metrics.json."""
        return {"index": self.index, "label": self.label(),
                "params": copy.deepcopy(self.params), "train": copy.deepcopy(self.train)}


@dataclass(frozen=True)
class Grid:
    """A read grid file: its points and how to score them."""

    points: list[GridPoint]
    inner_folds: int | str = DEFAULT_INNER_FOLDS
    metric: str = "uf1"
    source: str = "the tuning grid"

    def to_dict(self) -> dict:
        """Plain data for config.yaml."""
        return {"source": self.source, "inner_folds": self.inner_folds, "metric": self.metric,
                "points": [p.to_dict() for p in self.points]}


@dataclass(frozen=True)
class TuneTask:
    """One training run: fit `point` on samples `train`, predict samples `test` (indices)."""

    key: tuple  # (outer_fold, inner_fold, point_index)
    point: GridPoint
    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Selection:
    """The point chosen for one outer fold, with every point's pooled inner score."""

    fold: int
    point: GridPoint
    scores: dict[int, float]
    metric: str = "uf1"

    def to_dict(self) -> dict:
        """Plain data for the results (chosen point and all inner scores)."""
        return {"fold": self.fold, "point": self.point.index, "label": self.point.label(),
                "params": copy.deepcopy(self.point.params),
                "train": copy.deepcopy(self.point.train), "metric": self.metric,
                "scores": {int(k): float(v) for k, v in self.scores.items()}}


# ---------------------------------------------------------------- reading the grid


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads 1e-3 / 1E+3 as floats (YAML 1.2 style)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _fail(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {message}")


def _read_document(grid: str | Path | Mapping, source: str | None) -> tuple[Any, str]:
    if isinstance(grid, Mapping):
        return copy.deepcopy(dict(grid)), source or "the tuning grid"
    path = Path(grid)
    name = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"tuning grid {name} does not exist; pass a YAML file with "
                          f"'params:' and/or 'train:' lists of values") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"tuning grid {name} cannot be read ({exc})") from None
    try:
        document = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"tuning grid {name} is not valid YAML{at}: {problem}; fix the "
                          f"file (lists are written [a, b], mappings key: value)") from None
    if document is None:
        raise ConfigError(f"tuning grid {name} is empty; give 'params:' and/or 'train:' with "
                          f"lists of values, or 'points:'")
    return document, name


def _options(value: Any, source: str, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(source, key, f"must be a mapping of option: values, got "
                                 f"{type(value).__name__} {value!r}")
    for name in value:
        if not isinstance(name, str) or not name:
            raise _fail(source, key, f"option names must be non-empty strings, got {name!r}")
    return dict(value)


def _value_lists(options: dict, source: str, key: str) -> list[tuple[str, list]]:
    lists = []
    for name, value in options.items():
        where = f"{key}.{name}"
        if isinstance(value, list):
            if not value:
                raise _fail(source, where, "the list of values is empty; give at least one "
                                           "value, or drop the key to use the default")
            for i, a in enumerate(value):
                if any(a == b and type(a) is type(b) for b in value[:i]):
                    raise _fail(source, where, f"value {a!r} is listed twice; list each value "
                                               f"once")
            lists.append((name, list(value)))
        else:
            lists.append((name, [value]))
    return lists


def _check_size(n: int, source: str, key: str) -> None:
    if n > MAX_POINTS:
        raise _fail(source, key, f"{n} grid points is more than the limit of {MAX_POINTS} "
                                 f"(each costs one training per inner and outer fold); use "
                                 f"fewer values per key")


def _grid_points(document: dict, source: str) -> list[GridPoint]:
    params = _value_lists(_options(document.get("params"), source, "params"), source, "params")
    train = _value_lists(_options(document.get("train"), source, "train"), source, "train")
    lists = params + train
    _check_size(math.prod(len(values) for _, values in lists), source, "params/train")
    n_params = len(params)
    points = []
    for index, combo in enumerate(itertools.product(*(values for _, values in lists))):
        names = [name for name, _ in lists]
        chosen = [copy.deepcopy(v) for v in combo]
        points.append(GridPoint(index=index,
                                params=dict(zip(names[:n_params], chosen[:n_params],
                                                strict=True)),
                                train=dict(zip(names[n_params:], chosen[n_params:],
                                               strict=True))))
    return points


def _listed_points(value: Any, source: str) -> list[GridPoint]:
    if not isinstance(value, list) or not value:
        raise _fail(source, "points", "must be a non-empty list of {params: {...}, "
                                      "train: {...}} items")
    _check_size(len(value), source, "points")
    points: list[GridPoint] = []
    for index, item in enumerate(value):
        where = f"points[{index}]"
        if not isinstance(item, Mapping):
            raise _fail(source, where, f"must be a mapping with params: and/or train:, got "
                                       f"{type(item).__name__} {item!r}")
        unknown = sorted(str(k) for k in item if k not in POINT_KEYS)
        if unknown:
            raise _fail(source, f"{where}.{unknown[0]}",
                        f"unknown key; a point takes only {list(POINT_KEYS)}")
        point = GridPoint(index=index,
                          params=_options(item.get("params"), source, f"{where}.params"),
                          train=_options(item.get("train"), source, f"{where}.train"))
        for earlier in points:
            if earlier.params == point.params and earlier.train == point.train:
                raise _fail(source, where, f"is the same as points[{earlier.index}]; list "
                                           f"each point once")
        points.append(point)
    return points


def _inner_folds(value: Any, source: str) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "loso":
        return "loso"
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise _fail(source, "inner_folds", f"must be an integer >= 2 or 'loso', got {value!r}")
    return value


def _metric(value: Any, source: str) -> str:
    name = str(value).strip().lower()
    if name not in METRICS:
        raise _fail(source, "metric", f"unknown metric {value!r}; choose one of {list(METRICS)}")
    return name


def load_grid(grid: str | Path | Mapping, *, source: str | None = None) -> Grid:
    """Read a grid file (or an already parsed mapping): points, inner_folds and metric.

    Every problem raises ConfigError naming the file and the key.
    """
    document, name = _read_document(grid, source)
    if not isinstance(document, Mapping):
        raise ConfigError(f"tuning grid {name} must be a mapping with 'params:' / 'train:' "
                          f"(or 'points:'), got {type(document).__name__}")
    unknown = sorted(str(k) for k in document if k not in TOP_LEVEL_KEYS)
    if unknown:
        raise _fail(name, unknown[0], f"unknown key; a tuning grid takes {list(TOP_LEVEL_KEYS)}")
    if "points" in document:
        both = [k for k in ("params", "train") if k in document]
        if both:
            raise _fail(name, both[0], "give either 'points:' or 'params:' / 'train:' lists, "
                                       "not both")
        points = _listed_points(document["points"], name)
    else:
        points = _grid_points(document, name)
    inner = _inner_folds(document.get("inner_folds", DEFAULT_INNER_FOLDS), name)
    metric = _metric(document.get("metric", "uf1"), name)
    return Grid(points=points, inner_folds=inner, metric=metric, source=name)


def read_grid(grid: str | Path | Mapping, *, source: str | None = None) -> list[GridPoint]:
    """The grid points of a grid file (see the module docstring for the format)."""
    return load_grid(grid, source=source).points


def validate_grid(points: Sequence[GridPoint], check: Callable[[dict, dict], None], *,
                  source: str = "the tuning grid") -> None:
    """Run `check(params, train)` on every point before any training starts.

    A microexpr error from `check` is raised again (same class) prefixed with the grid file
    and the point, so the user knows which line of the grid to fix.
    """
    for point in points:
        try:
            check(point.params, point.train)
        except MicroexprError as exc:
            raise type(exc)(f"{source}: grid point {point.index} ({point.label()}): {exc}"
                            ) from None


# ---------------------------------------------------------------- inner splits


def inner_splits(train: np.ndarray, subjects: np.ndarray, n_groups: int | str,
                 seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(inner train, inner validation) index pairs over the subjects of `train`.

    The subjects of `train` are split into `n_groups` groups of whole subjects ("loso": one
    group per subject; more groups than subjects means one per subject). Subjects are shuffled
    with `seed`, then each goes to the group with the fewest clips so far, which balances the
    clip counts. Each split validates on one group and trains on the others.
    """
    train = np.asarray(train, dtype=np.int64).ravel()
    subjects = np.asarray(subjects, dtype=object)
    if train.size and (train.min() < 0 or train.max() >= len(subjects)):
        raise ValueError(f"training indices out of range for {len(subjects)} samples")
    train_subjects = subjects[train].astype(str)
    names = sorted(set(train_subjects))
    if len(names) < 2:
        raise ConfigError(f"tuning needs at least 2 training subjects per fold to split into "
                          f"inner folds, found {len(names)} ({names}); use a protocol or data "
                          f"with more subjects, or evaluate without --tune")
    if isinstance(n_groups, str):
        if n_groups.strip().lower() != "loso":
            raise ConfigError(f"inner_folds must be an integer >= 2 or 'loso', got {n_groups!r}")
        groups_wanted = len(names)
    elif isinstance(n_groups, bool) or not isinstance(n_groups, int | np.integer) or n_groups < 2:
        raise ConfigError(f"inner_folds must be an integer >= 2 or 'loso', got {n_groups!r}")
    else:
        groups_wanted = min(int(n_groups), len(names))
    counts = {name: int(np.sum(train_subjects == name)) for name in names}
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    # largest subjects first (stable, so equal sizes keep the seeded order), each to the
    # group with the fewest clips, then fewest subjects, then lowest number
    shuffled.sort(key=lambda name: -counts[name])
    clips = [0] * groups_wanted
    members: list[list[str]] = [[] for _ in range(groups_wanted)]
    for name in shuffled:
        g = min(range(groups_wanted), key=lambda i: (clips[i], len(members[i]), i))
        clips[g] += counts[name]
        members[g].append(name)
    splits = []
    for group in members:
        held = np.isin(train_subjects, group)
        splits.append((np.sort(train[~held]), np.sort(train[held])))
    return splits


def tuning_tasks(folds: Sequence[Fold], subjects: np.ndarray, points: Sequence[GridPoint],
                 n_groups: int | str, seed: int) -> list[TuneTask]:
    """Every training run nested selection needs: per outer fold, inner split and point.

    Inner splits use only the fold's training indices (the same `seed` for every fold).
    Tasks that share training samples are adjacent (points vary fastest).
    """
    if not points:
        raise ConfigError("the tuning grid has no points")
    indices = [p.index for p in points]
    if len(set(indices)) != len(indices):
        raise ValueError(f"grid point indices must be unique, got {indices}")
    tasks = []
    for fold in folds:
        if np.intersect1d(fold.train, fold.test).size:
            raise ValueError(f"fold {fold.index} ({fold.held_out}) has samples in both its "
                             f"training and test parts")
        for j, (inner_train, inner_test) in enumerate(
                inner_splits(fold.train, subjects, n_groups, seed)):
            for point in points:
                tasks.append(TuneTask(key=(fold.index, j, point.index), point=point,
                                      train=inner_train, test=inner_test))
    return tasks


# ---------------------------------------------------------------- selection


def _class_names(labels: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Labels as class names: integer labels are indices into `classes`, others names."""
    labels = np.asarray(labels)
    classes = [str(c) for c in classes]
    if labels.dtype.kind in "iu":
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"integer labels must index the {len(classes)} classes {classes}")
        return np.asarray(classes, dtype=object)[labels]
    names = labels.astype(str)
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {classes}")
    return names.astype(object)


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ConfigError(f"unknown tuning metric {metric!r}; choose one of {list(METRICS)}")
    return metric


def select_points(tasks: Sequence[TuneTask], probabilities: Sequence[np.ndarray],
                  labels: np.ndarray, classes: Sequence[str],
                  metric: str = "uf1") -> dict[int, Selection]:
    """Per outer fold, the point with the best `metric` on its pooled inner validation sets.

    Predictions of a point are pooled over the fold's inner splits before scoring (as the
    outer metrics are pooled over folds). A point whose probabilities are not finite (a
    diverged training) scores NaN and is never chosen unless every point does; ties, within
    1e-9, go to the lower point index.
    """
    _check_metric(metric)
    if len(probabilities) != len(tasks):
        raise ValueError(f"got {len(probabilities)} probability arrays for {len(tasks)} tasks")
    classes = [str(c) for c in classes]
    names = _class_names(labels, classes)
    class_array = np.asarray(classes, dtype=object)
    pooled: dict[int, dict[int, tuple[list, list, bool]]] = {}
    points: dict[int, dict[int, GridPoint]] = {}
    for task, proba in zip(tasks, probabilities, strict=True):
        proba = np.asarray(proba, dtype=float)
        if proba.shape != (len(task.test), len(classes)):
            raise ValueError(f"task {task.key}: probabilities have shape {proba.shape}, "
                             f"expected {(len(task.test), len(classes))} (test samples, classes)")
        fold, _, index = task.key
        truth, pred, finite = pooled.setdefault(fold, {}).setdefault(index, ([], [], True))
        finite = finite and bool(np.isfinite(proba).all())
        truth.extend(names[task.test])
        if finite and len(task.test):
            pred.extend(class_array[np.argmax(proba, axis=1)])
        pooled[fold][index] = (truth, pred, finite)
        points.setdefault(fold, {})[index] = task.point
    selections = {}
    for fold in sorted(pooled):
        fold_scores = {}
        for index in sorted(pooled[fold]):
            truth, pred, finite = pooled[fold][index]
            fold_scores[index] = (float(scores(truth, pred, classes)[metric])
                                  if finite and truth else float("nan"))
        valid = {i: s for i, s in fold_scores.items() if not math.isnan(s)}
        if valid:
            best = max(valid.values())
            chosen = min(i for i, s in valid.items() if s >= best - TIE_TOLERANCE)
        else:
            chosen = min(fold_scores)
        selections[fold] = Selection(fold=fold, point=points[fold][chosen], scores=fold_scores,
                                     metric=metric)
    return selections


def nested_selection(folds: Sequence[Fold], subjects: np.ndarray, labels: np.ndarray,
                     classes: Sequence[str], points: Sequence[GridPoint],
                     fit_predict: Callable[[list[TuneTask]], list[np.ndarray]], *,
                     n_groups: int | str = DEFAULT_INNER_FOLDS, seed: int = 0,
                     metric: str = "uf1") -> dict[int, Selection]:
    """Choose a grid point per outer fold by inner leave-subjects-out on its training subjects.

    `fit_predict(tasks)` trains one model per task on `task.train` with `task.point` and
    returns, per task, class probabilities for `task.test` (columns in `classes` order).
    Everything that can be checked is checked before `fit_predict` is called.
    """
    _check_metric(metric)
    _class_names(labels, classes)
    tasks = tuning_tasks(folds, subjects, points, n_groups, seed)
    probabilities = list(fit_predict(tasks))
    return select_points(tasks, probabilities, labels, classes, metric=metric)


__all__ = [
    "MAX_POINTS", "METRICS", "Grid", "GridPoint", "Selection", "TuneTask", "inner_splits",
    "load_grid", "nested_selection", "read_grid", "select_points", "tuning_tasks",
    "validate_grid",
]
