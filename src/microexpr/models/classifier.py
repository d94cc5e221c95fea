"""TorchClassifier: a registered torch model behind fit / predict_proba / save / load."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from microexpr.errors import ConfigError, InputShapeError
from microexpr.models.registry import (
    ModelSpec,
    channel_names,
    count_parameters,
    encode_labels,
    get_model_spec,
)
from microexpr.training.augment import resolve_flip_indices
from microexpr.training.device import resolve_device, seed_everything
from microexpr.training.loop import History, TrainConfig, predict_logits, train

FORMAT_VERSION = 1


def make_train_config(spec: ModelSpec, train_config: TrainConfig | dict | None = None,
                      **overrides: Any) -> TrainConfig:
    """The model's default TrainConfig updated by a dict/TrainConfig and keyword overrides."""
    config = spec.train
    if isinstance(train_config, TrainConfig):
        config = train_config
    elif train_config:
        valid = set(asdict(config))
        unknown = sorted(set(train_config) - valid)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; valid: {sorted(valid)}")
        config = replace(config, **train_config)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(config, **overrides) if overrides else config


def split_subjects(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the samples whose subject falls in a seeded validation draw."""
    subjects = np.array(sorted(set(groups)))
    if len(subjects) < 2:
        raise ConfigError("early stopping needs at least 2 training subjects to hold one out")
    rng = np.random.default_rng(seed)
    n_val = min(len(subjects) - 1, max(1, round(fraction * len(subjects))))
    chosen = rng.choice(subjects, size=n_val, replace=False)
    return np.isin(groups, chosen)


class TorchClassifier:
    """A registered torch model trained by the one training loop (scikit-learn style).

    Inputs are channels-last float arrays (N x H x W x C, N x T x H x W x C, ... as
    representations produce them). Each channel is standardised with the mean and spread of
    the training inputs only. `classes` fixes the class order of `predict_proba`'s columns.
    `channels` (set by `fit`) names the input's channels, None when unknown; it decides which
    channels a flip negates (TrainConfig.flip_negate) and is saved with the model.
    """

    def __init__(self, model: str | ModelSpec, classes: tuple[str, ...] | list[str], *,
                 train_config: TrainConfig | dict | None = None,
                 params: dict[str, Any] | None = None, seed: int = 0,
                 device: str | None = None, init: Any = None):
        self.spec = get_model_spec(model) if isinstance(model, str) else model
        self.classes = tuple(str(c) for c in classes)
        if len(self.classes) < 2:
            raise ConfigError(f"need at least 2 classes, got {self.classes}")
        self.train_config = make_train_config(self.spec, train_config)
        params = dict(params or {})
        checked = self.spec.check_params(params)  # types and ranges, before any work
        self.params = {key: checked[key] for key in params}
        self.channels: tuple[str, ...] | None = None
        self.seed = seed
        self.device = resolve_device(device)
        self.module: torch.nn.Module | None = None
        self.input_shape: tuple[int, ...] | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.history = History()
        # Pretrained weights loaded into each new network in fit(): a path saved by `save`
        # or a microexpr.training.transfer.InitSpec / {"path", "freeze"} mapping.
        self.init = init
        self.transfer = None  # the TransferReport of the latest fit with `init`

    # -- inputs ---------------------------------------------------------------------------
    def _encode(self, y) -> np.ndarray:
        return encode_labels(y, self.classes)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            raise InputShapeError(
                f"{self.spec.name} was trained on inputs of shape {self.input_shape} "
                f"but got {x.shape[1:]}; compute the representation with the same config")
        x = (x - self.mean) / self.std
        return np.ascontiguousarray(np.moveaxis(x, -1, 1))  # channels first

    # -- estimator API ----------------------------------------------------------------------
    def fit(self, x: np.ndarray, y: np.ndarray | list, groups: np.ndarray | None = None,
            channels: tuple[str, ...] | None = None) -> TorchClassifier:
        """Train on x (N x H x W x C) and labels y; groups (subjects) feed early stopping.

        `channels` names x's channels (last axis), e.g. ("u", "v", "strain"); without it the
        model's `input_channels` are assumed when their number matches. A flip augmentation
        negates the channels named in `flip_negate` that x has (`resolve_flip_indices`).
        x is used in its own channel order: `spec.select_channels` picks the model's."""
        x = np.asarray(x, dtype=np.float32)
        self.spec.check_input(x.shape)
        self.channels = channel_names(self.spec, x.shape[-1], channels)
        config = replace(self.train_config, flip_negate=resolve_flip_indices(
            self.train_config.flip_negate, self.channels))
        if len(x) != len(y):
            raise InputShapeError(f"{len(x)} inputs but {len(y)} labels")
        if not np.isfinite(x).all():
            raise InputShapeError("inputs contain NaN or infinite values")
        y_idx = self._encode(y)
        self.input_shape = tuple(x.shape[1:])  # type: ignore[assignment]
        axes = tuple(range(x.ndim - 1))  # every axis but the channels (last)
        self.mean = x.mean(axis=axes).astype(np.float32)
        self.std = (x.std(axis=axes) + 1e-6).astype(np.float32)
        generator = seed_everything(self.seed)
        self.module = self.spec.build_module(self.input_shape, len(self.classes), **self.params)
        if self.init is not None:
            from microexpr.training.transfer import init_from

            self.transfer = init_from(self, self.init)
        validation = None
        train_mask = np.ones(len(x), dtype=bool)
        if config.early_stopping:
            if groups is None:
                raise ConfigError("early stopping needs groups (the subject of each sample)")
            val_mask = split_subjects(np.asarray(groups), config.val_fraction, self.seed)
            train_mask = ~val_mask
            validation = (self._prepare(x[val_mask]), y_idx[val_mask])
        self.history = train(self.module, self._prepare(x[train_mask]), y_idx[train_mask],
                             config, n_classes=len(self.classes), device=self.device,
                             generator=generator, validation=validation,
                             flip_center=-self.mean / self.std)  # raw 0 after standardising
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, N x len(classes), columns in `classes` order."""
        if self.module is None:
            raise ConfigError("the classifier is not trained: call fit() or load() first")
        logits = predict_logits(self.module, self._prepare(x), self.device)
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.classes)[self.predict_proba(x).argmax(axis=1)]

    @property
    def n_parameters(self) -> int:
        return count_parameters(self.module) if self.module is not None else 0

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save weights with everything needed to rebuild them (model, params, classes, stats)."""
        if self.module is None:
            raise ConfigError("nothing to save: the classifier is not trained")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION, "model": self.spec.name, "classes": self.classes,
            "params": self.params, "train_config": asdict(self.train_config),
            "seed": self.seed, "input_shape": self.input_shape, "channels": self.channels,
        }
        torch.save({"meta": json.dumps(meta, default=list), "state_dict": self.module.state_dict(),
                    "mean": self.mean, "std": self.std}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> TorchClassifier:
        """Rebuild a classifier saved by `save`."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no saved model at {path}")
        blob = torch.load(path, map_location="cpu", weights_only=False)
        meta = json.loads(blob["meta"])
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
        model = cls(meta["model"], meta["classes"], train_config=meta["train_config"],
                    params=params, seed=meta["seed"], device=device)
        model.input_shape = tuple(meta["input_shape"])
        channels = meta.get("channels")  # absent from models saved before channel names
        model.channels = tuple(channels) if channels is not None else None
        model.module = model.spec.build_module(model.input_shape, len(model.classes), **params)
        model.module.load_state_dict(blob["state_dict"])
        model.mean, model.std = blob["mean"], blob["std"]
        return model
