"""STSTNet: shallow triple-stream CNN over onset-apex flow (u, v, optical strain)."""

from __future__ import annotations

import torch
from torch import nn

from microexpr.models.layers import Dropout
from microexpr.models.registry import ModelSpec, register_model


class STSTNet(nn.Module):
    """Shallow Triple Stream Three-dimensional CNN.

    Liong, Gan, See, Khor, Huang, "Shallow Triple Stream Three-dimensional CNN (STSTNet) for
    Micro-expression Recognition", IEEE FG 2019 (MEGC 2019).

    Three parallel 3x3 conv streams (3, 5 and 8 channels, padding 2), each followed by ReLU,
    batch norm, 3x3/3 max-pooling and dropout, as in the authors' code; their 16 channels are
    concatenated, average-pooled 2x2 and classified by one linear layer (400 -> classes at the
    paper's 28x28 input; other sizes get the matching linear layer).

    Every layer after the convolutions acts per channel, so the three streams are computed as
    one convolution with 3 + 5 + 8 output channels: the same function and initialisation as
    three separate convolutions, in a third of the operations. `streams` splits the features
    back into the paper's streams.
    """

    def __init__(self, in_channels: int = 3, n_classes: int = 3,
                 input_size: tuple[int, int] = (28, 28), widths: tuple[int, ...] = (3, 5, 8),
                 dropout: float = 0.5):
        super().__init__()
        self.widths = tuple(widths)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, sum(self.widths), kernel_size=3, padding=2),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(sum(self.widths)),
            nn.MaxPool2d(kernel_size=3, stride=3, padding=1),
            Dropout(dropout),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        with torch.no_grad():
            n_features = self.features(torch.zeros(1, in_channels, *input_size)).numel()
        self.classifier = nn.Linear(n_features, n_classes)

    def streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The pooled feature maps of each stream (3, 5 and 8 channels by default)."""
        return list(torch.split(self.features(x), list(self.widths), dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def _build(input_shape: tuple[int, ...], n_classes: int, **params) -> nn.Module:
    height, width, channels = input_shape
    return STSTNet(channels, n_classes, (height, width), **params)


SPEC = register_model(ModelSpec(
    name="ststnet",
    build=_build,
    representation="onset_apex_flow",
    representation_config={"method": "tvl1", "size": 28, "channels": ("u", "v", "strain")},
    # The authors train 800 epochs at lr 5e-5 (batch 256); a larger learning rate reaches the
    # same loss in far fewer epochs, which keeps LOSO over 68 subjects within minutes on a CPU.
    train={"epochs": 40, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "flip_negate": ("u",)},
    params={"widths": (3, 5, 8), "dropout": 0.5},
    default_input=(28, 28, 3),
    min_size=8,
    input_channels=("u", "v", "strain"),
    recipes={"paper": {
        "train": {"epochs": 800, "lr": 5e-5, "batch_size": 256, "optimizer": "adam",
                  "weight_decay": 0.0, "schedule": "constant", "early_stopping": False,
                  "augment_shift": 0, "augment_flip": False},
        "params": {},
        "note": "Liong et al., FG 2019: Adam at lr 5e-5, batch 256, a fixed 800 epochs, no "
                "augmentation (the layers are the paper's already)",
    }},
    reference="Liong et al., Shallow Triple Stream Three-dimensional CNN (STSTNet) for "
              "Micro-expression Recognition, FG 2019",
    description="three shallow conv streams over onset-apex flow and strain",
))
