"""Linear models on raw pixels: the floor every deep model's table row is compared against.

`logreg` and `linear_svm` flatten any H x W x C input (any channels, any size), standardise
each value on the training fold and fit a class-balanced linear classifier. A deep model that
does not beat them on the same inputs has learned nothing a linear map of the pixels cannot.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from microexpr.models.linear_svm import PlattLinearSVC
from microexpr.models.registry import ModelSpec, register_model

# the flow every flow model here gets by default, as STSTNet: TV-L1 u, v, strain at 28 x 28
FLOW = {"method": "tvl1", "size": 28, "channels": ("u", "v", "strain")}


def flatten(x: np.ndarray) -> np.ndarray:
    """N x ... -> N x D (a module-level function, so that fitted pipelines pickle)."""
    x = np.asarray(x)
    return x.reshape(len(x), -1)


def on_pixels(name: str, classifier) -> Pipeline:
    """Flatten -> standardise each value -> `classifier`."""
    return Pipeline([("flatten", FunctionTransformer(flatten)), ("scale", StandardScaler()),
                     (name, classifier)])


def build_logreg(input_shape: tuple[int, ...], n_classes: int, seed: int = 0, *,
                 C: float = 1.0, class_weight: str | None = "balanced",
                 max_iter: int = 1000) -> Pipeline:
    """Flatten -> standardise -> L2-regularised multinomial logistic regression (lbfgs)."""
    return on_pixels("logreg", LogisticRegression(C=C, class_weight=class_weight,
                                                  solver="lbfgs", max_iter=max_iter,
                                                  random_state=seed))


def build_linear_svm(input_shape: tuple[int, ...], n_classes: int, seed: int = 0, *,
                     C: float = 1.0, class_weight: str | None = "balanced",
                     calibration_folds: int = 5) -> Pipeline:
    """Flatten -> standardise -> linear SVM with Platt probabilities (`PlattLinearSVC`)."""
    return on_pixels("svm", PlattLinearSVC(C=C, class_weight=class_weight,
                                           calibration_folds=calibration_folds,
                                           random_state=seed))


COMMON = {
    "kind": "sklearn",
    "representation": "onset_apex_flow",
    "representation_config": FLOW,
    "default_input": (28, 28, 3),
    "min_size": 1,
    "reference": "linear baseline on raw pixels (no paper: the floor for every other model)",
}

LOGREG = register_model(ModelSpec(
    name="logreg",
    build=build_logreg,
    params={"C": 1.0, "class_weight": "balanced", "max_iter": 1000},
    description="flattened pixels of any input, standardised, class-balanced L2 logistic "
                "regression",
    **COMMON,
))

LINEAR_SVM = register_model(ModelSpec(
    name="linear_svm",
    build=build_linear_svm,
    params={"C": 1.0, "class_weight": "balanced", "calibration_folds": 5},
    description="flattened pixels of any input, standardised, class-balanced linear SVM "
                "(Platt probabilities)",
    **COMMON,
))
