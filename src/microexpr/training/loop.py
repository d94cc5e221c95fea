"""The one training loop for every torch model: batches, optimiser, schedule, early stopping."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from microexpr.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")
CLASS_BALANCE = ("none", "loss")


@dataclass(frozen=True)
class TrainConfig:
    """Everything the training loop needs; fixed before a fold starts, never tuned on its test.

    `early_stopping` keeps the epoch with the lowest loss on a validation split drawn from the
    training subjects (`val_fraction` of them); without it, exactly `epochs` epochs are run.
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

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}"),
            (self.class_balance in CLASS_BALANCE, f"class_balance must be one of {CLASS_BALANCE}"),
            (0 < self.val_fraction < 1, f"val_fraction must be in (0, 1), got {self.val_fraction}"),
            (self.patience >= 1, f"patience must be >= 1, got {self.patience}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


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


def _lr_factor(config: TrainConfig, epoch: int) -> float:
    if config.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    if config.schedule == "step":
        return 0.1 ** (epoch // max(1, config.epochs // 3))
    return 1.0


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
) -> History:
    """Train `model` on x (N x C x H x W float32), y (N ints); returns the loss history.

    With `validation` (only ever a split of the training subjects) and early stopping, the
    weights of the epoch with the lowest validation loss are restored at the end.
    """
    if config.early_stopping and validation is None:
        raise ConfigError("early stopping needs a validation split of the training subjects")
    model.to(device)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
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
        xv = torch.as_tensor(validation[0], dtype=torch.float32, device=device)
        yv = torch.as_tensor(validation[1], dtype=torch.long, device=device)
    for epoch in range(config.epochs):
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * _lr_factor(config, epoch)
        model.train()
        order = torch.randperm(len(xt), generator=generator).to(device)
        running = 0.0
        for start in range(0, len(order), config.batch_size):
            index = order[start:start + config.batch_size]
            if len(index) < 2 and len(order) > 1:
                continue  # a batch of one breaks batch norm and adds nothing
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[index]), yt[index])
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
    return history


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
