"""Deep-Emotion: a small attentional CNN with a spatial transformer, for 48x48 gray faces."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from microexpr.models.registry import ModelSpec, register_model

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


class DeepEmotion(nn.Module):
    """Minaee, Minaei, Abdolrashidi, "Deep-Emotion: Facial Expression Recognition Using
    Attentional Convolutional Network", Sensors 21(9), 2021 (arXiv 1902.01019).

    Layout of the common public re-implementation (the paper gives no code)::

        spatial transformer: localisation conv 7x7 (8) -> max-pool 2 -> ReLU
                             -> conv 5x5 (10) -> max-pool 2 -> ReLU
                             -> FC 32 -> ReLU -> FC 6 = theta (2 x 3 affine)
                             x' = grid_sample(x, affine_grid(theta))
        classifier:          conv 3x3 (10) -> ReLU -> conv 3x3 (10) -> max-pool 2 -> ReLU
                             -> conv 3x3 (10) -> ReLU -> conv 3x3 (10) -> BN -> max-pool 2
                             -> ReLU -> dropout -> FC 50 -> ReLU -> FC classes

    The last layer of the localisation net starts at zero weights and the identity bias, so
    at initialisation the transformer passes the image through unchanged (`theta` is the
    identity for every input). At 48x48 gray and 7 classes it has 66,877 parameters (66,673 at
    3 classes). Other sizes get matching FC layers; `in_channels` > 1 is allowed (the
    transformer warps all channels alike).

    Differences from the re-implementation, on purpose: the dropout is an nn.Dropout (off in
    eval mode; the public code applies F.dropout in eval mode too), with rate `dropout`;
    grids use align_corners=False explicitly (PyTorch's default).
    """

    head_name = "classifier"  # the layer transfer learning re-initialises for new classes
    stem_names = ("features.0",)  # what `freeze="stem"` fixes: the first conv
    # transferred whole or not at all: a pretrained last layer on a new first layer would
    # start the transformer from a random transform instead of the identity
    transfer_units = ("fc_loc",)

    def __init__(self, in_channels: int = 1, n_classes: int = 7,
                 input_size: tuple[int, int] = (48, 48), *, dropout: float = 0.5,
                 width: int = 10, stn: bool = True):
        super().__init__()
        self.use_stn = stn
        self.localization = nn.Sequential(
            nn.Conv2d(in_channels, 8, kernel_size=7),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 10, kernel_size=5),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3),
            nn.MaxPool2d(2, 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3),
            nn.BatchNorm2d(width),
            nn.MaxPool2d(2, 2),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Flatten(),
        )
        with torch.no_grad():
            probe = torch.zeros(1, in_channels, *input_size)
            n_loc = self.localization(probe).shape[1]
            n_features = self.features(probe).shape[1]
        self.fc_loc = nn.Sequential(nn.Linear(n_loc, 32), nn.ReLU(inplace=True),
                                    nn.Linear(32, 6))
        nn.init.zeros_(self.fc_loc[2].weight)
        with torch.no_grad():
            self.fc_loc[2].bias.copy_(torch.tensor(IDENTITY))
        self.fc = nn.Sequential(nn.Linear(n_features, 50), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(50, n_classes)
        if not stn:  # a plain CNN (ablation): no localisation parameters at all
            del self.localization, self.fc_loc

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The affine transform (N x 2 x 3) the localisation net predicts for x."""
        if not self.use_stn:
            return torch.tensor(IDENTITY, device=x.device).view(1, 2, 3).expand(len(x), 2, 3)
        return self.fc_loc(self.localization(x)).view(-1, 2, 3)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """x warped by the spatial transformer (what the classifier sees); x without STN."""
        if not self.use_stn:
            return x
        grid = F.affine_grid(self.theta(x), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.fc(self.features(self.transform(x))))


def _build(input_shape: tuple[int, ...], n_classes: int, **params) -> nn.Module:
    height, width, channels = input_shape
    return DeepEmotion(channels, n_classes, (height, width), **params)


SPEC = register_model(ModelSpec(
    name="deep_emotion",
    build=_build,
    representation="apex_frame",
    representation_config={"size": 48, "color": False},
    # The public code trains FER-2013 with Adam at lr 5e-3 for hundreds of epochs; on the
    # few hundred apex frames of a micro-expression fold 1e-3 and 60 epochs suffice.
    train={"epochs": 60, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4},
    params={"dropout": 0.5, "width": 10, "stn": True},
    default_input=(48, 48, 1),
    min_size=18,
    recipes={"public_code": {
        "train": {"epochs": 100, "lr": 5e-3, "batch_size": 128, "optimizer": "adam",
                  "weight_decay": 0.0},
        "params": {},
        "note": "the defaults of the public re-implementation (omarsayed7/Deep-Emotion, "
                "main.py: Adam at lr 0.005, batch 128, 100 epochs) for FER-2013; the paper "
                "gives no micro-expression recipe",
    }},
    reference="Minaee, Minaei, Abdolrashidi, Deep-Emotion: Facial Expression Recognition "
              "Using Attentional Convolutional Network, Sensors 2021 (arXiv 1902.01019)",
    description="4-layer CNN behind a spatial transformer (identity at start), 48x48 gray",
))
