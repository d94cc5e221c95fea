"""SMA-STN: a shared 2D CNN over DSSI dynamic images, with movement attention in space and time.

Liu, Zheng, Zong, "SMA-STN: Segmented Movement-Attending Spatiotemporal Network for
Micro-Expression Recognition", arXiv 2010.09342, 2020. No code is public; the figure's parts
are kept (DSSI input, a shared CNN, STMA = non-local spatial attention + attention over the
segments, a fused feature that the DE-Loss acts on) and every detail the paper leaves open is
chosen and documented on `SMASTN`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from microexpr.errors import ConfigError, InputShapeError
from microexpr.models.layers import Dropout
from microexpr.models.params import integer, sequence
from microexpr.models.registry import ModelSpec, register_model


class BasicBlock(nn.Module):
    """The ResNet-18 block: conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (1x1 conv + BN when
    the shape changes), then ReLU (He et al., CVPR 2016)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block (Wang, Girshick, Gupta, He, CVPR 2018) over the
    spatial positions of one feature map::

        theta, phi, g = conv1x1(C -> C')(x)          C' = C // 2 (at least 1)
        A   = softmax_j(theta_i . phi_j)             HW x HW, each row sums to 1
        z   = x + conv1x1(C' -> C)(A g)              the output projection starts at zero

    With the output projection zero-initialised the block is the identity at initialisation,
    so it can be inserted into a network without changing what the layers around it compute
    (as in the paper, where the last BN's scale starts at zero). `last_attention` holds A of
    the latest pass (N x HW x HW, detached).
    """

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 2, 1)
        self.theta = nn.Conv2d(channels, inner, 1)
        self.phi = nn.Conv2d(channels, inner, 1)
        self.g = nn.Conv2d(channels, inner, 1)
        self.out = nn.Conv2d(inner, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # N x HW x C'
        phi = self.phi(x).flatten(2)  # N x C' x HW
        g = self.g(x).flatten(2).transpose(1, 2)  # N x HW x C'
        attention = torch.softmax(theta @ phi, dim=-1)
        self.last_attention = attention.detach()
        y = (attention @ g).transpose(1, 2).reshape(n, -1, h, w)
        return x + self.out(y)


class SMASTN(nn.Module):
    """SMA-STN over DSSI inputs N x C x S x H x W (S = segments + 1, the last the global image).

    Liu, Zheng, Zong, "SMA-STN: Segmented Movement-Attending Spatiotemporal Network for
    Micro-Expression Recognition", arXiv 2010.09342, 2020.

    ::

        each of the S dynamic images -> shared backbone -> pooled feature (D = 8 x width)
            backbone: stem conv7x7/2-BN-ReLU-maxpool3x3/2, four stages of BasicBlocks
            (widths w, 2w, 4w, 8w; strides 1, 2, 2, 2), non-local block after stage
            `nonlocal_stage`, global average pooling
        segments: f_k + e_k (learned position embedding), k = 1..K
        weights:  a_k = softmax_k(MLP(f_k + e_k))   MLP: D -> max(D // 4, 8) -> tanh -> 1
        fused:    [sum_k a_k (f_k + e_k), f_global]            (N x 2D, "features")
        logits:   linear(dropout(fused))

    Choices where the paper is silent (or not public):

    - Backbone: ResNet-18's layout (BasicBlocks, `layers` = (2, 2, 2, 2) per stage) at a
      small `width` (16, a quarter of ResNet-18's 64: 0.7M parameters), so that a training
      step on a batch of 32 DSSI samples (K = 4) at 64 x 64 takes about 0.25 s on one CPU
      core (0.17 s with `layers=(1, 1, 1, 1)`); `width=64` is ResNet-18's size. The same
      weights see all S images (segments and global), as one network over N x S images.
    - Non-local block: one, after stage 2 (`nonlocal_stage`; 8 x 8 positions at a 64 px
      input: mid-level features, where the spatial relations of facial regions are visible and
      the HW x HW attention is cheap), applied to every dynamic image, the global one included
      (the backbone is shared). Zero-initialised output projection: identity at the start.
    - Temporal attention: a two-layer MLP scores each segment feature, softmax over the K
      segments. A learned position embedding e_k (K x D) is added to the segment features
      first: an attention-weighted mean is otherwise blind to the segments' order, and
      whether a movement happens early or late in the clip is informative. It starts as
      N(0, 1), the scale of the pooled BN-ReLU features, so that the order is visible from the
      first step (at std 0.02 a short training run barely used it).
      `temporal_attention=False` replaces the weights by the plain mean (a_k = 1 / K).
    - Fusion: concatenation of the attended segment feature and the global image's feature
      (both D-dimensional), so the classifier can weigh the global and the segmental views
      separately; the DE-Loss acts on this fused 2D-dimensional vector ("features").
    - BatchNorm runs over all N x S images of a batch together; dropout (0.5) only before the
      classifier.

    `forward` returns {"logits": N x n_classes, "features": N x 2D, "segment_weights": N x K}.
    The network is fully convolutional up to the pooling: `input_size` (H, W) is the size
    it is built for (each side >= 16), other sizes work as well.
    """

    head_name = "classifier"  # the layer transfer learning re-initialises for new classes
    stem_names = ("stem",)  # what `freeze="stem"` fixes

    def __init__(self, in_channels: int, n_classes: int, input_size: tuple[int, int] = (64, 64),
                 segments: int = 4, width: int = 16, layers: Sequence[int] = (2, 2, 2, 2),
                 nonlocal_stage: int = 2, nonlocal_block: bool = True,
                 temporal_attention: bool = True, dropout: float = 0.5):
        super().__init__()
        layers = tuple(int(b) for b in layers)  # named as in timm (`blocks` is LBP-TOP's grid)
        if len(layers) != 4 or min(layers) < 1:
            raise ConfigError(f"layers must be 4 integers >= 1 (BasicBlocks per stage), got "
                              f"{layers}")
        for name, value, low in (("in_channels", in_channels, 1), ("n_classes", n_classes, 2),
                                 ("segments", segments, 1), ("width", width, 1)):
            if int(value) < low:
                raise ConfigError(f"SMASTN {name} must be >= {low}, got {value}")
        if nonlocal_stage not in (1, 2, 3, 4):
            raise ConfigError(f"nonlocal_stage must be 1, 2, 3 or 4 (the stage the non-local "
                              f"block follows), got {nonlocal_stage}")
        if min(input_size) < 16:
            raise ConfigError(f"SMASTN needs inputs of at least 16 x 16, got input_size="
                              f"{tuple(input_size)}")
        self.in_channels, self.segments = int(in_channels), int(segments)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.nonlocal_stage = int(nonlocal_stage)
        self.temporal_attention = bool(temporal_attention)
        widths = [int(width) * 2 ** k for k in range(4)]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages, previous = [], widths[0]
        for index, (channels, count) in enumerate(zip(widths, layers, strict=True)):
            layers = [BasicBlock(previous, channels, stride=1 if index == 0 else 2)]
            layers += [BasicBlock(channels, channels) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            previous = channels
        self.stages = nn.ModuleList(stages)
        self.nonlocal_block = (NonLocalBlock(widths[self.nonlocal_stage - 1])
                               if nonlocal_block else None)
        self.feature_dim = previous
        self.position = nn.Parameter(torch.randn(self.segments, previous))
        hidden = max(previous // 4, 8)
        self.segment_scorer = (nn.Sequential(nn.Linear(previous, hidden), nn.Tanh(),
                                             nn.Linear(hidden, 1))
                               if temporal_attention else None)
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(2 * previous, n_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not getattr(self.nonlocal_block,
                                                                       "out", None):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (B x D) of a batch of single dynamic images B x C x H x W."""
        x = self.stem(images)
        for index, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if index == self.nonlocal_stage and self.nonlocal_block is not None:
                x = self.nonlocal_block(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 5 or x.shape[1] != self.in_channels or x.shape[2] != self.segments + 1:
            raise InputShapeError(
                f"SMASTN takes N x C x S x H x W with C={self.in_channels} and S = segments + 1"
                f" = {self.segments + 1} dynamic images (the last the global one), got "
                f"{tuple(x.shape)}; compute the dssi representation with segments="
                f"{self.segments}")
        n, c, s, h, w = x.shape
        images = x.transpose(1, 2).reshape(n * s, c, h, w)
        features = self.image_features(images).reshape(n, s, -1)
        segment_features = features[:, :-1] + self.position  # N x K x D
        if self.segment_scorer is None:
            weights = torch.full((n, self.segments), 1.0 / self.segments, dtype=x.dtype,
                                 device=x.device)
        else:
            weights = torch.softmax(self.segment_scorer(segment_features).squeeze(-1), dim=1)
        attended = (weights.unsqueeze(-1) * segment_features).sum(dim=1)
        fused = torch.cat([attended, features[:, -1]], dim=1)
        return {"logits": self.classifier(self.dropout(fused)), "features": fused,
                "segment_weights": weights}


def _build(input_shape: tuple[int, ...], n_classes: int, **params) -> nn.Module:
    """SMASTN for per-sample DSSI inputs (S, H, W, C), channels last; S = segments + 1."""
    if len(input_shape) != 4:
        raise InputShapeError(f"sma_stn takes per-sample inputs S x H x W x C (the dssi "
                              f"representation), got shape {tuple(input_shape)}")
    images, height, width, channels = (int(v) for v in input_shape)
    segments = int(params.pop("segments", images - 1))
    if images != segments + 1:
        raise InputShapeError(
            f"sma_stn was given segments={segments} but its inputs hold {images} dynamic "
            f"images ({images - 1} segments + 1 global); set the dssi representation's "
            f"segments to {segments} or the model's to {images - 1}")
    return SMASTN(channels, n_classes, (height, width), segments=segments, **params)


SPEC = register_model(ModelSpec(
    name="sma_stn",
    build=_build,
    representation="dssi",
    # DSSI: 4 segments of 4 sparse frames + a global image of 8, aligned faces, 64 px gray.
    representation_config={"segments": 4, "size": 64},
    # The paper's training settings are not public. Adam at 1e-3 with a cosine schedule
    # trains the CPU-sized network in 30 epochs; the DE-Loss is on at weight 0.1
    # (`--train-option loss_weights.deviation=0` for the ablation without it).
    train={"epochs": 30, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4,
           "schedule": "cosine", "objective": "deviation_enhanced",
           "loss_weights": {"deviation": 0.1}, "augment_flip": True},
    params={"width": 16, "layers": (1, 1, 1, 1), "nonlocal_stage": 2, "nonlocal_block": True,
            "temporal_attention": True, "dropout": 0.5},
    param_rules={"nonlocal_stage": integer(1, 4),
                 "layers": sequence(integer(1), 4, what="4 positive integers (blocks per "
                                                         "stage)")},
    default_input=(5, 64, 64, 1),
    min_size=16,
    outputs=("features", "segment_weights"),
    recipes={"paper": {
        "train": {"epochs": 50, "batch_size": 32, "lr": 1e-4, "schedule": "cosine"},
        "params": {"width": 64, "layers": (2, 2, 2, 2)},
        "note": "Liu, Zheng, Zong, arXiv 2010.09342: a ResNet-18 backbone (width 64, 2 blocks "
                "per stage) as in the paper; its optimiser settings are not public, so the "
                "training options are ours (for a GPU)",
    }},
    reference="Liu, Zheng, Zong, SMA-STN: Segmented Movement-Attending Spatiotemporal Network "
              "for Micro-Expression Recognition, arXiv 2010.09342, 2020",
    description="shared ResNet over DSSI dynamic images, non-local spatial and segment "
                "attention, DE-Loss",
))
