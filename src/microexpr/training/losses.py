"""Loss functions on model outputs that the objectives (`training.objectives`) combine.

`deviation_enhancement_loss` is SMA-STN's DE-Loss (Liu, Zheng, Zong, arXiv 2010.09342): the
paper describes it as enlarging the deviation between the features of different classes; its
formula is not public, so a Fisher-ratio form is used, documented on the function.
"""

from __future__ import annotations

import torch

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
