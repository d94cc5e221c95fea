"""LBP-TOP + linear SVM, the MEGC 2019 baseline.

Zhao & Pietikäinen, "Dynamic texture recognition using local binary patterns with an
application to facial expressions", IEEE TPAMI 29(6), 2007; baseline parameters of See et
al., "MEGC 2019 - the second facial micro-expressions grand challenge", IEEE FG 2019.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from microexpr.errors import InputShapeError
from microexpr.features.lbp_top import check_params, lbp_top_features
from microexpr.models.linear_svm import PlattLinearSVC
from microexpr.models.params import integer, number, one_of, sequence
from microexpr.models.registry import ModelSpec, register_model

REFERENCE = ("Zhao & Pietikainen, Dynamic texture recognition using local binary patterns "
             "with an application to facial expressions, IEEE TPAMI 2007; MEGC 2019 baseline "
             "parameters (See et al., FG 2019)")


def gray_volumes(x: np.ndarray) -> np.ndarray:
    """N x T x H x W gray volumes from N x T x H x W x C clips (C = 1, or 3 averaged)."""
    x = np.asarray(x)
    if x.ndim != 5 or x.shape[-1] not in (1, 3):
        raise InputShapeError(f"LBP-TOP takes frame clips N x T x H x W x C (C = 1 or 3), got "
                              f"shape {x.shape}; use the frame_clip representation")
    return x[..., 0] if x.shape[-1] == 1 else x.mean(axis=-1)


class LBPTOPFeatures(TransformerMixin, BaseEstimator):
    """Frame clips (N x T x H x W x C) -> N x D LBP-TOP block histograms.

    radii (R_X, R_Y, R_T), neighbours per plane (one int or (P_XY, P_XT, P_YT)), a
    rows x cols block grid and the histogram `mapping` ("uniform" u2 or "basic"); see
    `microexpr.features.lbp_top` for the exact codes, blocks and histogram layout. Stateless.
    """

    def __init__(self, radii=(1, 1, 4), neighbours=4, blocks=(5, 5), mapping="uniform"):
        self.radii = radii
        self.neighbours = neighbours
        self.blocks = blocks
        self.mapping = mapping

    def fit(self, X, y=None) -> LBPTOPFeatures:
        check_params(self.radii, self.neighbours, self.mapping)
        return self

    def transform(self, X) -> np.ndarray:
        return lbp_top_features(gray_volumes(X), self.radii, self.neighbours, self.blocks,
                                self.mapping)


def build(input_shape: tuple[int, ...], n_classes: int, seed: int = 0, *, C: float = 1.0,
          radii=(1, 1, 4), neighbours=4, blocks=(5, 5), mapping="uniform",
          class_weight: str | None = "balanced", calibration_folds: int = 5) -> Pipeline:
    """LBP-TOP features -> linear SVM with Platt probabilities.

    With the defaults (P = 4 per plane, u2 mapping: 15 bins; 5 x 5 blocks; 3 planes) the
    SVM sees 5 * 5 * 3 * 15 = 1125 features per clip, each block-plane histogram summing to 1.
    """
    (_, _, radius_t), _ = check_params(radii, neighbours, mapping)
    if len(input_shape) == 4:
        margin_t = int(np.ceil(radius_t))
        if input_shape[0] < 2 * margin_t + 1:
            raise InputShapeError(
                f"lbp_top_svm with R_T = {margin_t} needs clips of at least {2 * margin_t + 1} "
                f"frames, got {input_shape[0]}; set the frame_clip length (default 10)")
    return Pipeline([
        ("lbp_top", LBPTOPFeatures(radii, neighbours, blocks, mapping)),
        ("svm", PlattLinearSVC(C=C, class_weight=class_weight,
                               calibration_folds=calibration_folds, random_state=seed)),
    ])


SPEC = register_model(ModelSpec(
    name="lbp_top_svm",
    kind="sklearn",
    build=build,
    representation="frame_clip",
    # TIM to 10 frames (MEGC 2019 baseline); gray faces at 128 x 128
    representation_config={"length": 10, "sampling": "tim", "size": 128},
    params={"C": 1.0, "radii": (1, 1, 4), "neighbours": 4, "blocks": (5, 5),
            "mapping": "uniform", "class_weight": "balanced", "calibration_folds": 5},
    param_rules={
        "radii": sequence(number(0.0, low_open=True), 3, scalar=True,
                          what="a number > 0 or an [R_X, R_Y, R_T] triple of them"),
        "neighbours": sequence(integer(2, 16), 3, scalar=True,
                               what="an integer in 2..16 or a [P_XY, P_XT, P_YT] triple"),
        "mapping": one_of("uniform", "basic"),
    },
    recipes={"paper": {
        "params": {"radii": (1, 1, 4), "neighbours": 4, "blocks": (5, 5), "mapping": "uniform"},
        "note": "the MEGC 2019 baseline (See et al., FG 2019): radii 1, 1, 4; 4 neighbours per "
                "plane; 5 x 5 blocks; u2 histograms; TIM to 10 frames (the representation's "
                "default); the same as the defaults",
    }},
    default_input=(10, 128, 128, 1),
    min_size=16,
    reference=REFERENCE,
    description="LBP-TOP (radii 1,1,4; P=4; 5x5 blocks; u2 histograms) of a TIM-10 clip, "
                "linear SVM",
))

