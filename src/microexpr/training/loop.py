"""The one training loop for every torch model: batches, optimiser, schedule, class balance,
augmentation, early stopping, objectives with named loss terms.

A sample is a mapping of named arrays (`Samples`): one input ("input") or several named
inputs ("apex", "flow", ...), the label, and optional auxiliary targets. Batches are taken
from host (CPU) tensors at every step and moved to the device, so the whole dataset never has
to fit on the device. A network with one input "input" is called as `model(x)`; one with
several as `model(**inputs)`. It returns logits or a mapping with "logits" and what its
objective needs (`microexpr.training.objectives`).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from microexpr.errors import ConfigError, InputShapeError
from microexpr.training.augment import augment_batch, check_flip_negate
from microexpr.training.device import check_amp, deterministic_mode
from microexpr.training.objectives import Objective, as_outputs, objective_weights

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")
CLASS_BALANCE = ("none", "loss", "sampler")


@dataclass(frozen=True)
class TrainConfig:
    """Everything the training loop needs; fixed before a fold starts, never tuned on its test.

    `early_stopping` keeps the epoch with the lowest loss on a validation split drawn from the
    training subjects (`val_fraction` of them); without it, exactly `epochs` epochs are run.
    `steps` > 0 fixes the number of optimiser steps instead, whatever the fold's size (as
    papers that train "N iterations per left-out subject" do): the epochs are as many as
    the steps need, the last one cut short; schedules run over those epochs.

    `class_balance`: "none"; "loss" weights the cross-entropy by inverse class frequency;
    "sampler" draws each epoch's len(train) samples with replacement, with probability
    inverse to their class's frequency (every class equally often on average).
    `schedule` ("constant", "cosine", "step") runs after `warmup_epochs` epochs of linear
    warm-up (epoch e < w trains at lr * (e + 1) / (w + 1)).
    Augmentation (training batches only, the same transformation for every channel of a
    sample, see `microexpr.training.augment`): `augment_shift` translates by up to that many
    pixels with edge padding, `augment_flip` mirrors half the samples left-right and negates
    the channels named in `flip_negate` (the horizontal flow, "u") of the mirrored ones;
    names absent from the input are not negated (`resolve_flip_indices`). Integers in
    `flip_negate` are read as channel indices, as older configs wrote them.
    `objective` names the loss (`microexpr.training.objectives`: "cross_entropy",
    "deviation_enhanced", "mol", "mimanet"); `loss_weights` overrides the weights of its
    terms by name ({"deviation": 0.0} switches SMA-STN's DE-Loss off: an ablation).
    `amp` trains in mixed precision on a CUDA GPU (float16 autocast, the loss scaled by a
    GradScaler; predictions stay float32); on any other device it is a ConfigError, never a
    silent float32 run. `deterministic` trains with torch's deterministic kernels
    (`microexpr.training.device.deterministic_mode`): the same numbers on the same hardware
    and thread count, slower on a GPU.

    Every value is checked on construction (type, then range): a bad one raises a ConfigError
    naming the option, the value and what it must be. Integral floats (40.0) pass as ints
    and numeric strings ("5e-5", which YAML reads as a string) as numbers.
    """

    epochs: int = 40
    steps: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    schedule: str = "constant"
    class_balance: str = "none"
    early_stopping: bool = False
    patience: int = 10
    val_fraction: float = 0.2
    warmup_epochs: int = 0
    augment_shift: int = 0
    augment_flip: bool = False
    flip_negate: tuple[str, ...] | tuple[int, ...] = ("u",)
    objective: str = "cross_entropy"
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    amp: bool = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        ints = {"epochs": 1, "steps": 0, "batch_size": 1, "patience": 1, "augment_shift": 0,
                "warmup_epochs": 0}
        for name, low in ints.items():
            self._set(name, _int_option(name, getattr(self, name), low))
        self._set("lr", _number_option("lr", self.lr, "a number > 0 (e.g. 1e-3)",
                                       lambda v: v > 0))
        self._set("weight_decay", _number_option("weight_decay", self.weight_decay,
                                                 "a number >= 0", lambda v: v >= 0))
        self._set("val_fraction", _number_option("val_fraction", self.val_fraction,
                                                 "a number in (0, 1)", lambda v: 0 < v < 1))
        for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                              ("class_balance", CLASS_BALANCE)):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in choices:
                raise _bad(name, value, f"one of {', '.join(choices)}")
        for name in ("early_stopping", "augment_flip", "amp", "deterministic"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise _bad(name, value, "true or false")
            self._set(name, bool(value))
        if not self.steps and self.warmup_epochs >= self.epochs:  # steps: epochs_for_steps
            raise _bad("warmup_epochs", self.warmup_epochs,
                       f"an integer in 0..epochs-1 ({self.epochs - 1})")
        self._set("flip_negate", _flip_negate_option(self.flip_negate))
        if not isinstance(self.loss_weights, Mapping):
            raise _bad("loss_weights", self.loss_weights,
                       "a mapping of loss term -> weight, e.g. loss_weights.deviation=0.1")
        objective_weights(self.objective, self.loss_weights)  # names and values checked
        self._set("loss_weights", {str(k): float(v) for k, v in self.loss_weights.items()})

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)


def _bad(name: str, value: object, what: str) -> ConfigError:
    return ConfigError(f"training option {name}={value!r} is invalid: {name} must be {what} "
                       f"(set it with --train-option {name}=VALUE)")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _int_option(name: str, value: object, low: int) -> int:
    """`value` as an int >= low: ints, integral floats (40.0) and integer strings pass."""
    integral_text = isinstance(value, str) and value.strip().lstrip("+-").isdigit()
    integral_float = isinstance(value, float | np.floating) and float(value).is_integer()
    number = int(value) if integral_text or integral_float else value  # type: ignore[arg-type]
    if not _is_int(number) or number < low:
        raise _bad(name, value, f"an integer >= {low}")
    return int(number)


def _number_option(name: str, value: object, what: str, ok) -> float:
    """`value` as a finite float that `ok` accepts: ints, floats and numeric strings pass."""
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _bad(name, value, what) from None
    if (isinstance(number, bool | np.bool_) or
            not isinstance(number, int | float | np.integer | np.floating) or
            not math.isfinite(float(number)) or not ok(float(number))):
        raise _bad(name, value, what)
    return float(number)


def _flip_negate_option(value: object) -> tuple[str, ...] | tuple[int, ...]:
    """Channel names ("u", or "u,magnitude") or, as older configs hold, channel indices."""
    items = value
    if isinstance(value, str):
        items = tuple(v.strip() for v in value.split(",") if v.strip())
    elif _is_int(value):
        items = (value,)
    what = ("channel names, e.g. [u] (or, as in older configs, channel indices >= 0), "
            "distinct, not mixed")
    if not isinstance(items, list | tuple):
        raise _bad("flip_negate", value, what)
    items = tuple(items)
    names = all(isinstance(c, str) and c.strip() for c in items)
    indices = all(_is_int(c) and c >= 0 for c in items)
    if not (names or indices) or len(set(items)) != len(items):
        raise _bad("flip_negate", value, what)
    return tuple(str(c).strip() for c in items) if names and items else tuple(
        int(c) for c in items)


@dataclass
class History:
    """Per epoch: the training loss, each named loss term (training batches), the validation
    loss (with a validation split); and the epoch whose weights were kept."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    terms: dict[str, list[float]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, float]]:
        """One mapping per epoch: epoch (1-based), train_loss, val_loss (when there is a
        validation split) and every loss term; the fold history as a table."""
        out = []
        for i, loss in enumerate(self.train_loss):
            row = {"epoch": i + 1, "train_loss": loss}
            if i < len(self.val_loss):
                row["val_loss"] = self.val_loss[i]
            row |= {name: values[i] for name, values in self.terms.items() if i < len(values)}
            out.append(row)
        return out


Inputs = np.ndarray | Mapping[str, np.ndarray]


class Samples:
    """N samples held on the host: named inputs (channels first), labels and named auxiliary
    targets. `batch(index, device)` gathers a batch and moves it to the device; image inputs
    (N x C x H x W) are kept channels-last, which CPU convolution kernels run faster on."""

    def __init__(self, inputs: Inputs, label: np.ndarray,
                 targets: Mapping[str, np.ndarray] | None = None):
        named = dict(inputs) if isinstance(inputs, Mapping) else {"input": inputs}
        if not named:
            raise ConfigError("a sample needs at least one input")
        self.inputs = {k: as_batch_tensor(v, torch.device("cpu")) for k, v in named.items()}
        self.label = torch.as_tensor(np.asarray(label), dtype=torch.long)
        self.targets = {k: _target_tensor(v) for k, v in (targets or {}).items()}
        clash = sorted(set(self.targets) & ({"label"} | set(self.inputs)))
        if clash:
            raise ConfigError(f"target name(s) {clash} clash with the inputs or 'label'")
        sizes = {k: len(v) for k, v in {**self.inputs, **self.targets}.items()}
        if any(n != len(self.label) for n in sizes.values()):
            raise InputShapeError(f"{len(self.label)} labels but inputs / targets of lengths "
                                  f"{sizes}")

    def __len__(self) -> int:
        return len(self.label)

    @property
    def single(self) -> bool:
        """True when the network takes one positional input (named "input")."""
        return list(self.inputs) == ["input"]

    def batch(self, index: torch.Tensor, device: torch.device) -> dict[str, torch.Tensor]:
        """{input names..., "label", target names...} for samples `index`, on `device`."""
        out = {k: v[index].to(device, non_blocking=True) for k, v in self.inputs.items()}
        out["label"] = self.label[index].to(device, non_blocking=True)
        out |= {k: v[index].to(device, non_blocking=True) for k, v in self.targets.items()}
        return out


def _target_tensor(values: np.ndarray) -> torch.Tensor:
    """Float targets as float32, integer targets as int64 (class indices)."""
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.floating):
        return torch.as_tensor(array, dtype=torch.float32)
    return torch.as_tensor(array, dtype=torch.long)


