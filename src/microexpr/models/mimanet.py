"""MiMaNet: macro-to-micro transfer with two-stream networks (Xia & Wang, IJCAI 2021).

MaNet (a two-stream network trained on macro-expressions, then frozen) guides MiNet (the same
network trained on micro-expressions) through three extra objectives: a domain discriminator
on the spatial features behind a gradient reversal, a relation classifier over the temporal
features of both networks that predicts how their temporal inputs were sampled, and a
contrastive loss pulling same-class micro and macro features together. Training MaNet and
handing it to MiNet is the training stage's job (`microexpr.training.guidance`); this module
holds the networks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from microexpr.errors import ConfigError, InputShapeError
from microexpr.models.layers import Dropout
from microexpr.models.params import integer, number
from microexpr.models.registry import ModelSpec, register_model

REFERENCE = ("Xia & Wang, Micro-Expression Recognition Enhanced by Macro-Expression from "
             "Spatial-Temporal Domain, IJCAI 2021")


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: ANN001
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward, gradient times -scale backward (Ganin & Lempitsky's reversal layer)."""
    return _ReverseGradient.apply(x, scale)


def _stream(in_channels: int, widths: tuple[int, ...]) -> nn.Sequential:
    """conv 3x3 / 2 -> batch norm -> ReLU per width, then global average pooling."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
                   nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        in_channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


class TwoStream(nn.Module):
    """The two-stream network of MaNet and MiNet: a spatial stream over the apex frame and a
    temporal stream over a sampled frame sequence (its frames minus the first, stacked as
    channels: the movement, not the face), fused by an MLP.

    forward(apex N x C x H x W, sequence N x C x T x H x W) -> {"logits", "features" (the
    fused hidden layer), "spatial", "temporal" (each stream's pooled features)}.
    """

    def __init__(self, channels: int, frames: int, n_classes: int,
                 widths: tuple[int, ...] = (16, 32, 64, 128), hidden: int = 128,
                 dropout: float = 0.5):
        super().__init__()
        self.spatial = _stream(channels, widths)
        self.temporal = _stream(channels * (frames - 1), widths)
        self.fuse = nn.Sequential(Dropout(dropout), nn.Linear(2 * widths[-1], hidden),
                                  nn.ReLU(inplace=True))
        self.classifier = nn.Sequential(Dropout(dropout), nn.Linear(hidden, n_classes))

    def forward(self, apex: torch.Tensor, sequence: torch.Tensor) -> dict[str, torch.Tensor]:
        motion = (sequence[:, :, 1:] - sequence[:, :, :1]).flatten(1, 2)
        spatial, temporal = self.spatial(apex), self.temporal(motion)
        features = self.fuse(torch.cat([spatial, temporal], dim=1))
        return {"logits": self.classifier(features), "features": features,
                "spatial": spatial, "temporal": temporal}


def sample_sequence(clip: torch.Tensor, frames: int, intervals: torch.Tensor,
                    starts: torch.Tensor) -> torch.Tensor:
    """`frames` frames of each clip N x C x L x H x W, every `intervals[i]`-th from
    `starts[i]`: N x C x frames x H x W."""
    steps = torch.arange(frames, device=clip.device)
    index = starts.to(clip.device)[:, None] + intervals.to(clip.device)[:, None] * steps
    n, c, _, h, w = clip.shape
    gather = index[:, None, :, None, None].expand(n, c, frames, h, w)
    return torch.gather(clip, 2, gather)


class MiMaNet(nn.Module):
    """MiNet with MaNet guidance, over an aligned apex frame and a frame clip.

    Xia & Wang, "Micro-Expression Recognition Enhanced by Macro-Expression from
    Spatial-Temporal Domain", IJCAI 2021.

    ::

        temporal input: `frames` frames of the clip's L (uniform over onset..offset), every
            k-th, centred on the clip's middle; training draws k in 1..K per sample
            (K = (L - 1) // (frames - 1)), evaluation takes k = K (the whole clip)
        MiNet = TwoStream(apex, sampled frames) -> logits, features, spatial, temporal
        with guidance, in training only, for a batch of n micro clips and n macro clips drawn
        from the attached macro data (their own intervals k'):
            MaNet = TwoStream, frozen (eval mode, no gradient) -> the macro features
            domain:      D(reverse_gradient(spatial_mi)), D(spatial_ma) -> micro 0 / macro 1
            relation:    R([temporal_mi, temporal_ma]) -> k - k' (2K - 1 classes)
            contrastive: features_mi against features_ma (same class: positives)

    `forward` returns {"logits", "features"} and, in training with guidance attached,
    "domain_logits" / "domain_labels", "relation_logits" / "relation_labels",
    "micro_features" / "macro_features" / "macro_labels" for the `mimanet` objective's
    terms (`microexpr.training.objectives`). `guidance=False` is MiNet alone (and what
    MaNet is trained as); `adversarial`, `relation`, `contrastive` switch one term off.

    Choices where the paper is silent (no public code):

    - Backbones: plain strided CNNs (widths 16-32-64-128, BN, ReLU, global pooling), not
      ResNets: sized for a CPU. The temporal stream reads the sampled frames minus the
      first, as MOL's CPU default does: a few dozen training clips cannot teach a network
      to ignore the face in raw frames.
    - MiNet is trained from scratch with the guidance terms from its first step (the paper
      pre-trains it on micro-expressions, then fine-tunes with MaNet): one training run per
      fold.
    - Relation: the two networks' temporal inputs are sampled at independent intervals k
      (micro) and k' (macro), and the classifier predicts their difference from both
      temporal features: only comparing the two tells it, so MiNet must encode its own
      temporal scale in the terms MaNet's features give it.
    - Domain alignment: MaNet's spatial features of macro apex frames against MiNet's of
      micro apex frames; the reversal is on MiNet's side only (MaNet is frozen).
    """

    head_name = "minet.classifier.1"  # the layer transfer learning re-initialises
    stem_names = ("minet.spatial", "minet.temporal")

    def __init__(self, channels: int, clip_length: int, n_classes: int, *, frames: int = 4,
                 widths: tuple[int, ...] = (16, 32, 64, 128), hidden: int = 128,
                 dropout: float = 0.5, guidance: bool = True, adversarial: bool = True,
                 relation: bool = True, contrastive: bool = True, reversal: float = 1.0):
        super().__init__()
        if frames < 2:
            raise ConfigError(f"mimanet frames must be >= 2 (it reads frame differences), got "
                              f"{frames}")
        self.frames, self.clip_length = int(frames), int(clip_length)
        self.max_interval = (self.clip_length - 1) // (self.frames - 1)
        if self.max_interval < 1:
            raise InputShapeError(f"mimanet samples {frames} frames from clips of "
                                  f"{clip_length}: give the frame_clip at least {frames} frames "
                                  f"(the default length 16 allows intervals 1..5 for 4 frames)")
        if guidance and relation and self.max_interval < 2:
            raise InputShapeError(f"the relation classifier predicts sampling intervals, and "
                                  f"clips of {clip_length} frames allow only one for {frames} "
                                  f"frames: give the frame_clip at least "
                                  f"{2 * (self.frames - 1) + 1} frames, or relation=false")
        self.reversal = float(reversal)
        self.minet = TwoStream(channels, self.frames, n_classes, tuple(widths), hidden, dropout)
        self.guidance = bool(guidance)
        self.manet = self.discriminator = self.relation_head = None
        self.contrastive = bool(guidance and contrastive)
        if guidance:
            self.manet = TwoStream(channels, self.frames, n_classes, tuple(widths), hidden,
                                   dropout)
            self.manet.requires_grad_(False)
            width = widths[-1]
            if adversarial:
                self.discriminator = nn.Sequential(nn.Linear(width, width // 2),
                                                   nn.ReLU(inplace=True),
                                                   nn.Linear(width // 2, 1))
            if relation:
                self.relation_head = nn.Sequential(
                    nn.Linear(2 * width, width), nn.ReLU(inplace=True),
                    nn.Linear(width, 2 * self.max_interval - 1))
        self._bank: dict[str, torch.Tensor] | None = None

    @property
    def needs_guide(self) -> bool:
        """True when training needs MaNet and macro data (`attach_guide`)."""
        return self.guidance

    def attach_guide(self, manet_state: Mapping[str, torch.Tensor],
                     inputs: Mapping[str, np.ndarray], labels: np.ndarray) -> None:
        """Load the trained MaNet and keep its macro data for training: `inputs` {"apex":
        M x C x H x W, "clip": M x C x L x H x W} standardised as MaNet was trained, channels
        first; `labels` M class indices in this network's class order (-1: no micro class).
        The macro data is not part of the state dict (a saved MiNet does not carry it)."""
        if self.manet is None:
            raise ConfigError("mimanet with guidance=false takes no MaNet")
        self.manet.load_state_dict(manet_state)
        apex = torch.as_tensor(np.asarray(inputs["apex"], dtype=np.float32))
        clip = torch.as_tensor(np.asarray(inputs["clip"], dtype=np.float32))
        if clip.shape[2] != self.clip_length or not len(apex) == len(clip) == len(labels):
            raise InputShapeError(f"macro inputs of shapes {tuple(apex.shape)}, "
                                  f"{tuple(clip.shape)} and {len(labels)} labels do not fit "
                                  f"micro clips of {self.clip_length} frames")
        self._bank = {"apex": apex, "clip": clip,
                      "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64))}

    def train(self, mode: bool = True) -> MiMaNet:
        super().train(mode)
        if self.manet is not None:
            self.manet.eval()  # frozen: its batch-norm statistics stay MaNet's
        return self

    def _centred(self, k: torch.Tensor) -> torch.Tensor:
        """The start of a window of `frames` frames every k-th about the clip's centre."""
        return (self.clip_length - 1 - (self.frames - 1) * k) // 2

    def _draw(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Random intervals 1..K (torch's global RNG) for n clips, with their centred starts."""
        k = torch.randint(1, self.max_interval + 1, (n,), device=device)
        return k, self._centred(k)

    def forward(self, apex: torch.Tensor, clip: torch.Tensor) -> dict[str, torch.Tensor]:
        n, device = apex.shape[0], apex.device
        if clip.shape[2] != self.clip_length:
            raise InputShapeError(f"mimanet was built for clips of {self.clip_length} frames, "
                                  f"got {clip.shape[2]}")
        if self.training:
            k, starts = self._draw(n, device)
        else:
            k = torch.full((n,), self.max_interval, dtype=torch.long, device=device)
            starts = self._centred(k)
        micro = self.minet(apex, sample_sequence(clip, self.frames, k, starts))
        out = {"logits": micro["logits"], "features": micro["features"]}
        if not (self.training and self.guidance):
            return out
        if self._bank is None:
            raise ConfigError("mimanet with guidance trains with a MaNet and macro data: "
                              "evaluate it with macro data (--macro), or set guidance=false")
        index = torch.randint(0, len(self._bank["labels"]), (n,))
        k_macro, starts_macro = self._draw(n, device)
        with torch.no_grad():
            macro = self.manet(self._bank["apex"][index].to(device),
                               sample_sequence(self._bank["clip"][index].to(device),
                                               self.frames, k_macro, starts_macro))
        if self.discriminator is not None:
            spatial = torch.cat([reverse_gradient(micro["spatial"], self.reversal),
                                 macro["spatial"]])
            out["domain_logits"] = self.discriminator(spatial).squeeze(1)
            out["domain_labels"] = torch.cat([torch.zeros(n, device=device),
                                              torch.ones(n, device=device)])
        if self.relation_head is not None:
            both = torch.cat([micro["temporal"], macro["temporal"]], dim=1)
            out["relation_logits"] = self.relation_head(both)
            out["relation_labels"] = k - k_macro + self.max_interval - 1
        if self.contrastive:
            out["micro_features"] = micro["features"]
            out["macro_features"] = macro["features"]
            out["macro_labels"] = self._bank["labels"][index].to(device)
        return out


def _build(input_shape: Any, n_classes: int, **params: Any) -> nn.Module:
    """MiMaNet for per-sample {"apex": H x W x C, "clip": L x H x W x C} (channels last)."""
    if not isinstance(input_shape, Mapping) or set(input_shape) != {"apex", "clip"}:
        raise InputShapeError(f"mimanet takes the named inputs apex (H x W x C) and clip "
                              f"(L x H x W x C), got {input_shape}")
    apex, clip = tuple(input_shape["apex"]), tuple(input_shape["clip"])
    if len(apex) != 3 or len(clip) != 4:
        raise InputShapeError(f"mimanet takes apex H x W x C and clip L x H x W x C, got "
                              f"{apex} and {clip}")
    if apex[-1] != clip[-1]:
        raise InputShapeError(f"mimanet's apex frame and clip need the same channels (both "
                              f"gray or both colour), got {apex[-1]} and {clip[-1]}")
    if min(*apex[:2], *clip[1:3]) < 16:
        raise InputShapeError(f"mimanet needs images of at least 16 x 16, got apex {apex} "
                              f"and clip {clip}; compute the representations at size 64")
    return MiMaNet(apex[-1], clip[0], n_classes, **params)


# Faces aligned once per clip, 64 px gray; 16 frames across onset..offset, 4 of them sampled
# at an interval of 1..5 for the temporal stream.
_APEX = {"size": 64, "align": {}}
_CLIP = {"length": 16, "size": 64, "align": {}}

SPEC = register_model(ModelSpec(
    name="mimanet",
    build=_build,
    representation="frame_clip",
    inputs={"apex": {"representation": "apex_frame", "config": _APEX},
            "clip": {"representation": "frame_clip", "config": _CLIP}},
    train={"epochs": 30, "batch_size": 16, "lr": 1e-3, "weight_decay": 1e-4,
           "optimizer": "adamw", "schedule": "cosine", "objective": "mimanet"},
    params={"frames": 4, "widths": (16, 32, 64, 128), "hidden": 128, "dropout": 0.5,
            "guidance": True, "adversarial": True, "relation": True, "contrastive": True,
            "reversal": 1.0},
    param_rules={"frames": integer(2), "reversal": number(0.0)},
    default_input={"apex": (64, 64, 1), "clip": (16, 64, 64, 1)},
    min_size=16,
    outputs=("features",),
    shared_options=("size", "align"),
    uses_macro=True,
    reference=REFERENCE,
    description="two-stream MiNet (apex frame + sampled frame differences) guided by a "
                "frozen macro-expression MaNet: domain adversarial, interval relation and "
                "contrastive terms",
))
