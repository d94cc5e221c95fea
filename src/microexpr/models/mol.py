"""MOL: joint micro-expression recognition, optical flow and landmark estimation with F5C blocks.

Shao et al., "MOL: joint estimation of micro-expression, optical flow and landmark via
transformer-graph-style convolution", IEEE TPAMI 2025 (arXiv 2506.14511; code
github.com/CYF-cuber/MOL). The layout follows the authors' code (shared frame encoder, two F5C
blocks for the first and the second frame of each consecutive pair, a 3D-CNN recognition head
over the stacked pair features, a landmark head per pair, a flow decoder per pair); the flow
decoder is ours by default (plain torch, light), and every choice is documented on `MOL`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from microexpr.errors import ConfigError, InputShapeError
from microexpr.models.layers import Dropout
from microexpr.models.params import integer, one_of
from microexpr.models.registry import ModelSpec, register_model

DECODERS = ("light", "flownetc")
CCC_GRAPHS = ("channels", "positions")
MIN_CROP = 24  # the landmark head's 3x3 convolution needs a feature map of at least 3 x 3


def encoder_size(side: int) -> int:
    """Side of the shared encoder's feature map for an input side (128 -> 16)."""
    side = (side - 4) // 2 + 1  # conv 4x4 / 2
    side = (side - 3) // 2 + 1  # conv 3x3 / 2
    return (side + 2 - 2) // 2 + 1  # conv 2x2 / 2, padding 1 (the 1x1 conv keeps it)


def circular_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            dim: int) -> torch.Tensor:
    """Depthwise convolution whose kernel spans the whole of `dim` (2: rows, 3: columns),
    over the map padded circularly along that dim, so every output sees every input of its
    column (dim 2) or row (dim 3): out[i] = b + sum_k w[k] x[(i + k) mod L].

    x: B x C x H x W; weight: C x 1 x H x 1 (dim 2) or C x 1 x 1 x W (dim 3).
    """
    length = x.shape[dim]
    wrapped = torch.cat([x, x.narrow(dim, 0, length - 1)], dim=dim) if length > 1 else x
    return F.conv2d(wrapped, weight, bias, groups=x.shape[1])


