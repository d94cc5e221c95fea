"""Transfer learning: pretrain on labelled images, then fine-tune on micro-expressions.

The micro-attention paper's path is generic images -> macro-expressions -> micro-expressions.
Here a model is pretrained on any `class/image` folder (real macro-expression data such as
CK+ or FER-2013 with faces cropped, or the synthetic macro images of
`microexpr.synth.macro.write_macro_images`), saved as an ordinary TorchClassifier file, and
every fold of a micro-expression evaluation starts from those weights::

    microexpr macro-images macro/                  # synthetic macro data (optional)
    microexpr pretrain --images macro/ --model micro_attention --out macro.pt
    microexpr evaluate casme2 --root CASME2 --labels composite3 \\
        --model micro_attention --init macro.pt [--freeze stem]

or from Python::

    from microexpr.training.pretrain import pretrain
    path = pretrain("micro_attention", "macro/", out="macro.pt", epochs=20)
    microexpr.evaluate(data, "micro_attention", init="macro.pt")        # per fold
    # or by hand:
    clf = TorchClassifier("micro_attention", classes, init="macro.pt").fit(x, y)
    clf.transfer                                        # what was loaded / skipped / frozen

Chains work the same way: `pretrain(..., init="generic.pt")` starts the macro pretraining
from generic weights.

What `init` does (`init_from`, called by TorchClassifier.fit right after it builds the
network, before training):

- every layer of the pretrained network whose tensors all match the new network's by name
  and shape is copied (weights, biases, batch-norm statistics); the rest keep their fresh
  initialisation and are listed in `TransferReport.skipped` with the reason (e.g. a
  different number of input channels, or a linear layer sized for another input size). A
  model can tie layers together with a `transfer_units` attribute (Deep-Emotion's
  localisation head `fc_loc`, so that its transform stays the identity unless all of it
  transfers);
- the final classifier layer (the model's `head_name`, else its last nn.Linear) is
  re-initialised unless the pretrained classes are exactly the new classes (in any order:
  rows are then matched by class name). Macro classes (happiness, ...) and micro classes
  (positive, ...) differ, so the head is normally new;
- `freeze` names parameters to keep fixed: "stem" (the model's `stem_names`, else its first
  layer), "backbone" (everything transferred except the head), or name prefixes such as
  "blocks.0". Frozen parameters get requires_grad=False (the training loop optimises only
  the others) and batch-norm layers inside frozen parts keep their running statistics.

The inputs are standardised with the mean and spread of each fine-tuning fold's own training
images, as without transfer; the pretraining statistics are not reused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from microexpr.errors import ConfigError
from microexpr.training.checkpoints import read_checkpoint

FREEZE_WORDS = ("stem", "backbone")


@dataclass(frozen=True)
class InitSpec:
    """Where the pretrained weights are and what to freeze (the `init=` of TorchClassifier)."""

    path: str
    freeze: tuple[str, ...] = ()

    @classmethod
    def of(cls, value: str | Path | Mapping[str, Any] | InitSpec) -> InitSpec:
        """An InitSpec from a path, a mapping {"path": ..., "freeze": [...]}, or an InitSpec."""
        if isinstance(value, InitSpec):
            return value
        if isinstance(value, str | Path):
            return cls(str(value))
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"path", "freeze"})
            if unknown or "path" not in value:
                raise ConfigError(f"init must be a path or a mapping with 'path' (and optionally "
                                  f"'freeze'), got keys {sorted(value)}")
            freeze = value.get("freeze") or ()
            return cls(str(value["path"]), (freeze,) if isinstance(freeze, str)
                       else tuple(str(f) for f in freeze))
        raise ConfigError(f"init must be a path to a saved model, got {type(value).__name__}")

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "freeze": list(self.freeze)}


@dataclass
class TransferReport:
    """What `init_from` did to a network."""

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    head: str = "reinitialised"  # or "transferred"
    frozen: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{len(self.loaded)} tensors loaded from {self.source}, {len(self.skipped)} "
                f"kept new, head {self.head}, {len(self.frozen)} parameters frozen")
        return text


def read_pretrained(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(meta, state_dict) of a torch model file written by TorchClassifier.save."""
    if not Path(path).is_file():
        raise ConfigError(f"no pretrained model at {path}: make one with `microexpr pretrain` "
                          f"(microexpr.training.pretrain.pretrain)")
    checkpoint = read_checkpoint(path)
    if checkpoint.kind != "torch":
        raise ConfigError(f"{path} holds a scikit-learn model: pretrained weights come from a "
                          f"torch model (`microexpr pretrain`)")
    return checkpoint.meta, checkpoint.state_dict


def check_init(init: str | Path | Mapping[str, Any] | InitSpec, model: str) -> InitSpec:
    """Validate `init` for `model` before any work (the file is ours and holds `model`)."""
    spec = InitSpec.of(init)
    if any(not word for word in spec.freeze):
        raise ConfigError("freeze names must not be empty")
    _check_model(read_pretrained(spec.path)[0], spec.path, model)
    return spec


def _check_model(meta: Mapping[str, Any], path: str, model: str) -> None:
    if meta.get("model") != model:
        raise ConfigError(f"{path} holds a pretrained {meta.get('model')!r}, not {model!r}: "
                          f"pretrain the same model (--model {model})")


