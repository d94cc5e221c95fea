"""The model registry: a name -> how to build it, the representation it needs, its defaults."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from microexpr.errors import ConfigError, InputShapeError
from microexpr.models.params import check_value

MODEL_KINDS = ("torch", "sklearn")
DEFAULT_RECIPE = "default"


@dataclass(frozen=True)
class ModelSpec:
    """What the toolkit knows about a model.

    `build(input_shape, n_classes, **params)` makes the model for per-sample inputs of
    `input_shape` (channels last, as representations produce them: H x W x C, T x H x W x C,
    or D for feature vectors). A "torch" model is an nn.Module taking channels-first batches
    (N x C x H x W, N x C x T x H x W, N x D) and is trained by the one training loop; an
    "sklearn" model is an estimator with fit / predict_proba on N x ... arrays (its build also
    receives `seed`). `default_input` is the per-sample shape the model is documented with;
    `min_size` the smallest spatial side it supports.

    `input_channels` names the channels the model consumes, in the order it wants them
    (("u", "v", "strain") for STSTNet; None: any channels, any number); `channels` is their
    number (derived from `input_channels`; None: any). `param_rules` validate parameters
    that the generic rules of `microexpr.models.params` do not cover. `recipes` are named
    settings: {"train": training option overrides, "params": model params, "note": their
    source, optionally "representation": representation options (per input / target name
    for a multi-input model)}; "default" (the spec's own `train` and `params`) is implicit.
    `train` and the recipes' "train" are plain data (option name -> value, as
    `microexpr.training.TrainConfig` names them): the training stage validates them
    (`microexpr.training.recipes`), the models stage never imports it.

    `outputs` names what the network returns besides its logits ("features",
    "segment_weights", ...): a network returns logits, or a mapping with "logits" and those.
    `inputs` declares a network with several named inputs: name -> {"representation": ...,
    "config": {...}} (empty: one input, `representation` with `representation_config`);
    the network is then called with them as keyword arguments and `build` gets a mapping
    name -> per-sample shape. `targets` declares auxiliary targets the same way (name ->
    {"representation", "config"}): the runner computes and caches each per clip, and the
    objective finds them in the batch by name. `shared_options` are representation options
    that every named input and target having them must set alike (MOL: "length", "size",
    "align": frames, flow and landmarks on the same pixels); a run that changes one of them
    for one name only is refused before any work. `uses_macro`: the model trains with
    macro-expression data besides the micro clips (`evaluate(..., macro=...)`, mimanet).
    A multi-input model's `default_input` is a mapping input name -> per-sample shape.

    The training objective is a training option like any other (`train["objective"]`, see
    `microexpr.training.objectives`; cross-entropy when absent).
    """

    name: str
    build: Callable[..., Any]
    representation: str
    reference: str
    description: str
    kind: str = "torch"
    representation_config: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    default_input: tuple[int, ...] | Mapping[str, tuple[int, ...]] = (28, 28, 3)
    min_size: int = 8
    channels: int | None = None
    input_channels: tuple[str, ...] | None = None
    param_rules: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    recipes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    targets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    shared_options: tuple[str, ...] = ()
    uses_macro: bool = False

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.input_channels is not None:
            names = tuple(self.input_channels)
            if not names or len(set(names)) != len(names):
                raise ValueError(f"{self.name}: input_channels must be distinct names, got "
                                 f"{names}")
            if self.channels is not None and self.channels != len(names):
                raise ValueError(f"{self.name}: channels={self.channels} but input_channels "
                                 f"has {len(names)} names")
            object.__setattr__(self, "input_channels", names)
            object.__setattr__(self, "channels", len(names))
        if not isinstance(self.train, Mapping):
            raise ValueError(f"{self.name}: train must be a mapping of training options")
        object.__setattr__(self, "outputs", tuple(self.outputs))
        for kind in ("inputs", "targets"):
            for name, entry in getattr(self, kind).items():
                if (not isinstance(entry, Mapping) or not isinstance(
                        entry.get("representation"), str) or set(entry) - {"representation",
                                                                        "config"}):
                    raise ValueError(f"{self.name}: {kind}[{name!r}] must be "
                                     f"{{'representation': NAME, 'config': {{...}}}}")
        if self.kind != "torch" and (self.inputs or self.targets):
            raise ValueError(f"{self.name}: named inputs and targets need a torch model")
        clash = sorted(set(self.inputs) & set(self.targets) | ({"label"} & (
            set(self.inputs) | set(self.targets))))
        if clash:
            raise ValueError(f"{self.name}: names {clash} are used twice (inputs, targets and "
                             f"'label' are one namespace)")
        unknown = sorted(set(self.param_rules) - set(self.params))
        if unknown:
            raise ValueError(f"{self.name}: param_rules for unknown params {unknown}")
        self.check_params(self.params)  # the defaults obey their own rules
        for name, recipe in self.recipes.items():
            self._check_recipe(name, recipe)

    def _check_recipe(self, name: str, recipe: Mapping[str, Any]) -> None:
        """ValueError unless `recipe` is {"train": {...}, "params": {...}, "note": "..."}
        with valid training options and params (a registry bug, not a user error)."""
        where = f"model {self.name}, recipe {name!r}"
        if name == DEFAULT_RECIPE:
            raise ValueError(f"{where}: the default recipe is the spec's own train / params")
        extra = sorted(set(recipe) - {"train", "params", "note", "representation"})
        if extra or not isinstance(recipe.get("note"), str) or not recipe["note"].strip():
            raise ValueError(f"{where}: needs keys train / params / note (a non-empty source "
                             f"note), got {sorted(recipe)}")
        train = recipe.get("train") or {}
        if not isinstance(train, Mapping):
            raise ValueError(f"{where}: train must be a mapping of training options")
        if train and self.kind != "torch":
            raise ValueError(f"{where}: a {self.kind} model takes no training options")
        try:
            self.check_params(recipe.get("params") or {})
        except ConfigError as error:
            raise ValueError(f"{where}: {error}") from None

    @property
    def multi_input(self) -> bool:
        """True when the network takes several named inputs (or needs targets)."""
        return bool(self.inputs) or bool(self.targets)

    def named_inputs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Input name -> (representation, its config defaults); "input" for one input."""
        if not self.inputs:
            return {"input": (self.representation, dict(self.representation_config))}
        return {k: (v["representation"], dict(v.get("config") or {}))
                for k, v in self.inputs.items()}

    def named_targets(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Target name -> (representation, its config defaults)."""
        return {k: (v["representation"], dict(v.get("config") or {}))
                for k, v in self.targets.items()}

    @property
    def layout(self) -> str:
        """The per-sample layout in words, for messages."""
        return {1: "D", 3: "H x W x C", 4: "T x H x W x C"}.get(
            len(self.default_input), f"{len(self.default_input)}-d")

    # -- inputs ---------------------------------------------------------------------------
    def check_input(self, shape: tuple[int, ...]) -> None:
        """Raise InputShapeError unless a batch of `shape` (N x per-sample shape) suits it."""
        if len(shape) != len(self.default_input) + 1:
            raise InputShapeError(
                f"{self.name} takes inputs of shape N x {self.layout}, got {tuple(shape)}; "
                f"it is meant for the {self.representation} representation")
        if len(self.default_input) >= 3:
            height, width, chans = shape[-3], shape[-2], shape[-1]
            if min(height, width) < self.min_size:
                size = max(self.min_size, self.default_input[-2])
                raise InputShapeError(
                    f"{self.name} needs inputs of at least {self.min_size}x{self.min_size}, "
                    f"got {height}x{width}; resize the inputs for the model with "
                    f"--input-size {size} or compute the representation at a larger size")
            if self.channels is not None and chans != self.channels:
                named = f" ({', '.join(self.input_channels)})" if self.input_channels else ""
                raise InputShapeError(
                    f"{self.name} needs {self.channels} input channel(s){named}, got {chans}; "
                    f"name the inputs' channels with --channels so that the model can pick "
                    f"its own, or compute {self.representation} with the model's default "
                    f"config")

    def select_channels(self, x: np.ndarray, names: tuple[str, ...] | None
                        ) -> tuple[np.ndarray, tuple[str, ...] | None]:
        """x (channels last) reduced to the model's `input_channels`, in the model's order,
        and the names of the channels returned.

        `names` are the names of x's channels (last axis), e.g. from `--channels u,v,strain`.
        A model that takes any channels gets x and `names` unchanged. Without names, x must
        have exactly the model's number of channels, assumed in the model's order.
        """
        x = np.asarray(x)
        wanted = self.input_channels
        if names is not None:
            names = tuple(str(n) for n in names)
            if len(set(names)) != len(names):
                raise InputShapeError(f"channel names {names} repeat a name; give each "
                                      f"channel of the inputs its own name with --channels")
            if x.ndim and len(names) != x.shape[-1]:
                raise InputShapeError(
                    f"{len(names)} channel name(s) {names} for inputs with {x.shape[-1]} "
                    f"channel(s) (shape {x.shape}); --channels must name every channel of "
                    f"the inputs, in their order")
        if wanted is None:
            return x, names
        example = ",".join(wanted)
        if names is None:
            if x.ndim and x.shape[-1] == len(wanted):
                return x, wanted
            raise InputShapeError(
                f"{self.name} takes the {len(wanted)} channels {wanted} but the inputs have "
                f"{x.shape[-1] if x.ndim else 0} unnamed channel(s); declare the manifest's "
                f"channels in their order with --channels (e.g. --channels {example},"
                f"magnitude) so that the model can pick its own")
        missing = [c for c in wanted if c not in names]
        if missing:
            raise InputShapeError(
                f"{self.name} needs channel(s) {missing} (it takes {wanted}), but the inputs "
                f"have {names}; declare the manifest's channels with --channels "
                f"{example} if that is what the files hold, or compute a representation "
                f"that has them ({self.representation} with channels {list(wanted)})")
        index = [names.index(c) for c in wanted]
        if index == list(range(x.shape[-1])):
            return x, wanted
        return np.ascontiguousarray(x[..., index]), wanted

    # -- params ---------------------------------------------------------------------------
    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The default params updated by `params`, each value checked against its default's
        type and known ranges (and normalised); ConfigError naming an unknown or bad one."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown} for model {self.name}; valid: "
                              f"{sorted(self.params)}")
        checked = dict(self.params)
        for key, value in params.items():
            try:
                checked[key] = check_value(self.name, key, value, self.params[key],
                                           self.param_rules.get(key))
            except ValueError as error:
                raise ConfigError(str(error)) from None
        return checked

    def validate(self, params: Mapping[str, Any] | None = None,
                 input_shape: tuple[int, ...] | None = None, n_classes: int = 3
                 ) -> dict[str, Any]:
        """`check_params`, then build the model once for per-sample `input_shape` (default:
        `default_input`) and, for torch models, run a batch of zeros through it: any error of
        the builder becomes a ConfigError naming the params. Returns the checked params."""
        params = dict(params or {})
        checked = self.check_params(params)
        shape = _one_input(input_shape or self.default_input)
        try:
            with warnings.catch_warnings():  # e.g. torch on zero-size layers: the error says it
                warnings.simplefilter("ignore")
                if self.kind == "torch":
                    module = self.build(shape, n_classes, **checked)
                    module.eval()
                    with torch.no_grad():
                        if isinstance(shape, dict):
                            out = module(**{k: _zeros(v) for k, v in shape.items()})
                        else:
                            out = module(_zeros(shape))
                    self._check_outputs(out)
                else:
                    self.build(shape, n_classes, seed=0, **checked)
        except (ConfigError, InputShapeError) as error:
            raise type(error)(f"model {self.name} with params {params}: {error}") from None
        except Exception as error:  # noqa: BLE001 - any builder failure is a bad config
            raise ConfigError(
                f"model {self.name} cannot be built with params {params} for inputs "
                f"{_shape_text(shape)}: {type(error).__name__}: {error}; check those "
                f"values (defaults: {dict(self.params)})") from None
        return checked

    def _check_outputs(self, out: Any) -> None:
        """ValueError unless the network returns logits, or a mapping with "logits" and
        every name in `outputs` (a registry bug, reported as a ConfigError by `validate`)."""
        if isinstance(out, Mapping):
            missing = [k for k in ("logits", *self.outputs) if k not in out]
            if missing:
                raise ValueError(f"the network returned {sorted(out)}, missing {missing}")
        elif self.outputs:
            raise ValueError(f"the network returned a {type(out).__name__}, not a mapping "
                             f"with logits and {list(self.outputs)}")

    def build_module(self, input_shape: Any, n_classes: int, **params: Any) -> Any:
        """Build the model (nn.Module or estimator) for per-sample `input_shape` (a mapping
        input name -> shape for a network with several named inputs)."""
        return self.build(_one_input(input_shape), n_classes, **self.check_params(params))

    # -- recipes --------------------------------------------------------------------------
    @property
    def recipe_names(self) -> tuple[str, ...]:
        """"default" and the named recipes of the model."""
        return (DEFAULT_RECIPE, *self.recipes)

    def recipe(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(training option overrides, params) of recipe `name`; "default" is ({}, {}).

        Apply them first, then the user's own options on top."""
        if name == DEFAULT_RECIPE:
            return {}, {}
        if name not in self.recipes:
            raise ConfigError(f"model {self.name} has no recipe {name!r}; its recipes: "
                              f"{list(self.recipe_names)}")
        recipe = self.recipes[name]
        return dict(recipe.get("train") or {}), dict(recipe.get("params") or {})

    def recipe_representation(self, name: str) -> dict[str, Any]:
        """The representation options recipe `name` sets (per input / target name for a
        multi-input model), applied under the user's own; {} for "default"."""
        if name == DEFAULT_RECIPE:
            return {}
        self.recipe(name)  # ConfigError for an unknown recipe
        return dict(self.recipes[name].get("representation") or {})


def _one_input(shape: Any) -> tuple[int, ...] | dict[str, tuple[int, ...]]:
    """A per-sample shape, or a mapping per input name; {"input": shape} (one input with
    targets) is the bare shape: such a network takes one positional input."""
    if isinstance(shape, Mapping):
        if list(shape) == ["input"]:
            return tuple(shape["input"])
        return {k: tuple(v) for k, v in shape.items()}
    return tuple(shape)


def _shape_words(shape: Any) -> str:
    """A per-sample shape for listings: "48x48x4", or "apex 64x64x1 + clip 16x64x64x1"."""
    if isinstance(shape, Mapping):
        return " + ".join(f"{name} {_shape_words(s)}" for name, s in shape.items())
    return "x".join(str(d) for d in shape)


def _zeros(shape: tuple[int, ...]) -> torch.Tensor:
    """A batch of 2 zero samples, channels first, for per-sample (channels-last) `shape`."""
    shape = tuple(shape)
    if len(shape) <= 1:
        return torch.zeros((2, *shape))
    return torch.zeros((2, shape[-1], *shape[:-1]))


def _shape_text(shape: Any) -> str:
    if isinstance(shape, Mapping):
        return ", ".join(f"{k} {_shape_text(v)}" for k, v in shape.items())
    return "x".join(map(str, shape))


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


def channel_names(spec: ModelSpec, n_channels: int,
                  channels: tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    """The names of an input's `n_channels` channels: `channels` when given (checked against
    the count), else the model's `input_channels` when their number matches, else None."""
    if channels is not None:
        names = tuple(str(c) for c in channels)
        if len(names) != n_channels or len(set(names)) != len(names):
            raise InputShapeError(f"channels {names} must name each of the inputs' "
                                  f"{n_channels} channel(s) once, in order")
        return names
    if spec.input_channels is not None and len(spec.input_channels) == n_channels:
        return spec.input_channels
    return None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def list_models() -> pd.DataFrame:
    """The registered models: name, kind, representation, input, channels, parameters,
    epochs, recipes, reference, description."""
    _load_builtin_models()
    rows = []
    for spec in MODELS.values():
        parameters = None
        if spec.kind == "torch":
            parameters = count_parameters(spec.build_module(spec.default_input, 3))
        rows.append({
            "name": spec.name,
            "kind": spec.kind,
            "representation": (spec.representation if not spec.inputs else "+".join(
                rep for rep, _ in spec.named_inputs().values())),
            "input": _shape_words(spec.default_input),
            "channels": (",".join(spec.input_channels) if spec.input_channels else
                         "any" if isinstance(spec.default_input, Mapping)
                         or len(spec.default_input) >= 3 else "-"),
            "parameters": parameters,
            "epochs": spec.train.get("epochs") if spec.kind == "torch" else None,
            "recipes": ", ".join(spec.recipe_names),
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