def forward(model: nn.Module, batch: Mapping[str, torch.Tensor], inputs: list[str]
            ) -> Mapping[str, torch.Tensor]:
    """The network's outputs (a mapping with "logits") on the inputs of `batch`."""
    if inputs == ["input"]:
        return as_outputs(model(batch["input"]))
    return as_outputs(model(**{k: batch[k] for k in inputs}))


FUSED_DEVICES = ("cpu", "cuda")


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser over the trainable parameters, as torch's fused kernel where
    it has one (float parameters on a CPU or CUDA device): one pass over all parameters
    instead of several per tensor, the same update up to rounding (Adam over OFF-ApexNet's
    2.7M parameters took 40% of a training step on the CPU as the per-tensor loop)."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = bool(params) and all(p.is_floating_point() and p.device.type in FUSED_DEVICES
                                 for p in params) or None
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                fused=fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                                 fused=fused)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay,
                           fused=fused)


def lr_factor(config: TrainConfig, epoch: int) -> float:
    """The learning rate of `epoch` (0-based) as a fraction of `config.lr`.

    Linear warm-up over the first `warmup_epochs` epochs ((e + 1) / (warmup + 1)), then the
    schedule over the remaining epochs: constant; cosine from 1 towards 0; step (x0.1 every
    third of them).
    """
    warmup = config.warmup_epochs
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    epoch, total = epoch - warmup, config.epochs - warmup
    if config.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / total))
    if config.schedule == "step":
        return 0.1 ** (epoch // max(1, total // 3))
    return 1.0


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps of one epoch over n samples (a last batch of one is skipped)."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest > 1 or (rest == 1 and n == 1) else 0)


def epochs_for_steps(config: TrainConfig, n: int) -> TrainConfig:
    """`config` with the epochs that `config.steps` optimiser steps take over n samples
    (unchanged when steps is 0)."""
    if not config.steps:
        return config
    epochs = math.ceil(config.steps / max(steps_per_epoch(n, config.batch_size), 1))
    if config.warmup_epochs >= epochs:
        raise ConfigError(f"steps={config.steps} over {n} training samples make {epochs} "
                          f"epoch(s), no more than warmup_epochs={config.warmup_epochs}: "
                          f"lower warmup_epochs or raise steps")
    return replace(config, epochs=epochs)


def balanced_order(y: torch.Tensor, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """len(y) sample indices drawn with replacement, each with probability inverse to its
    class's frequency: every present class is drawn equally often on average."""
    counts = torch.bincount(y.cpu(), minlength=n_classes).double()
    weights = 1.0 / counts.clamp(min=1)
    return torch.multinomial(weights[y.cpu()], len(y), replacement=True, generator=generator)


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights (n / (k * count)); absent classes get weight 0."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.zeros(n_classes)
    present = counts > 0
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights


@torch.no_grad()
def evaluate_loss(model: nn.Module, samples: Samples, objective: Objective, batch_size: int,
                  device: torch.device, amp: bool = False) -> float:
    """The objective's mean total loss over `samples` in eval mode (no augmentation), in
    mixed precision with `amp` (CUDA)."""
    model.eval()
    total = 0.0
    names = list(samples.inputs)
    for start in range(0, len(samples), batch_size):
        index = torch.arange(start, min(start + batch_size, len(samples)))
        batch = samples.batch(index, device)
        with _autocast(amp, device):
            loss, _ = objective(forward(model, batch, names), batch)
        total += float(loss) * len(index)
    return total / max(1, len(samples))


def _autocast(amp: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA when `amp`, else nothing (float32)."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def _grad_scaler(amp: bool, device: torch.device) -> Any:
    """The GradScaler of mixed-precision training (a pass-through one without `amp`)."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=amp)
    return torch.cuda.amp.GradScaler(enabled=amp)  # torch < 2.3


def _augment(batch: dict[str, torch.Tensor], names: list[str], config: TrainConfig,
             negate: Mapping[str, Any], centers: Mapping[str, Any],
             generator: torch.Generator) -> None:
    """Augment every image input of `batch` in place, all with the same random draws (a
    sample's inputs stay registered with each other); a flip negates channels `negate[name]`
    of input `name` about `centers[name]`."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if len(names) > 1 else 0
    for name in names:
        draws = generator if len(names) == 1 else torch.Generator().manual_seed(seed)
        batch[name] = augment_batch(batch[name], shift=config.augment_shift,
                                    flip=config.augment_flip,
                                    flip_negate=tuple(negate.get(name, ())),
                                    negate_about=centers.get(name), generator=draws)


def train(
    model: nn.Module,
    x: Inputs,
    y: np.ndarray,
    config: TrainConfig,
    *,
    n_classes: int,
    device: torch.device,
    generator: torch.Generator,
    validation: tuple[Any, ...] | None = None,
    flip_center: np.ndarray | Mapping[str, np.ndarray] | None = None,
    targets: Mapping[str, np.ndarray] | None = None,
    flip_negate: Mapping[str, tuple[int, ...]] | None = None,
) -> History:
    """Train `model` on x and labels y (N ints); returns the loss history.

    x is one array (N x C x H x W or N x C x T x H x W float32, channels first) or a mapping
    of named input arrays; `targets` are named auxiliary targets (N x ...) the objective
    reads from the batch. With `validation` ((x, y) or (x, y, targets), only ever a split of
    the training subjects) and early stopping, the weights of the epoch with the lowest
    validation loss are restored at the end. Training batches are augmented as the config
    says (every image input of a sample with the same transformation); validation batches
    never are. `flip_center` (one value per channel, or a mapping input name -> values) is
    where raw zero lies in x's units, so that flipped channels are negated exactly: -mean /
    std for inputs standardised as (raw - mean) / std; None: 0. A flip negates the channel
    indices `config.flip_negate` of a single input; with several inputs, `flip_negate` maps
    each input's name to its own indices (inputs not named: nothing negated).

    Batches are gathered from the host arrays and moved to `device` at every step. With
    `config.amp` (CUDA only: ConfigError on another device) the forward pass and the loss
    run under float16 autocast and the loss is scaled by a GradScaler; with
    `config.deterministic` training runs in `deterministic_mode`.
    """
    if config.early_stopping and validation is None:
        raise ConfigError("early stopping needs a validation split of the training subjects")
    check_amp(config.amp, device)
    samples = Samples(x, y, targets)
    names = list(samples.inputs)
    augmenting = config.augment_shift > 0 or config.augment_flip
    if augmenting:
        if samples.targets:
            raise ConfigError(f"augment_shift / augment_flip do not transform the auxiliary "
                              f"targets {sorted(samples.targets)}: set augment_shift=0 and "
                              f"augment_flip=false for this model")
        for name, tensor in samples.inputs.items():
            if tensor.ndim not in (4, 5):
                raise ConfigError(f"augment_shift / augment_flip need image inputs (N x C x H "
                                  f"x W or N x C x T x H x W), got shape {tuple(tensor.shape)} "
                                  f"for input {name!r}")
    if samples.single:
        centers = {"input": flip_center} if flip_center is not None else {}
        negate = dict(flip_negate) if flip_negate is not None else {"input": config.flip_negate}
    else:
        centers, negate = dict(flip_center or {}), dict(flip_negate or {})
    if config.augment_flip:
        for name, indices in negate.items():
            if name not in samples.inputs:
                raise ConfigError(f"flip_negate names input {name!r}, which is not among the "
                                  f"inputs {names}")
            check_flip_negate(indices, samples.inputs[name].shape[1])
    model.to(device=device, memory_format=memory_format(samples.inputs[names[0]]))
    weight = None
    if config.class_balance == "loss":
        weight = torch.as_tensor(class_weights(np.asarray(y), n_classes), dtype=torch.float32,
                                 device=device)
    objective = Objective(config.objective, config.loss_weights, class_weight=weight)
    optimizer = make_optimizer(model, config)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    history = History()
    best_state, best_loss, since_best = None, math.inf, 0
    held_out = Samples(*validation) if validation is not None else None
    config = epochs_for_steps(config, len(samples))
    steps_left = config.steps or math.inf
    scaler = _grad_scaler(config.amp, device)
    with deterministic_mode(config.deterministic, device):
        for epoch in range(config.epochs):
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * lr_factor(config, epoch)
            model.train()
            if config.class_balance == "sampler":
                order = balanced_order(samples.label, n_classes, generator)
            else:
                order = torch.randperm(len(samples), generator=generator)
            running, seen = 0.0, 0
            term_sums: dict[str, float] = {}
            for start in range(0, len(order), config.batch_size):
                index = order[start:start + config.batch_size]
                if len(index) < 2 and len(order) > 1:
                    continue  # a batch of one breaks batch norm and adds nothing
                if steps_left <= 0:
                    break
                steps_left -= 1
                seen += len(index)
                optimizer.zero_grad(set_to_none=True)
                batch = samples.batch(index, device)
                if augmenting:
                    _augment(batch, names, config, negate, centers, generator)
                with _autocast(config.amp, device):
                    loss, terms = objective(forward(model, batch, names), batch)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                running += float(loss.detach()) * len(index)
                for term, value in terms.items():
                    term_sums[term] = term_sums.get(term, 0.0) + float(value.detach()) * len(index)
            history.train_loss.append(running / max(seen, 1))
            for term, total in term_sums.items():
                history.terms.setdefault(term, []).append(total / max(seen, 1))
            if held_out is not None:
                val_loss = evaluate_loss(model, held_out, objective, config.batch_size, device,
                                         config.amp)
                history.val_loss.append(val_loss)
                if val_loss < best_loss - 1e-6:
                    best_loss, since_best, history.best_epoch = val_loss, 0, epoch + 1
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    since_best += 1
                    if config.early_stopping and since_best >= config.patience:
                        break
            else:
                history.best_epoch = epoch + 1
    if config.early_stopping and best_state is not None:
        model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)  # as built: saved and reloaded alike
    return history


def memory_format(x: np.ndarray | torch.Tensor) -> torch.memory_format:
    """Channels-last for image batches (N x C x H x W): the same arithmetic as the default
    layout, with CPU convolution, batch norm and pooling kernels about 1.5x faster on it."""
    return torch.channels_last if np.ndim(x) == 4 else torch.preserve_format


def as_batch_tensor(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """x as a float32 tensor on `device`, image batches in channels-last layout."""
    tensor = torch.as_tensor(x, dtype=torch.float32, device=device)
    if tensor.ndim == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor


@torch.no_grad()
def predict_outputs(model: nn.Module, x: Inputs, device: torch.device,
                    batch_size: int = 256) -> dict[str, np.ndarray]:
    """Every output of the network (logits and whatever else it returns) for x (one array or
    a mapping of named inputs, channels first) in eval mode, as float numpy arrays."""
    model.eval()
    model.to(device)
    samples = Samples(x, np.zeros(len(next(iter(x.values())) if isinstance(x, Mapping)
                                      else x), dtype=np.int64))
    names = list(samples.inputs)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(samples), batch_size):
        index = torch.arange(start, min(start + batch_size, len(samples)))
        for key, value in forward(model, samples.batch(index, device), names).items():
            parts.setdefault(key, []).append(value.float().cpu().numpy())
    if not parts:
        return {"logits": np.zeros((0, 0), dtype=np.float32)}
    return {key: np.concatenate(values) for key, values in parts.items()}


def predict_logits(model: nn.Module, x: Inputs, device: torch.device,
                   batch_size: int = 256) -> np.ndarray:
    """Logits for x (one array N x C x H x W or a mapping of named inputs) in eval mode."""
    return predict_outputs(model, x, device, batch_size)["logits"]
