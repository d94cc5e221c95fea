"""Training objectives: (model outputs, batch) -> (loss, named loss terms).

An objective is a weighted sum of named terms. Cross-entropy (class-balanced or not) is one
objective; `deviation_enhanced` adds SMA-STN's feature-level DE-Loss to it. The training
loop logs every term per epoch (`History.terms`), so a run shows what each part of the loss
did. `TrainConfig.objective` names the objective and `TrainConfig.loss_weights` overrides
the weights of its terms by name (a weight of 0 switches a term off: an ablation).

Outputs are a mapping with "logits" and whatever else the network returns ("features", ...);
a network that returns a tensor is read as {"logits": tensor} (`as_outputs`). A batch is a
mapping of tensors: the inputs by name, "label", and any auxiliary targets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from microexpr.errors import ConfigError

Terms = dict[str, torch.Tensor]


def as_outputs(out: torch.Tensor | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """A network's return value as a mapping with "logits"."""
    if isinstance(out, Mapping):
        if "logits" not in out:
            raise ConfigError(f"the network returned a mapping without 'logits' (keys "
                              f"{sorted(out)}): a model returns logits or a mapping with them")
        return out
    return {"logits": out}


Term = Callable[[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]],
                torch.Tensor | None]


def _cross_entropy(class_weight: torch.Tensor | None) -> Term:
    loss = nn.CrossEntropyLoss(weight=class_weight)
    return lambda outputs, batch: loss(outputs["logits"], batch["label"])


def _deviation(class_weight: torch.Tensor | None) -> Term:
    from microexpr.training.losses import deviation_enhancement_loss

    return lambda outputs, batch: deviation_enhancement_loss(outputs["features"].flatten(1),
                                                              batch["label"])


def _flow(class_weight: torch.Tensor | None) -> Term:
    """MSE of the predicted flows against the batch's "flow" target (cropped as the network
    cropped its input); None when the network has no flow head."""
    from microexpr.training.losses import flow_mse

    def term(outputs, batch):
        if "flow" not in outputs:
            return None
        return flow_mse(outputs["flow"], batch["flow"], _offsets(outputs))
    return term


def _landmarks(class_weight: torch.Tensor | None) -> Term:
    """MOL's inter-ocular-normalised L1 against the batch's "landmarks" target; None when the
    network has no landmark head."""
    from microexpr.training.losses import landmark_l1

    def term(outputs, batch):
        if "landmarks" not in outputs:
            return None
        return landmark_l1(outputs["landmarks"], batch["landmarks"], _offsets(outputs))
    return term


def _domain(class_weight: torch.Tensor | None) -> Term:
    """MiMaNet's domain discriminator: binary cross-entropy of "domain_logits" against
    "domain_labels" (micro 0, macro 1); None without them (no guidance, evaluation)."""
    def term(outputs, batch):
        if "domain_logits" not in outputs:
            return None
        return nn.functional.binary_cross_entropy_with_logits(outputs["domain_logits"],
                                                              outputs["domain_labels"])
    return term


def _relation(class_weight: torch.Tensor | None) -> Term:
    """MiMaNet's relation classifier: cross-entropy of "relation_logits" against the
    sampling-interval classes "relation_labels"; None without them."""
    def term(outputs, batch):
        if "relation_logits" not in outputs:
            return None
        return nn.functional.cross_entropy(outputs["relation_logits"],
                                           outputs["relation_labels"])
    return term


def _contrastive(class_weight: torch.Tensor | None) -> Term:
    """MiMaNet's cross-domain contrastive loss between "micro_features" (labels: the
    batch's) and "macro_features" ("macro_labels"); None without them."""
    from microexpr.training.losses import cross_domain_contrastive_loss

    def term(outputs, batch):
        if "macro_features" not in outputs:
            return None
        return cross_domain_contrastive_loss(outputs["micro_features"], batch["label"],
                                             outputs["macro_features"],
                                             outputs["macro_labels"])
    return term


