"""Macro-expression guidance for MiMaNet: train MaNet once on macro data, hand it to MiNet.

MaNet is `mimanet` with `guidance=false` (the two-stream network alone) trained on the macro
clips, labelled in the micro run's classes. It shares no subjects with any micro test
subject, so one MaNet serves every fold; `train_guide` caches it on disk by everything it
depends on (the macro inputs, its params and training options, the seed), so a second run
with the same macro data loads it instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microexpr.errors import ConfigError
from microexpr.preprocess.cache import array_digest
from microexpr.training.torch_classifier import TorchClassifier

GUIDED_MODEL = "mimanet"
# MiMaNet params that shape the network (MaNet gets them too); the rest are MiNet's training.
ARCHITECTURE = ("frames", "widths", "hidden", "dropout")


@dataclass
class Guide:
    """A trained MaNet and the macro data it guides with, as plain data (it travels to fold
    workers): MaNet's weights, its macro inputs standardised with its own training
    statistics (channels first, per input name), their labels (class names) and facts for
    the run's config."""

    manet_state: dict[str, Any]
    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    info: dict = field(default_factory=dict)

    def attach_arguments(self, classes: tuple[str, ...]) -> dict[str, Any]:
        """What `MiMaNet.attach_guide` takes, with the labels as indices into `classes`
        (-1 for a macro class the micro classifier does not have)."""
        lookup = {c: i for i, c in enumerate(classes)}
        labels = np.array([lookup.get(str(v), -1) for v in self.labels], dtype=np.int64)
        return {"manet_state": self.manet_state, "inputs": self.inputs, "labels": labels}


def manet_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """MaNet's params: MiNet's architecture, no guidance of its own."""
    return {**{k: v for k, v in (params or {}).items() if k in ARCHITECTURE},
            "guidance": False}


def _key(inputs: Mapping[str, np.ndarray], labels: np.ndarray, classes: tuple[str, ...],
         params: Mapping[str, Any], train_config: Mapping[str, Any], seed: int) -> str:
    payload = {"inputs": {k: array_digest(v) for k, v in sorted(inputs.items())},
               "labels": [str(v) for v in labels], "classes": list(classes),
               "params": dict(params), "train": dict(train_config), "seed": seed}
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def train_guide(inputs: Mapping[str, np.ndarray], labels: np.ndarray | list,
                classes: tuple[str, ...], *, params: Mapping[str, Any] | None = None,
                train_config: Mapping[str, Any] | None = None, seed: int = 0,
                groups: np.ndarray | None = None, device: str | None = None,
                cache_dir: str | Path | None = None) -> Guide:
    """Train MaNet on macro `inputs` ({"apex", "clip"}, channels last, as the representations
    give them) and `labels` (class names among `classes`, the micro classes), or load it from
    `cache_dir/manet/<key>.pt` when the same training was cached; return the Guide.

    `params` are mimanet's (only the architecture is used), `train_config` MaNet's training
    options (cross-entropy; mimanet's by default).
    """
    labels = np.asarray([str(v) for v in labels])
    present = sorted(set(labels))
    if len(present) < 2:
        raise ConfigError(f"MaNet needs macro clips of at least 2 of the classes {classes}, "
                          f"got {present or 'none'}: give macro data whose emotions the label "
                          f"scheme maps to those classes")
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise ConfigError(f"macro labels {unknown} are not among the classes {classes}")
    arch = manet_params(params)
    config = {**(train_config or {}), "objective": "cross_entropy", "loss_weights": {}}
    manet = TorchClassifier(GUIDED_MODEL, classes, params=arch, train_config=config,
                            seed=seed, device=device)
    key = _key(inputs, labels, classes, arch, asdict(manet.train_config), seed)
    path = Path(cache_dir).expanduser() / "manet" / f"{key}.pt" if cache_dir else None
    info: dict[str, Any] = {"key": key, "cache": str(path) if path else None,
                            "n_clips": int(len(labels)),
                            "class_counts": {c: int((labels == c).sum()) for c in present},
                            "params": arch, "train": asdict(manet.train_config),
                            "trained_once_per_run": True,
                            "why": "macro data shares no subjects with any micro test subject"}
    if path is not None and path.is_file():
        manet = TorchClassifier.load(path, device=device)
        info["loaded_from_cache"] = True
    else:
        start = time.perf_counter()
        manet.fit(dict(inputs), labels, groups=groups)
        info["fit_seconds"] = round(time.perf_counter() - start, 3)
        info["final_train_loss"] = manet.history.train_loss[-1]
        info["loaded_from_cache"] = False
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            manet.save(path)
    state = {k.removeprefix("minet."): v.detach().cpu().clone()
             for k, v in manet.module.state_dict().items() if k.startswith("minet.")}
    return Guide(state, manet.network_inputs(dict(inputs)), labels, info)
