"""Pretraining: train a model on a `class/image` folder and save it, for the transfer path of
`microexpr.training.transfer` (`microexpr pretrain` on the command line)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from microexpr.errors import ConfigError
from microexpr.training.transfer import InitSpec, check_init


def pretrain(
    model_name: str,
    images: str | Path,
    *,
    size: int | None = None,
    color: bool | None = None,
    epochs: int | None = None,
    seed: int = 0,
    out: str | Path = "pretrained.pt",
    train: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    device: str | None = None,
    init: str | Path | Mapping[str, Any] | InitSpec | None = None,
) -> Path:
    """Train `model_name` on a `class/image` folder and save it to `out`; return the path.

    `size` and `color` default to the model's representation config (so the pretrained
    network sees images like the apex frames it is fine-tuned on); `epochs`, `train` and
    `params` as for evaluation (the model's defaults otherwise); `init` starts from another
    pretrained file. With early stopping (`train={"early_stopping": True}`) each image counts
    as its own group for the validation split.
    """
    from microexpr.data.image_folder import read_image_folder
    from microexpr.models.registry import get_model_spec
    from microexpr.training.torch_classifier import TorchClassifier

    spec = get_model_spec(model_name)
    if spec.kind != "torch":
        raise ConfigError(f"{model_name} is a scikit-learn model: only torch models can be "
                          f"pretrained")
    if size is None:
        size = int(spec.representation_config.get("size", spec.default_input[0]))
    if color is None:
        color = bool(spec.representation_config.get("color", False))
    if init is not None:
        check_init(init, spec.name)
    x, labels, classes = read_image_folder(images, size, color=color)
    overrides = dict(train or {})
    if epochs is not None:
        overrides["epochs"] = epochs
    classifier = TorchClassifier(spec, classes, train_config=overrides, params=dict(params or {}),
                                 seed=seed, device=device, init=init)
    classifier.fit(x, labels, groups=np.arange(len(x)).astype(str))
    return classifier.save(out)
