"""Protocols: splitters that turn a clips table into (train, test) folds by subject or dataset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from microexpr.errors import ConfigError


@dataclass(frozen=True)
class Fold:
    """One split: `held_out` names what the test part holds (a subject or a dataset)."""

    index: int
    held_out: str
    train: np.ndarray
    test: np.ndarray


def leave_one_out(groups: Sequence[str], what: str) -> list[Fold]:
    """One fold per distinct value of `groups`, in sorted order; the rest is the training set."""
    groups = np.asarray(groups, dtype=object)
    values = sorted(set(groups))
    if len(values) < 2:
        raise ConfigError(f"leave-one-{what}-out needs at least 2 {what}s, found {len(values)}")
    folds = []
    for index, value in enumerate(values):
        test = np.flatnonzero(groups == value)
        train = np.flatnonzero(groups != value)
        folds.append(Fold(index=index, held_out=str(value), train=train, test=test))
    return folds


def loso(subjects: Sequence[str], datasets: Sequence[str]) -> list[Fold]:
    """Leave-one-subject-out: subjects are namespaced, so equal ids in two databases differ."""
    return leave_one_out(subjects, "subject")


def lodo(subjects: Sequence[str], datasets: Sequence[str]) -> list[Fold]:
    """Leave-one-dataset-out (cross-database): train on all other databases, test on one."""
    return leave_one_out(datasets, "dataset")


PROTOCOLS: dict[str, Callable[[Sequence[str], Sequence[str]], list[Fold]]] = {
    "loso": loso,
    "lodo": lodo,
}


def check_protocol(protocol: str) -> str:
    """`protocol` if it is a known protocol name; ConfigError listing them otherwise."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
    return protocol


def make_folds(protocol: str, subjects: Sequence[str], datasets: Sequence[str]) -> list[Fold]:
    """The folds of a named protocol."""
    return PROTOCOLS[check_protocol(protocol)](subjects, datasets)
