"""The estimators: one way to get a trainable classifier for any registered model, and to
load a saved one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from microexpr.errors import ConfigError
from microexpr.models.registry import ModelSpec, get_model_spec


def make_classifier(model: str | ModelSpec, classes, *, train_config: Any = None,
                    params: dict | None = None, seed: int = 0, device: str | None = None,
                    init: Any = None, guide: Any = None):
    """A TorchClassifier or SklearnClassifier for `model`, per its registry kind; `init`
    (pretrained weights, torch models only) is loaded into each new network before training,
    `guide` (a `microexpr.training.guidance.Guide`: mimanet's MaNet and macro data) handed
    to it."""
    spec = get_model_spec(model) if isinstance(model, str) else model
    if spec.kind == "torch":
        from microexpr.training.torch_classifier import TorchClassifier

        return TorchClassifier(spec, classes, train_config=train_config, params=params,
                               seed=seed, device=device, init=init, guide=guide)
    if init is not None or guide is not None:
        raise ConfigError(f"{spec.name} is a scikit-learn model: pretrained weights (init) and "
                          f"macro guidance need a torch model")
    from microexpr.training.sklearn_classifier import SklearnClassifier

    return SklearnClassifier(spec, classes, params=params, seed=seed)


def load_model(path: str | Path, device: str | None = None):
    """Load a classifier saved by `.save()` (torch or scikit-learn), or a model exported to
    ONNX (`microexpr export`; a path ending in .onnx) as an `OnnxClassifier`."""
    if Path(path).suffix.lower() == ".onnx":
        from microexpr.training.export import OnnxClassifier

        return OnnxClassifier.load(path, device=device)
    from microexpr.training.checkpoints import checkpoint_kind

    if checkpoint_kind(path) == "torch":
        from microexpr.training.torch_classifier import TorchClassifier

        return TorchClassifier.load(path, device=device)
    from microexpr.training.sklearn_classifier import SklearnClassifier

    return SklearnClassifier.load(path)
