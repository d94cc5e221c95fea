"""Landmark-region optical flow + PCA + linear SVM.

Li, Yu, Kurihara, Zhang, Zhan, "Micro-expression recognition based on facial landmark regions
and optical flow" (2019; methods.md section 5): a landmark detector divides the face into
regions (brows, eyes, nose, mouth, cheeks), optical flow is estimated there, the per-region
flow features are reduced in dimension and an SVM classifies.

Here: the `region_flow` representation gives, per region of the onset's landmarks (9 regions:
brows, eyes, cheeks left and right, nose, mouth, chin), the magnitude-weighted histogram of
oriented onset -> apex flow (8 bins, sum 1) and the flow magnitude's mean, std and max:
9 x 11 = 99 values per clip. The pipeline standardises them, reduces them by PCA (fitted on
the training fold only, as every step of the pipeline) and ends in a linear SVM with Platt
probabilities.
"""

from __future__ import annotations

from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from microexpr.errors import ConfigError
from microexpr.models.linear_svm import PlattLinearSVC
from microexpr.models.params import either, integer, number, optional
from microexpr.models.registry import ModelSpec, register_model

REFERENCE = ("Li, Yu, Kurihara, Zhang, Zhan, Micro-expression recognition based on facial "
             "landmark regions and optical flow, 2019")


def build(input_shape: tuple[int, ...], n_classes: int, seed: int = 0, *, C: float = 1.0,
          pca_components: float | int | None = 0.95, class_weight: str | None = "balanced",
          calibration_folds: int = 5) -> Pipeline:
    """Standardise -> PCA -> linear SVM (Platt) on per-region flow feature vectors.

    `pca_components`: a fraction in (0, 1) keeps the fewest components explaining that share
    of the training fold's variance (0.95 by default, so it adapts to the fold size); an int
    keeps that many (at most the number of training clips); None skips PCA.
    """
    steps = [("scale", StandardScaler())]
    if pca_components is not None:
        if isinstance(pca_components, float) and not 0.0 < pca_components < 1.0 or (
                not isinstance(pca_components, float) and int(pca_components) < 1):
            raise ConfigError(f"pca_components must be a fraction in (0, 1), an int >= 1 or "
                              f"None, got {pca_components!r}")
        steps.append(("pca", PCA(n_components=pca_components, svd_solver="full",
                                 random_state=seed)))
    steps.append(("svm", PlattLinearSVC(C=C, class_weight=class_weight,
                                        calibration_folds=calibration_folds,
                                        random_state=seed)))
    return Pipeline(steps)


SPEC = register_model(ModelSpec(
    name="region_flow_svm",
    kind="sklearn",
    build=build,
    representation="region_flow",
    representation_config={"method": "tvl1", "compute_size": 128, "bins": 8,
                           "backend": "mediapipe"},
    params={"C": 1.0, "pca_components": 0.95, "class_weight": "balanced",
            "calibration_folds": 5},
    param_rules={"pca_components": optional(
        either(number(0.0, 1.0, low_open=True, high_open=True), integer(1),
               what="a fraction in (0, 1) or an integer >= 1"))},
    default_input=(99,),
    reference=REFERENCE,
    description="HOOF + magnitude statistics of onset-apex flow in 9 landmark regions, PCA, "
                "linear SVM",
))
