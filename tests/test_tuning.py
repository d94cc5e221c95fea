"""Nested leave-subjects-out selection: inner splits, grid files, choosing a point per fold."""

import json

import numpy as np
import pytest

from microexpr.errors import ConfigError
from microexpr.evaluation.protocols import loso
from microexpr.evaluation.tuning import (
    MAX_POINTS,
    GridPoint,
    inner_splits,
    load_grid,
    nested_selection,
    read_grid,
    select_points,
    tuning_tasks,
    validate_grid,
)

CLASSES = ["negative", "positive", "surprise"]


def _layout(seed: int, n_subjects: int | None = None):
    """A composite-like table: namespaced subjects from two databases, unequal clip counts."""
    rng = np.random.default_rng(seed)
    n = n_subjects or int(rng.integers(3, 14))
    subjects, labels = [], []
    for s in range(n):
        name = f"casme2/sub{s + 1:02d}" if s % 2 else f"samm/{s + 6:03d}"
        count = int(rng.integers(1, 16))
        subjects += [name] * count
        labels += list(rng.choice(CLASSES, size=count))
    order = rng.permutation(len(subjects))  # clips of a subject are not contiguous
    subjects = np.array(subjects, dtype=object)[order]
    labels = np.array(labels, dtype=object)[order]
    datasets = np.array([s.split("/")[0] for s in subjects], dtype=object)
    return subjects, labels, loso(subjects, datasets)


def _points(n: int) -> list[GridPoint]:
    return [GridPoint(index=i, params={"dropout": 0.1 * i}, train={"lr": 1e-3}) for i in range(n)]


def _one_hot(names) -> np.ndarray:
    return np.array([[1.0 if c == name else 0.0 for c in CLASSES] for name in names])


def _random_proba(key: tuple, n: int) -> np.ndarray:
    rng = np.random.default_rng(list(key))
    p = rng.random((n, len(CLASSES)))
    return p / p.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- inner splits


@pytest.mark.parametrize("seed", range(8))
def test_inner_splits_keep_subjects_whole_and_never_hold_the_outer_test_subject(seed):
    subjects, _, folds = _layout(seed)
    for fold in folds:
        outer_test = set(subjects[fold.test])
        n_train_subjects = len(set(subjects[fold.train]))
        for n_groups in (2, 3, 4, "loso", 50):
            splits = inner_splits(fold.train, subjects, n_groups, seed=seed)
            expected = (n_train_subjects if n_groups in ("loso", 50)
                        else min(n_groups, n_train_subjects))
            assert len(splits) == expected
            validated = []
            for train, val in splits:
                assert len(train) and len(val)
                assert not set(subjects[train]) & set(subjects[val])
                assert not (set(subjects[train]) | set(subjects[val])) & outer_test
                assert sorted(np.concatenate([train, val])) == sorted(fold.train)
                validated += list(val)
            # the validation groups partition the outer training set: each clip validated once
            assert sorted(validated) == sorted(fold.train)


def test_inner_groups_balance_clip_counts_and_are_seeded():
    subjects, _, folds = _layout(3, n_subjects=13)
    fold = folds[0]
    splits = inner_splits(fold.train, subjects, 4, seed=0)
    sizes = [len(val) for _, val in splits]
    largest_subject = max(np.sum(subjects[fold.train] == s) for s in set(subjects[fold.train]))
    assert max(sizes) - min(sizes) <= largest_subject
    again = inner_splits(fold.train, subjects, 4, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again, strict=True))
    # equal-size subjects: the seed decides who goes together
    equal = np.repeat([f"smic/s{i}" for i in range(12)], 3).astype(object)
    groupings = {
        tuple(tuple(sorted(set(equal[val]))) for _, val in
              inner_splits(np.arange(len(equal)), equal, 3, seed=s))
        for s in range(6)
    }
    assert len(groupings) > 1


def test_inner_splits_reject_too_few_subjects_and_bad_group_counts():
    subjects = np.array(["casme2/sub01"] * 4 + ["casme2/sub02"] * 3, dtype=object)
    with pytest.raises(ConfigError, match="at least 2 training subjects"):
        inner_splits(np.arange(4), subjects, 4, seed=0)
    for bad in (1, 0, "five", True, 2.5):
        with pytest.raises(ConfigError, match="inner_folds"):
            inner_splits(np.arange(7), subjects, bad, seed=0)


# ---------------------------------------------------------------- grid files


