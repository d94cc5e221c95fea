"""Loss functions on model outputs that the objectives (`training.objectives`) combine.

`deviation_enhancement_loss` is SMA-STN's DE-Loss (Liu, Zheng, Zong, arXiv 2010.09342): the
paper describes it as enlarging the deviation between the features of different classes; its
formula is not public, so a Fisher-ratio form is used, documented on the function.
"""

from __future__ import annotations

import torch
from torch import nn

from microexpr.errors import InputShapeError


def deviation_enhancement_loss(features: torch.Tensor, labels: torch.Tensor, *,
                               eps: float = 1e-6) -> torch.Tensor:
    """DE-Loss: log of within-class over between-class scatter of the batch's features.

    With features f_i (N x D), labels y_i, the classes c present in the batch, their counts
    n_c and means mu_c, and the batch mean mu::

        S_w = 1/N sum_i ||f_i - mu_{y_i}||^2           within-class scatter
        S_b = 1/N sum_c n_c ||mu_c - mu||^2            between-class scatter
        T   = S_w + S_b                                total scatter (1/N sum_i ||f_i - mu||^2)
        loss = log(S_w + eps T) - log(S_b + eps T)

    Minimising it moves class means apart relative to the spread within each class (Fisher's
    criterion, as a log-ratio so its gradient does not depend on the features' scale). Since
    S_w + S_b = T it is a decreasing function of S_b / T alone: invariant to scaling and
    shifting the features (exactly: eps is relative to T), and bounded by +-log((1 + eps) /
    eps), so it can never dominate the cross-entropy by driving a scatter to zero. Returns 0
    (connected to `features`' graph, so backward works and gives zero gradients) when the
    batch holds fewer than 2 classes, and 0 when every feature is the same. Computed in float32
    at least, whatever the features' dtype.
    """
    if features.ndim != 2:
        raise InputShapeError(f"deviation_enhancement_loss takes features N x D, got shape "
                              f"{tuple(features.shape)}; flatten them first")
    if labels.shape != features.shape[:1]:
        raise InputShapeError(f"deviation_enhancement_loss takes one label per feature row: "
                              f"labels of shape ({features.shape[0]},), got "
                              f"{tuple(labels.shape)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    x = features.float() if features.dtype in (torch.float16, torch.bfloat16) else features
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        return x.sum() * 0.0
    n = x.shape[0]
    one_hot = torch.zeros(len(classes), n, dtype=x.dtype, device=x.device)
    one_hot[inverse, torch.arange(n, device=x.device)] = 1.0
    counts = counts.to(x.dtype)
    means = (one_hot @ x) / counts[:, None]  # classes x D
    within = ((x - means[inverse]) ** 2).sum() / n
    between = (counts * ((means - x.mean(dim=0)) ** 2).sum(dim=1)).sum() / n
    floor = eps * (within + between) + torch.finfo(x.dtype).tiny  # tiny: all features equal
    return torch.log(within + floor) - torch.log(between + floor)


# -- MOL's auxiliary tasks: flow and landmarks of the crop the network saw ------------------

LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)  # 68-point scheme


def crop_flow(target: torch.Tensor, offsets: torch.Tensor, size: int) -> torch.Tensor:
    """The size x size window at `offsets` ((top, left) per sample, N x 2) of flow targets
    N x P x H x W x 2 (channels last, as the representation holds them), as N x P x 2 x size
    x size (the layout the network predicts)."""
    if target.ndim != 5 or target.shape[-1] != 2:
        raise InputShapeError(f"flow targets must be N x P x H x W x 2, got "
                              f"{tuple(target.shape)}")
    n = target.shape[0]
    steps = torch.arange(size, device=target.device)
    rows = offsets[:, 0:1].to(target.device) + steps  # N x size
    cols = offsets[:, 1:2].to(target.device) + steps
    window = target[torch.arange(n, device=target.device)[:, None, None], :,
                    rows[:, :, None], cols[:, None, :]]  # N x size x size x P x 2
    return window.permute(0, 3, 4, 1, 2)