class FullyConnectedConv(nn.Module):
    """The fully-connected convolution of F5C: global depthwise convolutions along H and W.

    ::

        x = [a, b]                                channels split in halves
        a' = BN(a + P_a1)   b' = BN(b + P_b1)      P_a1: per row (H x 1), P_b1: per column
        a'' = conv_W(conv_H(a') + P_a2)           circular depthwise, kernels H x 1, 1 x W
        b'' = conv_H(conv_W(b') + P_b2)           the same in W-then-H order
        out = [a + a'', b + b'']                  residual per half

    The kernels are as long as the feature map (`size`), so after the two passes every output
    depends on every position of the map: a transformer's global receptive field at the cost
    of a depthwise convolution. The second embeddings run along the axis of the second pass
    (P_a2 per column, P_b2 per row). The feed-forward layer the authors' class defines is
    never called in their network, so it is left out.

    Initialisation: kernels uniform in +-1/sqrt(length) (nn.Conv2d's default for a kernel of
    that length); biases zero and positional embeddings N(0, 0.02^2) (the authors draw both
    from N(0, 1), which adds noise of the features' own scale to every output at the start).
    """

    def __init__(self, channels: int, size: tuple[int, int]):
        super().__init__()
        if channels < 2 or channels % 2:
            raise ConfigError(f"the F5C block splits its channels in halves: features must be "
                              f"an even number >= 2, got {channels}")
        half, (h, w) = channels // 2, (int(size[0]), int(size[1]))
        self.size = (h, w)
        self.pe_a1 = nn.Parameter(torch.randn(1, half, h, 1) * 0.02)
        self.pe_b1 = nn.Parameter(torch.randn(1, half, 1, w) * 0.02)
        self.pe_a2 = nn.Parameter(torch.randn(1, half, 1, w) * 0.02)
        self.pe_b2 = nn.Parameter(torch.randn(1, half, h, 1) * 0.02)
        self.norm_a = nn.BatchNorm2d(half)
        self.norm_b = nn.BatchNorm2d(half)

        def kernel(shape: tuple[int, int]) -> nn.Parameter:
            bound = 1.0 / math.sqrt(shape[0] * shape[1])
            return nn.Parameter(torch.empty(half, 1, *shape).uniform_(-bound, bound))

        self.kernel_a_h, self.kernel_a_w = kernel((h, 1)), kernel((1, w))
        self.kernel_b_w, self.kernel_b_h = kernel((1, w)), kernel((h, 1))
        self.bias_a_h, self.bias_a_w, self.bias_b_w, self.bias_b_h = (
            nn.Parameter(torch.zeros(half)) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.size:
            got = tuple(x.shape[-2:])
            raise InputShapeError(f"FullyConnectedConv was built for {self.size[0]} x "
                                  f"{self.size[1]} feature maps (its kernels span the map), "
                                  f"got {got}; build it with size={got}")
        a, b = torch.chunk(x, 2, dim=1)
        a1 = self.norm_a(a + self.pe_a1)
        b1 = self.norm_b(b + self.pe_b1)
        a2 = circular_depthwise_conv(a1, self.kernel_a_h, self.bias_a_h, 2) + self.pe_a2
        b2 = circular_depthwise_conv(b1, self.kernel_b_w, self.bias_b_w, 3) + self.pe_b2
        a3 = circular_depthwise_conv(a2, self.kernel_a_w, self.bias_a_w, 3)
        b3 = circular_depthwise_conv(b2, self.kernel_b_h, self.bias_b_h, 2)
        return torch.cat([a + a3, b + b3], dim=1)


class ChannelCorrespondenceConv(nn.Module):
    """The channel correspondence convolution of F5C: an EdgeConv over a k-NN graph.

    `graph="channels"` (the method as named and described): each of the C channels is a node
    whose feature f_i is its flattened map (D = H x W values); its k nearest nodes by cosine
    similarity (itself included) are its neighbours j, and

        out_i = max_j ReLU(W1 f_i + W2 (f_j - f_i))          W1, W2: linear D -> D with bias

    reshaped back to C x H x W (the F5C block adds it to its input). Vectorised: one batched
    top-k over the B x C x C similarities, and, since W2 (f_j - f_i) = W2 f_j - W2 f_i, W2 is
    applied once per node and the projected neighbours are gathered (no loop over nodes or
    neighbours). The neighbour search runs without gradient (its indices are not
    differentiable).

    `graph="positions"` is what the authors' released code computes instead (modules/CCC.py
    as called by MOL_model.py): it hands the C x HW map to a k-NN that treats it as
    [batch, dim, points], so the neighbours are found among the HW spatial positions (by
    cosine similarity of their C-channel vectors), the "neighbour map" of channel c holds
    f_c at each position's j-th neighbour (g_cj[p] = f_c[n_j(p)]), and the centre is
    subtracted twice (its neighbour tensor already holds f_j - f_i before the edge layer
    subtracts f_i again): out_c = max_j ReLU(W1 f_c + W2 (g_cj - 2 f_c)).
    """

    def __init__(self, channels: int, size: tuple[int, int], neighbors: int = 4,
                 graph: str = "channels"):
        super().__init__()
        if graph not in CCC_GRAPHS:
            raise ConfigError(f"ccc_graph must be one of {CCC_GRAPHS}, got {graph!r}")
        dim = int(size[0]) * int(size[1])
        nodes = channels if graph == "channels" else dim
        if isinstance(neighbors, bool) or not 1 <= int(neighbors) <= nodes:
            raise ConfigError(f"neighbors must be an integer in 1..{nodes} (the nodes of the "
                              f"{graph} graph, itself included), got {neighbors}")
        self.neighbors, self.graph, self.dim = int(neighbors), graph, dim
        self.node = nn.Linear(dim, dim)  # W1
        self.edge = nn.Linear(dim, dim)  # W2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        f = x.reshape(b, c, h * w)
        if self.graph == "channels":
            with torch.no_grad():
                unit = F.normalize(f, dim=2)
                index = (unit @ unit.transpose(1, 2)).topk(self.neighbors, dim=-1).indices
            projected = F.linear(f, self.edge.weight)  # W2 f, B x C x D
            batch = torch.arange(b, device=x.device).view(b, 1, 1)
            neighbours = projected[batch, index]  # B x C x k x D: W2 f_j
            centre = self.node(f) - projected + self.edge.bias  # W1 f_i + b1 - W2 f_i + b2
            out = torch.relu(centre.unsqueeze(2) + neighbours).amax(dim=2)
        else:
            with torch.no_grad():
                unit = F.normalize(f, dim=1)
                index = (unit.transpose(1, 2) @ unit).topk(self.neighbors, dim=-1).indices
            index = index.transpose(1, 2).unsqueeze(1).expand(b, c, self.neighbors, h * w)
            shifted = torch.gather(f.unsqueeze(2).expand(b, c, self.neighbors, h * w), 3, index)
            edges = self.edge(shifted - 2 * f.unsqueeze(2))
            out = torch.relu(self.node(f).unsqueeze(2) + edges).amax(dim=2)
        return out.reshape(b, c, h, w)


class F5C(nn.Module):
    """One F5C block on one frame's features: fully-connected convolution, then (with `ccc`)
    the channel correspondence convolution of its output added to it."""

    def __init__(self, channels: int, size: tuple[int, int], neighbors: int = 4,
                 ccc: bool = True, graph: str = "channels"):
        super().__init__()
        self.fcc = FullyConnectedConv(channels, size)
        self.ccc = ChannelCorrespondenceConv(channels, size, neighbors, graph) if ccc else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fcc(x)
        return y if self.ccc is None else y + self.ccc(y)


def correlation(a: torch.Tensor, b: torch.Tensor, max_displacement: int,
                dilation: int = 1) -> torch.Tensor:
    """Cost volume: out[:, k, y, x] = mean_c a[:, c, y, x] b[:, c, y + dy, x + dx] for the
    (2d + 1)^2 displacements (dy, dx) in dilation * {-d..d} (dy major), zero outside the map.

    Plain torch (one shifted product per displacement), the same quantity as FlowNetC's
    correlation layer with a 1 x 1 kernel; a: B x C x H x W, b likewise -> B x (2d+1)^2 x H x W.
    """
    d, h, w = int(max_displacement), a.shape[2], a.shape[3]
    pad = d * dilation
    padded = F.pad(b, (pad, pad, pad, pad))
    volumes = []
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            top, left = pad + dy * dilation, pad + dx * dilation
            volumes.append((a * padded[:, :, top:top + h, left:left + w]).mean(dim=1))
    return torch.stack(volumes, dim=1)


def _conv(in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
          norm: bool = False) -> nn.Sequential:
    """Conv (same padding for odd kernels, FlowNet's (k - 1) // 2 otherwise) + LeakyReLU 0.1."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, stride,
                                         (kernel - 1) // 2, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class LightFlowDecoder(nn.Module):
    """A small FlowNetC-style decoder: flow (u, v in pixels) between two frames, at full size.

    ::

        each frame -> e1 (conv/2: 1/2, w ch.) -> e2 (conv/2, conv: 1/4, 2w ch.)   shared
        cost volume of e2a, e2b, displacements +-d at 1/4            (2d+1)^2 channels
        [cost, conv1x1(e2a)] -> conv/2 -> 1/8 (4w ch.) + the F5C features of both frames
            -> 2 convs -> flow at 1/8
        1/4, 1/2, 1: upsample features and flow, concat the skip (cost volume and e2a,
            e1a, the two raw frames), convs (2, 1, 1 of 2w, w/2, w/2 ch.), add a predicted
            residual to the flow

    (all convs 3x3 + LeakyReLU 0.1 except the 1x1 redirection; the levels at 1/2 and full
    size are kept to one narrow conv each: they are most of the cost)

    Every level predicts flow in pixels of the full crop, so upsampling needs no rescaling;
    the residual predictors start at zero (the flow starts at zero, the usual micro-movement).
    Sizes are matched by bilinear resizing, so any crop works. At d = 3 the cost volume
    covers +-12 px at full size, far beyond micro-expression motion.
    """

    def __init__(self, in_channels: int, context_channels: int, width: int = 16,
                 max_displacement: int = 3):
        super().__init__()
        if int(width) < 1 or int(max_displacement) < 0:
            raise ConfigError(f"flow_width must be >= 1 and max_displacement >= 0, got "
                              f"{width} and {max_displacement}")
        w, self.max_displacement = int(width), int(max_displacement)
        costs = (2 * self.max_displacement + 1) ** 2
        half = max(w // 2, 1)
        self.enc1 = _conv(in_channels, w, stride=2)
        self.enc2 = nn.Sequential(_conv(w, 2 * w, stride=2), _conv(2 * w, 2 * w))
        self.redir = _conv(2 * w, w, kernel=1)
        self.down = _conv(costs + w, 4 * w, stride=2)
        self.fuse = nn.Sequential(_conv(4 * w + context_channels, 4 * w), _conv(4 * w, 4 * w))
        self.refine4 = nn.Sequential(_conv(4 * w + costs + w + 2, 2 * w), _conv(2 * w, 2 * w))
        self.refine2 = _conv(2 * w + w + 2, half)
        self.refine1 = _conv(half + 2 * in_channels + 2, half)
        self.predict = nn.ModuleList([nn.Conv2d(c, 2, 3, padding=1)
                                      for c in (4 * w, 2 * w, half, half)])
        for layer in self.predict:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, first: torch.Tensor, second: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        a1, b1 = self.enc1(first), self.enc1(second)
        a2, b2 = self.enc2(a1), self.enc2(b1)
        cost = F.leaky_relu(correlation(a2, b2, self.max_displacement), 0.1)
        quarter = torch.cat([cost, self.redir(a2)], dim=1)
        x = self.down(quarter)
        x = self.fuse(torch.cat([x, _resize(context, x.shape[-2:])], dim=1))
        flow = self.predict[0](x)
        for refine, predict, skip in ((self.refine4, self.predict[1], quarter),
                                      (self.refine2, self.predict[2], a1),
                                      (self.refine1, self.predict[3],
                                       torch.cat([first, second], dim=1))):
            size = skip.shape[-2:]
            flow = _resize(flow, size)
            x = refine(torch.cat([_resize(x, size), skip, flow], dim=1))
            flow = flow + predict(x)
        return flow


class FlowNetCDecoder(nn.Module):
    """The authors' flow decoder rebuilt in plain torch: FlowNetC (Dosovitskiy et al., ICCV
    2015) with batch norm, its correlation (patch 21, dilation 2: 441 displacements up to
    +-20 cells at 1/8) computed by `correlation` instead of a CUDA extension, the F5C
    features of both frames concatenated before conv3_1, and a deconvolution ladder up to the
    full crop (only the full-size flow is returned, as in their code). About 40M parameters;
    channels as in their code, initialisation theirs (Kaiming normal with a = 0.1, zero
    biases). Needs a crop divisible by 8 (the encoder's three stride-2 stages).
    """

    def __init__(self, in_channels: int, context_channels: int):
        super().__init__()
        self.conv1 = _conv(in_channels, 64, kernel=6, stride=2, norm=True)
        self.conv2 = _conv(64, 128, kernel=4, stride=2, norm=True)
        self.conv3 = _conv(128, 256, kernel=2, stride=2, norm=True)
        self.redir = _conv(256, 32, kernel=1, norm=True)
        self.conv3_1 = _conv(441 + 32 + context_channels, 256, norm=True)
        self.deep = nn.ModuleList([
            nn.Sequential(_conv(256, 512, stride=2, norm=True), _conv(512, 512, norm=True)),
            nn.Sequential(_conv(512, 512, stride=2, norm=True), _conv(512, 512, norm=True)),
            nn.Sequential(_conv(512, 1024, stride=2, norm=True), _conv(1024, 1024, norm=True)),
        ])
        skips = (512, 512, 256, 128, 64, in_channels)  # conv5, conv4, conv3_1, conv2, conv1, x
        ups = (512, 256, 128, 128, 64, 32)
        self.deconvs, self.up_flows = nn.ModuleList(), nn.ModuleList()
        self.predicts = nn.ModuleList([nn.Conv2d(1024, 2, 3, padding=1, bias=False)])
        previous = 1024
        for skip, up in zip(skips, ups, strict=True):
            self.deconvs.append(nn.Sequential(
                nn.ConvTranspose2d(previous, up, 4, 2, 1, bias=False), nn.LeakyReLU(0.1)))
            self.up_flows.append(nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False))
            previous = skip + up + 2
            self.predicts.append(nn.Conv2d(previous, 2, 3, padding=1, bias=False))
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(module.weight, 0.1)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, first: torch.Tensor, second: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        a1 = self.conv1(first)
        a2 = self.conv2(a1)
        a3 = self.conv3(a2)
        b3 = self.conv3(self.conv2(self.conv1(second)))
        cost = F.leaky_relu(correlation(a3, b3, 10, dilation=2), 0.1)
        x = self.conv3_1(torch.cat([self.redir(a3), cost, _resize(context, a3.shape[-2:])], 1))
        levels = [x]  # conv3_1, conv4_1, conv5_1, conv6_1
        for stage in self.deep:
            levels.append(stage(levels[-1]))
        x = levels.pop()
        flow = self.predicts[0](x)
        skips = [levels[2], levels[1], levels[0], a2, a1, first]  # coarse to fine
        for skip, deconv, up_flow, predict in zip(skips, self.deconvs, self.up_flows,
                                                  self.predicts[1:], strict=True):
            size = skip.shape[-2:]
            x = torch.cat([skip, _fit(deconv(x), size), _fit(up_flow(flow), size)], dim=1)
            flow = predict(x)
        return flow


def _fit(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Crop an upsampled map to `size` (FlowNet's crop_like), resizing if it came out smaller."""
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return x[..., :size[0], :size[1]]
    return _resize(x, size)


class MERHead(nn.Module):
    """Recognition head over the pair features stacked in time: N x F x h x w x S (S = 2 x
    pairs slices, ordered pair 1 frame 1, pair 1 frame 2, pair 2 frame 1, ...)::

        Conv3d F -> F / 4, kernel (2, 2, 5) over (h, w, S), stride (2, 2, 1)   no activation
        max-pool 2 -> dropout -> flatten -> FC -> hidden -> ReLU (= "features")
        -> dropout -> FC -> classes

    At the paper's size (F = 128, 16 x 16, 14 slices) the flattened size is 32 x 4 x 4 x 5 =
    2560; it is computed from the sizes, and kernels/pools shrink to a dimension smaller than
    them (short clips, small crops).
    """

    def __init__(self, channels: int, size: tuple[int, int], slices: int, n_classes: int,
                 hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        dims = (int(size[0]), int(size[1]), int(slices))
        kernel = tuple(min(k, d) for k, d in zip((2, 2, 5), dims, strict=True))
        stride = (2, 2, 1)
        conv_dims = [(d - k) // s + 1 for d, k, s in zip(dims, kernel, stride, strict=True)]
        pool = tuple(min(2, d) for d in conv_dims)
        pooled = [d // p for d, p in zip(conv_dims, pool, strict=True)]
        out_channels = max(channels // 4, 1)
        self.conv = nn.Conv3d(channels, out_channels, kernel, stride)
        self.pool = nn.MaxPool3d(pool)
        self.dropout = Dropout(dropout)
        self.flat_dim = out_channels * math.prod(pooled)
        self.hidden = nn.Linear(self.flat_dim, hidden)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dropout(self.pool(self.conv(x))).flatten(1)
        features = torch.relu(self.hidden(x))
        return self.classifier(self.dropout(features)), features


class LandmarkHead(nn.Module):
    """Landmarks from one frame's F5C features: conv 3x3 (no padding) F -> F / 4 -> ReLU ->
    FC -> hidden -> ReLU -> FC -> 2 x points, as (x, y) pairs in units of the crop around
    its centre (pixel = crop x (0.5 + output)); the output layer starts at zero (every point
    at the centre), so the first steps do not chase predictions hundreds of pixels away."""

    def __init__(self, channels: int, size: tuple[int, int], points: int = 68,
                 hidden: int = 512):
        super().__init__()
        out_channels = max(channels // 4, 1)
        self.points = int(points)
        self.conv = nn.Conv2d(channels, out_channels, 3)
        self.hidden = nn.Linear(out_channels * (size[0] - 2) * (size[1] - 2), hidden)
        self.out = nn.Linear(hidden, 2 * self.points)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def set_mean_shape(self, units: np.ndarray) -> None:
        """Start at `units` (points x 2, (x, y) crop units about the centre) for every input."""
        with torch.no_grad():
            self.out.bias.copy_(torch.as_tensor(units.reshape(-1), dtype=self.out.bias.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x)).flatten(1)
        return self.out(torch.relu(self.hidden(x))).reshape(-1, self.points, 2)


def _check_target_geometry(targets: Mapping[str, np.ndarray], frames: int, height: int,
                           width: int) -> None:
    """Flow targets N x (T-1) x H x W x 2 and landmark targets N x T x K x 2 of the frames'
    T, H, W: flow is cropped with the frames' windows, and both must be on the same pixels."""
    fix = ("give the frames and the targets the same length and size (representation "
           "options 'input', 'flow' and 'landmarks' together)")
    if "flow" in targets:
        shape = np.shape(targets["flow"])
        if len(shape) != 5 or tuple(shape[1:]) != (frames - 1, height, width, 2):
            raise InputShapeError(f"flow targets must be N x {frames - 1} x {height} x {width} x "
                                  f"2 for frame clips of {frames} x {height} x {width}, got "
                                  f"{tuple(shape)}: {fix}")
    if "landmarks" in targets:
        shape = np.shape(targets["landmarks"])
        if len(shape) == 4 and shape[1] != frames:
            raise InputShapeError(f"landmark targets have {shape[1]} frames per clip, the frame "
                                  f"clips {frames}: {fix}")


class MOL(nn.Module):
    """MOL over frame clips N x C x T x H x W (aligned gray faces, T = 8, 144 x 144).

    Shao et al., "MOL: joint estimation of micro-expression, optical flow and landmark via
    transformer-graph-style convolution", IEEE TPAMI 2025, arXiv 2506.14511.

    ::

        crop: one crop x crop window per sample (random in training, centre in eval),
              the same for all its frames
        encoder (shared, per frame, no activations):
              conv 4x4/2 (F/16) -> 3x3/2 (F/4) -> 2x2/2 pad 1 (F/2) -> 1x1 (F)
              128 px -> F x 16 x 16 (F = `features`, 128 in the paper)
        pairs (t, t+1), t = 1..T-1:  F5C_1(frame t), F5C_2(frame t+1)
              two blocks with their own weights: one for the first frame of every pair, one
              for the second (each inner frame passes through both)
        MER:  the 2(T-1) block outputs stacked in time -> `MERHead` -> logits, features
        landmarks: `LandmarkHead` on F5C_2(frame t+1) -> frame t+1's 68 points
        flow: decoder(frame t, frame t+1, [F5C_1(t), F5C_2(t+1)]) -> flow t -> t+1

    `forward` returns {"logits": N x n_classes, "features": N x hidden (the MER head's
    penultimate ReLU output), "flow": N x (T-1) x 2 x crop x crop (u, v in pixels of the
    crop, from frame t to t+1), "landmarks": N x (T-1) x points x 2 ((x, y) in pixels of
    the crop, of frames 2..T: each pair predicts its second frame, as in the authors' code;
    frame 1 has none), "crop_offsets": N x 2 int64 ((top, left) of each sample's crop in input
    pixels, for cropping the flow and landmark targets the same way)}. Without `flow_head` /
    `landmark_head` the key is absent; without `ccc` each F5C block is its fully-connected
    convolution alone.

    Choices and differences from the authors' code (MOL_model.py, modules/*.py):

    - Crop: one random window per sample and step (their data script stores 5 random crops
      per clip once, with TV-L1 flow recomputed on each); the test crop is the centre
      ((144 - 128) / 2 = 8 px, as theirs). Offsets come from torch's global RNG (rows first,
      then columns; nothing is drawn along a side that has no slack), so seeding torch
      reproduces them. Targets must be cropped by the objective with "crop_offsets".
    - Encoder: the same layers; it runs once per frame (their loop encodes inner frames
      twice, with the same result).
    - F5C: kernels and positional embeddings are sized to the feature map (their meta-kernels
      are 32 long and cropped to the map); initialisation see `FullyConnectedConv`. Batch
      norm sees all N x (T-1) pairs of a batch at once (theirs one pair index at a time).
      The CCC graph has the channels as nodes, as the method is described
      (`ccc_graph="channels"`);
      `ccc_graph="positions"` reproduces what their code actually computes (see
      `ChannelCorrespondenceConv`).
    - MER head: as theirs (no activation after the 3D convolution; dropout 0.5 after the
      pooling and after the hidden layer); its input size is computed, not fixed at 2560.
    - `subtract_first` (off in the paper; on in the registered CPU default): the F5C blocks,
      and so the MER head and the flow decoder's context, see every frame's features minus
      the first frame's. The encoder is linear, so that is the encoding of the frame
      differences: the identity is gone and only the movement is left, which a few dozen
      training clips cannot teach the network to find in raw frames. The landmark head then
      reads the raw frames' features (it needs the face, not its movement).
    - Landmarks: their head outputs pixels directly; ours outputs crop-relative units that
      are mapped to crop pixels (the returned values are pixels either way), and
      `init_from_targets` starts it at the training mean shape (their head starts at random).
    - Flow: `decoder="light"` (default) is `LightFlowDecoder`, 0.33M parameters at the
      default widths, plain torch, correlation at 1/4 with +-3 cells; `decoder="flownetc"`
      is `FlowNetCDecoder`, the authors' FlowNetC (39.7M parameters here) with the
      correlation in plain torch: it runs on a CPU but is slow (see below), and needs
      crop % 8 == 0.

    Size and speed (measured on one CPU core, torch.set_num_threads(1), of a shared 2-core
    machine: forward + backward of a batch of 16 clips of 8 frames, train mode, all heads,
    5 classes; frames 144 px unless said):

    ==========================================  ==========  =========
    setting                                     parameters  seconds
    ==========================================  ==========  =========
    default (features 128, crop 128)            4,683,821   7.2
    without the flow head                       4,356,917   1.6
    features=64                                 2,564,761   4.8
    features=64, crop=64 (72 px frames)           757,657   1.2
    decoder="flownetc"                          44,087,199  205
    ==========================================  ==========  =========

    The flow decoder is most of the time at crop 128 (7 full-resolution flows per clip);
    the landmark head's first FC (32 x 14 x 14 -> 512) holds most of the parameters.
    `features=64, crop=64` (frame_clip size 72) is the CPU setting.
    """

    head_name = "mer_head.classifier"  # the layer transfer learning re-initialises
    stem_names = ("encoder",)  # what `freeze="stem"` fixes

    def __init__(self, in_channels: int = 1, n_classes: int = 5, *, n_frames: int = 8,
                 crop: int = 128, features: int = 128, neighbors: int = 4, ccc: bool = True,
                 ccc_graph: str = "channels", flow_head: bool = True,
                 landmark_head: bool = True, decoder: str = "light", flow_width: int = 16,
                 max_displacement: int = 3, points: int = 68, hidden: int = 256,
                 landmark_hidden: int = 512, dropout: float = 0.5,
                 subtract_first: bool = False):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("n_classes", n_classes, 2),
                                 ("n_frames", n_frames, 2), ("crop", crop, MIN_CROP),
                                 ("features", features, 16), ("points", points, 1),
                                 ("hidden", hidden, 1), ("landmark_hidden", landmark_hidden, 1)):
            if isinstance(value, bool) or int(value) != value or int(value) < low:
                raise ConfigError(f"MOL {name} must be an integer >= {low}, got {value!r}")
        if not 0 <= float(dropout) < 1:
            raise ConfigError(f"MOL dropout must be in [0, 1), got {dropout!r}")
        if int(features) % 2:
            raise ConfigError(f"MOL features must be even (the F5C block splits the channels "
                              f"in halves), got {features}")
        if decoder not in DECODERS:
            raise ConfigError(f"MOL decoder must be one of {DECODERS}, got {decoder!r}")
        if decoder == "flownetc" and flow_head and int(crop) % 8:
            raise ConfigError(f"decoder='flownetc' needs a crop divisible by 8, got crop="
                              f"{crop}; use crop={int(crop) // 8 * 8} or decoder='light'")
        if not isinstance(subtract_first, bool):
            raise ConfigError(f"MOL subtract_first must be true or false, got "
                              f"{subtract_first!r}")
        self.in_channels, self.n_frames, self.crop = int(in_channels), int(n_frames), int(crop)
        self.features, self.subtract_first = int(features), subtract_first
        side = encoder_size(self.crop)
        self.feature_size = (side, side)
        f = self.features
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, f // 16, 4, stride=2),
            nn.Conv2d(f // 16, f // 4, 3, stride=2),
            nn.Conv2d(f // 4, f // 2, 2, stride=2, padding=1),
            nn.Conv2d(f // 2, f, 1),
        )
        self.block_first = F5C(f, self.feature_size, neighbors, ccc, ccc_graph)
        self.block_second = F5C(f, self.feature_size, neighbors, ccc, ccc_graph)
        self.mer_head = MERHead(f, self.feature_size, 2 * (self.n_frames - 1), n_classes,
                                hidden, dropout)
        self.feature_dim = int(hidden)
        self.landmark_head = (LandmarkHead(f, self.feature_size, points, landmark_hidden)
                              if landmark_head else None)
        self.flow_decoder: nn.Module | None = None
        if flow_head:
            self.flow_decoder = (LightFlowDecoder(in_channels, 2 * f, flow_width,
                                                  max_displacement)
                                 if decoder == "light" else FlowNetCDecoder(in_channels, 2 * f))

    def init_from_targets(self, targets: Mapping[str, np.ndarray],
                          input_shape: tuple[int, ...]) -> None:
        """Start the landmark head at the training mean shape (of frames 2..T, where the
        centre crop puts it) instead of every point at the crop's centre: from there, at a
        CPU learning rate, the output bias alone would take hundreds of steps to reach the
        face. `targets["landmarks"]`: N x T x points x 2 in input pixels; `input_shape`:
        the per-sample T x H x W x C. Targets of another clip length or frame size than the
        frames (a representation option changed for one of them only) are an InputShapeError
        here, before the first step."""
        frames, height, width = (int(v) for v in input_shape[:3])
        _check_target_geometry(targets, frames, height, width)
        if self.landmark_head is None or "landmarks" not in targets:
            return
        points = np.asarray(targets["landmarks"], dtype=np.float64)
        if points.ndim != 4 or points.shape[2:] != (self.landmark_head.points, 2):
            raise InputShapeError(f"landmark targets must be N x T x {self.landmark_head.points}"
                                  f" x 2, got {points.shape}")
        mean = points[:, 1:].mean(axis=(0, 1))  # points x 2, (x, y) input pixels
        mean -= np.array([(width - self.crop) // 2, (height - self.crop) // 2])
        self.landmark_head.set_mean_shape(mean / self.crop - 0.5)

    def crop_offsets(self, n: int, height: int, width: int,
                     device: torch.device | None = None) -> torch.Tensor:
        """(top, left) of each sample's crop: uniform from torch's global RNG in training,
        the centre in eval mode. N x 2 int64."""
        if self.training:
            top = (torch.randint(0, height - self.crop + 1, (n,)) if height > self.crop
                   else torch.zeros(n, dtype=torch.long))
            left = (torch.randint(0, width - self.crop + 1, (n,)) if width > self.crop
                    else torch.zeros(n, dtype=torch.long))
        else:
            top = torch.full((n,), (height - self.crop) // 2, dtype=torch.long)
            left = torch.full((n,), (width - self.crop) // 2, dtype=torch.long)
        return torch.stack([top, left], dim=1).to(device)

    def crop_clip(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The crop x crop windows of a batch N x C x T x H x W and their offsets (N x 2)."""
        n, _, _, height, width = x.shape
        offsets = self.crop_offsets(n, height, width, x.device)
        if height == width == self.crop:
            return x, offsets
        c = self.crop
        rows = offsets.tolist()
        if all(r == rows[0] for r in rows):
            top, left = rows[0]
            return x[..., top:top + c, left:left + c], offsets
        return torch.stack([x[i, ..., t:t + c, lf:lf + c]
                            for i, (t, lf) in enumerate(rows)]), offsets

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if (x.ndim != 5 or x.shape[1] != self.in_channels or x.shape[2] != self.n_frames
                or min(x.shape[3], x.shape[4]) < self.crop):
            raise InputShapeError(
                f"MOL takes frame clips N x C x T x H x W with C={self.in_channels}, T="
                f"{self.n_frames} and H, W >= crop={self.crop}, got {tuple(x.shape)}; use the "
                f"frame_clip representation with length={self.n_frames} and size >= "
                f"{self.crop} (144 by default)")
        clip, offsets = self.crop_clip(x)
        n, c, t, s = clip.shape[0], clip.shape[1], clip.shape[2], clip.shape[3]
        pairs = t - 1
        frames = clip.transpose(1, 2)  # N x T x C x s x s
        encoded = self.encoder(frames.reshape(n * t, c, s, s))
        encoded = encoded.reshape(n, t, *encoded.shape[1:])
        motion = encoded - encoded[:, :1] if self.subtract_first else encoded
        first = self.block_first(motion[:, :-1].reshape(n * pairs, *encoded.shape[2:]))
        second = self.block_second(motion[:, 1:].reshape(n * pairs, *encoded.shape[2:]))
        stacked = torch.stack([first, second], dim=1)  # N(T-1) x 2 x F x h x w
        stacked = stacked.reshape(n, 2 * pairs, *first.shape[1:]).permute(0, 2, 3, 4, 1)
        logits, features = self.mer_head(stacked)
        out = {"logits": logits, "features": features, "crop_offsets": offsets}
        if self.landmark_head is not None:
            # With subtract_first the blocks see motion only: landmarks need the frames.
            source = (encoded[:, 1:].reshape(n * pairs, *encoded.shape[2:])
                      if self.subtract_first else second)
            units = self.landmark_head(source).reshape(n, pairs, -1, 2)
            out["landmarks"] = (units + 0.5) * self.crop
        if self.flow_decoder is not None:
            flow = self.flow_decoder(frames[:, :-1].reshape(n * pairs, c, s, s),
                                     frames[:, 1:].reshape(n * pairs, c, s, s),
                                     torch.cat([first, second], dim=1))
            out["flow"] = flow.reshape(n, pairs, 2, s, s)
        return out


def _build(input_shape: tuple[int, ...], n_classes: int, **params) -> nn.Module:
    """MOL for per-sample frame clips (T, H, W, C), channels last (the frame_clip
    representation: length 8, size 144 by default)."""
    if len(input_shape) != 4:
        raise InputShapeError(f"mol takes per-sample frame clips T x H x W x C (the frame_clip "
                              f"representation, length 8, size 144), got shape "
                              f"{tuple(input_shape)}")
    frames, height, width, channels = (int(v) for v in input_shape)
    if frames < 2:
        raise InputShapeError(f"mol needs at least 2 frames per clip (it works on consecutive "
                              f"pairs), got {frames}; set the frame_clip length to 8")
    n_frames = int(params.pop("n_frames", frames))
    if n_frames != frames:
        raise InputShapeError(f"mol was given n_frames={n_frames} but its frame clips hold "
                              f"{frames} frames; set the frame_clip length to {n_frames} or "
                              f"drop the n_frames parameter")
    crop = int(params.pop("crop", 128))
    if min(height, width) < crop:
        raise InputShapeError(
            f"mol crops {crop} x {crop} windows from its frames, got {height} x {width} frames; "
            f"set the frame_clip size to at least {crop} (144 for the default crop=128: "
            f"random 128 px crops of 144 px faces) or the model's crop to at most "
            f"{min(height, width)}")
    return MOL(channels, n_classes, n_frames=frames, crop=crop, **params)


# The CPU default: 8 frames of 72 px faces, random 64 px crops, F = 64 encoder channels. The
# shared encoder is linear, so `subtract_first` (each frame's features minus the first
# frame's) is the encoding of the frame differences: with a few dozen training clips the
# network cannot learn to ignore the identity in raw frames (UF1 0.25 on the synthetic
# database, 6 subjects training, 6 testing), from the differences it learns the movement
# (UF1 0.99 under LOSO, docs/benchmarks.md).
# Faces aligned once per clip ("align": {} is the default alignment) by the alignment the
# landmark targets are expressed in, so frames, flow and landmarks share their pixels.
_CLIP = {"length": 8, "size": 72, "align": {}}
_PAPER_CLIP = {"length": 8, "size": 144, "align": {}}
_LANDMARKS = {"length": 8, "size": 72}

SPEC = register_model(ModelSpec(
    name="mol",
    build=_build,
    representation="frame_clip",
    representation_config=_CLIP,
    targets={"flow": {"representation": "frame_flows", "config": {**_CLIP, "method": "tvl1"}},
             "landmarks": {"representation": "landmarks", "config": _LANDMARKS}},
    # AdamW and weight decay 1e-3 as the paper; lr 3e-3 with a cosine schedule and 20
    # epochs replace their 1000 steps at 1e-4 (a GPU budget). The loss is theirs.
    train={"epochs": 20, "batch_size": 16, "lr": 3e-3, "optimizer": "adamw",
           "weight_decay": 1e-3, "schedule": "cosine", "objective": "mol"},
    params={"crop": 64, "features": 64, "flow_width": 8, "neighbors": 4, "ccc": True,
            "ccc_graph": "channels", "flow_head": True, "landmark_head": True,
            "decoder": "light", "max_displacement": 3, "subtract_first": True,
            "hidden": 256, "landmark_hidden": 512, "dropout": 0.5},
    param_rules={"crop": integer(MIN_CROP), "features": integer(16),
                 "max_displacement": integer(0), "decoder": one_of(*DECODERS),
                 "ccc_graph": one_of(*CCC_GRAPHS)},
    default_input=(8, 72, 72, 1),
    min_size=MIN_CROP,
    # always returned; "flow" and "landmarks" too while their heads are on (the ablations
    # switch them off)
    outputs=("features", "crop_offsets"),
    shared_options=("length", "size", "align"),
    recipes={"paper": {
        # per input / target name: the targets follow the frames' size
        "representation": {"input": _PAPER_CLIP, "flow": _PAPER_CLIP,
                           "landmarks": {**_LANDMARKS, "size": 144}},
        "train": {"steps": 1000, "batch_size": 32, "lr": 1e-4, "optimizer": "adamw",
                  "weight_decay": 1e-3, "schedule": "constant"},
        "params": {"crop": 128, "features": 128, "flow_width": 16, "subtract_first": False},
        "note": "Shao et al., TPAMI 2025 and github.com/CYF-cuber/MOL: 144 px faces, random "
                "128 px crops, F = 128, raw frames, AdamW lr 1e-4, wd 1e-3, batch 32, 1000 "
                "steps per fold; the light flow decoder (add "
                "--param decoder=flownetc for their FlowNetC, ~40M parameters)",
    }},
    reference="Shao et al., MOL: Joint Estimation of Micro-Expression, Optical Flow, and "
              "Landmark via Transformer-Graph-Style Convolution, IEEE TPAMI 2025, arXiv "
              "2506.14511",
    description="F5C (global circular convolutions + channel-graph convolution) over frame "
                "pairs, with joint flow and landmark heads, from aligned frame clips",
))
