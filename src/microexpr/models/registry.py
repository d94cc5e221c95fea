"""The model registry: a name -> how to build it, the representation it needs, its defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from microexpr.errors import ConfigError, InputShapeError
from microexpr.training.loop import TrainConfig

MODEL_KINDS = ("torch", "sklearn")


@dataclass(frozen=True)
class ModelSpec:
    """What the toolkit knows about a model.

    `build(input_shape, n_classes, **params)` makes the model for per-sample inputs of
    `input_shape` (channels last, as representations produce them: H x W x C, T x H x W x C,
    or D for feature vectors). A "torch" model is an nn.Module taking channels-first batches
    (N x C x H x W, N x C x T x H x W, N x D) and is trained by the one training loop; an
    "sklearn" model is an estimator with fit / predict_proba on N x ... arrays (its build also
    receives `seed`). `default_input` is the per-sample shape the model is documented with;
    `min_size` the smallest spatial side it supports and `channels` the number of input
    channels it requires (None: any).
    """

    name: str
    build: Callable[..., Any]
    representation: str
    reference: str
    description: str
    kind: str = "torch"
    representation_config: Mapping[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    params: Mapping[str, Any] = field(default_factory=dict)
    default_input: tuple[int, ...] = (28, 28, 3)
    min_size: int = 8
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")

    @property
    def layout(self) -> str:
        """The per-sample layout in words, for messages."""
        return {1: "D", 3: "H x W x C", 4: "T x H x W x C"}.get(
            len(self.default_input), f"{len(self.default_input)}-d")

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Raise InputShapeError unless a batch of `shape` (N x per-sample shape) suits it."""
        if len(shape) != len(self.default_input) + 1:
            raise InputShapeError(
                f"{self.name} takes inputs of shape N x {self.layout}, got {tuple(shape)}; "
                f"it is meant for the {self.representation} representation")
        if len(self.default_input) >= 3:
            height, width, chans = shape[-3], shape[-2], shape[-1]
            if min(height, width) < self.min_size:
                raise InputShapeError(
                    f"{self.name} needs inputs of at least {self.min_size}x{self.min_size}, "
                    f"got {height}x{width}; compute the representation at a larger size")
            if self.channels is not None and chans != self.channels:
                raise InputShapeError(
                    f"{self.name} needs {self.channels} input channel(s), got {chans}; "
                    f"{self.representation} with the model's default config gives the right "
                    f"channels")

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The default params updated by `params`; ConfigError naming unknown ones."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown} for model {self.name}; valid: "
                              f"{sorted(self.params)}")
        return {**self.params, **params}

    def build_module(self, input_shape: tuple[int, ...], n_classes: int, **params: Any) -> Any:
        """Build the model (nn.Module or estimator) for per-sample `input_shape`."""
        return self.build(tuple(input_shape), n_classes, **self.check_params(params))


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (names are unique)."""
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is registered twice")
    MODELS[spec.name] = spec
    return spec


def get_model_spec(name: str) -> ModelSpec:
    """The registered spec of `name`, with a message listing the models when it is unknown."""
    _load_builtin_models()
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    return MODELS[name]


def encode_labels(y, classes: tuple[str, ...]):
    """Class indices of labels `y` in `classes` order; ConfigError naming unknown labels."""
    lookup = {c: i for i, c in enumerate(classes)}
    labels = [str(v) for v in y]
    unknown = sorted(set(labels) - set(lookup))
    if unknown:
        raise ConfigError(f"labels {unknown} are not among the classes {classes}")
    return np.array([lookup[v] for v in labels], dtype=np.int64)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def list_models() -> pd.DataFrame:
    """The registered models: name, kind, representation, input, parameters, reference."""
    _load_builtin_models()
    rows = []
    for spec in MODELS.values():
        parameters = None
        if spec.kind == "torch":
            parameters = count_parameters(spec.build_module(spec.default_input, 3))
        rows.append({
            "name": spec.name,
            "kind": spec.kind,
            "representation": spec.representation,
            "input": "x".join(str(d) for d in spec.default_input),
            "parameters": parameters,
            "epochs": spec.train.epochs if spec.kind == "torch" else None,
            "reference": spec.reference,
            "description": spec.description,
        })
    table = pd.DataFrame(rows)
    table["parameters"] = table["parameters"].astype("Int64")
    table["epochs"] = table["epochs"].astype("Int64")
    return table


def _load_builtin_models() -> None:
    """Import every module of the microexpr.models package: each model registers itself."""
    import importlib
    import pkgutil

    import microexpr.models as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
