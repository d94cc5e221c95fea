"""Hand-crafted feature extractors of the classical baselines: pure numpy, vectorised.

- `lbp_top`: local binary patterns on three orthogonal planes of a gray volume (LBP-TOP);
- `bi_woof`: bi-weighted oriented optical flow histograms of an onset -> apex flow (Bi-WOOF);
- `hoof`: histograms of oriented optical flow (HOOF) of whole fields, blocks or boxes, and the
  orientation binning the other flow features share;
- `blocks`: the regular block grid they all histogram over.

The scikit-learn transformers wrapping them live with their models in `microexpr.models`.
"""

from microexpr.features.bi_woof import bi_woof, bi_woof_features
from microexpr.features.blocks import block_labels, grid_labels
from microexpr.features.hoof import (
    block_hoof,
    hoof,
    magnitude_stats,
    orientation_bins,
    region_flow_features,
)
from microexpr.features.lbp_top import (
    PLANES,
    lbp_mapping,
    lbp_top_codes,
    lbp_top_features,
    lbp_top_histograms,
    neighbour_offsets,
)

__all__ = [
    "PLANES", "bi_woof", "bi_woof_features", "block_hoof", "block_labels", "grid_labels",
    "hoof", "lbp_mapping", "lbp_top_codes", "lbp_top_features", "lbp_top_histograms",
    "magnitude_stats", "neighbour_offsets", "orientation_bins", "region_flow_features",
]
