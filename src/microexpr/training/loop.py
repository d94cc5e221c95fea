"""The one training loop for every torch model: batches, optimiser, schedule, class balance,
augmentation, early stopping."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from microexpr.errors import ConfigError
from microexpr.training.augment import augment_batch, check_flip_negate

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")
CLASS_BALANCE = ("none", "loss", "sampler")


@dataclass(frozen=True)
class TrainConfig:
    """Everything the training loop needs; fixed before a fold starts, never tuned on its test.

    `early_stopping` keeps the epoch with the lowest loss on a validation split drawn from the
    training subjects (`val_fraction` of them); without it, exactly `epochs` epochs are run.

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

    Every value is checked on construction (type, then range): a bad one raises a ConfigError
    naming the option, the value and what it must be. Integral floats (40.0) pass as ints
    and numeric strings ("5e-5", which YAML reads as a string) as numbers.
    """

    epochs: int = 40
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

    def __post_init__(self) -> None:
        ints = {"epochs": 1, "batch_size": 1, "patience": 1, "augment_shift": 0,
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
        for name in ("early_stopping", "augment_flip"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise _bad(name, value, "true or false")
            self._set(name, bool(value))
        if self.warmup_epochs >= self.epochs:
            raise _bad("warmup_epochs", self.warmup_epochs,
                       f"an integer in 0..epochs-1 ({self.epochs - 1})")
        self._set("flip_negate", _flip_negate_option(self.flip_negate))

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
    """Per-epoch training loss (and validation loss with early stopping); the epoch kept."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


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
def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  loss_fn: nn.Module, batch_size: int) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        total += float(loss_fn(model(xb), yb)) * len(xb)
    return total / max(1, len(x))


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    *,
    n_classes: int,
    device: torch.device,
    generator: torch.Generator,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    flip_center: np.ndarray | None = None,
) -> History:
    """Train `model` on x (N x C x H x W or N x C x T x H x W float32), y (N ints); returns
    the loss history.

    With `validation` (only ever a split of the training subjects) and early stopping, the
    weights of the epoch with the lowest validation loss are restored at the end. Training
    batches are augmented as the config says; validation batches never are. `flip_center`
    (one value per channel) is where raw zero lies in x's units, so that flipped channels are
    negated exactly: -mean / std for inputs standardised as (raw - mean) / std; None: 0.
    """
    if config.early_stopping and validation is None:
        raise ConfigError("early stopping needs a validation split of the training subjects")
    augmenting = config.augment_shift > 0 or config.augment_flip
    if augmenting and np.ndim(x) not in (4, 5):
        raise ConfigError(f"augment_shift / augment_flip need image inputs (N x C x H x W or "
                          f"N x C x T x H x W), got shape {np.shape(x)}")
    if config.augment_flip:
        check_flip_negate(config.flip_negate, np.shape(x)[1])
    model.to(device=device, memory_format=memory_format(x))
    xt = as_batch_tensor(x, device)
    yt = torch.as_tensor(y, dtype=torch.long, device=device)
    weight = None
    if config.class_balance == "loss":
        weight = torch.as_tensor(class_weights(y, n_classes), dtype=torch.float32, device=device)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimizer = _optimizer(model, config)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    history = History()
    best_state, best_loss, since_best = None, math.inf, 0
    if validation is not None:
        xv = as_batch_tensor(validation[0], device)
        yv = torch.as_tensor(validation[1], dtype=torch.long, device=device)
    for epoch in range(config.epochs):
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * lr_factor(config, epoch)
        model.train()
        if config.class_balance == "sampler":
            order = balanced_order(yt, n_classes, generator).to(device)
        else:
            order = torch.randperm(len(xt), generator=generator).to(device)
        running = 0.0
        for start in range(0, len(order), config.batch_size):
            index = order[start:start + config.batch_size]
            if len(index) < 2 and len(order) > 1:
                continue  # a batch of one breaks batch norm and adds nothing
            optimizer.zero_grad(set_to_none=True)
            xb = xt[index]
            if augmenting:
                xb = augment_batch(xb, shift=config.augment_shift, flip=config.augment_flip,
                                   flip_negate=config.flip_negate, negate_about=flip_center,
                                   generator=generator)
            loss = loss_fn(model(xb), yt[index])
            loss.backward()
            optimizer.step()
            running += float(loss.detach()) * len(index)
        history.train_loss.append(running / len(order))
        if validation is not None:
            val_loss = evaluate_loss(model, xv, yv, loss_fn, config.batch_size)
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
def predict_logits(model: nn.Module, x: np.ndarray, device: torch.device,
                   batch_size: int = 256) -> np.ndarray:
    """Logits for x (N x C x H x W) in eval mode."""
    model.eval()
    model.to(device)
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start:start + batch_size], dtype=torch.float32, device=device)
        out.append(model(xb).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
