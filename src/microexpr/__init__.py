"""microexpr: facial micro-expression recognition, from database folders to honest evaluation.

The public API is imported lazily so that `import microexpr` stays fast (torch is loaded only
when a model is used).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_dataset": "microexpr.data.adapters",
    "list_datasets": "microexpr.data.adapters",
    "load_composite": "microexpr.data.composite",
    "label_schemes": "microexpr.data.labels",
    "read_manifest": "microexpr.data.manifest",
    "synthesize": "microexpr.synth",
    "SynthConfig": "microexpr.synth",
    "Dataset": "microexpr.data.clips",
    "compute_representation": "microexpr.representations",
    "FlowConfig": "microexpr.representations",
    "list_models": "microexpr.models.registry",
    "TorchClassifier": "microexpr.training.torch_classifier",
    "make_classifier": "microexpr.training.estimators",
    "load_model": "microexpr.training.estimators",
    "TrainConfig": "microexpr.training.loop",
    "model_inputs": "microexpr.training.inputs",
    "make_input_recipe": "microexpr.training.inputs",
    "InputRecipe": "microexpr.training.inputs",
    "export_onnx": "microexpr.training.export",
    "OnnxClassifier": "microexpr.training.export",
    "evaluate": "microexpr.evaluation.runner",
    "train": "microexpr.evaluation.train_model",
    "EvaluationResult": "microexpr.evaluation.runner",
    "compute_metrics": "microexpr.evaluation.metrics",
    "load_results": "microexpr.evaluation.report",
    "report": "microexpr.evaluation.html_report",
    "plot_mol": "microexpr.evaluation.mol_plot",
    "run_demo": "microexpr.demo",
    "analyze": "microexpr.video",
    "VideoAnalysis": "microexpr.video",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'microexpr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
