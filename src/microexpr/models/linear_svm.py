"""The linear SVM with Platt-scaled probabilities that the classical baselines end in.

Not a registered model itself: `lbp_top_svm`, `bi_woof_svm` and `region_flow_svm` put it at
the end of their scikit-learn pipelines.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from microexpr.errors import ConfigError


class PlattLinearSVC(ClassifierMixin, BaseEstimator):
    """Linear SVM (libsvm, one-vs-one) with Platt (sigmoid) probabilities.

    The SVM is trained on all training samples; the sigmoids mapping its one-vs-rest decision
    values to probabilities are fitted on out-of-fold decision values of a stratified
    `calibration_folds`-fold split of the training samples (scikit-learn's
    `CalibratedClassifierCV(SVC(kernel="linear"), method="sigmoid", ensemble=False)`, which
    replaces the deprecated `SVC(probability=True)`). The folds shrink to the size of the
    smallest class; when a class has a single sample the probabilities are the softmax of the
    decision values instead. `class_weight="balanced"` weights classes inversely to their
    frequency (micro-expression databases are unbalanced and are scored by UF1 / UAR).
    """

    def __init__(self, C: float = 1.0, class_weight: str | None = "balanced",
                 calibration_folds: int = 5, random_state: int | None = None):
        self.C = C
        self.class_weight = class_weight
        self.calibration_folds = calibration_folds
        self.random_state = random_state

    def fit(self, X, y) -> PlattLinearSVC:
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        if not self.C > 0:
            raise ConfigError(f"the SVM's C must be > 0, got {self.C!r}")
        if self.calibration_folds < 2:
            raise ConfigError(f"calibration_folds must be >= 2, got {self.calibration_folds}")
        self.classes_, counts = np.unique(y, return_counts=True)
        if len(self.classes_) < 2:
            raise ConfigError(f"an SVM needs at least 2 classes in the training data, got "
                              f"{list(self.classes_)}")
        svm = SVC(kernel="linear", C=self.C, class_weight=self.class_weight)
        folds = int(min(self.calibration_folds, counts.min()))
        if folds >= 2:
            split = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
            self.model_ = CalibratedClassifierCV(svm, method="sigmoid", cv=split,
                                                 ensemble=False).fit(X, y)
        else:
            self.model_ = svm.fit(X, y)
        return self

    def decision_function(self, X) -> np.ndarray:
        model = self.model_
        svm = model.calibrated_classifiers_[0].estimator if hasattr(
            model, "calibrated_classifiers_") else model
        return svm.decision_function(np.asarray(X, dtype=np.float64))

    def predict_proba(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if isinstance(self.model_, CalibratedClassifierCV):
            return self.model_.predict_proba(X)
        scores = self.model_.decision_function(X)
        if scores.ndim == 1:  # two classes: the score of the second
            scores = np.stack([-scores, scores], axis=1) / 2.0
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
