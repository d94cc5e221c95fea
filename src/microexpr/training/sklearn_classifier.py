"""SklearnClassifier: a registered scikit-learn model behind the same API as TorchClassifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from microexpr.errors import ConfigError, InputShapeError
from microexpr.models.registry import ModelSpec, channel_names, encode_labels, get_model_spec
from microexpr.training.checkpoints import read_checkpoint, write_checkpoint
from microexpr.training.inputs import InputRecipe


class SklearnClassifier:
    """A registered "sklearn" model (feature extraction + classifier pipeline).

    Same interface as TorchClassifier: fit(x, y, groups, channels), predict_proba (columns
    in `classes` order, zeros for a class absent from the training fold), save / load.
    `channels` (the names of the input's channels, from `fit`) is kept and saved, and so are
    `input_recipe` (how the inputs are computed from clips-table rows; None for a model fit
    on arrays by hand) and `training_info` (what `microexpr.train` recorded).
    """

    def __init__(self, model: str | ModelSpec, classes: tuple[str, ...] | list[str], *,
                 params: dict[str, Any] | None = None, seed: int = 0, **_: Any):
        self.spec = get_model_spec(model) if isinstance(model, str) else model
        if self.spec.kind != "sklearn":
            raise ConfigError(f"{self.spec.name} is a {self.spec.kind} model")
        self.classes = tuple(str(c) for c in classes)
        if len(self.classes) < 2:
            raise ConfigError(f"need at least 2 classes, got {self.classes}")
        self.params = self.spec.check_params(params or {})
        self.seed = seed
        self.estimator: Any = None
        self.input_shape: tuple[int, ...] | None = None
        self.channels: tuple[str, ...] | None = None
        self.input_recipe: InputRecipe | None = None
        self.training_info: dict[str, Any] | None = None

    def _encode(self, y) -> np.ndarray:
        return encode_labels(y, self.classes)

    def fit(self, x: np.ndarray, y, groups: np.ndarray | None = None,
            channels: tuple[str, ...] | None = None) -> SklearnClassifier:
        """Fit on x (N x per-sample shape) and labels y; `channels` names x's channels (last
        axis; default: the model's `input_channels` when their number matches)."""
        x = np.asarray(x, dtype=np.float32)
        self.spec.check_input(x.shape)
        if len(x) != len(y):
            raise InputShapeError(f"{len(x)} inputs but {len(y)} labels")
        self.channels = (channel_names(self.spec, x.shape[-1], channels)
                         if x.ndim >= 4 else None)
        self.input_shape = tuple(x.shape[1:])
        self.estimator = self.spec.build(self.input_shape, len(self.classes), seed=self.seed,
                                         **self.params)
        self.estimator.fit(x, self._encode(y))
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.estimator is None:
            raise ConfigError("the classifier is not trained: call fit() or load() first")
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise InputShapeError(f"{self.spec.name} was trained on inputs of shape "
                                  f"{self.input_shape} but got {x.shape[1:]}")
        proba = np.zeros((len(x), len(self.classes)), dtype=np.float64)
        proba[:, self.estimator.classes_] = self.estimator.predict_proba(x)
        return proba

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.classes)[self.predict_proba(x).argmax(axis=1)]

    def save(self, path: str | Path) -> Path:
        """Save the fitted estimator with its classes, params, channels and input recipe
        (written atomically)."""
        if self.estimator is None:
            raise ConfigError("nothing to save: the classifier is not trained")
        meta = {"model": self.spec.name, "classes": self.classes, "params": self.params,
                "seed": self.seed, "input_shape": self.input_shape, "channels": self.channels,
                "input_recipe": None if self.input_recipe is None
                else self.input_recipe.to_dict(),
                "training_info": self.training_info}
        return write_checkpoint(path, meta, estimator=self.estimator)

    @classmethod
    def load(cls, path: str | Path, **_: Any) -> SklearnClassifier:
        checkpoint = read_checkpoint(path)
        if checkpoint.kind != "sklearn":
            raise ConfigError(f"{path} is not a saved microexpr scikit-learn model")
        meta = checkpoint.meta
        model = cls(meta["model"], meta["classes"], params=meta["params"], seed=meta["seed"])
        model.estimator, model.input_shape = checkpoint.estimator, tuple(meta["input_shape"])
        channels = meta.get("channels")  # absent from models saved before channel names
        model.channels = tuple(channels) if channels is not None else None
        recipe = meta.get("input_recipe")  # absent from files saved before input recipes
        model.input_recipe = None if recipe is None else InputRecipe.from_dict(recipe, str(path))
        model.training_info = meta.get("training_info")
        return model
