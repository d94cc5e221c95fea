"""Dual-stream temporal-domain interaction network: appearance and motion streams that exchange
information after every stage, not only at the end."""

from __future__ import annotations

import torch
from torch import nn

from microexpr.models.registry import ModelSpec, register_model

REFERENCE = ("Zhu & Chen, dual-stream temporal-domain interaction network for micro-expression "
             "recognition, 2019 (no public code; design documented in DualStreamNet)")


def conv_stage(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv 3x3 stride 2 (padding 1, no bias) -> batch norm -> ReLU: halves H and W."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class GatedExchange(nn.Module):
    """Gated cross-stream lateral connection between two maps of the same shape.

        a' = a + sigmoid(G_a [a; m]) * L_ma(m)
        m' = m + sigmoid(G_m [a; m]) * L_am(a)

    L are 1x1 convolutions carrying one stream's features into the other; the gates G (1x1
    convolutions over both streams) decide per position and channel how much of the other
    stream is let in. Residual, so each stream keeps its own features.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.motion_to_appearance = nn.Conv2d(channels, channels, 1)
        self.appearance_to_motion = nn.Conv2d(channels, channels, 1)
        self.appearance_gate = nn.Conv2d(2 * channels, channels, 1)
        self.motion_gate = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, a: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        both = torch.cat([a, m], dim=1)
        a_out = a + torch.sigmoid(self.appearance_gate(both)) * self.motion_to_appearance(m)
        m_out = m + torch.sigmoid(self.motion_gate(both)) * self.appearance_to_motion(a)
        return a_out, m_out


class DualStreamNet(nn.Module):
    """Dual-stream network whose appearance and motion streams interact at every stage.

    After Zhu & Chen (2019), "dual-stream temporal-domain interaction network" for
    micro-expression recognition: two convolutional streams, one over appearance and one over
    the motion of the temporal domain, exchanging information at intermediate layers rather
    than only being fused at the end. No code or layer-level description is public; this is
    our design from that idea.

    Input (channels first): channel 0 the grey apex frame, channels 1.. the onset -> apex
    flow (u, v, strain), i.e. the `apex_flow` representation, 48 x 48 by default::

        apex  (1) ─ stage A1 ─┐            ┌─ stage A2 ─┐            ┌─ stage A3 ─ pool 3x3 ─┐
                              │ exchange 1 │            │ exchange 2 │                       ├─►
        flow (3)  ─ stage M1 ─┘            └─ stage M2 ─┘            └─ stage M3 ─ pool 3x3 ─┘
                  16 x 24 x 24              32 x 12 x 12               64 x 6 x 6
        ─► concat (2 x 64 x 3 x 3) ─ dropout ─ FC 128 ─ ReLU ─ dropout ─ FC classes

    Each stage is a 3x3 convolution with stride 2 -> batch norm -> ReLU (widths 16, 32, 64);
    strided convolutions rather than conv + max-pool: every pixel is still seen, at a third of
    the CPU time (29 vs 96 ms per training batch of 32 at 48 x 48, one core). After
    stages 1 and 2 a `GatedExchange` lets each stream read the other through 1x1 lateral
    convolutions under a learned sigmoid gate (a' = a + g_a * L(m), m' = m + g_m * L(a)), so
    the motion stream learns where the face has texture worth trusting and the appearance
    stream where it moved. The last maps are average-pooled to 3 x 3 (keeping coarse facial
    layout: brows vs mouth), concatenated and classified by a small MLP.
    `interaction=False` drops the exchanges (late fusion only), the ablation baseline.
    202,947 parameters at 48 x 48 input, 3 classes (195,075 without the exchanges).
    """

    def __init__(self, n_classes: int = 3, motion_channels: int = 3,
                 widths: tuple[int, ...] = (16, 32, 64), interaction: bool = True,
                 pool: int = 3, hidden: int = 128, dropout: float = 0.5):
        super().__init__()
        widths = tuple(widths)
        self.appearance = nn.ModuleList()
        self.motion = nn.ModuleList()
        a_in, m_in = 1, motion_channels
        for width in widths:
            self.appearance.append(conv_stage(a_in, width))
            self.motion.append(conv_stage(m_in, width))
            a_in = m_in = width
        # one exchange after every stage but the last (the last is fused by the classifier)
        self.exchanges = nn.ModuleList(
            [GatedExchange(w) for w in widths[:-1]] if interaction else [])
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * widths[-1] * pool * pool, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def stage_features(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(appearance, motion) maps after each stage, before that stage's exchange."""
        a, m = x[:, :1], x[:, 1:]
        out = []
        for index, (a_stage, m_stage) in enumerate(zip(self.appearance, self.motion,
                                                       strict=True)):
            a, m = a_stage(a), m_stage(m)
            out.append((a, m))
            if index < len(self.exchanges):
                a, m = self.exchanges[index](a, m)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, m = self.stage_features(x)[-1]
        fused = torch.cat([self.pool(a).flatten(1), self.pool(m).flatten(1)], dim=1)
        return self.classifier(fused)


def _build(input_shape: tuple[int, ...], n_classes: int, **params) -> nn.Module:
    _, _, channels = input_shape
    return DualStreamNet(n_classes, motion_channels=channels - 1, **params)


SPEC = register_model(ModelSpec(
    name="dual_stream",
    build=_build,
    representation="apex_flow",
    representation_config={"method": "tvl1", "compute_size": 128, "size": 48,
                           "channels": ("u", "v", "strain")},
    # Channel 0 is the apex image: flips negate the horizontal flow u (channel 1).
    train={"epochs": 40, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "augment_shift": 2,
           "augment_flip": True, "flip_negate": ("u",)},
    params={"widths": (16, 32, 64), "interaction": True, "pool": 3, "hidden": 128,
            "dropout": 0.5},
    default_input=(48, 48, 4),
    min_size=8,
    # the apex_flow representation: the grey apex frame, then its flow channels
    input_channels=("gray", "u", "v", "strain"),
    reference=REFERENCE,
    description="apex-image and flow conv streams with gated exchanges after each stage",
))
