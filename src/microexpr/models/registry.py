"""The model registry: a name -> how to build it, the representation it needs, its defaults."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from torch import nn

from microexpr.errors import ConfigError, InputShapeError
from microexpr.training.loop import TrainConfig


@dataclass(frozen=True)
class ModelSpec:
    """What the toolkit knows about a model.

    `build(in_channels, n_classes, input_size, **params)` returns an nn.Module taking
    N x C x H x W. `min_size` is the smallest input side the architecture supports and
    `channels` the number of input channels it requires (None: any).
    """

    name: str
    build: Callable[..., nn.Module]
    representation: str
    reference: str
    description: str
    representation_config: Mapping[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    params: Mapping[str, Any] = field(default_factory=dict)
    default_input: tuple[int, int, int] = (3, 28, 28)
    min_size: int = 8
    channels: int | None = None

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Raise InputShapeError unless `shape` (N x H x W x C) suits this model."""
        if len(shape) != 4:
            raise InputShapeError(f"{self.name} takes inputs of shape N x H x W x C, got "
                                  f"{tuple(shape)}")
        _, height, width, chans = shape
        if min(height, width) < self.min_size:
            raise InputShapeError(
                f"{self.name} needs inputs of at least {self.min_size}x{self.min_size}, got "
                f"{height}x{width}; compute the representation at a larger size")
        if self.channels is not None and chans != self.channels:
            raise InputShapeError(
                f"{self.name} needs {self.channels} input channel(s), got {chans}; "
                f"{self.representation} with the default config gives the right channels")

    def build_module(self, in_channels: int, n_classes: int, input_size: tuple[int, int],
                     **params: Any) -> nn.Module:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown} for model {self.name}; valid: "
                              f"{sorted(self.params)}")
        return self.build(in_channels, n_classes, input_size, **{**self.params, **params})


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


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def list_models() -> pd.DataFrame:
    """The registered models: name, representation, default input, parameters, reference."""
    _load_builtin_models()
    rows = []
    for spec in MODELS.values():
        chans, height, width = spec.default_input
        module = spec.build_module(chans, 3, (height, width))
        rows.append({
            "name": spec.name,
            "representation": spec.representation,
            "input": f"{chans}x{height}x{width}",
            "parameters": count_parameters(module),
            "epochs": spec.train.epochs,
            "reference": spec.reference,
            "description": spec.description,
        })
    return pd.DataFrame(rows)


def _load_builtin_models() -> None:
    from microexpr.models import ststnet  # noqa: F401  (registers on import)