def _offsets(outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    if "crop_offsets" in outputs:
        return outputs["crop_offsets"]
    n = outputs["logits"].shape[0]
    return torch.zeros((n, 2), dtype=torch.long, device=outputs["logits"].device)


# Loss terms by name: each a factory (class weights or None) -> term(outputs, batch); a term
# may return None when the network does not compute what it needs (an ablated head).
TERMS: dict[str, Callable[[torch.Tensor | None], Term]] = {
    "cross_entropy": _cross_entropy,
    "deviation": _deviation,
    "flow": _flow,
    "landmarks": _landmarks,
    "domain": _domain,
    "relation": _relation,
    "contrastive": _contrastive,
}


@dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: its terms (names in TERMS) with their default weights, the
    model outputs it needs besides the logits, and a short description. Terms read the
    batch too: auxiliary targets are there by the name the model spec gives them."""

    name: str
    weights: Mapping[str, float]
    needs: tuple[str, ...]
    description: str


OBJECTIVES: dict[str, ObjectiveSpec] = {
    "cross_entropy": ObjectiveSpec(
        "cross_entropy", {"cross_entropy": 1.0}, (),
        "cross-entropy on the logits (inverse-frequency class weights with "
        "class_balance=loss)"),
    "deviation_enhanced": ObjectiveSpec(
        "deviation_enhanced", {"cross_entropy": 1.0, "deviation": 0.1}, ("features",),
        "cross-entropy + weight x deviation-enhancement loss on the model's 'features' "
        "(SMA-STN's DE-Loss, see microexpr.training.losses)"),
    "mol": ObjectiveSpec(
        "mol", {"cross_entropy": 1.0, "flow": 10.0, "landmarks": 0.1}, (),
        "MOL's joint loss: cross-entropy + 10 x flow MSE + 0.1 x landmark L1 / inter-ocular "
        "distance, on the targets 'flow' and 'landmarks' (a term whose head the network "
        "lacks is skipped)"),
    "mimanet": ObjectiveSpec(
        "mimanet", {"cross_entropy": 1.0, "domain": 0.1, "relation": 0.1,
                    "contrastive": 0.1}, (),
        "MiMaNet's fine-tuning loss: cross-entropy + 0.1 x domain discriminator (behind a "
        "gradient reversal) + 0.1 x sampling-interval relation + 0.1 x cross-domain "
        "contrastive; the guidance terms exist in training with MaNet attached only"),
}


def objective_weights(name: str, overrides: Mapping[str, object] | None = None
                      ) -> dict[str, float]:
    """The term weights of objective `name` with `overrides` applied; ConfigError naming an
    unknown objective, an unknown term or a bad weight."""
    if not isinstance(name, str) or name not in OBJECTIVES:
        raise ConfigError(f"training option objective={name!r} is not valid: it must be one "
                          f"of {', '.join(OBJECTIVES)}")
    weights = dict(OBJECTIVES[name].weights)
    for term, value in (overrides or {}).items():
        if term not in weights:
            raise ConfigError(f"training option loss_weights names term {term!r}, which "
                              f"objective {name!r} does not have; its terms: "
                              f"{', '.join(weights)}")
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not number >= 0:
            raise ConfigError(f"training option loss_weights.{term}={value!r} is not valid: "
                              f"it must be a number >= 0 (0 switches the term off)")
        weights[term] = number
    return weights


class Objective:
    """A weighted sum of named loss terms; call it on (outputs, batch)."""

    def __init__(self, name: str, weights: Mapping[str, float] | None = None, *,
                 class_weight: torch.Tensor | None = None):
        self.name = name
        self.weights = objective_weights(name, weights)
        self.needs = OBJECTIVES[name].needs
        self._terms = {term: TERMS[term](class_weight) for term in self.weights}

    def check_outputs(self, outputs: Mapping[str, torch.Tensor]) -> None:
        """ConfigError unless the network returned everything this objective needs."""
        missing = [k for k in self.needs if k not in outputs]
        if missing:
            raise ConfigError(f"objective {self.name!r} needs the model to return {missing} "
                              f"besides its logits (it returned {sorted(outputs)}); use "
                              f"--train-option objective=cross_entropy with this model")

    def __call__(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
                 ) -> tuple[torch.Tensor, Terms]:
        """(total loss, {term: value}); terms of weight 0 are not computed."""
        self.check_outputs(outputs)
        terms: Terms = {}
        total: torch.Tensor | None = None
        for term, weight in self.weights.items():
            if weight == 0:
                continue
            value = self._terms[term](outputs, batch)
            if value is None:  # the network lacks what the term needs (an ablated head)
                continue
            terms[term] = value
            total = weight * value if total is None else total + weight * value
        if total is None:
            raise ConfigError(f"every loss term of objective {self.name!r} has weight 0: "
                              f"nothing to train")
        return total, terms