def shift_landmarks(target: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Landmarks N x ... x K x 2 ((x, y) input pixels) in the coordinates of the crop whose
    (top, left) are `offsets` (N x 2)."""
    shift = offsets[:, [1, 0]].to(target.dtype).to(target.device)  # (left, top) = (x, y)
    return target - shift.view(shift.shape[0], *(1,) * (target.ndim - 2), 2)


def inter_ocular(landmarks: torch.Tensor) -> torch.Tensor:
    """Distance between the eye centres (means of points 36-41 and 42-47) of 68-point
    landmarks ... x 68 x 2; at least 1 pixel."""
    left = landmarks[..., LEFT_EYE, :].mean(dim=-2)
    right = landmarks[..., RIGHT_EYE, :].mean(dim=-2)
    return (left - right).norm(dim=-1).clamp(min=1.0)


def flow_mse(predicted: torch.Tensor, target: torch.Tensor, offsets: torch.Tensor
             ) -> torch.Tensor:
    """MOL's flow loss: the mean squared error of predicted flows N x P x 2 x s x s against
    the targets' crop, divided by the number of flows P once more, as the authors' training
    script does (their weight 10 applies to this value)."""
    truth = crop_flow(target, offsets, predicted.shape[-1])
    return nn.functional.mse_loss(predicted, truth) / predicted.shape[1]


def landmark_l1(predicted: torch.Tensor, target: torch.Tensor, offsets: torch.Tensor
                ) -> torch.Tensor:
    """MOL's landmark loss: the L1 distance of each point (|dx| + |dy|) divided by the
    target's inter-ocular distance, averaged over points and samples and summed over the P
    frames, as the authors' training script does. `predicted` N x P x K x 2 (crop pixels)
    are the last P frames of `target` N x T x K x 2 (input pixels)."""
    frames = predicted.shape[1]
    if target.ndim != 4 or target.shape[1] < frames or target.shape[2:] != predicted.shape[2:]:
        raise InputShapeError(f"landmark targets {tuple(target.shape)} do not match the "
                              f"predictions {tuple(predicted.shape)} (N x frames x points x 2)")
    truth = shift_landmarks(target[:, -frames:], offsets)
    error = (predicted - truth).abs().sum(dim=-1)  # N x P x K
    return (error / inter_ocular(truth)[..., None]).mean() * frames


def cross_domain_contrastive_loss(micro: torch.Tensor, micro_labels: torch.Tensor,
                                  macro: torch.Tensor, macro_labels: torch.Tensor, *,
                                  temperature: float = 0.1) -> torch.Tensor:
    """MiMaNet's contrastive term: each micro feature against a batch of macro features,
    the same-class ones its positives (a supervised InfoNCE across the two domains)::

        s_ij = cos(micro_i, macro_j) / temperature
        loss_i = -log( sum_{j: y_j = y_i} exp(s_ij) / sum_j exp(s_ij) )

    averaged over the micro samples with at least one positive; 0 (connected to the graph)
    when none has. Macro labels of -1 (no micro class) are negatives of every micro sample.
    """
    if micro.ndim != 2 or macro.ndim != 2 or micro.shape[1] != macro.shape[1]:
        raise InputShapeError(f"contrastive features must be N x D and M x D, got "
                              f"{tuple(micro.shape)} and {tuple(macro.shape)}")
    similarity = (nn.functional.normalize(micro.float(), dim=1)
                  @ nn.functional.normalize(macro.float(), dim=1).T) / temperature
    positive = micro_labels[:, None] == macro_labels[None, :]
    has = positive.any(dim=1)
    if not bool(has.any()):
        return similarity.sum() * 0.0
    log_all = torch.logsumexp(similarity, dim=1)
    log_positive = torch.logsumexp(similarity.masked_fill(~positive, float("-inf")), dim=1)
    return (log_all - log_positive)[has].mean()