def head_name(module: nn.Module) -> str:
    """The name of the final classifier layer: the model's `head_name`, else its last Linear."""
    name = getattr(module, "head_name", None)
    if name:
        return str(name)
    linears = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(module).__name__} has no linear layer to treat as the head; "
                          f"give it a `head_name` attribute")
    return linears[-1]


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _freeze_prefixes(module: nn.Module, words: Sequence[str], head: str,
                     loaded_units: Sequence[str]) -> list[str]:
    prefixes: list[str] = []
    for word in words:
        if word == "stem":
            stem = getattr(module, "stem_names", None)
            if stem is None:
                first = next((n for n, m in module.named_modules()
                              if isinstance(m, nn.Conv2d | nn.Conv3d | nn.Linear)), None)
                stem = () if first is None else (first,)
            prefixes.extend(stem)
        elif word == "backbone":
            prefixes.extend(u for u in loaded_units if not _under(u, head))
        else:
            if not any(_under(n, word) for n, _ in module.named_parameters()):
                raise ConfigError(f"freeze {word!r} names no parameter of "
                                  f"{type(module).__name__}; use one of {FREEZE_WORDS} or a "
                                  f"prefix such as {next(iter(dict(module.named_children())))!r}")
            prefixes.append(word)
    return prefixes


def _keep_eval(module: nn.Module, _inputs: Any) -> None:
    module.eval()  # a frozen batch norm keeps its running statistics in training too


def _unit(module: nn.Module, name: str) -> str:
    """The group a tensor transfers with: a prefix of the model's `transfer_units`, else its
    layer (all of a layer's tensors transfer together, or none)."""
    for prefix in getattr(module, "transfer_units", ()):
        if _under(name, prefix):
            return prefix
    return name.rsplit(".", 1)[0] if "." in name else name


def transfer_weights(module: nn.Module, state: Mapping[str, torch.Tensor], *,
                     head_rows: Sequence[int] | None = None,
                     freeze: Sequence[str] = (), source: str = "") -> TransferReport:
    """Copy the layers of `state` that match `module` by name and shape; see the module doc.

    A layer (or a unit of the model's `transfer_units`) is copied whole or not at all: a
    linear layer whose weight no longer fits keeps its fresh bias too. `head_rows`: for each
    output of the new head, the row of the pretrained head to copy (classes matched by name);
    None re-initialises the head (leaves it as built).
    """
    report = TransferReport(source=source)
    head = head_name(module)
    units: dict[str, list[str]] = {}
    for name in module.state_dict():
        units.setdefault(_unit(module, name), []).append(name)
    own = module.state_dict()
    updates: dict[str, torch.Tensor] = {}
    loaded_units = []
    for unit, names in units.items():
        values: dict[str, torch.Tensor] = {}
        reasons: dict[str, str] = {}
        for name in names:
            target = own[name]
            value = state.get(name)
            if value is None:
                reasons[name] = "not in the pretrained model"
                continue
            if _under(name, head):
                if head_rows is None or value.shape[1:] != target.shape[1:]:
                    reasons[name] = "head: new classes"
                    continue
                value = value[list(head_rows)]
            if value.shape != target.shape:
                reasons[name] = (f"shape {tuple(value.shape)} pretrained, "
                                 f"{tuple(target.shape)} here")
                continue
            values[name] = value.to(dtype=target.dtype)
        if reasons:
            for name in names:
                report.skipped[name] = reasons.get(name, f"kept new with the rest of {unit}")
            continue
        updates.update(values)
        report.loaded.extend(names)
        loaded_units.append(unit)
    if not any(not _under(n, head) for n in report.loaded):
        raise ConfigError(f"nothing of {source or 'the pretrained model'} fits "
                          f"{type(module).__name__}: was it pretrained with other params?")
    module.load_state_dict(updates, strict=False)
    report.head = ("transferred" if any(_under(n, head) for n in report.loaded)
                   else "reinitialised")
    prefixes = _freeze_prefixes(module, freeze, head, loaded_units)
    if prefixes:
        fixed = [n for n, _ in module.named_parameters() if any(_under(n, p) for p in prefixes)]
        fresh = [n for n in fixed if n not in report.loaded]
        if fresh:
            raise ConfigError(f"freeze {list(freeze)} would fix layers that were not transferred "
                              f"({', '.join(fresh[:4])}: {report.skipped[fresh[0]]}); freeze "
                              f"less or pretrain with the same input channels and params")
        for name, parameter in module.named_parameters():
            if name in fixed:
                parameter.requires_grad_(False)
                report.frozen.append(name)
        for name, sub in module.named_modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm) and any(
                    _under(name, p) for p in prefixes):
                sub.register_forward_pre_hook(_keep_eval)
    return report


def init_from(classifier: Any, init: str | Path | Mapping[str, Any] | InitSpec, *,
              freeze: Sequence[str] | str | None = None) -> TransferReport:
    """Load pretrained weights into `classifier.module` (built, not yet trained).

    `init` is a file saved by TorchClassifier.save / `pretrain` (or an InitSpec / mapping
    with "path" and "freeze"); `freeze` overrides the spec's. TorchClassifier.fit calls this
    when the classifier was made with `init=`; the report is kept as `classifier.transfer`.
    """
    spec = InitSpec.of(init)
    if freeze is not None:
        spec = InitSpec(spec.path, (freeze,) if isinstance(freeze, str) else tuple(freeze))
    if classifier.module is None:
        raise ConfigError("the classifier has no network yet: pass init=... to TorchClassifier "
                          "and it is applied in fit(), after the network is built")
    meta, state = read_pretrained(spec.path)
    _check_model(meta, spec.path, classifier.spec.name)
    pretrained = [str(c) for c in meta.get("classes", [])]
    rows = None
    if sorted(pretrained) == sorted(classifier.classes):
        rows = [pretrained.index(c) for c in classifier.classes]
    return transfer_weights(classifier.module, state, head_rows=rows, freeze=spec.freeze,
                            source=spec.path)
