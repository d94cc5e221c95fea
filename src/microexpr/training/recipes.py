"""Training options from a model spec's plain data: its defaults, its recipes, the user's
overrides, validated into a TrainConfig (the models stage holds them as data only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from typing import Any

from microexpr.errors import ConfigError
from microexpr.models.registry import ModelSpec
from microexpr.training.loop import TrainConfig

TRAIN_OPTIONS = tuple(f.name for f in fields(TrainConfig))


def _options(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`values` with dotted keys folded into mappings (loss_weights.deviation=0 ->
    loss_weights={"deviation": 0}); ConfigError naming unknown options."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        head, _, rest = str(key).partition(".")
        if head not in TRAIN_OPTIONS:
            raise ConfigError(f"unknown training option(s) [{key!r}] {where}; valid: "
                              f"{sorted(TRAIN_OPTIONS)}")
        if rest:
            if head != "loss_weights":
                raise ConfigError(f"training option {key!r}: only loss_weights takes a dotted "
                                  f"name (loss_weights.TERM=WEIGHT)")
            merged = dict(out.get(head) or {})
            merged[rest] = value
            out[head] = merged
        elif head == "loss_weights" and isinstance(value, Mapping):
            out[head] = {**dict(out.get(head) or {}), **value}
        else:
            out[head] = value
    return out


def spec_train_config(spec: ModelSpec) -> TrainConfig:
    """The model's default TrainConfig (its spec's `train` data over TrainConfig's
    defaults); ConfigError naming the model when that data is not valid."""
    try:
        return TrainConfig(**_options(spec.train, f"in the spec of model {spec.name}"))
    except ConfigError as error:
        raise ConfigError(f"model {spec.name}'s default training options: {error}") from None


def make_train_config(spec: ModelSpec, train_config: TrainConfig | Mapping | None = None,
                      **overrides: Any) -> TrainConfig:
    """The model's default TrainConfig updated by a mapping / TrainConfig and by keyword
    overrides (None values ignored). Mapping keys may be dotted (loss_weights.deviation)."""
    config = spec_train_config(spec)
    if isinstance(train_config, TrainConfig):
        config = train_config
    elif train_config:
        options = _options(train_config, f"for model {spec.name}")
        if isinstance(options.get("loss_weights"), Mapping):
            options["loss_weights"] = {**config.loss_weights, **options["loss_weights"]}
        config = replace(config, **options)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(config, **overrides) if overrides else config


def check_recipes(spec: ModelSpec) -> None:
    """Validate a torch model's default training options and every recipe's "train" data
    against TrainConfig; ConfigError naming the model and recipe (a registry bug)."""
    if spec.kind != "torch":
        return
    base = spec_train_config(spec)
    for name, recipe in spec.recipes.items():
        try:
            make_train_config(spec, {**asdict(base), **dict(recipe.get("train") or {})})
        except ConfigError as error:
            raise ConfigError(f"model {spec.name}, recipe {name!r}: {error}") from None
