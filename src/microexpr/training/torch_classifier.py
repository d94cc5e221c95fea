"""TorchClassifier: a registered torch model behind fit / predict_proba / save / load."""

from __future__ import annotations

from collections.abc import Mapping
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
from microexpr.training.checkpoints import read_checkpoint, write_checkpoint
from microexpr.training.device import resolve_device, seed_everything
from microexpr.training.inputs import InputRecipe
from microexpr.training.loop import History, TrainConfig, predict_outputs, train
from microexpr.training.recipes import make_train_config

SINGLE = "input"  # the name of the one input of a single-input model


def split_subjects(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the samples whose subject falls in a seeded validation draw."""
    subjects = np.array(sorted(set(groups)))
    if len(subjects) < 2:
        raise ConfigError("early stopping needs at least 2 training subjects to hold one out")
    rng = np.random.default_rng(seed)
    n_val = min(len(subjects) - 1, max(1, round(fraction * len(subjects))))
    chosen = rng.choice(subjects, size=n_val, replace=False)
    return np.isin(groups, chosen)


def _named(x: Any) -> dict[str, np.ndarray]:
    """Inputs as {name: float32 array}: one array is the single input "input"."""
    if isinstance(x, Mapping):
        if not x:
            raise InputShapeError("no inputs given: pass an array or a mapping of named arrays")
        return {str(k): np.asarray(v, dtype=np.float32) for k, v in x.items()}
    return {SINGLE: np.asarray(x, dtype=np.float32)}


def _plain(values: dict[str, Any], names: list[str]) -> Any:
    """A per-input mapping as the user gave it: the bare value for a single input."""
    return values[SINGLE] if names == [SINGLE] else values


def probabilities(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Class probabilities (softmax of the logits) from `predict_outputs`' result."""
    return torch.softmax(torch.from_numpy(outputs["logits"]), dim=1).numpy()


class TorchClassifier:
    """A registered torch model trained by the one training loop (scikit-learn style).

    Inputs are channels-last float arrays (N x H x W x C, N x T x H x W x C, ... as
    representations produce them): one array, or a mapping of named arrays for a model with
    several inputs (its network is then called with them as keyword arguments). Each channel
    of each input is standardised with the mean and spread of the training inputs only.
    `classes` fixes the class order of `predict_proba`'s columns. `channels` (set by `fit`)
    names the input's channels (a mapping per input name for several inputs), None when
    unknown; it decides which channels a flip negates (TrainConfig.flip_negate) and is saved
    with the model. `input_shape`, `mean` and `std` are per input in the same way.

    `input_recipe` (an `InputRecipe`, saved with the model) says how its inputs are computed
    from clips-table rows (`microexpr.training.inputs.model_inputs`): set by `evaluate` and
    `microexpr.train`, None for a model fit on arrays by hand. `training_info` is the
    configuration `microexpr.train` recorded (data, classes, counts, options), also saved.
    """

    def __init__(self, model: str | ModelSpec, classes: tuple[str, ...] | list[str], *,
                 train_config: TrainConfig | dict | None = None,
                 params: dict[str, Any] | None = None, seed: int = 0,
                 device: str | None = None, init: Any = None, guide: Any = None):
        self.spec = get_model_spec(model) if isinstance(model, str) else model
        self.classes = tuple(str(c) for c in classes)
        if len(self.classes) < 2:
            raise ConfigError(f"need at least 2 classes, got {self.classes}")
        self.train_config = make_train_config(self.spec, train_config)
        params = dict(params or {})
        checked = self.spec.check_params(params)  # types and ranges, before any work
        self.params = {key: checked[key] for key in params}
        self.seed = seed
        self.device = resolve_device(device)
        self.module: torch.nn.Module | None = None
        self.input_names: list[str] = [SINGLE]
        self.input_shape: Any = None
        self.channels: Any = None
        self.mean: Any = None
        self.std: Any = None
        self.history = History()
        # Pretrained weights loaded into each new network in fit(): a path saved by `save`
        # or a microexpr.training.transfer.InitSpec / {"path", "freeze"} mapping.
        self.init = init
        self.transfer = None  # the TransferReport of the latest fit with `init`
        # Data a network's `attach_guide` takes before training, not saved with the model:
        # a microexpr.training.guidance.Guide (mimanet: the trained MaNet and macro data).
        self.guide = guide
        self.input_recipe: InputRecipe | None = None
        self.training_info: dict[str, Any] | None = None

    # -- inputs ---------------------------------------------------------------------------
    def _encode(self, y) -> np.ndarray:
        return encode_labels(y, self.classes)

    def _per_input(self, value: Any) -> dict[str, Any]:
        return {SINGLE: value} if self.input_names == [SINGLE] else dict(value)

    def _prepare(self, x: Any) -> dict[str, np.ndarray]:
        """Standardised, channels-first copies of the inputs, checked against training."""
        named = _named(x)
        if sorted(named) != sorted(self.input_names):
            raise InputShapeError(f"{self.spec.name} was trained on inputs {self.input_names} "
                                  f"but got {sorted(named)}")
        shapes, means, stds = (self._per_input(v) for v in (self.input_shape, self.mean,
                                                             self.std))
        out = {}
        for name in self.input_names:
            array = named[name]
            if array.shape[1:] != tuple(shapes[name]):
                what = "" if name == SINGLE else f" {name!r}"
                raise InputShapeError(
                    f"{self.spec.name} was trained on inputs{what} of shape "
                    f"{tuple(shapes[name])} but got {array.shape[1:]}; compute the "
                    f"representation with the same config")
            array = (array - means[name]) / stds[name]
            out[name] = np.ascontiguousarray(np.moveaxis(array, -1, 1))  # channels first
        return out

    def _model_input(self, prepared: dict[str, np.ndarray]) -> Any:
        return prepared[SINGLE] if self.input_names == [SINGLE] else prepared

    def network_inputs(self, x: Any) -> Any:
        """x as the network takes it: standardised with the training statistics, channels
        first (one array, or a mapping per input name)."""
        if self.module is None:
            raise ConfigError("the classifier is not trained: call fit() or load() first")
        return self._model_input(self._prepare(x))

    # -- estimator API ----------------------------------------------------------------------
    def fit(self, x: Any, y: np.ndarray | list, groups: np.ndarray | None = None,
            channels: Any = None, targets: Mapping[str, np.ndarray] | None = None
            ) -> TorchClassifier:
        """Train on x (N x H x W x C, or a mapping of named such arrays) and labels y; groups
        (subjects) feed early stopping; `targets` are named auxiliary targets (N x ...) for
        objectives that use them. A network with an `init_from_targets(targets, input_shape)`
        method is handed the training targets before its first step (MOL starts its landmark
        head at their mean shape), unless `init` loaded pretrained weights.

        `channels` names x's channels (last axis), e.g. ("u", "v", "strain"), or per input
        name; without it the model's `input_channels` are assumed when their number matches.
        A flip augmentation negates the channels named in `flip_negate` that x has
        (`resolve_flip_indices`). x is used in its own channel order: `spec.select_channels`
        picks the model's."""
        named = _named(x)
        names = list(named)
        per_channels = ({SINGLE: channels} if names == [SINGLE] else dict(channels or {}))
        unknown = sorted(set(per_channels) - set(names))
        if unknown:
            raise InputShapeError(f"channels given for {unknown}, which are not among the "
                                  f"inputs {names}")
        for name, array in named.items():
            if names == [SINGLE]:  # a multi-input network checks its shapes when built
                self.spec.check_input(array.shape)
            if len(array) != len(y):
                raise InputShapeError(f"{len(array)} inputs {name!r} but {len(y)} labels")
            if not np.isfinite(array).all():
                raise InputShapeError(f"inputs {name!r} contain NaN or infinite values")
        self.input_names = names
        chans = {n: channel_names(self.spec, named[n].shape[-1], per_channels.get(n))
                 for n in names}
        flips = {n: resolve_flip_indices(self.train_config.flip_negate, chans[n])
                 for n in names}
        config = self.train_config
        if names == [SINGLE]:
            config = replace(config, flip_negate=flips[SINGLE])
        y_idx = self._encode(y)
        axes = {n: tuple(range(named[n].ndim - 1)) for n in names}  # all but the channels
        self.channels = _plain(chans, names)
        self.input_shape = _plain({n: tuple(named[n].shape[1:]) for n in names}, names)
        self.mean = _plain({n: named[n].mean(axis=axes[n]).astype(np.float32) for n in names},
                           names)
        self.std = _plain({n: (named[n].std(axis=axes[n]) + 1e-6).astype(np.float32)
                           for n in names}, names)
        generator = seed_everything(self.seed)
        self.module = self.spec.build_module(self.input_shape, len(self.classes),
                                             **self.params)
        if self.init is not None:
            from microexpr.training.transfer import init_from

            self.transfer = init_from(self, self.init)
        targets = {k: np.asarray(v) for k, v in (targets or {}).items()}
        for name, values in targets.items():
            if len(values) != len(y):
                raise InputShapeError(f"{len(values)} targets {name!r} but {len(y)} labels")
        validation = None
        train_mask = np.ones(len(y_idx), dtype=bool)
        if config.early_stopping:
            if groups is None:
                raise ConfigError("early stopping needs groups (the subject of each sample)")
            val_mask = split_subjects(np.asarray(groups), config.val_fraction, self.seed)
            train_mask = ~val_mask
            validation = (self._model_input(self._prepare(
                {n: a[val_mask] for n, a in named.items()} if names != [SINGLE]
                else named[SINGLE][val_mask])), y_idx[val_mask],
                {k: v[val_mask] for k, v in targets.items()})
        train_x = {n: a[train_mask] for n, a in named.items()} if names != [SINGLE] \
            else named[SINGLE][train_mask]
        train_targets = {k: v[train_mask] for k, v in targets.items()}
        start = getattr(self.module, "init_from_targets", None)
        if callable(start) and train_targets and self.init is None:
            start(train_targets, self.input_shape)  # a data-dependent start (MOL's mean shape)
        self._attach_guide()
        means, stds = self._per_input(self.mean), self._per_input(self.std)
        centers = {n: -means[n] / stds[n] for n in names}  # raw 0 after standardising
        self.history = train(
            self.module, self._model_input(self._prepare(train_x)), y_idx[train_mask], config,
            n_classes=len(self.classes), device=self.device, generator=generator,
            validation=validation, targets=train_targets,
            flip_center=_plain(centers, names),
            flip_negate=None if names == [SINGLE] else flips)
        return self

    def _attach_guide(self) -> None:
        """Hand `guide` to the network (`attach_guide`); ConfigError when the network needs
        one and none was given, or was given one it cannot take."""
        attach = getattr(self.module, "attach_guide", None)
        if self.guide is None:
            if getattr(self.module, "needs_guide", False):
                raise ConfigError(
                    f"{self.spec.name} trains under the guidance of a network trained on "
                    f"macro-expressions: evaluate it with macro data (evaluate(..., "
                    f"macro='ck+=/data/CK+') or --macro; synthetic: microexpr synth DIR "
                    f"--macro), or pass guide= (microexpr.training.guidance.train_guide), or "
                    f"set the param guidance=false")
            return
        if not callable(attach):
            raise ConfigError(f"{self.spec.name} takes no guide (macro data): drop it")
        attach(**self.guide.attach_arguments(self.classes))

    def predict_outputs(self, x: Any) -> dict[str, np.ndarray]:
        """Everything the network returns for x (eval mode): "logits" and, for models that
        return more, their other outputs (SMA-STN's "segment_weights", ...)."""
        if self.module is None:
            raise ConfigError("the classifier is not trained: call fit() or load() first")
        return predict_outputs(self.module, self._model_input(self._prepare(x)), self.device)

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities, N x len(classes), columns in `classes` order."""
        return probabilities(self.predict_outputs(x))

    def predict(self, x: Any) -> np.ndarray:
        return np.array(self.classes)[self.predict_proba(x).argmax(axis=1)]

    @property
    def n_parameters(self) -> int:
        return count_parameters(self.module) if self.module is not None else 0

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Save weights with everything needed to rebuild them (model, params, classes, stats)
        and to compute their inputs for new clips (`input_recipe`); written atomically."""
        if self.module is None:
            raise ConfigError("nothing to save: the classifier is not trained")
        meta = {
            "model": self.spec.name, "classes": self.classes, "params": self.params,
            "train_config": asdict(self.train_config), "seed": self.seed,
            "inputs": None if self.input_names == [SINGLE] else self.input_names,
            "input_shape": self.input_shape, "channels": self.channels,
            "input_recipe": None if self.input_recipe is None else self.input_recipe.to_dict(),
            "training_info": self.training_info,
        }
        return write_checkpoint(path, meta, self.module.state_dict(),
                                {"mean": self.mean, "std": self.std})

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> TorchClassifier:
        """Rebuild a classifier saved by `save`."""
        checkpoint = read_checkpoint(path)
        meta = checkpoint.meta
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["params"].items()}
        model = cls(meta["model"], meta["classes"], train_config=meta["train_config"],
                    params=params, seed=meta["seed"], device=device)
        names = meta.get("inputs") or [SINGLE]
        model.input_names = list(names)

        def tupled(value: Any) -> Any:
            return None if value is None else tuple(value)

        shape, chans = meta["input_shape"], meta.get("channels")  # no channels: older files
        if names == [SINGLE]:
            model.input_shape, model.channels = tuple(shape), tupled(chans)
        else:
            model.input_shape = {n: tuple(shape[n]) for n in names}
            model.channels = {n: tupled((chans or {}).get(n)) for n in names}
        model.module = model.spec.build_module(model.input_shape, len(model.classes),
                                               **params)
        model.module.load_state_dict(checkpoint.state_dict)
        model.module.to(model.device)  # where fit() leaves it: callers may use it directly
        model.mean, model.std = checkpoint.arrays["mean"], checkpoint.arrays["std"]
        recipe = meta.get("input_recipe")  # absent from files saved before input recipes
        model.input_recipe = None if recipe is None else InputRecipe.from_dict(recipe, str(path))
        model.training_info = meta.get("training_info")
        return model