def test_read_grid_is_the_cartesian_product_in_file_order(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(
        "params:\n  dropout: [0.3, 0.5]\n  hidden: [[64, 32]]\n"
        "train:\n  lr: [1e-3, 5e-4]\n  epochs: [20, 40]\n  schedule: {name: cosine}\n"
        "inner_folds: loso\nmetric: uar\n")
    grid = load_grid(path)
    assert grid.inner_folds == "loso" and grid.metric == "uar" and grid.source == str(path)
    points = read_grid(path)
    assert len(points) == 8 and [p.index for p in points] == list(range(8))
    assert points[0].params == {"dropout": 0.3, "hidden": [64, 32]}
    assert points[0].train == {"lr": 0.001, "epochs": 20, "schedule": {"name": "cosine"}}
    assert isinstance(points[0].train["lr"], float)  # 1e-3 is a float, not the string '1e-3'
    assert points[1].train["epochs"] == 40  # the last key varies fastest
    assert points[2].train["lr"] == 0.0005
    assert points[4].params["dropout"] == 0.5
    combos = {(p.params["dropout"], p.train["lr"], p.train["epochs"]) for p in points}
    assert len(combos) == 8
    assert points[3].label() == ("lr=0.0005, epochs=40, schedule={'name': 'cosine'}, "
                                 "dropout=0.3, hidden=[64, 32]")
    json.dumps([p.to_dict() for p in points])


def test_read_grid_explicit_points_and_defaults():
    grid = load_grid({"points": [{"params": {"dropout": 0.3}, "train": {"lr": 1e-3}},
                                 {"train": {"lr": 5e-4, "epochs": 40}}]}, source="mine.yaml")
    assert grid.inner_folds == 4 and grid.metric == "uf1"
    assert [p.params for p in grid.points] == [{"dropout": 0.3}, {}]
    assert grid.points[1].train == {"lr": 5e-4, "epochs": 40}
    assert load_grid({"train": {"epochs": 30}}).points[0].label() == "epochs=30"
    assert GridPoint(index=0, params={}, train={}).label() == "defaults"


@pytest.mark.parametrize("text, key, words", [
    ("params:\n  dropout: [0.3]\nepochs: [10]\n", "epochs", "unknown key"),
    ("params:\n  dropout: []\n", "params.dropout", "empty"),
    ("params: [0.3, 0.5]\n", "params", "mapping"),
    ("- 0.3\n- 0.5\n", "grid.yaml", "must be a mapping"),
    ("train:\n  lr: [0.1, 0.1]\n", "train.lr", "twice"),
    ("params:\n  a: [1, 2, 3, 4, 5, 6]\ntrain:\n  b: [1, 2, 3, 4, 5, 6]\n  c: [1, 2, 3, 4, 5, 6]\n",
     "params/train", f"216 grid points is more than the limit of {MAX_POINTS}"),
    ("params:\n  dropout: [0.3\n", "grid.yaml", "not valid YAML at line"),
    ("", "grid.yaml", "empty"),
    ("train:\n  lr: [0.1]\nmetric: f1\n", "metric", "uf1"),
    ("train:\n  lr: [0.1]\ninner_folds: 1\n", "inner_folds", "'loso'"),
    ("points:\n  - {params: {dropout: 0.3}}\ntrain:\n  lr: [0.1]\n", "train", "not both"),
    ("points:\n  - {params: {dropout: 0.3}, model: x}\n", "points[0].model", "unknown key"),
    ("points:\n  - {params: {dropout: 0.3}}\n  - {params: {dropout: 0.3}}\n", "points[1]",
     "same as points[0]"),
    ("points: []\n", "points", "non-empty"),
])
def test_grid_errors_name_the_file_and_the_key(tmp_path, text, key, words):
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_grid(path)
    message = str(err.value)
    assert str(path) in message and key in message and words in message


def test_missing_grid_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_grid(tmp_path / "nope.yaml")


def test_validate_grid_names_the_file_and_point():
    points = read_grid({"params": {"dropout": [0.3, 1.5]}})

    def check(params, train):
        if not 0 <= params["dropout"] < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {params['dropout']}")

    validate_grid(points[:1], check, source="grid.yaml")
    with pytest.raises(ConfigError) as err:
        validate_grid(points, check, source="grid.yaml")
    assert str(err.value) == ("grid.yaml: grid point 1 (dropout=1.5): dropout must be in "
                              "[0, 1), got 1.5")


# ---------------------------------------------------------------- selection


def _perfect_for(winners: set[int], labels):
    def fit_predict(tasks):
        return [_one_hot(labels[t.test]) if t.point.index in winners
                else _random_proba(t.key, len(t.test)) for t in tasks]
    return fit_predict


def test_selection_picks_the_point_that_is_best_on_the_inner_folds():
    subjects, labels, folds = _layout(11, n_subjects=7)
    selections = nested_selection(folds, subjects, labels, CLASSES, _points(2),
                                  _perfect_for({1}, labels), n_groups=3, seed=0)
    assert sorted(selections) == [f.index for f in folds]
    for fold in folds:
        chosen = selections[fold.index]
        assert chosen.fold == fold.index and chosen.point.index == 1
        assert chosen.scores[1] == 1.0 and chosen.scores[0] < 1.0
    json.dumps([s.to_dict() for s in selections.values()])


def test_selection_never_sees_outer_test_clips():
    subjects, labels, folds = _layout(5, n_subjects=6)
    tests = {f.index: set(f.test) for f in folds}
    seen = []

    def fit_predict(tasks):
        for task in tasks:
            outer = tests[task.key[0]]
            assert not outer & set(task.train) and not outer & set(task.test)
            seen.append(task.key)
        return [_random_proba(t.key, len(t.test)) for t in tasks]

    selections = nested_selection(folds, subjects, labels, CLASSES, _points(3), fit_predict,
                                  n_groups="loso", seed=1)
    assert len(selections) == len(folds)
    # one task per (outer fold, inner split = one of its 5 training subjects, point)
    assert len(seen) == len(set(seen)) == len(folds) * 5 * 3


def test_ties_go_to_the_lower_point_index():
    subjects, labels, folds = _layout(2, n_subjects=5)
    same = nested_selection(folds, subjects, labels, CLASSES, _points(3),
                            lambda tasks: [np.full((len(t.test), 3), 1 / 3) for t in tasks])
    assert {s.point.index for s in same.values()} == {0}
    two_best = nested_selection(folds, subjects, labels, CLASSES, _points(3),
                                _perfect_for({1, 2}, labels))
    assert {s.point.index for s in two_best.values()} == {1}


def test_the_chosen_metric_decides():
    # point 0 always says the majority class (high accuracy, low UF1); point 1 is right on
    # every minority clip and wrong on a third of the majority ones
    subjects = np.repeat([f"casme2/sub{i:02d}" for i in range(6)], 10).astype(object)
    labels = np.array((["negative"] * 8 + ["positive", "surprise"]) * 6, dtype=object)
    folds = loso(subjects, ["casme2"] * len(subjects))

    def fit_predict(tasks):
        out = []
        for t in tasks:
            truth = labels[t.test]
            if t.point.index == 0:
                out.append(_one_hot(["negative"] * len(truth)))
            else:
                guess = [("positive" if i % 3 == 0 else y) if y == "negative" else y
                         for i, y in enumerate(truth)]
                out.append(_one_hot(guess))
        return out

    by_uf1 = nested_selection(folds, subjects, labels, CLASSES, _points(2), fit_predict)
    by_acc = nested_selection(folds, subjects, labels, CLASSES, _points(2), fit_predict,
                              metric="accuracy")
    assert {s.point.index for s in by_uf1.values()} == {1}
    assert {s.point.index for s in by_acc.values()} == {0}
    assert all(s.metric == "accuracy" for s in by_acc.values())


def test_noise_selection_returns_one_valid_selection_per_fold():
    subjects, labels, folds = _layout(7, n_subjects=9)
    rng = np.random.default_rng(0)

    def fit_predict(tasks):
        return [rng.dirichlet(np.ones(3), size=len(t.test)) for t in tasks]

    selections = nested_selection(folds, subjects, labels, CLASSES, _points(4), fit_predict,
                                  seed=3)
    assert sorted(selections) == [f.index for f in folds]
    for s in selections.values():
        assert sorted(s.scores) == [0, 1, 2, 3]
        assert all(0.0 <= v <= 1.0 for v in s.scores.values())
        assert s.scores[s.point.index] == max(s.scores.values())


def test_a_diverged_point_is_never_chosen():
    subjects, labels, folds = _layout(4, n_subjects=5)

    def fit_predict(tasks):
        return [np.full((len(t.test), 3), np.nan) if t.point.index == 0
                else _random_proba(t.key, len(t.test)) for t in tasks]

    selections = nested_selection(folds, subjects, labels, CLASSES, _points(2), fit_predict)
    for s in selections.values():
        assert s.point.index == 1 and np.isnan(s.scores[0])


def test_integer_labels_index_the_classes():
    subjects, labels, folds = _layout(9, n_subjects=5)
    codes = np.array([CLASSES.index(y) for y in labels])
    tasks = tuning_tasks(folds, subjects, _points(2), 2, seed=0)
    proba = _perfect_for({0}, labels)(tasks)
    by_name = select_points(tasks, proba, labels, CLASSES)
    by_code = select_points(tasks, proba, codes, CLASSES)
    assert {k: v.scores for k, v in by_name.items()} == {k: v.scores for k, v in by_code.items()}


def test_problems_are_reported_before_any_training():
    subjects, labels, folds = _layout(1, n_subjects=4)

    def never(tasks):
        raise AssertionError("fit_predict must not run")

    with pytest.raises(ConfigError, match="metric"):
        nested_selection(folds, subjects, labels, CLASSES, _points(2), never, metric="f1")
    with pytest.raises(ValueError, match="not among the classes"):
        nested_selection(folds, subjects, labels, CLASSES[:2], _points(2), never)
    tasks = tuning_tasks(folds, subjects, _points(1), 2, seed=0)
    wrong = [np.ones((len(t.test), 2)) for t in tasks]
    with pytest.raises(ValueError, match=r"task \(0, 0, 0\).*expected"):
        select_points(tasks, wrong, labels, CLASSES)
