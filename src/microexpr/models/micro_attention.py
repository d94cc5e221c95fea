"""Micro-attention ResNet: pre-activation ResNet-10 with a micro-attention unit in every block.

Wang, Li, Huang, Wang, Ji, Tao, "Micro-attention for micro-expression recognition",
Neurocomputing 410, 2020 (arXiv 1811.02360).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from microexpr.errors import ConfigError
from microexpr.models.registry import ModelSpec, register_model

WIDTHS = (64, 128, 256, 512)


class MicroAttentionBlock(nn.Module):
    """One pre-activation residual block with the micro-attention unit.

    ::

        p  = ReLU(BN(x))
        s  = x                       (or conv1x1/stride(p) when the shape changes)
        h1 = ReLU(BN(conv3x3/stride(p)))
        h2 = conv3x3(h1)
        A  = conv1x1(3C -> C, no bias)(concat[s, h1, h2])
        m  = sigmoid(mean over the C channels of A)           one N x 1 x H x W map
        out = (h2 + s) * (1 + m)

    Without attention (`attention=False`) the block is the plain pre-activation block,
    out = h2 + s. `last_map` holds m of the latest forward pass, detached (None without
    attention).
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 attention: bool = True):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
        self.attention = (nn.Conv2d(3 * channels, channels, 1, bias=False)
                          if attention else None)
        self.last_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        h1 = torch.relu(self.bn2(self.conv1(pre)))
        h2 = self.conv2(h1)
        out = h2 + shortcut
        if self.attention is None:
            self.last_map = None
            return out
        a = self.attention(torch.cat([shortcut, h1, h2], dim=1))
        m = torch.sigmoid(a.mean(dim=1, keepdim=True))
        self.last_map = m.detach()
        return out * (1 + m)


class MicroAttentionResNet(nn.Module):
    """Pre-activation ResNet-10 (one block per stage) with micro-attention, for apex frames.

    Stem: conv 7x7/2 (64) -> BN -> ReLU -> max-pool 3x3/2 (as in the pre-activation ResNets
    for ImageNet); four stages of one `MicroAttentionBlock` each (`widths` 64/128/256/512,
    stride 1, 2, 2, 2); a final BN -> ReLU (pre-activation networks end with one);
    global average pooling; optional dropout; a linear classifier. The network is fully
    convolutional up to the pooling, so any input side >= 32 works (the paper uses 224; the
    registry's default is 64, which keeps CPU training in seconds per fold).

    With 1 input channel and 5 classes it has 5,944,901 parameters with attention and
    4,900,421 without: +1,044,480 for the four 1x1 3C -> C convolutions, as the paper reports
    (5.9M vs 4.9M). `in_channels` > 1 takes e.g. apex + flow channels. The maps m of the
    latest pass are kept (detached) on each block; `attention_maps` returns them.
    """

    head_name = "classifier"  # the layer transfer learning re-initialises for new classes
    stem_names = ("stem",)  # what `freeze="stem"` fixes

    def __init__(self, in_channels: int = 1, n_classes: int = 5, *, attention: bool = True,
                 widths: tuple[int, ...] = WIDTHS, dropout: float = 0.0):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        blocks = []
        previous = widths[0]
        for index, width in enumerate(widths):
            blocks.append(MicroAttentionBlock(previous, width, stride=1 if index == 0 else 2,
                                              attention=attention))
            previous = width
        self.blocks = nn.ModuleList(blocks)
        self.post = nn.Sequential(nn.BatchNorm2d(previous), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(previous, n_classes)
        self.has_attention = attention
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled 512-d (last width) feature vector of each sample."""
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.pool(self.post(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The map m of every block for a batch x (N x C x H x W), each N x h x w in 0..1.

        Sides halve from block to block (at a 64 px input: 16, 8, 4, 2). Computed in eval
        mode; the module's mode is restored. Empty without attention.
        """
        if not self.has_attention:
            return []
        was_training = self.training
        self.eval()
        try:
            self.features(x)
            return [block.last_map[:, 0] for block in self.blocks]  # type: ignore[index]
        finally:
            self.train(was_training)


def attention_maps_for(classifier, x: np.ndarray) -> list[np.ndarray]:
    """The attention maps of a fitted micro_attention TorchClassifier for inputs x.

    x is channels-last as for `predict` (N x H x W x C); it is standardised with the
    classifier's training statistics. Returns one N x h x w float array in 0..1 per block
    (upsample to H x W, e.g. with cv2.resize, to overlay on the face).
    """
    module = classifier.module
    if not isinstance(module, MicroAttentionResNet):
        raise ConfigError("attention maps need a fitted micro_attention classifier")
    inputs = torch.from_numpy(classifier.network_inputs(x)).to(classifier.device)
    return [m.cpu().numpy() for m in module.attention_maps(inputs)]


def _build(input_shape: tuple[int, ...], n_classes: int, **params) -> nn.Module:
    _, _, channels = input_shape
    return MicroAttentionResNet(channels, n_classes, **params)


SPEC = register_model(ModelSpec(
    name="micro_attention",
    build=_build,
    representation="apex_frame",
    # The paper trains at 224x224 (resize 240, random crop); 64x64 keeps a CPU fold in
    # seconds. Pass representation={"size": 224} to match the paper on a GPU.
    representation_config={"size": 64, "color": False},
    # The paper's optimiser settings are not all given; Adam with a little weight decay
    # trains this network from scratch or from pretrained weights (`init=`) reliably.
    train={"epochs": 30, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4},
    params={"attention": True, "widths": WIDTHS, "dropout": 0.0},
    default_input=(64, 64, 1),
    min_size=32,
    reference="Wang et al., Micro-attention for micro-expression recognition, "
              "Neurocomputing 2020 (arXiv 1811.02360)",
    description="pre-activation ResNet-10 with a micro-attention unit in every block, on the "
                "apex frame",
))
