"""Bi-WOOF + linear SVM: bi-weighted oriented optical flow from onset and apex only.

Liong, See, Wong, Phan, "Less is more: micro-expression recognition from video using apex
frame", Signal Processing: Image Communication 62, 82-92, 2018.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from microexpr.errors import InputShapeError
from microexpr.features.bi_woof import bi_woof_features
from microexpr.features.blocks import as_grid
from microexpr.models.linear_svm import PlattLinearSVC
from microexpr.models.registry import ModelSpec, register_model

REFERENCE = ("Liong, See, Wong, Phan, Less is more: micro-expression recognition from video "
             "using apex frame, Signal Processing: Image Communication 2018")


class BiWOOFFeatures(TransformerMixin, BaseEstimator):
    """Onset -> apex maps (N x H x W x 3: u, v, strain, in that order) -> N x (rows*cols*bins)
    Bi-WOOF features: per block a magnitude-weighted orientation histogram (normalised),
    times the block's mean optical strain, concatenated and L2-normalised (see
    `microexpr.features.bi_woof`). Stateless.
    """

    def __init__(self, blocks=(5, 5), bins: int = 8):
        self.blocks = blocks
        self.bins = bins

    def fit(self, X, y=None) -> BiWOOFFeatures:
        return self

    def transform(self, X) -> np.ndarray:
        return bi_woof_features(X, self.blocks, self.bins)


def build(input_shape: tuple[int, ...], n_classes: int, seed: int = 0, *, C: float = 1.0,
          blocks=(5, 5), bins: int = 8, class_weight: str | None = "balanced",
          calibration_folds: int = 5) -> Pipeline:
    """Bi-WOOF features (5 x 5 blocks x 8 bins = 200 by default) -> linear SVM (Platt)."""
    rows, cols = as_grid(blocks)
    if len(input_shape) == 3 and (input_shape[0] < rows or input_shape[1] < cols):
        raise InputShapeError(f"bi_woof_svm cannot cut {input_shape[0]}x{input_shape[1]} maps "
                              f"into {rows}x{cols} blocks; compute the flow at a larger size")
    return Pipeline([
        ("bi_woof", BiWOOFFeatures((rows, cols), bins)),
        ("svm", PlattLinearSVC(C=C, class_weight=class_weight,
                               calibration_folds=calibration_folds, random_state=seed)),
    ])


SPEC = register_model(ModelSpec(
    name="bi_woof_svm",
    kind="sklearn",
    build=build,
    representation="onset_apex_flow",
    representation_config={"method": "tvl1", "compute_size": 128, "size": 64,
                           "channels": ("u", "v", "strain")},
    params={"C": 1.0, "blocks": (5, 5), "bins": 8, "class_weight": "balanced",
            "calibration_folds": 5},
    default_input=(64, 64, 3),
    min_size=8,
    input_channels=("u", "v", "strain"),  # BiWOOFFeatures reads them in this order
    reference=REFERENCE,
    description="Bi-WOOF (5x5 blocks, 8 orientation bins, magnitude- and strain-weighted) "
                "of onset-apex flow, linear SVM",
))
